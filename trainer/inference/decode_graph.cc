#include "trainer/inference/decode_graph.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace gauntlet {

#if GAUNTLET_CUDA
struct DecodeGraph::Graph {
  at::cuda::CUDAGraph graph;
};
#else
struct DecodeGraph::Graph {};
#endif

DecodeGraph::DecodeGraph(LanguageModelImpl& model, KvCache& cache)
    : model_(model), cache_(cache) {}

DecodeGraph::~DecodeGraph() = default;

absl::StatusOr<std::unique_ptr<DecodeGraph>> DecodeGraph::Capture(LanguageModelImpl& model,
                                                                  KvCache& cache, int warmup) {
  if (!model.SupportsStaticDecode()) {
    return absl::FailedPreconditionError(
        absl::StrCat("arch ", model.config().arch, " has no static decode step"));
  }
  if (warmup < 1) {
    // The first static step creates cache.position; inside the capture a replay would reset it.
    return absl::InvalidArgumentError("warmup: must be >= 1");
  }
  if (cache.length < 1 || cache.length + warmup + 1 > cache.max_len) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the cache needs a prompt and ", warmup + 1, " free positions (length ", cache.length,
        ", max_len ", cache.max_len, ")"));
  }
#if GAUNTLET_CUDA
  torch::Device device = torch::kCPU;
  for (const AttentionCache& layer : cache.attention) {
    if (layer.k.defined()) device = layer.k.device();
  }
  if (!device.is_cuda()) return absl::FailedPreconditionError("CUDA graphs need a CUDA device");
  std::unique_ptr<DecodeGraph> decoder(new DecodeGraph(model, cache));
  torch::NoGradGuard no_grad;
  decoder->token_ = torch::zeros({cache.batch}, torch::TensorOptions()
                                                    .dtype(torch::kInt64)
                                                    .device(device));
  // Capture needs a stream other than the legacy default one; it starts after the prefill.
  c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
  c10::cuda::CUDAStreamGuard stream(c10::cuda::getStreamFromPool(false, device.index()));
  try {
    for (int i = 0; i < warmup; ++i) model.DecodeStepStatic(cache, decoder->token_);
    auto graph = std::make_unique<Graph>();
    graph->graph.capture_begin(/*pool=*/{0, 0}, cudaStreamCaptureModeThreadLocal);
    try {
      decoder->logits_ = model.DecodeStepStatic(cache, decoder->token_);
    } catch (...) {
      try {
        graph->graph.capture_end();  // ends the invalidated capture; reports it by throwing
      } catch (...) {
      }
      throw;
    }
    graph->graph.capture_end();
    decoder->graph_ = std::move(graph);
    decoder->position_ = cache.position;
  } catch (const std::exception& e) {
    (void)cudaGetLastError();
    std::string what = e.what();
    if (const size_t end = what.find('\n'); end != std::string::npos) what.resize(end);
    return absl::InternalError(absl::StrCat("CUDA graph capture failed: ", what));
  }
  c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
  return decoder;
#else
  return absl::FailedPreconditionError("CUDA graphs need a CUDA build (--config=cuda)");
#endif
}

torch::Tensor DecodeGraph::Prefill(const torch::Tensor& prompt) {
  torch::NoGradGuard no_grad;
  cache_.length = 0;
  torch::Tensor logits = model_.Prefill(cache_, prompt);
  cache_.position = position_;
  cache_.position.fill_(cache_.length);
  return logits;
}

torch::Tensor DecodeGraph::Step(const torch::Tensor& token) {
  TORCH_CHECK(cache_.length < cache_.max_len, "KV cache: full at max_len ", cache_.max_len);
  token_.copy_(token, /*non_blocking=*/true);
#if GAUNTLET_CUDA
  graph_->graph.replay();
#endif
  cache_.length += 1;  // the replay advanced cache.position on the device
  return logits_;
}

}  // namespace gauntlet
