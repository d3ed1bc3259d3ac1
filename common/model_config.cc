#include "common/model_config.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// ---------------------------------------------------------------------------------------------
// standard, worker, sparse_depth, hybrid

double StandardLayerFlops(const ModelConfig& c, int64_t seq_len) {
  const double d = c.d_model;
  return TrainingMatmulFlops(5.0 * d * d + 2.0 * d * c.d_ff) + TrainingAttentionFlops(d, seq_len);
}

double HeadFlops(const ModelConfig& c) {
  return TrainingMatmulFlops(static_cast<double>(c.d_model) * c.vocab_size);
}

double StandardFlops(const ModelConfig& c, int64_t seq_len) {
  return c.n_layers * StandardLayerFlops(c, seq_len) + HeadFlops(c);
}

// Counts phase 0's worker share; K/V and the conv run on every position, the head in training
// only at the workers.
double WorkerFlops(const ModelConfig& c, int64_t seq_len) {
  const double d = c.d_model;
  const double share =
      static_cast<double>(WorkerPositions(seq_len, c.worker_interval, 0).size()) / seq_len;
  const double all_tokens = TrainingMatmulFlops(2.0 * d * d + c.worker_conv_kernel * d);
  const double workers_only =
      TrainingMatmulFlops(3.0 * d * d + 2.0 * d * c.d_ff) + TrainingAttentionFlops(d, seq_len);
  return c.n_layers * (all_tokens + share * workers_only) + share * HeadFlops(c);
}

// Cached key/value values per token (KvCacheValuesPerToken): 2 d per attention layer.
double StandardKvValues(const ModelConfig& c, int64_t /*context*/) {
  return 2.0 * c.d_model * c.n_layers;
}

absl::Status ValidateWorker(const ModelConfig& c) {
  if (c.worker_interval <= 0) {
    return Invalid(
        absl::StrCat("model.worker.interval: must be positive, got ", c.worker_interval));
  }
  if (c.worker_conv_kernel <= 0) {
    return Invalid(
        absl::StrCat("model.worker.conv_kernel: must be positive, got ", c.worker_conv_kernel));
  }
  return absl::OkStatus();
}

// Routed layers run C slots per row whatever the routing: that fixed work is what is counted
// (attention among slots: (C / T)^2 of the dense score work).
double SparseDepthFlops(const ModelConfig& c, int64_t seq_len) {
  const double d = c.d_model;
  const double block = TrainingMatmulFlops(5.0 * d * d + 2.0 * d * c.d_ff);
  const double share = static_cast<double>(SparseDepthSlots(c, seq_len)) / seq_len;
  const double routed =
      TrainingMatmulFlops(d) + share * block + share * TrainingAttentionFlops(d, share * seq_len);
  return c.sparse_dense_layers * StandardLayerFlops(c, seq_len) +
         (c.n_layers - c.sparse_dense_layers) * routed + HeadFlops(c);
}

// Routed layers hold C + 1 slots (one takes unrouted tokens' writes) for `context` positions.
double SparseDepthKvValues(const ModelConfig& c, int64_t context) {
  const double routed_share = (SparseDepthSlots(c, context) + 1.0) / context;
  return 2.0 * c.d_model *
         (c.sparse_dense_layers + (c.n_layers - c.sparse_dense_layers) * routed_share);
}

absl::Status ValidateSparseDepth(const ModelConfig& c) {
  if (!(c.sparse_capacity > 0.0 && c.sparse_capacity < 1.0)) {
    // The router's target probability; 0 or 1 would drive its logits to infinity.
    return Invalid(
        absl::StrCat("model.sparse_depth.capacity: must be in (0, 1), got ", c.sparse_capacity));
  }
  if (c.sparse_dense_layers < 0 || c.sparse_dense_layers > c.n_layers) {
    return Invalid(absl::StrCat("model.sparse_depth.dense_layers: must be in [0, model.n_layers = ",
                                c.n_layers, "], got ", c.sparse_dense_layers));
  }
  if (!(c.sparse_aux_loss_weight >= 0.0)) {
    return Invalid(absl::StrCat("model.sparse_depth.aux_loss_weight: must be >= 0, got ",
                                c.sparse_aux_loss_weight));
  }
  return absl::OkStatus();
}

