// trainer --spec trial.yaml: one data-parallel rank of one trial (torchrun-style environment).
// Rank 0 prints the llm.c-style log and a final JSON summary line on stdout and appends
// v1::TrainerEvent JSON lines to $GAUNTLET_EVENTS_FILE. The exit code names the failure class.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/spec_yaml.h"
#include "trainer/dist/dist_env.h"
#include "trainer/dist/rendezvous.h"
#include "common/clock.h"
#include "trainer/kernels/aten_util.h"
#include "trainer/train/event_writer.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/train_loop.h"

ABSL_FLAG(std::string, spec, "", "Trial spec YAML (a v1::TrialSpec)");
ABSL_FLAG(std::string, device, "auto",
          "auto (cuda:LOCAL_RANK mod visible GPUs when CUDA is available and resources.device is not cpu), cpu "
          "or cuda");
ABSL_FLAG(bool, force_ddp, false,
          "Reduce gradients through the communicator even with WORLD_SIZE=1 (exercises NCCL on "
          "one GPU)");
ABSL_FLAG(int, profile_steps, 0,
          "Profile this many steps once the step is warm (captured) and print per-kernel device "
          "time (attribution runs only: the profiler costs time)");
ABSL_FLAG(int, rendezvous_timeout_s, 300, "Seconds to wait for every rank and each collective");
ABSL_FLAG(std::string, run_dir, "", "Overrides the spec's run_dir");

namespace gauntlet {
namespace {

int Fail(const absl::Status& status, EventWriter* events) {
  const ExitCode code = ExitCodeOf(status);
  std::string reason(status.message());
  for (char& c : reason) {
    if (c == '\n') c = ' ';
  }
  std::cerr << "error: " << reason << std::endl;
  if (events != nullptr) {
    v1::TrainerEvent event;
    event.mutable_error()->set_exit_code(static_cast<v1::TrainerExitCode>(code));
    event.mutable_error()->set_reason(reason);
    (void)events->Write(event);
  }
  return static_cast<int>(code);
}

int Main() {
  absl::StatusOr<DistEnv> env = DistEnvFromProcess();
  std::unique_ptr<EventWriter> events;
  const char* events_path = std::getenv("GAUNTLET_EVENTS_FILE");
  if (events_path != nullptr && *events_path != '\0' && (!env.ok() || env->rank == 0)) {
    absl::StatusOr<std::unique_ptr<EventWriter>> writer = EventWriter::Open(events_path);
    if (!writer.ok()) return Fail(WithExitCode(writer.status(), ExitCode::kOther), nullptr);
    events = *std::move(writer);
  }
  if (!env.ok()) return Fail(WithExitCode(env.status(), ExitCode::kDistributed), events.get());

  const std::string spec_path = absl::GetFlag(FLAGS_spec);
  if (spec_path.empty()) {
    return Fail(WithExitCode(absl::InvalidArgumentError("--spec: required"), ExitCode::kBadSpec),
                events.get());
  }
  std::ifstream in(spec_path);
  if (!in) {
    return Fail(WithExitCode(absl::InvalidArgumentError(
                                 absl::StrCat("--spec: cannot read ", spec_path)),
                             ExitCode::kBadSpec),
                events.get());
  }
  std::stringstream yaml;
  yaml << in.rdbuf();
  absl::StatusOr<v1::TrialSpec> spec = ParseTrialSpecYaml(yaml.str());
  if (!spec.ok()) {
    return Fail(WithExitCode(absl::InvalidArgumentError(
                                 absl::StrCat(spec_path, ": ", spec.status().message())),
                             ExitCode::kBadSpec),
                events.get());
  }
  if (!absl::GetFlag(FLAGS_run_dir).empty()) spec->set_run_dir(absl::GetFlag(FLAGS_run_dir));
  // Test only (the OOM-retry fault test): a device too small for micro-batches above N.
  if (const char* limit = std::getenv("GAUNTLET_TEST_OOM_ABOVE_BATCH_SIZE");
      limit != nullptr && spec->train().batch_size() > std::atoi(limit)) {
    return Fail(WithExitCode(absl::ResourceExhaustedError(absl::StrCat(
                                 "out of memory (simulated: micro-batch ",
                                 spec->train().batch_size(), " > ", limit, ")")),
                             ExitCode::kOutOfMemory),
                events.get());
  }

  const std::string device_flag = absl::GetFlag(FLAGS_device);
  torch::Device device(torch::kCPU);
  if (device_flag == "cuda" ||
      (device_flag == "auto" && spec->resources().device() != "cpu" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) {
      return Fail(WithExitCode(absl::FailedPreconditionError("--device=cuda: no CUDA device"),
                               ExitCode::kOther),
                  events.get());
    }
    // The worker pins each rank to one GPU with CUDA_VISIBLE_DEVICES (one visible device);
    // torchrun-style launches show every GPU and rely on LOCAL_RANK. Both land on the right one.
    const int visible = static_cast<int>(torch::cuda::device_count());
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env->local_rank % visible));
  } else if (device_flag != "cpu" && device_flag != "auto") {
    return Fail(WithExitCode(absl::InvalidArgumentError(
                                 absl::StrCat("--device: must be auto, cpu or cuda, got ",
                                              device_flag)),
                             ExitCode::kBadSpec),
                events.get());
  }

  absl::StatusOr<std::string> sdpa_backend = kernels::ApplySdpaBackendFromEnvironment();
  if (!sdpa_backend.ok()) {
    return Fail(WithExitCode(sdpa_backend.status(), ExitCode::kBadSpec), events.get());
  }
  if (!sdpa_backend->empty()) std::cerr << "attention: " << *sdpa_backend << " first\n";

  absl::StatusOr<ProcessGroup> group =
      Rendezvous(*env, device, std::chrono::seconds(absl::GetFlag(FLAGS_rendezvous_timeout_s)));
  if (!group.ok()) return Fail(WithExitCode(group.status(), ExitCode::kDistributed), events.get());

  TrainerOptions options;
  options.spec = *spec;
  options.device = device;
  options.force_ddp = absl::GetFlag(FLAGS_force_ddp);
  options.profile_steps = absl::GetFlag(FLAGS_profile_steps);
  if (const char* trial = std::getenv("GAUNTLET_TRIAL_ID"); trial != nullptr) {
    options.trial_id = trial;
  }
  if (const char* attempt = std::getenv("GAUNTLET_ATTEMPT"); attempt != nullptr) {
    options.attempt = std::atoi(attempt);
  }
  TrainerSinks sinks;
  if (env->rank == 0) {
    sinks.log = &std::cout;
    sinks.events = events.get();
  }
  MonotonicClock clock;
  absl::StatusOr<v1::TrainerSummary> summary = RunTraining(options, *group->comm, clock, sinks);
  if (!summary.ok()) return Fail(summary.status(), events.get());
  if (absl::Status s = group->comm->Finish(); !s.ok()) {
    return Fail(WithExitCode(s, ExitCode::kDistributed), events.get());
  }
  if (env->rank == 0) std::cout << EventWriter::ToJson(*summary) << std::endl;
  return 0;
}

}  // namespace
}  // namespace gauntlet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  try {
    return gauntlet::Main();
  } catch (const std::exception& e) {
    return gauntlet::Fail(gauntlet::StatusFromException(e, "trainer"), nullptr);
  }
}
