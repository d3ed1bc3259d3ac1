#ifndef GAUNTLET_COMMON_YAML_PROTO_H_
#define GAUNTLET_COMMON_YAML_PROTO_H_

// Generic, descriptor-driven conversion between YAML and protobuf messages.
//
// YAML keys are the proto field names (snake_case). Supported field kinds:
//   - message fields: a YAML map (or null, which sets the empty message);
//   - repeated fields: a YAML sequence;
//   - map<string, V> fields: a YAML map;
//   - enums: by value name;
//   - int32/int64/uint32/uint64: integers, range-checked ("1e6" is accepted when integral);
//   - float/double: finite numbers; bool: true/false (yes/no, on/off); string: any scalar.
// Unknown keys are rejected with a "did you mean" hint, duplicate keys are rejected, and setting
// two members of one oneof in the same map is rejected. Every error is InvalidArgument and reads
//   line L, column C: path.to.field: what is wrong
// with 1-based line and column of the offending key (or list element).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/yaml.h"

namespace gauntlet {

// Where each field path of a parsed document was written, so that later phases (validation runs on
// the proto, long after the YAML is gone) can still point at a line and column.
// Paths look like "train.optimizer.lr", "variants[1].model.arch", "seeds[2]".
class SourceMap {
 public:
  void Record(const std::string& path, const YAML::Mark& mark);
  // The mark of `path`, or of its nearest recorded ancestor ("a.b[2].c" -> "a.b[2]" -> "a.b" ->
  // "a" -> ""). Returns false when neither it nor any ancestor was recorded.
  bool Find(std::string_view path, YAML::Mark* mark) const;
  // Exact lookup only.
  bool Has(std::string_view path) const;

 private:
  std::map<std::string, YAML::Mark, std::less<>> marks_;
};

// The parent of a field path: "a.b[2]" -> "a.b", "a.b" -> "a", "a" -> "". Empty for "".
std::string ParentPath(std::string_view path);

// "line L, column C: " (1-based) for a mark, or "" for a null mark.
std::string FormatMark(const YAML::Mark& mark);

// `text`, or its first `max_bytes` bytes and its length when longer: for quoting user input in
// error messages.
std::string Truncated(std::string_view text, size_t max_bytes);

// InvalidArgument "line L, column C: path: detail" (the path part omitted when empty).
absl::Status YamlError(const YAML::Mark& mark, std::string_view path, std::string_view detail);

// "unknown field (did you mean X?)" when a name in `known` is a plausible typo of `key`, else
// "unknown field (expected one of: ...)".
std::string UnknownFieldDetail(std::string_view key, const std::vector<std::string>& known);

// Parses `node` (a map, or null for an empty message) into `message`, which is NOT cleared first:
// fields present in the YAML replace (scalars, repeated) or merge into (messages) what is there.
// `path_prefix` prefixes field paths in errors and in `source_map` ("" at the top level).
absl::Status YamlToMessage(const YAML::Node& node, google::protobuf::Message* message,
                           const std::string& path_prefix, SourceMap* source_map = nullptr);

// Sets one field of `message` from `value`, as YamlToMessage does for one key. `key_mark` is the
// position reported for errors about this field; `path` is its full path.
absl::Status YamlToField(const google::protobuf::FieldDescriptor& field, const YAML::Node& value,
                         const YAML::Mark& key_mark, const std::string& path,
                         google::protobuf::Message* message, SourceMap* source_map = nullptr);

// Resolves a dotted path of singular fields ("train.optimizer.lr") against a descriptor.
// Error: InvalidArgument naming `error_path` with the first component that does not exist.
absl::StatusOr<const google::protobuf::FieldDescriptor*> FindFieldByPath(
    const google::protobuf::Descriptor& root, std::string_view dotted_path,
    const std::string& error_path);

// Sets the field at `dotted_path` (intermediate messages created) from a YAML value.
absl::Status SetFieldByPath(google::protobuf::Message* root, std::string_view dotted_path,
                            const YAML::Node& value, const YAML::Mark& mark,
                            const std::string& error_path);

// The YAML form of every field that is set (proto3 presence rules), in field-number order.
// Doubles are written with the fewest digits that read back to the same value, so
// YamlToMessage(MessageToYaml(m)) == m.
YAML::Node MessageToYaml(const google::protobuf::Message& message);

// MessageToYaml rendered as block-style YAML text.
std::string MessageToYamlString(const google::protobuf::Message& message);

// Formats a double with the fewest significant digits that parse back to exactly `value`.
std::string ShortestDouble(double value);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_YAML_PROTO_H_
