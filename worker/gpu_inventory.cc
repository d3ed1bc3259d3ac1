#include "worker/gpu_inventory.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gauntlet::worker {
namespace {

constexpr char kQuery[] =
    " --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits";

// True when `program` (a path, or a name looked up in $PATH) is executable.
bool Executable(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    if (access(absl::StrCat(dir, "/", program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<v1::GpuInfo>> ParseNvidiaSmiCsv(absl::string_view csv) {
  std::vector<v1::GpuInfo> gpus;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(csv, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    if (fields.size() != 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nvidia-smi line ", line_number, ": expected 4 fields (index,name,memory.total,uuid), got ",
          fields.size(), ": '", line, "'"));
    }
    for (auto& f : fields) f = absl::StripAsciiWhitespace(f);
    int index = 0;
    int64_t memory_mib = 0;
    if (!absl::SimpleAtoi(fields[0], &index) || index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("nvidia-smi line ", line_number, ": bad index '", fields[0], "'"));
    }
    if (!absl::SimpleAtoi(fields[2], &memory_mib) || memory_mib < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nvidia-smi line ", line_number, ": bad memory.total '", fields[2], "'"));
    }
    v1::GpuInfo& gpu = gpus.emplace_back();
    gpu.set_index(index);
    gpu.set_name(std::string(fields[1]));
    gpu.set_memory_bytes(memory_mib * 1024 * 1024);
    gpu.set_uuid(std::string(fields[3]));
  }
  return gpus;
}

NvidiaSmiInventory::NvidiaSmiInventory(std::string nvidia_smi)
    : nvidia_smi_(std::move(nvidia_smi)) {}

absl::StatusOr<std::vector<v1::GpuInfo>> NvidiaSmiInventory::Discover() {
  if (!Executable(nvidia_smi_)) return std::vector<v1::GpuInfo>{};
  const std::string command = absl::StrCat("'", nvidia_smi_, "'", kQuery, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", command));
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::UnavailableError(absl::StrCat(nvidia_smi_, " failed (status ", status,
                                               "): ", absl::StripAsciiWhitespace(output)));
  }
  return ParseNvidiaSmiCsv(output);
}

absl::StatusOr<std::vector<v1::GpuInfo>> SelectGpus(const std::vector<v1::GpuInfo>& found,
                                                    absl::string_view gpus_flag) {
  if (gpus_flag == "auto") return found;
  if (gpus_flag == "none" || gpus_flag.empty()) return std::vector<v1::GpuInfo>{};
  std::vector<v1::GpuInfo> selected;
  std::set<int> seen;
  for (absl::string_view part : absl::StrSplit(gpus_flag, ',')) {
    int index = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &index)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--gpus: '", part, "' is not a GPU index (want auto, none or a list like 0,1)"));
    }
    if (!seen.insert(index).second) {
      return absl::InvalidArgumentError(absl::StrCat("--gpus: index ", index, " given twice"));
    }
    bool ok = false;
    for (const v1::GpuInfo& gpu : found) {
      if (gpu.index() == index) {
        selected.push_back(gpu);
        ok = true;
      }
    }
    if (!ok) {
      return absl::NotFoundError(
          absl::StrCat("--gpus: GPU ", index, " not found (nvidia-smi lists ", found.size(),
                       " GPUs)"));
    }
  }
  return selected;
}

}  // namespace gauntlet::worker