absl::Status ResolveHybrid(const v1::ModelSpec& spec, ModelConfig& c) {
  c.hybrid_attention_layers.clear();
  if (spec.hybrid().layer_types_size() > 0) {
    for (int i = 0; i < spec.hybrid().layer_types_size(); ++i) {
      const std::string& type = spec.hybrid().layer_types(i);
      if (type != "attn" && type != "mlp") {
        return Invalid(absl::StrCat("model.hybrid.layer_types[", i, "]: '", type,
                                    "' is neither 'attn' nor 'mlp'"));
      }
      c.hybrid_attention_layers.push_back(type == "attn");
    }
  } else if (c.n_layers > 0) {
    // Default: attention in the first half (rounded up), static MLP in the rest.
    const int64_t n_attn = (c.n_layers + 1) / 2;
    for (int64_t i = 0; i < c.n_layers; ++i) c.hybrid_attention_layers.push_back(i < n_attn);
  }
  return absl::OkStatus();
}

absl::Status ValidateHybrid(const ModelConfig& c) {
  if (static_cast<int64_t>(c.hybrid_attention_layers.size()) != c.n_layers) {
    return Invalid(absl::StrCat("model.hybrid.layer_types: has ", c.hybrid_attention_layers.size(),
                                " entries but model.n_layers is ", c.n_layers));
  }
  return absl::OkStatus();
}

double HybridFlops(const ModelConfig& c, int64_t seq_len) {
  const double d = c.d_model;
  const double ffn = TrainingMatmulFlops(2.0 * d * c.d_ff);
  double total = HeadFlops(c);
  for (const bool attention : c.hybrid_attention_layers) {
    total +=
        ffn + (attention ? TrainingMatmulFlops(5.0 * d * d) + TrainingAttentionFlops(d, seq_len)
                         : TrainingMatmulFlops(2.0 * c.hybrid_static_mlp_ratio * d * d));
  }
  return total;
}

// Static-MLP layers cache nothing.
double HybridKvValues(const ModelConfig& c, int64_t /*context*/) {
  const double attention_layers = static_cast<double>(
      std::count(c.hybrid_attention_layers.begin(), c.hybrid_attention_layers.end(), true));
  return 2.0 * c.d_model * attention_layers;
}

// ---------------------------------------------------------------------------------------------
// Layer-stack archs: sqa, mixed, looped, matformer, attn_drop (trainer/models/layer_stack.h).

bool UsesMixer(const ModelConfig& c, const std::string& mixer) { return Contains(c.mixers, mixer); }

// The spec's mixer list, or `fallback` on every layer.
absl::Status ResolveMixers(const v1::ModelSpec& spec, ModelConfig& c, const std::string& fallback) {
  c.mixers.clear();
  if (spec.mixers_size() == 0) {
    c.mixers.assign(std::max<int64_t>(c.n_layers, 0), fallback);
    return absl::OkStatus();
  }
  for (int i = 0; i < spec.mixers_size(); ++i) {
    if (!Contains(Mixers(), spec.mixers(i))) {
      return Invalid(absl::StrCat("model.mixers[", i, "]: unknown mixer '", spec.mixers(i),
                                  "'; known: ", absl::StrJoin(Mixers(), ", ")));
    }
    c.mixers.push_back(spec.mixers(i));
  }
  return absl::OkStatus();
}

absl::Status ResolveAllAttention(const v1::ModelSpec& spec, ModelConfig& c) {
  return ResolveMixers(spec, c, "attn");
}

