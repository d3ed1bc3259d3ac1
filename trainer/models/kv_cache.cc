#include "trainer/models/kv_cache.h"

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace gauntlet {

namespace {

int64_t TensorBytes(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

}  // namespace

int64_t KvCache::KeyValueBytes() const {
  int64_t bytes = 0;
  for (const AttentionCache& layer : attention)
    bytes += TensorBytes(layer.k) + TensorBytes(layer.v);
  return bytes;
}

int64_t KvCache::Bytes() const {
  int64_t bytes = KeyValueBytes();
  for (const torch::Tensor& t : state) bytes += TensorBytes(t);
  return bytes;
}

torch::Tensor AttendCached(AttentionCache& cache, int64_t max_len, int64_t start,
                           const torch::Tensor& position, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v, int64_t slice_len) {
  const int64_t n = q.size(2);
  const int64_t end = start + n;
  TORCH_CHECK(position.defined() || end <= max_len, "KV cache: position ", end - 1,
              " beyond its max_len ", max_len);
  if (!cache.k.defined()) {
    auto shape = [&](const torch::Tensor& x) {
      return std::vector<int64_t>{x.size(0), x.size(1), max_len, x.size(3)};
    };
    cache.k = torch::zeros(shape(k), k.options());
    cache.v = torch::zeros(shape(v), v.options());
  }
  const bool grouped = q.size(1) != k.size(1);
  if (position.defined()) {
    TORCH_CHECK(n == 1, "a static decode step appends one token, got ", n);
    cache.k.index_copy_(2, position, k);
    cache.v.index_copy_(2, position, v);
    const torch::Tensor key_pos = torch::arange(max_len, position.options());
    torch::Tensor mask = key_pos <= position;
    if (slice_len > 0) {
      mask = mask.logical_and(key_pos.div(slice_len, "floor") == position.div(slice_len, "floor"));
    }
    return at::scaled_dot_product_attention(q, cache.k, cache.v, mask.unsqueeze(0),
                                            /*dropout_p=*/0.0, /*is_causal=*/false,
                                            /*scale=*/std::nullopt, /*enable_gqa=*/grouped);
  }
  cache.k.narrow(2, start, n).copy_(k);
  cache.v.narrow(2, start, n).copy_(v);
  // Keys a query can see begin at its chunk's start; the first query's chunk bounds the read.
  const int64_t first_key = slice_len > 0 ? (start / slice_len) * slice_len : 0;
  const torch::Tensor keys = cache.k.narrow(2, first_key, end - first_key);
  const torch::Tensor values = cache.v.narrow(2, first_key, end - first_key);
  torch::Tensor mask;  // undefined: every key visible (one query, or no chunk boundary crossed)
  bool is_causal = false;
  const bool one_chunk = slice_len == 0 || first_key + slice_len >= end;
  if (n > 1 || !one_chunk) {
    if (start == first_key && one_chunk) {
      is_causal = true;  // keys and queries start together: SDPA's top-left causal mask
    } else {
      const torch::Tensor query_pos =
          torch::arange(start, end, q.options().dtype(torch::kInt64)).unsqueeze(1);
      const torch::Tensor key_pos =
          torch::arange(first_key, end, q.options().dtype(torch::kInt64)).unsqueeze(0);
      mask = key_pos <= query_pos;
      if (slice_len > 0) {
        mask =
            mask.logical_and(key_pos.div(slice_len, "floor") == query_pos.div(slice_len, "floor"));
      }
    }
  }
  return at::scaled_dot_product_attention(
      q, keys, values, mask.defined() ? std::optional<torch::Tensor>(mask) : std::nullopt,
      /*dropout_p=*/0.0, is_causal,
      /*scale=*/std::nullopt, /*enable_gqa=*/grouped);
}

CachedAttend BindAttention(AttentionCache& entry, const KvCache& kv) {
  return [&entry, &kv](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       int64_t slice_len) {
    return AttendCached(entry, kv.max_len, kv.length, kv.position, q, k, v, slice_len);
  };
}

}  // namespace gauntlet
