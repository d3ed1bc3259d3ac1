#include "trainer/train/kernel_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace gauntlet {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

struct Total {
  uint64_t ns = 0;
  int64_t calls = 0;
};

}  // namespace

std::unique_ptr<KernelProfile> KernelProfile::Start() {
  std::set<ActivityType> activities{ActivityType::CPU};
  if (torch::cuda::is_available()) activities.insert(ActivityType::CUDA);
  const ProfilerConfig config(ProfilerState::KINETO);
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  std::unique_ptr<KernelProfile> profile(new KernelProfile());
  profile->active_ = true;
  return profile;
}

KernelProfile::~KernelProfile() {
  if (active_) (void)profiler::disableProfiler();
}

std::string KernelProfile::Finish(int64_t steps, double wall_seconds, int top) {
  active_ = false;
  const std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  std::map<std::string, Total> device, host;
  for (const profiler::KinetoEvent& e : result->events()) {
    auto& table = e.deviceType() == c10::DeviceType::CUDA ? device : host;
    Total& t = table[e.name()];
    t.ns += e.durationNs();
    ++t.calls;
  }
  // Host operator times nest (an op includes the ops it calls), so they only rank; device
  // activities do not nest, so their sum is the device's busy time.
  const bool on_device = !device.empty();
  const std::map<std::string, Total>& table = on_device ? device : host;
  std::vector<std::pair<std::string, Total>> rows(table.begin(), table.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  uint64_t busy = 0;
  int64_t launches = 0;
  for (const auto& [name, t] : rows) {
    busy += t.ns;
    launches += t.calls;
  }
  const double per_step = 1.0 / std::max<int64_t>(steps, 1);
  std::string out = absl::StrFormat(
      "profile of %d steps: %.3f ms/step wall, %s %.3f ms/step (%.0f%% of wall), %d kinds, "
      "%.0f %s/step\n",
      steps, wall_seconds * 1e3 * per_step, on_device ? "device busy" : "host op time",
      busy * 1e-6 * per_step, wall_seconds > 0 ? 100.0 * busy * 1e-9 / wall_seconds : 0.0,
      rows.size(), launches * per_step, on_device ? "kernels" : "ops");
  out += "| kernel | calls/step | us/step | share |\n| --- | ---: | ---: | ---: |\n";
  for (int i = 0; i < std::min<int>(top, rows.size()); ++i) {
    std::string name = rows[i].first;
    // Long enough to show the functor and dtypes of ATen's templated elementwise kernels.
    if (name.rfind("void ", 0) == 0) name = name.substr(5);
    if (name.size() > 180) name = name.substr(0, 177) + "...";
    for (char& c : name) {
      if (c == '|') c = '/';
    }
    absl::StrAppendFormat(&out, "| %s | %.1f | %.1f | %.1f%% |\n", name,
                          rows[i].second.calls * per_step, rows[i].second.ns * 1e-3 * per_step,
                          busy > 0 ? 100.0 * rows[i].second.ns / busy : 0.0);
  }
  return out;
}

}  // namespace gauntlet