absl::Status ResolveSqa(const v1::ModelSpec& spec, ModelConfig& c) {
  return ResolveMixers(spec, c, "sqa");
}

absl::Status ResolveAttnDrop(const v1::ModelSpec& spec, ModelConfig& c) {
  if (absl::Status s = ResolveMixers(spec, c, "attn"); !s.ok()) return s;
  std::vector<int64_t> drop;
  for (int i = 0; i < spec.attn_drop().drop_layers_size(); ++i) {
    const int64_t layer = spec.attn_drop().drop_layers(i);
    if (layer < 0 || layer >= c.n_layers) {
      return Invalid(absl::StrCat("model.attn_drop.drop_layers[", i, "]: layer ", layer,
                                  " outside [0, model.n_layers = ", c.n_layers, ")"));
    }
    drop.push_back(layer);
  }
  if (spec.attn_drop().drop_layers_size() == 0) {
    // Default: the deepest half (rounded down), where attention is most redundant.
    for (int64_t i = (c.n_layers + 1) / 2; i < c.n_layers; ++i) drop.push_back(i);
  }
  for (const int64_t layer : drop) c.mixers[layer] = "none";
  return absl::OkStatus();
}

absl::Status ResolveLooped(const v1::ModelSpec& spec, ModelConfig& c) {
  const v1::LoopedOptions& o = spec.looped();
  c.loops = o.has_loops() ? o.loops() : 2;
  c.loop_input_injection = o.has_input_injection() ? o.input_injection() : true;
  c.loop_embedding = o.has_loop_embedding() ? o.loop_embedding() : true;
  c.loop_inter_linear = o.has_inter_loop_linear() ? o.inter_loop_linear() : true;
  return ResolveMixers(spec, c, "attn");
}

absl::Status ResolveMatFormer(const v1::ModelSpec& spec, ModelConfig& c) {
  const v1::MatFormerOptions& o = spec.matformer();
  c.matformer_granularities.assign(o.granularities().begin(), o.granularities().end());
  if (c.matformer_granularities.empty()) c.matformer_granularities = {0.125, 0.25, 0.5, 1.0};
  c.matformer_train_mode = o.train_mode().empty() ? "joint" : o.train_mode();
  const int64_t largest = static_cast<int64_t>(c.matformer_granularities.size()) - 1;
  c.matformer_eval_granularity.clear();
  if (o.eval_granularity_size() == 1) {
    c.matformer_eval_granularity.assign(std::max<int64_t>(c.n_layers, 0), o.eval_granularity(0));
  } else if (o.eval_granularity_size() > 1) {
    c.matformer_eval_granularity.assign(o.eval_granularity().begin(), o.eval_granularity().end());
  } else {
    c.matformer_eval_granularity.assign(std::max<int64_t>(c.n_layers, 0), largest);
  }
  return ResolveMixers(spec, c, "attn");
}

absl::Status ValidateLayerStack(const ModelConfig& c) {
  if (static_cast<int64_t>(c.mixers.size()) != c.n_layers) {
    return Invalid(absl::StrCat("model.mixers: has ", c.mixers.size(),
                                " entries but model.n_layers is ", c.n_layers));
  }
  for (size_t i = 0; i < c.mixers.size(); ++i) {
    if (!Contains(Mixers(), c.mixers[i])) {
      return Invalid(absl::StrCat("model.mixers[", i, "]: unknown mixer '", c.mixers[i],
                                  "'; known: ", absl::StrJoin(Mixers(), ", ")));
    }
  }
  if (UsesMixer(c, "sqa")) {
    if (c.sqa_q_heads <= 0 || c.sqa_q_heads > c.n_heads) {
      return Invalid(absl::StrCat("model.sqa.n_q_heads: must be in [1, model.n_heads = ", c.n_heads,
                                  "], got ", c.sqa_q_heads));
    }
    if (c.sqa_kv_heads <= 0 || c.sqa_q_heads % c.sqa_kv_heads != 0) {
      return Invalid(
          absl::StrCat("model.sqa.n_kv_heads: must be positive and divide "
                       "model.sqa.n_q_heads = ",
                       c.sqa_q_heads, ", got ", c.sqa_kv_heads));
    }
  }
  if (UsesMixer(c, "sliced_attn") && c.slice_len <= 0) {
    return Invalid(
        absl::StrCat("model.sliced_attention.slice_len: must be positive, got ", c.slice_len));
  }
  if (c.loops < 1) return Invalid(absl::StrCat("model.looped.loops: must be >= 1, got ", c.loops));
  if (UsesMixer(c, "worker")) return ValidateWorker(c);
  return absl::OkStatus();
}

