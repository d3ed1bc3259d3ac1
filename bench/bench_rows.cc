#include "bench/bench_rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

void Set(Struct& s, const std::string& key, double value) {
  (*s.mutable_fields())[key].set_number_value(value);
}
void Set(Struct& s, const std::string& key, const std::string& value) {
  (*s.mutable_fields())[key].set_string_value(value);
}
void SetNull(Struct& s, const std::string& key) {
  (*s.mutable_fields())[key].set_null_value(google::protobuf::NULL_VALUE);
}

}  // namespace

std::string BenchRowsToJson(const std::vector<BenchRow>& rows) {
  google::protobuf::ListValue list;
  for (const BenchRow& row : rows) {
    Struct& s = *list.add_values()->mutable_struct_value();
    Set(s, "model", row.model);
    Set(s, "impl", "gauntlet");
    Set(s, "arch", row.arch);
    Set(s, "size", row.size);
    Set(s, "gpu", row.gpu);
    Set(s, "precision", row.precision);
    Set(s, "batch", row.batch);
    if (!row.error.empty()) {
      Set(s, "error", row.error);
      SetNull(s, "tokens_per_s");
      SetNull(s, "mfu");
      continue;
    }
    Set(s, "tokens_per_s", row.tokens_per_s);
    Value& runs = (*s.mutable_fields())["tokens_per_s_runs"];
    for (double r : row.tokens_per_s_runs)
      runs.mutable_list_value()->add_values()->set_number_value(r);
    if (row.peak_flops > 0) {
      Set(s, "mfu", row.mfu);
      Set(s, "peak_flops", row.peak_flops);
    } else {
      SetNull(s, "mfu");
      SetNull(s, "peak_flops");
    }
    Set(s, "flops_per_token", row.flops_per_token);
    Set(s, "step_ms", row.step_ms);
    Set(s, "peak_memory_gib", row.peak_memory_gib);
    Set(s, "steps", row.steps);
    Set(s, "seq_len", row.seq_len);
    Set(s, "vocab_size", row.vocab_size);
    Set(s, "params", row.params);
    Set(s, "d_model", row.d_model);
    Set(s, "n_layers", row.n_layers);
    Set(s, "n_heads", row.n_heads);
    Set(s, "d_ff", row.d_ff);
    Set(s, "dropout", row.dropout);
  }
  std::string json;
  // Serialising a valid in-memory message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(list, &json);
  return json;
}

absl::Status WriteBenchRows(const std::string& path, const std::vector<BenchRow>& rows) {
  std::ofstream file(path);
  file << BenchRowsToJson(rows) << "\n";
  file.close();
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("--json_out: cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::TrainerStarted> ReadTrainerStarted(const std::string& events_path) {
  std::ifstream file(events_path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read events file ", events_path));
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    v1::TrainerEvent event;
    if (!google::protobuf::util::JsonStringToMessage(line, &event).ok()) {
      return absl::InternalError(
          absl::StrCat(events_path, ":", number, ": not a TrainerEvent JSON line"));
    }
    if (event.has_started()) return event.started();
  }
  return absl::NotFoundError(absl::StrCat(events_path, ": no TrainerStarted event"));
}

}  // namespace gauntlet
