#ifndef GAUNTLET_WORKER_GPU_INVENTORY_H_
#define GAUNTLET_WORKER_GPU_INVENTORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gauntlet/v1/worker.pb.h"

namespace gauntlet::worker {

// Discovers the GPUs this worker may hand out to trainers.
class GpuInventory {
 public:
  virtual ~GpuInventory() = default;
  virtual absl::StatusOr<std::vector<v1::GpuInfo>> Discover() = 0;
};

// Parses `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`
// output (memory in MiB). Blank lines are skipped; a malformed line is an error naming it.
absl::StatusOr<std::vector<v1::GpuInfo>> ParseNvidiaSmiCsv(absl::string_view csv);

// Runs nvidia-smi. No nvidia-smi on PATH means no GPUs (an empty list), not an error: CPU-only
// workers are normal. nvidia-smi present but failing is an error.
class NvidiaSmiInventory : public GpuInventory {
 public:
  explicit NvidiaSmiInventory(std::string nvidia_smi = "nvidia-smi");
  absl::StatusOr<std::vector<v1::GpuInfo>> Discover() override;

 private:
  std::string nvidia_smi_;
};

// A fixed list: for --gpus=none and tests.
class StaticGpuInventory : public GpuInventory {
 public:
  explicit StaticGpuInventory(std::vector<v1::GpuInfo> gpus) : gpus_(std::move(gpus)) {}
  absl::StatusOr<std::vector<v1::GpuInfo>> Discover() override { return gpus_; }

 private:
  std::vector<v1::GpuInfo> gpus_;
};

// Applies the --gpus flag to what discovery found: "auto" keeps all, "none" keeps none, and a
// comma-separated index list ("0,2") keeps those, failing on an index that was not found.
absl::StatusOr<std::vector<v1::GpuInfo>> SelectGpus(const std::vector<v1::GpuInfo>& found,
                                                    absl::string_view gpus_flag);

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_GPU_INVENTORY_H_