absl::Status ValidateMatFormer(const ModelConfig& c) {
  if (absl::Status s = ValidateLayerStack(c); !s.ok()) return s;
  const std::vector<double>& g = c.matformer_granularities;
  if (g.empty() || g.back() != 1.0) {
    return Invalid("model.matformer.granularities: must end with 1 (the whole FFN)");
  }
  const std::vector<int64_t> widths = MatFormerWidths(c);
  for (size_t i = 0; i < g.size(); ++i) {
    if (!(g[i] > 0.0) || widths[i] < 1 || (i > 0 && widths[i] <= widths[i - 1])) {
      return Invalid(absl::StrCat("model.matformer.granularities[", i, "]: ", g[i],
                                  " must give a hidden width above the previous one's (",
                                  i > 0 ? widths[i - 1] : 0, " of model.d_ff = ", c.d_ff, ")"));
    }
  }
  if (c.matformer_train_mode != "joint" && c.matformer_train_mode != "sample") {
    return Invalid(absl::StrCat("model.matformer.train_mode: '", c.matformer_train_mode,
                                "' is neither 'joint' nor 'sample'"));
  }
  if (static_cast<int64_t>(c.matformer_eval_granularity.size()) != c.n_layers) {
    return Invalid(
        absl::StrCat("model.matformer.eval_granularity: has ", c.matformer_eval_granularity.size(),
                     " entries; give one, or one per layer (model.n_layers = ", c.n_layers, ")"));
  }
  for (size_t i = 0; i < c.matformer_eval_granularity.size(); ++i) {
    const int64_t index = c.matformer_eval_granularity[i];
    if (index < 0 || index >= static_cast<int64_t>(g.size())) {
      return Invalid(absl::StrCat("model.matformer.eval_granularity[", i, "]: ", index,
                                  " is not an index into model.matformer.granularities (", g.size(),
                                  " entries)"));
    }
  }
  return absl::OkStatus();
}

// Share of a phase-0 window's positions that are workers.
double WorkerShare(const ModelConfig& c, int64_t seq_len) {
  return static_cast<double>(WorkerPositions(seq_len, c.worker_interval, 0).size()) / seq_len;
}

// The training head runs at the trained positions only.
double LayerStackHeadFlops(const ModelConfig& c, int64_t seq_len) {
  return (LayerStackTrainsWorkersOnly(c) ? WorkerShare(c, seq_len) : 1.0) * HeadFlops(c);
}

