#include "trainer/models/model_config.h"

#include <algorithm>
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

// Dimensions of a named size. d_ff is 4 * d_model everywhere, as in the seeds and GPT-2.
absl::StatusOr<ModelConfig> NamedSize(const std::string& size) {
  ModelConfig c;
  c.size = size;
  c.vocab_size = 0;  // the tokenizer's, unless the size pads it
  if (size == "tiny") {
    // Seconds on one CPU core; dropout 0 so CPU tests of training are deterministic.
    c.d_model = 32;
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_ff = 128;
    c.seq_len = 64;
    c.dropout = 0.0;
  } else if (size == "seed") {
    // The WorkerTransformer repository's benchmark configuration.
    c.d_model = 256;
    c.n_layers = 4;
    c.n_heads = 4;
    c.d_ff = 1024;
    c.seq_len = 1024;
    c.dropout = 0.1;
  } else if (size == "124m" || size == "gpt2-small") {
    // GPT-2 small dimensions; dropout 0 as nanoGPT uses for pre-training at this scale.
    c.d_model = 768;
    c.n_layers = 12;
    c.n_heads = 12;
    c.d_ff = 3072;
    c.seq_len = 1024;
    c.dropout = 0.0;
    // gpt2-small pads its vocabulary to GPT-2's 50,304 (a multiple of 128, as llm.c and nanoGPT
    // use), so throughput and MFU compare with published GPT-2 124M figures whatever the
    // tokenizer (its vocabulary must fit); 124m keeps the tokenizer's.
    if (size == "gpt2-small") c.vocab_size = 50304;
  } else {
    return Invalid(absl::StrCat("model.size: unknown size '", size,
                                "'; known: ", absl::StrJoin(KnownSizes(), ", ")));
  }
  return c;
}

}  // namespace

const std::vector<std::string>& KnownArchs() {
  static const auto* const kArchs =
      new std::vector<std::string>{"standard", "worker", "sparse_depth", "hybrid"};
  return *kArchs;
}

const std::vector<std::string>& KnownSizes() {
  static const auto* const kSizes = new std::vector<std::string>{"tiny", "seed", "124m", "gpt2-small"};
  return *kSizes;
}

std::vector<int64_t> WorkerPositions(int64_t seq_len, int64_t interval, int64_t phase) {
  std::vector<int64_t> positions;
  for (int64_t t = 0; t < seq_len; ++t) {
    if ((t + phase) % interval == interval - 1 || t == seq_len - 1) positions.push_back(t);
  }
  return positions;
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  if (!Contains(KnownArchs(), c.arch)) {
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
  if (c.worker_interval <= 0) {
    return Invalid(
        absl::StrCat("model.worker.interval: must be positive, got ", c.worker_interval));
  }
  if (c.worker_conv_kernel <= 0) {
    return Invalid(
        absl::StrCat("model.worker.conv_kernel: must be positive, got ", c.worker_conv_kernel));
  }
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
  if (c.arch == "hybrid" && static_cast<int64_t>(c.hybrid_attention_layers.size()) != c.n_layers) {
    return Invalid(absl::StrCat("model.hybrid.layer_types: has ", c.hybrid_attention_layers.size(),
                                " entries but model.n_layers is ", c.n_layers));
  }
  if (c.hybrid_static_mlp_ratio <= 0) {
    return Invalid(absl::StrCat("model.hybrid.static_mlp_ratio: must be positive, got ",
                                c.hybrid_static_mlp_ratio));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ResolveModelConfig(const v1::ModelSpec& spec, int64_t vocab_size) {
  if (spec.arch().empty()) {
    return Invalid(
        absl::StrCat("model.arch: required; known: ", absl::StrJoin(KnownArchs(), ", ")));
  }
  absl::StatusOr<ModelConfig> sized = NamedSize(spec.size().empty() ? "seed" : spec.size());
  if (!sized.ok()) return sized.status();
  ModelConfig c = *std::move(sized);
  c.arch = spec.arch();
  // The tokenizer's vocabulary unless the spec or the named size asks for a larger (padded) one.
  if (spec.has_vocab_size()) c.vocab_size = spec.vocab_size();
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
  absl::Status valid = ValidateModelConfig(c);
  if (!valid.ok()) return valid;
  return c;
}

}  // namespace gauntlet
