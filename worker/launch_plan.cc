#include "worker/launch_plan.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gauntlet::worker {
namespace {

// Variables the worker owns; inherited values are replaced so a stale RANK from the worker's
// own environment can never leak into a trainer.
const std::set<std::string>& OwnedVariables() {
  static const auto* vars = new std::set<std::string>{
      "RANK",        "LOCAL_RANK",           "WORLD_SIZE",
      "LOCAL_WORLD_SIZE", "MASTER_ADDR",     "MASTER_PORT",
      "CUDA_VISIBLE_DEVICES", "GAUNTLET_EVENTS_FILE", "GAUNTLET_TRIAL_ID",
      "GAUNTLET_ATTEMPT", "GROUP_RANK"};
  return *vars;
}

// Whether `path` is one of `roots` or lies under one (lexically; ".." is refused separately).
bool UnderAny(const std::string& path, const std::vector<std::string>& roots) {
  if (path.empty() || path[0] != '/') return true;  // relative: resolved inside a root
  for (std::string root : roots) {
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (!root.empty() && (path == root || absl::StartsWith(path, root + "/"))) return true;
  }
  return false;
}

std::string VariableName(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// A trial id becomes a directory name, so it must not escape work_dir.
absl::Status CheckPathComponent(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("launch.trial_id is empty");
  if (id == "." || id == ".." || absl::StrContains(id, "/") || absl::StrContains(id, '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch.trial_id '", id, "' is not usable as a directory name"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GangPlan> PlanLaunch(const v1::LaunchTrial& launch, const LaunchConfig& config) {
  if (absl::Status s = CheckPathComponent(launch.trial_id()); !s.ok()) return s;
  if (launch.attempt() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("launch.attempt is negative: ", launch.attempt()));
  }
  if (launch.world_size() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch.world_size must be positive, got ", launch.world_size()));
  }
  const v1::Placement& placement = launch.placement();
  if (launch.slice_index() < 0 || launch.slice_index() >= placement.slices_size()) {
    return absl::InvalidArgumentError(absl::StrCat("launch.slice_index ", launch.slice_index(),
                                                   " out of range: placement has ",
                                                   placement.slices_size(), " slices"));
  }
  if (placement.master_addr().empty()) {
    return absl::InvalidArgumentError("launch.placement.master_addr is empty");
  }
  if (placement.master_port() <= 0 || placement.master_port() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch.placement.master_port out of range: ", placement.master_port()));
  }
  const v1::PlacementSlice& slice = placement.slices(launch.slice_index());
  if (slice.devices().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch.placement.slices[", launch.slice_index(), "].devices is empty"));
  }
  if (slice.first_rank() < 0 || slice.first_rank() + slice.devices_size() > launch.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "launch.placement.slices[", launch.slice_index(), "]: ranks ", slice.first_rank(), "..",
        slice.first_rank() + slice.devices_size() - 1, " exceed world_size ",
        launch.world_size()));
  }
  if (config.trainer_path.empty()) return absl::FailedPreconditionError("no --trainer configured");

  GangPlan plan;
  plan.trial_id = launch.trial_id();
  plan.attempt = launch.attempt();
  plan.run_dir = absl::StrCat(config.work_dir, "/", launch.trial_id());
  plan.attempt_dir = absl::StrCat(plan.run_dir, "/attempt-", launch.attempt());
  plan.spec_path = absl::StrCat(plan.run_dir, "/trial.yaml");
  const std::string checkpoint_store = config.checkpoint_store.empty()
                                           ? absl::StrCat(config.work_dir, "/checkpoints")
                                           : config.checkpoint_store;
  plan.checkpoint_dir = absl::StrCat(checkpoint_store, "/", launch.trial_id());
  plan.fence_path = absl::StrCat(plan.checkpoint_dir, "/fence");
  plan.spec = launch.spec();
  plan.spec.set_run_dir(plan.checkpoint_dir);
  // Every corpus path of the data spec (path, each source's, the tokenizer model) resolves against
  // --data_root and is confined to this worker's data roots: a spec cannot make the trainer read
  // /etc/shadow.
  std::vector<std::string> data_roots = config.extra_data_roots;
  data_roots.push_back(config.data_root);
  const auto resolve = [&](const std::string& field, std::string* path) -> absl::Status {
    if (path->empty()) return absl::OkStatus();
    for (absl::string_view part : absl::StrSplit(*path, '/')) {
      if (part == "..") return absl::InvalidArgumentError(field + ": must not contain \"..\"");
    }
    if ((*path)[0] != '/') {
      if (!config.data_root.empty()) *path = absl::StrCat(config.data_root, "/", *path);
    } else if (!config.data_root.empty() && !UnderAny(*path, data_roots)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", path->substr(0, 200), " is outside this worker's data roots (--data_root ",
          config.data_root, ", --extra_data_roots ", absl::StrJoin(config.extra_data_roots, ","),
          ")"));
    }
    return absl::OkStatus();
  };
  v1::DataSpec& data = *plan.spec.mutable_data();
  if (absl::Status s = resolve("launch.spec.data.path", data.mutable_path()); !s.ok()) return s;
  if (absl::Status s = resolve("launch.spec.data.tokenizer_model", data.mutable_tokenizer_model());
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < data.sources_size(); ++i) {
    if (absl::Status s = resolve(absl::StrCat("launch.spec.data.sources[", i, "].path"),
                                 data.mutable_sources(i)->mutable_path());
        !s.ok()) {
      return s;
    }
  }
  // An inference trial's checkpoint: another trial's run directory in the checkpoint store
  // (relative paths), or one under the store or the data roots.
  if (std::string* from = plan.spec.mutable_inference()->mutable_checkpoint_path();
      !from->empty()) {
    std::vector<std::string> roots = data_roots;
    roots.push_back(checkpoint_store);
    if (absl::StrContains(*from, "..")) {
      return absl::InvalidArgumentError("launch.spec.inference.checkpoint_path: must not contain \"..\"");
    }
    if ((*from)[0] != '/') {
      *from = absl::StrCat(checkpoint_store, "/", *from);
    } else if (!UnderAny(*from, roots)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "launch.spec.inference.checkpoint_path: ", from->substr(0, 200),
          " is outside this worker's checkpoint store (", checkpoint_store, ") and data roots"));
    }
  }
  if (const std::string& cache = plan.spec.data().cache_dir(); !cache.empty()) {
    std::vector<std::string> roots = config.cache_roots;
    roots.push_back(config.work_dir);
    if (!UnderAny(cache, roots) || absl::StrContains(cache, "..")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "launch.spec.data.cache_dir: ", cache.substr(0, 200),
          " is outside this worker's --work_dir and --cache_roots"));
    }
  }
  const bool hosts_rank0 = slice.first_rank() == 0;
  if (hosts_rank0) plan.events_path = absl::StrCat(plan.attempt_dir, "/events.jsonl");

  // The scheduler decided the kind once; the trainer is told it, never guesses it.
  if (placement.device_kind() != v1::DEVICE_KIND_GPU &&
      placement.device_kind() != v1::DEVICE_KIND_CPU) {
    return absl::InvalidArgumentError("launch.placement.device_kind: must be GPU or CPU");
  }
  const bool gpu = placement.device_kind() == v1::DEVICE_KIND_GPU;
  plan.spec.mutable_resources()->set_device(gpu ? "gpu" : "cpu");

  std::vector<std::string> inherited;
  bool has_nvls = false;
  bool has_omp_threads = false;
  for (const std::string& entry : config.base_env) {
    const std::string name = VariableName(entry);
    if (OwnedVariables().count(name)) continue;
    if (name == "NCCL_NVLS_ENABLE") has_nvls = true;
    if (name == "OMP_NUM_THREADS") has_omp_threads = true;
    inherited.push_back(entry);
  }
  // NVLink multicast must stay off on the multi-GPU machines unless an operator set it.
  if (!has_nvls) inherited.push_back("NCCL_NVLS_ENABLE=0");

  for (int i = 0; i < slice.devices_size(); ++i) {
    RankPlan& r = plan.ranks.emplace_back();
    r.rank = slice.first_rank() + i;
    r.local_rank = i;
    r.device = slice.devices(i);
    r.dir = absl::StrCat(plan.attempt_dir, "/rank-", r.rank);
    r.process.argv = {config.trainer_path, "--spec", plan.spec_path};
    r.process.working_dir = r.dir;
    r.process.stdout_path = absl::StrCat(r.dir, "/stdout.log");
    r.process.stderr_path = absl::StrCat(r.dir, "/stderr.log");
    std::vector<std::string>& env = r.process.env;
    env = inherited;
    env.push_back(absl::StrCat("RANK=", r.rank));
    env.push_back(absl::StrCat("LOCAL_RANK=", r.local_rank));
    env.push_back(absl::StrCat("GROUP_RANK=", launch.slice_index()));
    env.push_back(absl::StrCat("WORLD_SIZE=", launch.world_size()));
    env.push_back(absl::StrCat("LOCAL_WORLD_SIZE=", slice.devices_size()));
    env.push_back(absl::StrCat("MASTER_ADDR=", placement.master_addr()));
    env.push_back(absl::StrCat("MASTER_PORT=", placement.master_port()));
    // One device per process: the trainer always sees its GPU as cuda:0. CPU ranks see none.
    env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", gpu ? absl::StrCat(r.device) : ""));
    env.push_back(absl::StrCat("GAUNTLET_TRIAL_ID=", launch.trial_id()));
    env.push_back(absl::StrCat("GAUNTLET_ATTEMPT=", launch.attempt()));
    if (r.rank == 0) env.push_back(absl::StrCat("GAUNTLET_EVENTS_FILE=", plan.events_path));
    if (!gpu && !has_omp_threads && config.threads_per_cpu_rank > 0) {
      env.push_back(absl::StrCat("OMP_NUM_THREADS=", config.threads_per_cpu_rank));
    }
  }
  return plan;
}

}  // namespace gauntlet::worker