// One pass of the unique layers at FFN hidden width `ffn_width`.
double LayerStackPassFlops(const ModelConfig& c, int64_t seq_len, int64_t ffn_width) {
  const double d = c.d_model;
  const double head_width = d / c.n_heads;
  double total = 0.0;
  for (const std::string& mixer : c.mixers) {
    if (mixer == "worker") {
      // As the worker arch's layer: K/V and the conv at every position, the rest at the workers.
      const double share = WorkerShare(c, seq_len);
      total += TrainingMatmulFlops(2.0 * d * d + c.worker_conv_kernel * d) +
               share * (TrainingMatmulFlops(3.0 * d * d + 2.0 * d * ffn_width) +
                        TrainingAttentionFlops(d, seq_len));
      continue;
    }
    total += TrainingMatmulFlops(2.0 * d * ffn_width);
    if (mixer == "attn") {
      total += TrainingMatmulFlops(5.0 * d * d) + TrainingAttentionFlops(d, seq_len);
    } else if (mixer == "sliced_attn") {
      total += TrainingMatmulFlops(5.0 * d * d) +
               TrainingAttentionFlops(d, std::min<int64_t>(c.slice_len, seq_len));
    } else if (mixer == "sqa") {
      // W_q, W_gate, W_out at H_q heads; W_k, W_v at H_kv heads; scores at H_q heads.
      const double q_width = c.sqa_q_heads * head_width;
      const double kv_width = c.sqa_kv_heads * head_width;
      total += TrainingMatmulFlops(3.0 * d * q_width + 2.0 * d * kv_width) +
               TrainingAttentionFlops(q_width, seq_len);
    } else if (mixer == "static_mlp") {
      total += TrainingMatmulFlops(2.0 * c.hybrid_static_mlp_ratio * d * d);
    }  // "none": nothing
  }
  return total;
}

// Every loop caches its own keys and values. Sliced attention keeps every position too (the
// cache does not yet drop keys of finished chunks); SQA keeps H_kv heads.
double LayerStackKvValues(const ModelConfig& c, int64_t /*context*/) {
  const double head_width = static_cast<double>(c.d_model) / c.n_heads;
  double per_pass = 0.0;
  for (const std::string& mixer : c.mixers) {
    if (mixer == "attn" || mixer == "sliced_attn" || mixer == "worker") per_pass += 2.0 * c.d_model;
    if (mixer == "sqa") per_pass += 2.0 * c.sqa_kv_heads * head_width;
  }
  return c.loops * per_pass;
}

double LayerStackFlops(const ModelConfig& c, int64_t seq_len) {
  const double d = c.d_model;
  const double inter_loop = c.loop_inter_linear ? (c.loops - 1) * TrainingMatmulFlops(d * d) : 0.0;
  return c.loops * LayerStackPassFlops(c, seq_len, c.d_ff) + inter_loop +
         LayerStackHeadFlops(c, seq_len);
}

// joint: every granularity's full forward and backward per step; sample: their mean.
double MatFormerFlops(const ModelConfig& c, int64_t seq_len) {
  const std::vector<int64_t> widths = MatFormerWidths(c);
  double total = 0.0;
  for (const int64_t width : widths) {
    total += LayerStackPassFlops(c, seq_len, width) + LayerStackHeadFlops(c, seq_len);
  }
  return c.matformer_train_mode == "sample" ? total / static_cast<double>(widths.size()) : total;
}

// Resolves the SQA head counts from the preset and explicit counts (any arch may carry them).
absl::Status ResolveSqaHeads(const v1::ModelSpec& spec, ModelConfig& c) {
  const v1::SqaOptions& o = spec.sqa();
  const std::string preset =
      o.preset().empty() && !(o.has_n_q_heads() && o.has_n_kv_heads()) ? "ssqa" : o.preset();
  const int64_t h = c.n_heads;
  if (!preset.empty()) {
    // The presets as fractions of the nominal head count H (docs/ARCHITECTURES.md "sqa").
    int64_t q_div, kv_div;
    if (preset == "sqa") {
      q_div = 2, kv_div = 4;
    } else if (preset == "ssqa") {
      q_div = 2, kv_div = 2;
    } else if (preset == "xsqa") {
      q_div = 4, kv_div = 4;
    } else if (preset == "xsmqa") {
      q_div = 4, kv_div = 0;  // one key/value head
    } else {
      return Invalid(absl::StrCat("model.sqa.preset: unknown preset '", preset,
                                  "'; known: sqa, ssqa, xsqa, xsmqa"));
    }
    const bool uses_sqa = UsesMixer(c, "sqa");
    if (uses_sqa && (h % q_div != 0 || (kv_div > 0 && h % kv_div != 0))) {
      return Invalid(absl::StrCat("model.sqa.preset: '", preset, "' needs model.n_heads (", h,
                                  ") divisible by ", std::max(q_div, kv_div)));
    }
    c.sqa_q_heads = h / q_div;
    c.sqa_kv_heads = kv_div > 0 ? h / kv_div : 1;
  }
  if (o.has_n_q_heads()) c.sqa_q_heads = o.n_q_heads();
  if (o.has_n_kv_heads()) c.sqa_kv_heads = o.n_kv_heads();
  return absl::OkStatus();
}

}  // namespace

