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
    : TrunkTransformer(std::move(config)) {
  const ModelConfig& c = config_;
  TORCH_CHECK(static_cast<int64_t>(c.mixers.size()) == c.n_layers,
              "model.mixers: needs one entry per layer");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    MixerBlock block(c, c.mixers[i]);
    layers_.push_back(block);
    blocks_->push_back(block);  // Run loops over layers_ itself; the trunk's list registers them
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
  const torch::Tensor e = embed_(tokens);
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
      x = layers_[i]->forward(x, cos, sin, eval_widths_[i]);
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

torch::Tensor LayerStackTransformer::Pass(const torch::Tensor& e, const torch::Tensor& cos,
                                          const torch::Tensor& sin,
                                          const std::vector<int64_t>& widths,
                                          const torch::Tensor& ffn_units) {
  const ModelConfig& c = config_;
  torch::Tensor x = e;
  for (int64_t r = 0; r < c.loops; ++r) {
    x = EnterLoop(r, x, e);
    for (size_t i = 0; i < layers_.size(); ++i) {
      x = layers_[i]->forward(x, cos, sin, widths[i], ffn_units);
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

ModelOutput LayerStackTransformer::Run(const torch::Tensor& tokens, int64_t /*phase*/, Head head) {
  const auto [cos, sin] = Tables(tokens);
  const torch::Tensor e = embed_(tokens);
  ModelOutput out;
  if (head == Head::kLogits || granularity_widths_.empty()) {
    Finish(out, Pass(e, cos, sin, eval_widths_), head);
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
    Finish(out, Pass(e, cos, sin, eval_widths_, units), head);
    return out;
  }
  // joint: every granularity's final hidden states side by side along the position axis.
  std::vector<torch::Tensor> hidden;
  for (const int64_t width : granularity_widths_) {
    hidden.push_back(Pass(e, cos, sin, std::vector<int64_t>(n_layers, width)));
  }
  Finish(out, torch::cat(hidden, 1), head);
  const int64_t seq_len = tokens.size(1);
  out.hidden_positions = torch::arange(seq_len, tokens.options()).repeat({n_granularities});
  out.train_positions = torch::ones({seq_len}, tokens.options().dtype(torch::kBool));
  return out;
}

torch::Tensor LayerStackTransformer::ExtendCache(KvCache& cache, const torch::Tensor& tokens) {
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
