#include "trainer/models/layer_stack.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace gauntlet {

LayerStackTransformer::LayerStackTransformer(ModelConfig config)
    : TrunkTransformer(std::move(config)),
      has_workers_(std::count(config_.mixers.begin(), config_.mixers.end(), "worker") > 0),
      workers_only_(LayerStackTrainsWorkersOnly(config_)),
      worker_layouts_(config_.worker_interval) {
  const ModelConfig& c = config_;
  TORCH_CHECK(static_cast<int64_t>(c.mixers.size()) == c.n_layers,
              "model.mixers: needs one entry per layer");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    MixerBlock block(c, c.mixers[i]);
    layers_.push_back(block);
    blocks_->push_back(block);  // Run loops over layers_ itself; the trunk's list registers them
  }
  if (has_workers_) {
    worker_type_ = register_parameter("worker_type", torch::randn({c.d_model}) * 0.02);
  }
  if (c.loop_embedding) {
    loop_embedding_ =
        register_parameter("loop_embedding", torch::randn({c.loops, c.d_model}) * 0.02);
  }
  if (c.loop_inter_linear && c.loops > 1) {
    inter_loop_ = register_module("inter_loop", torch::nn::ModuleList());
    for (int64_t r = 1; r < c.loops; ++r) {
      inter_loop_->push_back(
          torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.d_model).bias(false)));
    }
  }
  granularity_widths_ = MatFormerWidths(c);
  if (granularity_widths_.empty()) {
    eval_widths_.assign(c.n_layers, c.d_ff);
  } else {
    SetEvalGranularity(c.matformer_eval_granularity);
  }
}

void LayerStackTransformer::SetEvalGranularity(const std::vector<int64_t>& per_layer) {
  const int64_t n_layers = config_.n_layers;
  TORCH_CHECK(!granularity_widths_.empty(), "SetEvalGranularity: not a matformer model");
  TORCH_CHECK(per_layer.size() == 1 || static_cast<int64_t>(per_layer.size()) == n_layers,
              "eval granularity: give one entry or one per layer (", n_layers, ")");
  eval_widths_.clear();
  for (int64_t i = 0; i < n_layers; ++i) {
    const int64_t index = per_layer.size() == 1 ? per_layer[0] : per_layer[i];
    TORCH_CHECK(index >= 0 && index < static_cast<int64_t>(granularity_widths_.size()),
                "eval granularity ", index, " out of range");
    eval_widths_.push_back(granularity_widths_[index]);
  }
}

namespace {

// "0.25" rather than "0.250000" (six significant digits, as the YAML would write it).
std::string Fraction(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

std::vector<std::string> LayerStackTransformer::SubmodelNames() const {
  const std::vector<double>& fractions = config_.matformer_granularities;
  std::vector<std::string> names;
  for (const double f : fractions) names.push_back("ffn=" + Fraction(f));
  const std::vector<int64_t>& configured = config_.matformer_eval_granularity;
  if (std::adjacent_find(configured.begin(), configured.end(), std::not_equal_to<>()) !=
      configured.end()) {
    std::vector<std::string> parts;
    for (const int64_t index : configured) parts.push_back(Fraction(fractions[index]));
    std::string name = "ffn=";
    for (size_t i = 0; i < parts.size(); ++i) name += (i > 0 ? "," : "") + parts[i];
    names.push_back(name);
  }
  return names;
}

void LayerStackTransformer::SelectSubmodel(const std::string& name) {
  if (name.empty()) {
    if (!granularity_widths_.empty()) SetEvalGranularity(config_.matformer_eval_granularity);
    return;
  }
  const std::vector<std::string> names = SubmodelNames();
  const auto it = std::find(names.begin(), names.end(), name);
  TORCH_CHECK(it != names.end(), "unknown submodel '", name, "'");
  const size_t index = it - names.begin();
  if (index < granularity_widths_.size()) {
    SetEvalGranularity({static_cast<int64_t>(index)});
  } else {
    SetEvalGranularity(config_.matformer_eval_granularity);
  }
}

std::vector<double> LayerStackTransformer::AttentionImportance(const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const ModelConfig& c = config_;
  const auto [cos, sin] = Tables(tokens);
  std::vector<torch::Tensor> cosine_sums(layers_.size());
  WorkerInputs workers;
  const torch::Tensor e = Embed(tokens, /*phase=*/0, cos, sin, workers);
  torch::Tensor x = e;
  // The loop of Pass, scoring each attention sub-layer on the stream that reaches it.
  for (int64_t r = 0; r < c.loops; ++r) {
    x = EnterLoop(r, x, e);
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (layers_[i]->HasAttention()) {
        const torch::Tensor after = layers_[i]->AfterMixer(x, cos, sin);
        const torch::Tensor cosine =
            torch::nn::functional::cosine_similarity(
                x.to(torch::kFloat32), after.to(torch::kFloat32),
                torch::nn::functional::CosineSimilarityFuncOptions().dim(-1))
                .mean();
        cosine_sums[i] = cosine_sums[i].defined() ? cosine_sums[i] + cosine : cosine;
      }
      x = ApplyLayer(i, x, cos, sin, eval_widths_[i], {}, workers);
    }
  }
  if (was_training) train();
  std::vector<double> importance;
  for (const torch::Tensor& sum : cosine_sums) {
    importance.push_back(sum.defined() ? 1.0 - sum.item<double>() / c.loops
                                       : std::numeric_limits<double>::quiet_NaN());
  }
  return importance;
}

void LayerStackTransformer::DropAttention(const std::vector<int64_t>& layers) {
  for (const int64_t layer : layers) {
    TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()), "DropAttention: layer ",
                layer, " outside [0, ", layers_.size(), ")");
    TORCH_CHECK(layers_[layer]->HasAttention(), "DropAttention: layer ", layer,
                " has no attention");
  }
  for (const int64_t layer : layers) layers_[layer]->DropMixer();
}