const std::vector<NamedSize>& NamedSizes() {
  // d_ff is 4 * d_model everywhere, as in the seeds and GPT-2.
  static const auto* const kSizes = new std::vector<NamedSize>{
      // Seconds on one CPU core; dropout 0 so CPU tests of training are deterministic.
      {"tiny", 0, 32, 2, 2, 128, 64, 0.0},
      // The WorkerTransformer repository's benchmark configuration.
      {"seed", 0, 256, 4, 4, 1024, 1024, 0.1},
      // GPT-2 small dimensions; dropout 0 as nanoGPT uses for pre-training at this scale.
      {"124m", 0, 768, 12, 12, 3072, 1024, 0.0},
      // The same with the vocabulary padded to GPT-2's 50,304 (a multiple of 128, as llm.c and
      // nanoGPT use), so throughput and MFU compare with published GPT-2 124M figures whatever
      // the tokenizer (its vocabulary must fit).
      {"gpt2-small", 50304, 768, 12, 12, 3072, 1024, 0.0},
  };
  return *kSizes;
}

const std::vector<ArchRules>& Archs() {
  // {name, resolve, validate, training FLOPs per token, KV-cache values per token}; the
  // factories are the rows of the same names in trainer/models/registry.cc.
  static const auto* const kArchs = new std::vector<ArchRules>{
      // worker: keys and values of every token at every layer, as standard.
      {"standard", nullptr, nullptr, StandardFlops, StandardKvValues},
      {"worker", nullptr, ValidateWorker, WorkerFlops, StandardKvValues},
      {"sparse_depth", nullptr, ValidateSparseDepth, SparseDepthFlops, SparseDepthKvValues},
      {"hybrid", ResolveHybrid, ValidateHybrid, HybridFlops, HybridKvValues},
      {"sqa", ResolveSqa, ValidateLayerStack, LayerStackFlops, LayerStackKvValues},
      {"mixed", ResolveAllAttention, ValidateLayerStack, LayerStackFlops, LayerStackKvValues},
      {"looped", ResolveLooped, ValidateLayerStack, LayerStackFlops, LayerStackKvValues},
      {"matformer", ResolveMatFormer, ValidateMatFormer, MatFormerFlops, LayerStackKvValues},
      {"attn_drop", ResolveAttnDrop, ValidateLayerStack, LayerStackFlops, LayerStackKvValues},
  };
  return *kArchs;
}

const ArchRules* FindArch(const std::string& arch) {
  for (const ArchRules& rules : Archs()) {
    if (rules.name == arch) return &rules;
  }
  return nullptr;
}

const std::vector<std::string>& KnownArchs() {
  static const auto* const kNames = [] {
    auto* names = new std::vector<std::string>;
    for (const ArchRules& rules : Archs()) names->push_back(rules.name);
    return names;
  }();
  return *kNames;
}

const std::vector<std::string>& KnownSizes() {
  static const auto* const kNames = [] {
    auto* names = new std::vector<std::string>;
    for (const NamedSize& size : NamedSizes()) names->push_back(size.name);
    return names;
  }();
  return *kNames;
}

const std::vector<std::string>& Mixers() {
  static const auto* const kMixers =
      new std::vector<std::string>{"attn", "sqa", "sliced_attn", "static_mlp", "none", "worker"};
  return *kMixers;
}

