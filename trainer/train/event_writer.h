#ifndef GAUNTLET_TRAINER_TRAIN_EVENT_WRITER_H_
#define GAUNTLET_TRAINER_TRAIN_EVENT_WRITER_H_

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

// Appends v1::TrainerEvent messages as JSON lines (protobuf JSON mapping) and flushes each one,
// so the worker tailing the file sees every event as soon as it happens and at most loses a
// partial last line if the trainer dies mid-write.
class EventWriter {
 public:
  static absl::StatusOr<std::unique_ptr<EventWriter>> Open(const std::string& path);
  ~EventWriter();

  absl::Status Write(const v1::TrainerEvent& event);
  // The JSON line Write would append (no newline).
  static std::string ToJson(const google::protobuf::Message& message);

 private:
  EventWriter(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  std::FILE* file_;
  std::string path_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_EVENT_WRITER_H_
