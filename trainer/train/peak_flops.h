#ifndef GAUNTLET_TRAINER_TRAIN_PEAK_FLOPS_H_
#define GAUNTLET_TRAINER_TRAIN_PEAK_FLOPS_H_

#include <optional>
#include <string_view>

namespace gauntlet {

// Dense bf16 peak FLOP/s of one GPU, from its CUDA device name (e.g. "NVIDIA H100 80GB HBM3"),
// for MFU. nullopt for CPUs and unknown GPUs: MFU is then reported as 0.
std::optional<double> PeakBf16FlopsPerSecond(std::string_view device_name);

// Peak memory (HBM/GDDR) bandwidth of one GPU in bytes/s, from its CUDA device name (H200:
// 4.8e12), for the memory-bandwidth bound of decoding. nullopt for CPUs and unknown GPUs.
std::optional<double> PeakMemoryBandwidthBytesPerSecond(std::string_view device_name);

// Model FLOPs utilisation: achieved FLOP/s over the gang's peak.
double Mfu(double flops_per_token, double tokens_per_second, double peak_per_device,
           int world_size);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_PEAK_FLOPS_H_