bool IsAttentionMixer(const std::string& mixer) {
  return mixer == "attn" || mixer == "sqa" || mixer == "sliced_attn";
}

bool LayerStackTrainsWorkersOnly(const ModelConfig& c) {
  return Contains(c.mixers, "worker") &&
         std::none_of(c.mixers.begin(), c.mixers.end(), IsAttentionMixer);
}

std::vector<int64_t> WorkerPositions(int64_t seq_len, int64_t interval, int64_t phase) {
  std::vector<int64_t> positions;
  for (int64_t t = 0; t < seq_len; ++t) {
    if ((t + phase) % interval == interval - 1 || t == seq_len - 1) positions.push_back(t);
  }
  return positions;
}

int64_t SparseDepthSlots(const ModelConfig& config, int64_t seq_len) {
  const double bound = std::ceil(kSparseSlotFactor * config.sparse_capacity * seq_len);
  return std::clamp<int64_t>(static_cast<int64_t>(bound), 1, seq_len);
}

std::vector<int64_t> MatFormerWidths(const ModelConfig& config) {
  std::vector<int64_t> widths;
  for (const double g : config.matformer_granularities) {
    widths.push_back(static_cast<int64_t>(std::llround(g * config.d_ff)));
  }
  return widths;
}

double TrainingFlopsPerToken(const ModelConfig& config, int64_t seq_len) {
  const ArchRules* rules = FindArch(config.arch);
  return rules == nullptr ? 0.0 : rules->training_flops_per_token(config, seq_len);
}

double KvCacheBytesPerToken(const ModelConfig& config, int64_t context, int64_t bytes_per_value) {
  const ArchRules* rules = FindArch(config.arch);
  if (rules == nullptr || context <= 0) return 0.0;
  return rules->kv_cache_values_per_token(config, context) * static_cast<double>(bytes_per_value);
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  const ArchRules* rules = FindArch(c.arch);
  if (rules == nullptr) {
    return Invalid(absl::StrCat("model.arch: unknown architecture '", c.arch,
                                "'; known: ", absl::StrJoin(KnownArchs(), ", ")));
  }
  if (c.vocab_size <= 0) {
    return Invalid(
        absl::StrCat("data.tokenizer: vocabulary size must be positive, got ", c.vocab_size));
  }
  if (c.d_model <= 0)
    return Invalid(absl::StrCat("model.d_model: must be positive, got ", c.d_model));
  if (c.n_layers <= 0) {
    return Invalid(absl::StrCat("model.n_layers: must be positive, got ", c.n_layers));
  }
  if (c.n_heads <= 0)
    return Invalid(absl::StrCat("model.n_heads: must be positive, got ", c.n_heads));
  if (c.d_model % c.n_heads != 0) {
    return Invalid(
        absl::StrCat("model.n_heads: ", c.n_heads, " does not divide model.d_model ", c.d_model));
  }
  if ((c.d_model / c.n_heads) % 2 != 0) {
    // Interleaved RoPE rotates channel pairs, so every head needs an even width.
    return Invalid(absl::StrCat("model.n_heads: head width model.d_model / model.n_heads = ",
                                c.d_model / c.n_heads, " must be even for RoPE"));
  }
  if (c.d_ff <= 0) return Invalid(absl::StrCat("model.d_ff: must be positive, got ", c.d_ff));
  if (c.seq_len <= 0)
    return Invalid(absl::StrCat("model.seq_len: must be positive, got ", c.seq_len));
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    return Invalid(absl::StrCat("model.dropout: must be in [0, 1), got ", c.dropout));
  }
  // The static MLP serves hybrid and the "static_mlp" mixer of the layer-stack archs.
  if (c.hybrid_static_mlp_ratio <= 0) {
    return Invalid(absl::StrCat("model.hybrid.static_mlp_ratio: must be positive, got ",
                                c.hybrid_static_mlp_ratio));
  }
  return rules->validate == nullptr ? absl::OkStatus() : rules->validate(c);
}

