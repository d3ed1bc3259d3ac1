#ifndef GAUNTLET_TRAINER_MODELS_KV_CACHE_H_
#define GAUNTLET_TRAINER_MODELS_KV_CACHE_H_

// State for autoregressive decoding (LanguageModelImpl::Prefill / DecodeStep): the keys and
// values of every attention layer for the positions decoded so far, plus whatever else an arch
// needs to continue a sequence. Buffers are allocated once at their full length (max_len
// positions) and written in place, so a decode step allocates no cache memory and could be
// captured in a CUDA graph.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace gauntlet {

// Keys and values of one attention layer: k, v (B, H_kv, max_len, d_h), valid for positions
// < KvCache::length (sparse_depth: for slots < its per-row count). Undefined until first written.
struct AttentionCache {
  torch::Tensor k;
  torch::Tensor v;
};

struct KvCache {
  int64_t batch = 0;
  int64_t max_len = 0;  // positions the buffers hold (<= the model's seq_len)
  int64_t length = 0;   // positions already in the cache
  int64_t phase = 0;    // worker: the phase the sequence is decoded in (see model.h)
  // Static decode steps (LanguageModelImpl::DecodeStepStatic): the position of the next token,
  // (1,) int64 on the model's device, advanced by the step itself. Undefined otherwise.
  torch::Tensor position;
  // One entry per attention-layer application, in an order the arch defines; layers without
  // attention (hybrid's static MLP, "none") leave theirs undefined and cost nothing.
  std::vector<AttentionCache> attention;
  // Arch state besides keys and values (worker: each layer's last conv inputs; sparse_depth: each
  // routed layer's routed-token count per row).
  std::vector<torch::Tensor> state;

  // Bytes of the key/value buffers (what KvCacheBytesPerToken in common/model_config.h counts),
  // and of every tensor of the cache.
  int64_t KeyValueBytes() const;
  int64_t Bytes() const;
};

// How a layer's attention reads and extends the cache: given its rotated queries (B, H_q, n, d_h)
// and the new keys/values (B, H_kv, n, d_h) of the n tokens being appended, returns the context
// (B, H_q, n, d_h). slice_len > 0: sliced attention (a token sees only its own chunk of
// slice_len positions). Layers call it in place of SDPA; the arch binds it to its cache entry.
using CachedAttend = std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& v, int64_t slice_len)>;

// Writes k/v at positions [start, start + n) of `cache` (allocated at max_len on first use) and
// attends q, the queries of those positions, causally over positions [0, start + n) (within
// their chunk for slice_len > 0). H_kv may divide H_q (grouped heads).
// With `position` defined ((1,) int64 on the device; then n = 1 and start is ignored) no shape
// depends on the position: the write is an index_copy_ and attention reads all max_len slots
// under a mask built on the device.
torch::Tensor AttendCached(AttentionCache& cache, int64_t max_len, int64_t start,
                           const torch::Tensor& position, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v, int64_t slice_len);

// `attend` for a layer appending tokens at kv.length (or, in a static step, kv.position) with
// `entry`, one of kv.attention, as its cache. Both must outlive the returned function.
CachedAttend BindAttention(AttentionCache& entry, const KvCache& kv);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_KV_CACHE_H_
