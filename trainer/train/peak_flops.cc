#include "trainer/train/peak_flops.h"


namespace gauntlet {

std::optional<double> PeakBf16FlopsPerSecond(std::string_view device_name) {
  // Vendor datasheet dense (no sparsity) bf16 tensor-core peaks.
  struct Entry {
    const char* name;
    double flops;
  };
  static constexpr Entry kTable[] = {
      {"H100 PCIe", 756e12}, {"H100", 989e12}, {"H200", 989e12},
      {"A100", 312e12},      {"L40S", 362e12}, {"A10G", 70e12},
  };
  for (const Entry& e : kTable) {
    if (device_name.find(e.name) != std::string_view::npos) return e.flops;
  }
  return std::nullopt;
}

std::optional<double> PeakMemoryBandwidthBytesPerSecond(std::string_view device_name) {
  // Vendor datasheet bandwidths (the SXM parts unless named; A100: the 80 GB SXM's).
  struct Entry {
    const char* name;
    double bytes_per_second;
  };
  static constexpr Entry kTable[] = {
      {"H100 PCIe", 2.0e12}, {"H100", 3.35e12}, {"H200", 4.8e12},
      {"A100", 2.039e12},    {"L40S", 0.864e12}, {"A10G", 0.6e12},
  };
  for (const Entry& e : kTable) {
    if (device_name.find(e.name) != std::string_view::npos) return e.bytes_per_second;
  }
  return std::nullopt;
}

double Mfu(double flops_per_token, double tokens_per_second, double peak_per_device,
           int world_size) {
  if (peak_per_device <= 0 || world_size < 1) return 0;
  return flops_per_token * tokens_per_second / (peak_per_device * world_size);
}

}  // namespace gauntlet