absl::StatusOr<ModelConfig> ResolveModelConfig(const v1::ModelSpec& spec, int64_t vocab_size) {
  if (spec.arch().empty()) {
    return Invalid(
        absl::StrCat("model.arch: required; known: ", absl::StrJoin(KnownArchs(), ", ")));
  }
  const ArchRules* rules = FindArch(spec.arch());
  if (rules == nullptr) {
    return Invalid(absl::StrCat("model.arch: unknown architecture '", spec.arch(),
                                "'; known: ", absl::StrJoin(KnownArchs(), ", ")));
  }
  const std::string size = spec.size().empty() ? "seed" : spec.size();
  const NamedSize* named = nullptr;
  for (const NamedSize& candidate : NamedSizes()) {
    if (candidate.name == size) named = &candidate;
  }
  if (named == nullptr) {
    return Invalid(absl::StrCat("model.size: unknown size '", size,
                                "'; known: ", absl::StrJoin(KnownSizes(), ", ")));
  }
  ModelConfig c;
  c.arch = spec.arch();
  c.size = named->name;
  c.d_model = named->d_model;
  c.n_layers = named->n_layers;
  c.n_heads = named->n_heads;
  c.seq_len = named->seq_len;
  c.dropout = named->dropout;
  // The tokenizer's vocabulary unless the spec or the named size asks for a larger (padded) one.
  c.vocab_size = spec.has_vocab_size() ? spec.vocab_size() : named->vocab_size;
  if (c.vocab_size == 0) c.vocab_size = vocab_size;
  if (c.vocab_size < vocab_size) {
    return Invalid(absl::StrCat("model.vocab_size: ", c.vocab_size,
                                " is smaller than the tokenizer's vocabulary of ", vocab_size));
  }
  if (spec.has_d_model()) c.d_model = spec.d_model();
  if (spec.has_n_layers()) c.n_layers = spec.n_layers();
  if (spec.has_n_heads()) c.n_heads = spec.n_heads();
  // d_ff follows an overridden width unless given itself.
  c.d_ff = spec.has_d_ff() ? spec.d_ff() : 4 * c.d_model;
  if (spec.has_seq_len()) c.seq_len = spec.seq_len();
  if (spec.has_dropout()) c.dropout = spec.dropout();

  // Options of other archs are accepted and ignored, so one base spec can carry them for every
  // variant of an experiment.
  if (spec.worker().has_interval()) c.worker_interval = spec.worker().interval();
  if (spec.worker().has_conv_kernel()) c.worker_conv_kernel = spec.worker().conv_kernel();
  if (spec.sparse_depth().has_capacity()) c.sparse_capacity = spec.sparse_depth().capacity();
  if (spec.sparse_depth().has_dense_layers()) {
    c.sparse_dense_layers = spec.sparse_depth().dense_layers();
  }
  if (spec.sparse_depth().has_aux_loss_weight()) {
    c.sparse_aux_loss_weight = spec.sparse_depth().aux_loss_weight();
  }
  if (spec.hybrid().has_static_mlp_ratio()) {
    c.hybrid_static_mlp_ratio = spec.hybrid().static_mlp_ratio();
  }
  // Default: four chunks per window.
  c.slice_len = spec.sliced_attention().has_slice_len() ? spec.sliced_attention().slice_len()
                                                        : std::max<int64_t>(1, c.seq_len / 4);
  if (rules->resolve != nullptr) {
    if (absl::Status s = rules->resolve(spec, c); !s.ok()) return s;
  }
  if (absl::Status s = ResolveSqaHeads(spec, c); !s.ok()) return s;
  absl::Status valid = ValidateModelConfig(c);
  if (!valid.ok()) return valid;
  return c;
}

}  // namespace gauntlet
