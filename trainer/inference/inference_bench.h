#ifndef GAUNTLET_TRAINER_INFERENCE_INFERENCE_BENCH_H_
#define GAUNTLET_TRAINER_INFERENCE_INFERENCE_BENCH_H_

// Inference speed of one model through its KV cache (LanguageModelImpl::Prefill / DecodeStep):
// prefill latency per context, decode tokens/s per batch size, KV-cache bytes per token and peak
// device memory. Random tokens; whatever weights the model holds.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/models/model.h"
#include "common/clock.h"

namespace gauntlet {

struct InferenceBenchOptions {
  // Prompt lengths whose prefill (one Prefill call on an empty cache, batch 1) is timed.
  std::vector<int64_t> prefill_contexts = {256, 1024, 4096};
  // Batch sizes whose decode steps are timed, each after a prompt of decode_context tokens.
  std::vector<int64_t> decode_batches = {1, 32};
  int64_t decode_context = 256;
  int64_t decode_steps = 64;
  // Time DecodeStepStatic (the shape-static step a CUDA graph would capture; run eagerly here)
  // instead of DecodeStep. Needs SupportsStaticDecode().
  bool static_decode = false;
  int warmup = 1;   // untimed runs of each measurement first (kernels, allocator)
  int repeats = 3;  // timed runs; the median is reported
};

struct PrefillTiming {
  int64_t context = 0;
  double ms = 0;  // median
};

struct DecodeTiming {
  int64_t batch = 0;
  double ms_per_step = 0;   // median over repeats of (run time / decode_steps)
  double tokens_per_s = 0;  // batch / ms_per_step
};

struct InferenceBenchResult {
  std::vector<PrefillTiming> prefill;
  std::vector<DecodeTiming> decode;
  // Key/value buffer bytes of the first decode run's cache over its rows x positions (the
  // formula's value is KvCacheBytesPerToken in common/model_config.h).
  double kv_cache_bytes_per_token = 0;
  int64_t parameter_bytes = 0;
  // The CUDA caching allocator's peak over the whole benchmark; 0 on CPU (not measured).
  int64_t peak_memory_bytes = 0;
};

// Benchmarks `model` (eval mode is set; weights and dtype as given) on `device`, where it must
// already live. InvalidArgument naming the option when a context or batch is out of range (every
// length must fit model.seq_len: decode needs decode_context + decode_steps) or the arch has no
// KV-cache decoding. The clock times each run after a device sync.
absl::StatusOr<InferenceBenchResult> RunInferenceBench(LanguageModelImpl& model,
                                                       const InferenceBenchOptions& options,
                                                       const torch::Device& device, const Clock& clock);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_INFERENCE_INFERENCE_BENCH_H_
