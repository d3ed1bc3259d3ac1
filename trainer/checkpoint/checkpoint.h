#ifndef GAUNTLET_TRAINER_CHECKPOINT_CHECKPOINT_H_
#define GAUNTLET_TRAINER_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet {

// Everything needed to continue a run exactly: the trainer decides the keys (model weights,
// optimizer moments, data position, RNG state, counters); this library only stores them.
struct Checkpoint {
  int64_t step = 0;
  std::map<std::string, torch::Tensor> tensors;  // saved on CPU, loaded on CPU
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> doubles;
};

// A directory of checkpoints <dir>/step_<step, 9 digits>/checkpoint.pt, each a pickled dict
// (readable with torch.load in Python for debugging).
//
// Save writes into a hidden temporary directory, fsyncs the file, renames the directory into
// place and fsyncs the parent, so a crash at any point leaves either the previous set or the new
// checkpoint complete, never a partial one; then it deletes all but the newest keep_last.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep_last);

  absl::Status Save(const Checkpoint& checkpoint);
  // Steps of the complete checkpoints present, ascending.
  absl::StatusOr<std::vector<int64_t>> ListSteps() const;
  absl::StatusOr<Checkpoint> Load(int64_t step) const;
  // nullopt when the directory holds no checkpoint (a fresh run).
  absl::StatusOr<std::optional<Checkpoint>> LoadLatest() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string StepDir(int64_t step) const;

  std::string dir_;
  int keep_last_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_CHECKPOINT_CHECKPOINT_H_
