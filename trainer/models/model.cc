#include "trainer/models/model.h"

#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "trainer/kernels/linear_cross_entropy.h"


namespace gauntlet {

torch::Tensor LanguageModelImpl::TrainPositions(int64_t seq_len, int64_t phase) const {
  return torch::ones({seq_len}, torch::kBool);
}

KvCache LanguageModelImpl::NewKvCache(int64_t batch, int64_t max_len, int64_t phase) const {
  TORCH_CHECK(batch > 0, "KV cache: batch must be positive, got ", batch);
  TORCH_CHECK(max_len > 0 && max_len <= config_.seq_len, "KV cache: max_len ", max_len,
              " outside [1, model.seq_len ", config_.seq_len, "]");
  TORCH_CHECK(phase >= 0 && phase < NumEvalPhases(), "KV cache: phase ", phase, " outside [0, ",
              NumEvalPhases(), ")");
  KvCache cache;
  cache.batch = batch;
  cache.max_len = max_len;
  cache.phase = phase;
  return cache;
}

torch::Tensor LanguageModelImpl::Prefill(KvCache& cache, const torch::Tensor& tokens) {
  TORCH_CHECK(!is_training(), "KV-cache decoding needs eval mode");
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) == cache.batch && tokens.size(1) > 0,
              "tokens must be (B, n) with B = ", cache.batch, " and n >= 1, got ", tokens.sizes());
  TORCH_CHECK(cache.length + tokens.size(1) <= cache.max_len, "KV cache: ", cache.length, " + ",
              tokens.size(1), " tokens exceed its max_len ", cache.max_len);
  torch::NoGradGuard no_grad;
  // A host-shaped step after static ones: drop the device position (rebuilt from length).
  cache.position = torch::Tensor();
  torch::Tensor logits = ExtendCache(cache, tokens);
  cache.length += tokens.size(1);
  return logits;
}

torch::Tensor LanguageModelImpl::ExtendCache(KvCache& /*cache*/, const torch::Tensor& /*tokens*/) {
  TORCH_CHECK(false, "arch ", config_.arch, " has no KV-cache decoding");
  return {};
}

torch::Tensor LanguageModelImpl::DecodeStep(KvCache& cache, const torch::Tensor& token) {
  TORCH_CHECK(token.dim() == 1, "token must be (B,), got ", token.sizes());
  return Prefill(cache, token.unsqueeze(1));
}

torch::Tensor LanguageModelImpl::DecodeStepStatic(KvCache& cache, const torch::Tensor& token) {
  TORCH_CHECK(SupportsStaticDecode(), "arch ", config_.arch, " has no static decode step");
  TORCH_CHECK(!is_training(), "KV-cache decoding needs eval mode");
  TORCH_CHECK(cache.length > 0, "DecodeStepStatic needs a prefilled cache");
  TORCH_CHECK(token.dim() == 1 && token.size(0) == cache.batch, "token must be (B,) with B = ",
              cache.batch, ", got ", token.sizes());
  TORCH_CHECK(cache.length < cache.max_len, "KV cache: full at max_len ", cache.max_len);
  torch::NoGradGuard no_grad;
  if (!cache.position.defined()) {
    cache.position = torch::full({1}, cache.length, token.options().dtype(torch::kInt64));
  }
  torch::Tensor logits = ExtendCache(cache, token.unsqueeze(1));
  cache.position.add_(1);
  cache.length += 1;
  return logits;
}

int64_t LanguageModelImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

torch::Tensor MaskedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask) {
  const int64_t batch = logits.size(0);
  const int64_t seq_len = logits.size(1);
  const int64_t vocab = logits.size(2);
  TORCH_CHECK(targets.sizes() == torch::IntArrayRef({batch, seq_len}),
              "MaskedCrossEntropy: targets must be (B, T) = (", batch, ", ", seq_len, "), got ",
              targets.sizes());
  TORCH_CHECK(mask.dim() == 1 && mask.size(0) == seq_len,
              "MaskedCrossEntropy: mask must be (T,) = (", seq_len, "), got ", mask.sizes());
  // Weighting per-position losses (instead of boolean indexing) keeps shapes static: no host sync.
  const torch::Tensor per_position =
      torch::nn::functional::cross_entropy(
          logits.reshape({batch * seq_len, vocab}).to(torch::kFloat32), targets.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
          .view({batch, seq_len});
  const torch::Tensor weights = mask.to(per_position.device(), torch::kFloat32);
  return (per_position * weights).sum() / (weights.sum() * batch);
}

void LanguageModelImpl::FinishHead(ModelOutput& out, const torch::Tensor& normed,
                                   torch::nn::Linear head_layer, Head head) {
  if (head == Head::kLogits) {
    out.logits = head_layer->forward(normed);
  } else {
    out.hidden = normed;
    out.head_weight = head_layer->weight;
  }
}

torch::Tensor TrainingLoss(const ModelOutput& out, const torch::Tensor& targets) {
  TORCH_CHECK(out.hidden.defined() && out.head_weight.defined(),
              "TrainingLoss needs a ForwardHidden output");
  const torch::Tensor selected =
      out.hidden_positions.defined() ? targets.index_select(1, out.hidden_positions) : targets;
  const int64_t rows = out.hidden.size(0) * out.hidden.size(1);
  torch::Tensor hidden = out.hidden.reshape({rows, out.hidden.size(2)});
  // Under autocast the head runs in the autocast dtype, as the Linear it replaces would: the final
  // norm of a float32 residual stream returns float32, and float32 GEMMs here cost 3x the step.
  const c10::DeviceType device_type = hidden.device().type();
  if (at::autocast::is_autocast_enabled(device_type)) {
    hidden = hidden.to(at::autocast::get_autocast_dtype(device_type));
  }
  const torch::Tensor row_weights =
      torch::full({rows}, 1.0 / static_cast<double>(rows),
                  hidden.options().dtype(torch::kFloat32));
  // The head runs in the hidden states' dtype (bf16 under autocast), as the Linear would; the
  // weight's gradient comes back in its own dtype.
  return kernels::LinearCrossEntropy(hidden, out.head_weight, selected.reshape({rows}),
                                     row_weights);
}

}  // namespace gauntlet
