#include "trainer/dist/nccl_communicator.h"

#if GAUNTLET_CUDA

#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>

#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

absl::Status NcclStatus(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("NCCL ", what, ": ", ncclGetErrorString(result)));
}

absl::StatusOr<ncclDataType_t> NcclType(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    case torch::kFloat64: return ncclFloat64;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("NCCL: unsupported dtype ", c10::toString(t.scalar_type())));
  }
}

class DoneWork : public Work {
 public:
  explicit DoneWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

class NcclWork : public Work {
 public:
  NcclWork(ncclComm_t comm, at::cuda::CUDAEvent done) : comm_(comm), done_(std::move(done)) {}
  absl::Status Wait() override {
    // Device-side ordering only: later kernels on the caller's stream see the reduced data.
    done_.block(c10::cuda::getCurrentCUDAStream());
    ncclResult_t async = ncclSuccess;
    if (absl::Status s = NcclStatus(ncclCommGetAsyncError(comm_, &async), "query"); !s.ok()) {
      return s;
    }
    return NcclStatus(async, "all-reduce");
  }

 private:
  ncclComm_t comm_;
  at::cuda::CUDAEvent done_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    c10d::Store& store, int rank, int world_size, int device_index) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("NcclCommunicator: rank ", rank, " is not in [0, ", world_size, ")"));
  }
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index));
  ncclUniqueId id;
  const std::string key = "gauntlet/nccl/unique_id";
  try {
    if (rank == 0) {
      if (absl::Status s = NcclStatus(ncclGetUniqueId(&id), "get unique id"); !s.ok()) return s;
      const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
      store.set(key, std::vector<uint8_t>(bytes, bytes + sizeof(id)));
    } else {
      const std::vector<uint8_t> bytes = store.get(key);  // waits for rank 0
      if (bytes.size() != sizeof(id)) {
        return absl::UnavailableError("NCCL unique id from the store has the wrong size");
      }
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("NCCL id exchange through the store: ", e.what()));
  }
  // Connect every channel now. By default NCCL connects lazily at a collective's first use of
  // an algorithm, and a first use inside the training step's CUDA graph capture would allocate
  // and copy on the legacy stream, which capture forbids (the capture then fails and the trainer
  // falls back to eager steps). A user's own setting wins.
  setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  ncclComm_t comm;
  if (absl::Status s = NcclStatus(ncclCommInitRank(&comm, world_size, id, rank), "init");
      !s.ok()) {
    return s;
  }
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(comm, rank, world_size, device_index));
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, int rank, int world_size, int device_index)
    : comm_(comm),
      rank_(rank),
      world_size_(world_size),
      device_index_(device_index),
      stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true,
                                           static_cast<c10::DeviceIndex>(device_index))) {}

NcclCommunicator::~NcclCommunicator() { ncclCommDestroy(comm_); }

std::unique_ptr<Work> NcclCommunicator::AllReduceSum(torch::Tensor tensor) {
  if (!tensor.is_cuda() || !tensor.is_contiguous() || tensor.get_device() != device_index_) {
    return std::make_unique<DoneWork>(absl::InvalidArgumentError(
        absl::StrCat("NcclCommunicator needs a contiguous tensor on cuda:", device_index_)));
  }
  absl::StatusOr<ncclDataType_t> type = NcclType(tensor);
  if (!type.ok()) return std::make_unique<DoneWork>(type.status());
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index_));
  at::cuda::CUDAEvent ready;
  ready.record(c10::cuda::getCurrentCUDAStream());
  ready.block(stream_);
  // The caching allocator must not hand this memory out again before the comm stream is done.
  c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), stream_);
  absl::Status s = NcclStatus(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                                            *type, ncclSum, comm_, stream_.stream()),
                              "all-reduce");
  if (!s.ok()) return std::make_unique<DoneWork>(s);
  at::cuda::CUDAEvent done;
  done.record(stream_);
  return std::make_unique<NcclWork>(comm_, std::move(done));
}

absl::Status NcclCommunicator::Broadcast(torch::Tensor tensor, int root) {
  if (!tensor.is_cuda() || !tensor.is_contiguous() || tensor.get_device() != device_index_) {
    return absl::InvalidArgumentError(
        absl::StrCat("NcclCommunicator needs a contiguous tensor on cuda:", device_index_));
  }
  absl::StatusOr<ncclDataType_t> type = NcclType(tensor);
  if (!type.ok()) return type.status();
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index_));
  at::cuda::CUDAEvent ready;
  ready.record(c10::cuda::getCurrentCUDAStream());
  ready.block(stream_);
  c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), stream_);
  if (absl::Status s = NcclStatus(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(),
                                                tensor.numel(), *type, root, comm_,
                                                stream_.stream()),
                                  "broadcast");
      !s.ok()) {
    return s;
  }
  at::cuda::CUDAEvent done;
  done.record(stream_);
  return NcclWork(comm_, std::move(done)).Wait();
}

absl::Status NcclCommunicator::Barrier() {
  torch::Tensor one = torch::ones(
      {1}, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA, device_index_));
  if (absl::Status s = AllReduceSum(one)->Wait(); !s.ok()) return s;
  // A barrier is a host-side promise: wait for the device.
  c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_index_)).synchronize();
  return absl::OkStatus();
}

}  // namespace gauntlet

#endif  // GAUNTLET_CUDA
