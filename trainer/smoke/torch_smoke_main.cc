// Runs the LibTorch smoke on the best device available and prints what it saw.
#include <iostream>

#include "trainer/smoke/torch_smoke.h"

int main() {
  const bool cuda = torch::cuda::is_available();
  std::cout << "torch " << TORCH_VERSION << ", cuda available: " << (cuda ? "yes" : "no")
            << ", devices: " << static_cast<int>(torch::cuda::device_count()) << "\n";
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const gauntlet::SmokeResult r = gauntlet::RunTorchSmoke(device, 200);
  std::cout << "device " << r.device << ": loss " << r.first_loss << " -> " << r.last_loss
            << " after " << r.steps << " AdamW steps, " << r.ms_per_step << " ms/step\n";
  return r.last_loss < r.first_loss * 0.5 ? 0 : 1;
}
