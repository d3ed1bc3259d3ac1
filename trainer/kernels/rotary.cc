#include "trainer/kernels/rotary.h"

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/rotary_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckArgs(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
               int64_t rotated) {
  TORCH_CHECK(x.dim() == 5, "RotaryTranspose: x must be (B, T, S, H, Dh), got ", x.sizes());
  TORCH_CHECK(x.size(2) >= 1 && x.size(2) <= 3, "RotaryTranspose: x has S = ", x.size(2),
              " slots; 1 to 3 supported");
  TORCH_CHECK(rotated >= 0 && rotated <= x.size(2), "RotaryTranspose: rotated = ", rotated,
              " outside [0, ", x.size(2), "]");
  TORCH_CHECK(x.size(4) % 2 == 0, "RotaryTranspose: head_dim must be even, got ", x.size(4));
  for (const torch::Tensor* t : {&cos, &sin}) {
    const char* name = t == &cos ? "cos" : "sin";
    const bool shared = t->dim() == 2 && t->size(0) == x.size(1) && t->size(1) == x.size(4);
    const bool per_row = t->dim() == 3 && t->size(0) == x.size(0) && t->size(1) == x.size(1) &&
                         t->size(2) == x.size(4);
    TORCH_CHECK(shared || per_row, "RotaryTranspose: ", name, " must be (T, Dh) = (", x.size(1),
                ", ", x.size(4), ") or (B, T, Dh), got ", t->sizes());
    TORCH_CHECK(t->device() == x.device(), "RotaryTranspose: ", name, " is on ", t->device(),
                ", x on ", x.device());
  }
}

#if GAUNTLET_CUDA
// Tables as the kernel reads them: x's dtype, last axis contiguous.
torch::Tensor KernelTable(const torch::Tensor& t, torch::ScalarType dtype) {
  torch::Tensor out = t.to(dtype);
  return out.stride(-1) == 1 ? out : out.contiguous();
}

void SetTables(RotaryArgs& a, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(cos.strides() == sin.strides(), "RotaryTranspose: cos and sin strides differ");
  a.cos = cos.data_ptr();
  a.sin = sin.data_ptr();
  a.table_batch_stride = cos.dim() == 3 ? cos.stride(0) : 0;
  a.table_seq_stride = cos.stride(-2);
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin,
                               int64_t rotated) {
    // The op picks its own precision: autocast must not re-cast its internal GEMMs.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    const int64_t batch = x.size(0), seq = x.size(1), slots = x.size(2), heads = x.size(3),
                  head_dim = x.size(4);
    RotaryArgs a;
    a.slots = static_cast<int>(slots);
    a.rotated = static_cast<int>(rotated);
    a.batch = batch;
    a.seq = seq;
    a.heads = heads;
    a.head_dim = head_dim;
    SetTables(a, cos, sin);
    variable_list out;
    for (int64_t s = 0; s < slots; ++s) {
      out.push_back(torch::empty({batch, heads, seq, head_dim}, x.options()));
      a.in[s] = static_cast<const char*>(x.data_ptr()) + s * x.stride(2) * x.element_size();
      a.out[s] = out.back().data_ptr();
    }
    for (int k = 0; k < 3; ++k) {
      a.in_stride[k] = x.stride(k == 2 ? 3 : k);
    }
    a.out_stride[0] = heads * seq * head_dim;
    a.out_stride[1] = head_dim;
    a.out_stride[2] = seq * head_dim;
    C10_CUDA_CHECK(RotaryTranspose(KernelDtype(x), a, at::cuda::getCurrentCUDAStream()));
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["rotated"] = rotated;
    ctx->saved_data["shape"] = x.sizes().vec();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const int64_t rotated = ctx->saved_data["rotated"].toInt();
    const std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
    const int64_t batch = shape[0], seq = shape[1], slots = shape[2], heads = shape[3],
                  head_dim = shape[4];
    const torch::Tensor& cos = saved[0];
    torch::Tensor grad_x = torch::empty(shape, cos.options());
    RotaryArgs a;
    a.slots = static_cast<int>(slots);
    a.rotated = static_cast<int>(rotated);
    a.batch = batch;
    a.seq = seq;
    a.heads = heads;
    a.head_dim = head_dim;
    a.sin_sign = -1.f;  // the inverse rotation
    SetTables(a, cos, saved[1]);
    variable_list contiguous(slots);
    for (int64_t s = 0; s < slots; ++s) {
      if (grads[s].defined()) {
        contiguous[s] = grads[s].contiguous();
        a.in[s] = contiguous[s].data_ptr();
      }
      a.out[s] = static_cast<char*>(grad_x.data_ptr()) + s * heads * head_dim *
                                                            grad_x.element_size();
    }
    a.in_stride[0] = heads * seq * head_dim;
    a.in_stride[1] = head_dim;
    a.in_stride[2] = seq * head_dim;
    a.out_stride[0] = grad_x.stride(0);
    a.out_stride[1] = grad_x.stride(1);
    a.out_stride[2] = grad_x.stride(3);
    C10_CUDA_CHECK(RotaryTranspose(KernelDtype(grad_x), a, at::cuda::getCurrentCUDAStream()));
    return {grad_x, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

std::vector<torch::Tensor> RotaryTransposeReference(const torch::Tensor& x,
                                                    const torch::Tensor& cos,
                                                    const torch::Tensor& sin, int64_t rotated) {
  CheckArgs(x, cos, sin, rotated);
  // Tables broadcast over heads: (T, 1, Dh) or (B, T, 1, Dh) against a slot's (B, T, H, Dh).
  const torch::Tensor c = cos.to(x.scalar_type()).unsqueeze(-2);
  const torch::Tensor s = sin.to(x.scalar_type()).unsqueeze(-2);
  std::vector<torch::Tensor> out;
  for (int64_t slot = 0; slot < x.size(2); ++slot) {
    torch::Tensor part = x.select(2, slot);
    if (slot < rotated) {
      std::vector<int64_t> pairs = part.sizes().vec();
      pairs.back() /= 2;
      pairs.push_back(2);
      const torch::Tensor swapped = part.reshape(pairs).flip(-1).reshape(part.sizes());
      part = part * c + swapped * s;
    }
    out.push_back(part.transpose(1, 2).contiguous());
  }
  return out;
}

std::vector<torch::Tensor> RotaryTranspose(const torch::Tensor& x, const torch::Tensor& cos,
                                           const torch::Tensor& sin, int64_t rotated) {
  CheckArgs(x, cos, sin, rotated);
#if GAUNTLET_CUDA
  if (KernelEligible(x) && x.numel() > 0 && x.stride(4) == 1) {
    return RotaryFunction::apply(x, KernelTable(cos, x.scalar_type()),
                                 KernelTable(sin, x.scalar_type()), rotated);
  }
#endif
  return RotaryTransposeReference(x, cos, sin, rotated);
}

QkvHeads RotaryQkv(const torch::Tensor& qkv, const torch::Tensor& cos,
                   const torch::Tensor& sin) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3, "RotaryQkv: qkv must be (B, T, 3, H, Dh), got ",
              qkv.sizes());
  std::vector<torch::Tensor> out = RotaryTranspose(qkv, cos, sin, /*rotated=*/2);
  return {out[0], out[1], out[2]};
}

torch::Tensor RotaryHeads(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4, "RotaryHeads: x must be (B, T, H, Dh), got ", x.sizes());
  return RotaryTranspose(x.unsqueeze(2), cos, sin, /*rotated=*/1)[0];
}

}  // namespace gauntlet::kernels
