#ifndef GAUNTLET_TRAINER_INFERENCE_DECODE_GRAPH_H_
#define GAUNTLET_TRAINER_INFERENCE_DECODE_GRAPH_H_

// The decode step as one CUDA graph: LanguageModelImpl::DecodeStepStatic captured once for a
// cache of fixed batch and max_len, then replayed for every token. A decode step of a small
// model is hundreds of small kernels whose launch cost exceeds their run time at batch 1; a
// replay launches them all at once.

#include <torch/torch.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/models/kv_cache.h"
#include "trainer/models/model.h"

namespace gauntlet {

class DecodeGraph {
 public:
  // Captures one static decode step of `model` (eval mode, SupportsStaticDecode) on `cache`
  // (prefilled, on a CUDA device), after `warmup` eager static steps that build the model's
  // device tables. Both must outlive the graph, and `cache` must keep its buffers: the graph
  // reads and writes them in place. The warm-up steps and the capture leave the cache's contents
  // behind: Prefill again before decoding. FailedPrecondition on CPU or for an arch without a
  // static step; Internal with CUDA's reason when the capture fails (the caller decodes eagerly).
  static absl::StatusOr<std::unique_ptr<DecodeGraph>> Capture(LanguageModelImpl& model,
                                                              KvCache& cache, int warmup = 2);
  ~DecodeGraph();

  // Restarts the sequence: prompt (B, n) is prefilled into the cache's buffers from position 0,
  // and the graph's position follows. Returns the logits at the last prompt token.
  torch::Tensor Prefill(const torch::Tensor& prompt);
  // Appends one token per row, (B,) int64 on the device, and returns the logits (B, V) at it:
  // the graph's output buffer, overwritten by the next Step.
  torch::Tensor Step(const torch::Tensor& token);

 private:
  struct Graph;
  DecodeGraph(LanguageModelImpl& model, KvCache& cache);

  LanguageModelImpl& model_;
  KvCache& cache_;
  torch::Tensor token_;   // the captured step's input (B,)
  torch::Tensor logits_;  // its output (B, V)
  // The cache's device position the graph reads and advances. A host-shaped Prefill drops
  // cache.position, so Prefill puts this very tensor back (a new one would not be the graph's).
  torch::Tensor position_;
  std::unique_ptr<Graph> graph_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_INFERENCE_DECODE_GRAPH_H_
