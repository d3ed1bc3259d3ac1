#include "trainer/train/event_writer.h"

#include <cerrno>
#include <cstring>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace gauntlet {

absl::StatusOr<std::unique_ptr<EventWriter>> EventWriter::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("GAUNTLET_EVENTS_FILE: cannot open ", path,
                                                   ": ", std::strerror(errno)));
  }
  return std::unique_ptr<EventWriter>(new EventWriter(file, path));
}

EventWriter::~EventWriter() { std::fclose(file_); }

std::string EventWriter::ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Serialising a valid in-memory message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

absl::Status EventWriter::Write(const v1::TrainerEvent& event) {
  const std::string line = ToJson(event) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::InternalError(absl::StrCat("writing event to ", path_, ": ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace gauntlet