torch::Tensor LayerStackTransformer::EnterLoop(int64_t loop, const torch::Tensor& x,
                                               const torch::Tensor& e) {
  torch::Tensor out = x;
  if (loop > 0) {
    if (inter_loop_) out = out + ApplyLinear(*inter_loop_[loop - 1]->as<torch::nn::Linear>(), out);
    if (config_.loop_input_injection) out = out + e;
  }
  if (loop_embedding_.defined()) out = out + loop_embedding_[loop];
  return out;
}

torch::Tensor LayerStackTransformer::ApplyLayer(size_t i, const torch::Tensor& x,
                                                const torch::Tensor& cos, const torch::Tensor& sin,
                                                int64_t width, const torch::Tensor& ffn_units,
                                                const WorkerInputs& workers) {
  if (layers_[i]->IsWorker()) return layers_[i]->ForwardWorker(x, workers, width, ffn_units);
  return layers_[i]->forward(x, cos, sin, width, ffn_units);
}

torch::Tensor LayerStackTransformer::Pass(const torch::Tensor& e, const torch::Tensor& cos,
                                          const torch::Tensor& sin,
                                          const std::vector<int64_t>& widths,
                                          const torch::Tensor& ffn_units,
                                          const WorkerInputs& workers) {
  const ModelConfig& c = config_;
  torch::Tensor x = e;
  for (int64_t r = 0; r < c.loops; ++r) {
    x = EnterLoop(r, x, e);
    for (size_t i = 0; i < layers_.size(); ++i) {
      x = ApplyLayer(i, x, cos, sin, widths[i], ffn_units, workers);
    }
  }
  return x;
}

const torch::Tensor& LayerStackTransformer::GranularityUnits(const torch::Device& device) {
  if (!granularity_units_.defined() || granularity_units_.device() != device) {
    // Built on the host once per device (the first training step may wait; later ones must not).
    const torch::Tensor widths = torch::tensor(granularity_widths_, torch::kInt64).unsqueeze(1);
    granularity_units_ =
        (torch::arange(config_.d_ff, torch::kInt64).unsqueeze(0) < widths).to(torch::kFloat32)
            .to(device);
  }
  return granularity_units_;
}

torch::Tensor LayerStackTransformer::Embed(const torch::Tensor& tokens, int64_t phase,
                                           const torch::Tensor& cos, const torch::Tensor& sin,
                                           WorkerInputs& workers) {
  torch::Tensor e = embed_(tokens);
  if (!has_workers_) return e;
  TORCH_CHECK(phase >= 0 && phase < config_.worker_interval, "worker phase ", phase,
              " outside [0, ", config_.worker_interval, ")");
  workers = worker_layouts_.Inputs(tokens.size(1), phase, tokens.device(),
                                   ComputeDtype(tokens.device()), cos, sin);
  return e + workers.layout->indicator * worker_type_;
}

void LayerStackTransformer::FinishStack(ModelOutput& out, const std::vector<torch::Tensor>& finals,
                                        Head head, const WorkerInputs& workers) {
  const int64_t passes = static_cast<int64_t>(finals.size());
  const int64_t seq_len = finals[0].size(1);
  const auto positions = finals[0].options().dtype(torch::kInt64);
  if (!workers_only_) {
    Finish(out, passes == 1 ? finals[0] : torch::cat(finals, 1), head);
    if (passes > 1) out.hidden_positions = torch::arange(seq_len, positions).repeat({passes});
    return;
  }
  // Only the workers' predictions read earlier tokens: the training head runs there alone.
  const WorkerLayout& layout = *workers.layout;
  if (head == Head::kHidden) {
    std::vector<torch::Tensor> rows;
    for (const torch::Tensor& x : finals) rows.push_back(layout.Gather(x));
    FinishHead(out, norm_f_(passes == 1 ? rows[0] : torch::cat(rows, 1)), head_, head);
    out.hidden_positions = passes == 1 ? layout.workers : layout.workers.repeat({passes});
  } else {
    TORCH_CHECK(passes == 1, "logits come from one pass");
    FinishHead(out, norm_f_(finals[0]), head_, head);
  }
  out.train_positions = layout.is_worker;
  out.aux_loss = torch::zeros({}, finals[0].options().dtype(torch::kFloat32));
}

ModelOutput LayerStackTransformer::Run(const torch::Tensor& tokens, int64_t phase, Head head) {
  const auto [cos, sin] = Tables(tokens);
  WorkerInputs workers;
  const torch::Tensor e = Embed(tokens, phase, cos, sin, workers);
  ModelOutput out;
  if (head == Head::kLogits || granularity_widths_.empty()) {
    FinishStack(out, {Pass(e, cos, sin, eval_widths_, {}, workers)}, head, workers);
    return out;
  }
  const int64_t n_layers = config_.n_layers;
  const int64_t n_granularities = static_cast<int64_t>(granularity_widths_.size());
  if (config_.matformer_train_mode == "sample") {
    // One granularity for every layer, drawn on the model's device and applied as a hidden-unit
    // mask: neither a shape nor a host value depends on the draw, so a captured CUDA graph draws
    // anew at every replay.
    const torch::Tensor g = torch::randint(n_granularities, {1}, tokens.options());
    const torch::Tensor units = GranularityUnits(tokens.device()).index_select(0, g).squeeze(0);
    FinishStack(out, {Pass(e, cos, sin, eval_widths_, units, workers)}, head, workers);
    return out;
  }
  // joint: every granularity's final hidden states side by side along the position axis.
  std::vector<torch::Tensor> finals;
  for (const int64_t width : granularity_widths_) {
    finals.push_back(Pass(e, cos, sin, std::vector<int64_t>(n_layers, width), {}, workers));
  }
  FinishStack(out, finals, head, workers);
  return out;
}

int64_t LayerStackTransformer::NumEvalPhases() const {
  return workers_only_ ? config_.worker_interval : 1;
}

torch::Tensor LayerStackTransformer::TrainPositions(int64_t seq_len, int64_t phase) const {
  if (!workers_only_) return LanguageModelImpl::TrainPositions(seq_len, phase);
  const std::vector<int64_t> positions = WorkerPositions(seq_len, config_.worker_interval, phase);
  return torch::zeros({seq_len}, torch::kBool)
      .index_fill(0, torch::tensor(positions, torch::kInt64), true);
}

torch::Tensor LayerStackTransformer::ExtendCache(KvCache& cache, const torch::Tensor& tokens) {
  TORCH_CHECK(!has_workers_, "arch ", config_.arch, " with worker layers has no KV-cache decoding");
  const ModelConfig& c = config_;
  const auto [cos, sin] = CacheTables(cache, tokens);
  const int64_t n_layers = static_cast<int64_t>(layers_.size());
  cache.attention.resize(c.loops * n_layers);
  // Pass, with every layer reading and extending its own cache entry.
  const torch::Tensor e = embed_(tokens);
  torch::Tensor x = e;
  for (int64_t r = 0; r < c.loops; ++r) {
    x = EnterLoop(r, x, e);
    for (int64_t i = 0; i < n_layers; ++i) {
      x = layers_[i]->ForwardCached(
          x, cos, sin, eval_widths_[i],
          BindAttention(cache.attention[r * n_layers + i], cache));
    }
  }
  return LastLogits(x);
}

}  // namespace gauntlet
