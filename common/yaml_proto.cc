#include "common/yaml_proto.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gauntlet {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Levenshtein distance, for "did you mean" hints on misspelled keys.
int EditDistance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> FieldNames(const Descriptor& descriptor) {
  std::vector<std::string> names;
  for (int i = 0; i < descriptor.field_count(); ++i) names.push_back(descriptor.field(i)->name());
  return names;
}

// "line L, column C" (1-based).
std::string MarkText(const YAML::Mark& mark) {
  return absl::StrCat("line ", mark.line + 1, ", column ", mark.column + 1);
}

std::string JoinPath(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(prefix, ".", std::string(name));
}

std::string IndexPath(const std::string& prefix, int index) {
  return absl::StrCat(prefix, "[", index, "]");
}

std::string KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return absl::StrCat("\"", node.Scalar(), "\"");
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an undefined value";
  }
}

// Where to point for a node: its own mark, or the fallback when yaml-cpp has none (null nodes).
YAML::Mark MarkOr(const YAML::Node& node, const YAML::Mark& fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? fallback : mark;
}

std::string TypeName(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "an enum name";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a map";
  }
  return "a value";
}

// A scalar value converted to the field's C++ type; only the member for that type is meaningful.
struct ScalarValue {
  int64_t i64 = 0;
  uint64_t u64 = 0;
  double f64 = 0;
  bool b = false;
  const EnumValueDescriptor* e = nullptr;
  std::string s;
};

bool ParseDouble(const std::string& text, double* out) {
  std::string t(absl::StripAsciiWhitespace(text));
  // YAML 1.2 spellings of the special floats; rejected below as non-finite anyway.
  if (t == ".inf" || t == "+.inf" || t == ".Inf" || t == "+.Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (t == "-.inf" || t == "-.Inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (t == ".nan" || t == ".NaN" || t == ".NAN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  return absl::SimpleAtod(t, out);
}

// Integers may be written as exactly-integral floats ("1e6", "2.0"), which budgets use.
bool ParseInteger(const std::string& text, int64_t* out, bool* out_of_range) {
  *out_of_range = false;
  if (absl::SimpleAtoi(text, out)) return true;
  double d;
  if (!ParseDouble(text, &d) || !std::isfinite(d) || d != std::floor(d)) {
    // SimpleAtoi also fails on overflow of a plain integer literal: report range, not type.
    std::string t(absl::StripAsciiWhitespace(text));
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t = t.substr(1);
    if (!t.empty() && std::all_of(t.begin(), t.end(), absl::ascii_isdigit)) {
      *out_of_range = true;
    }
    return false;
  }
  if (d < -9.2233720368547758e18 || d >= 9.2233720368547758e18) {
    *out_of_range = true;
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

absl::Status ParseScalar(const FieldDescriptor& field, const YAML::Node& node,
                         const YAML::Mark& mark, const std::string& path, ScalarValue* value) {
  if (!node.IsScalar()) {
    return YamlError(mark, path,
                     absl::StrCat("expected ", TypeName(field), " (got ", KindName(node), ")"));
  }
  const std::string& text = node.Scalar();
  auto type_error = [&]() {
    return YamlError(mark, path,
                     absl::StrCat("expected ", TypeName(field), " (got \"", text, "\")"));
  };
  auto range_error = [&](std::string_view type) {
    return YamlError(mark, path,
                     absl::StrCat("out of range for ", std::string(type), " (got ", text, ")"));
  };
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      bool out_of_range = false;
      if (!ParseInteger(text, &value->i64, &out_of_range)) {
        return out_of_range ? range_error("int64") : type_error();
      }
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_INT32 &&
          (value->i64 < std::numeric_limits<int32_t>::min() ||
           value->i64 > std::numeric_limits<int32_t>::max())) {
        return range_error("int32");
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      if (!absl::SimpleAtoi(text, &value->u64)) {
        int64_t signed_value = 0;
        bool out_of_range = false;
        if (!ParseInteger(text, &signed_value, &out_of_range)) {
          return out_of_range ? range_error("uint64") : type_error();
        }
        if (signed_value < 0) {
          return YamlError(mark, path, absl::StrCat("must be >= 0 (got ", text, ")"));
        }
        value->u64 = static_cast<uint64_t>(signed_value);
      }
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_UINT32 &&
          value->u64 > std::numeric_limits<uint32_t>::max()) {
        return range_error("uint32");
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (!ParseDouble(text, &value->f64)) return type_error();
      if (!std::isfinite(value->f64)) {
        return YamlError(mark, path, absl::StrCat("must be a finite number (got ", text, ")"));
      }
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT &&
          std::abs(value->f64) > std::numeric_limits<float>::max()) {
        return range_error("float");
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      // YAML 1.1 booleans, as yaml-cpp reads them.
      const std::string lower = absl::AsciiStrToLower(text);
      if (lower == "true" || lower == "yes" || lower == "on") {
        value->b = true;
      } else if (lower == "false" || lower == "no" || lower == "off") {
        value->b = false;
      } else {
        return type_error();
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      value->e = field.enum_type()->FindValueByName(text);
      if (value->e == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < field.enum_type()->value_count(); ++i) {
          names.push_back(field.enum_type()->value(i)->name());
        }
        return YamlError(mark, path,
                         absl::StrCat("unknown value \"", text,
                                      "\" (expected one of: ", absl::StrJoin(names, ", "), ")"));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      value->s = text;
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return type_error();
}

void SetScalar(const FieldDescriptor& field, const ScalarValue& v, Message* message) {
  const Reflection& r = *message->GetReflection();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      r.SetInt32(message, &field, static_cast<int32_t>(v.i64));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      r.SetInt64(message, &field, v.i64);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      r.SetUInt32(message, &field, static_cast<uint32_t>(v.u64));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      r.SetUInt64(message, &field, v.u64);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      r.SetDouble(message, &field, v.f64);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      r.SetFloat(message, &field, static_cast<float>(v.f64));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      r.SetBool(message, &field, v.b);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      r.SetEnum(message, &field, v.e);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      r.SetString(message, &field, v.s);
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
}

void AddScalar(const FieldDescriptor& field, const ScalarValue& v, Message* message) {
  const Reflection& r = *message->GetReflection();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      r.AddInt32(message, &field, static_cast<int32_t>(v.i64));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      r.AddInt64(message, &field, v.i64);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      r.AddUInt32(message, &field, static_cast<uint32_t>(v.u64));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      r.AddUInt64(message, &field, v.u64);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      r.AddDouble(message, &field, v.f64);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      r.AddFloat(message, &field, static_cast<float>(v.f64));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      r.AddBool(message, &field, v.b);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      r.AddEnum(message, &field, v.e);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      r.AddString(message, &field, v.s);
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
}

// One entry of a map<string, V> field: the synthesized MapEntry message {key, value}.
absl::Status AddMapEntry(const FieldDescriptor& field, const YAML::Node& key,
                         const YAML::Node& value, const std::string& path, Message* message,
                         SourceMap* source_map) {
  const Descriptor& entry_type = *field.message_type();
  const FieldDescriptor& key_field = *entry_type.map_key();
  const FieldDescriptor& value_field = *entry_type.map_value();
  Message* entry = message->GetReflection()->AddMessage(message, &field);
  ScalarValue key_value;
  absl::Status status = ParseScalar(key_field, key, key.Mark(), path, &key_value);
  if (!status.ok()) return status;
  SetScalar(key_field, key_value, entry);
  const std::string entry_path = absl::StrCat(path, "[", key.Scalar(), "]");
  return YamlToField(value_field, value, key.Mark(), entry_path, entry, source_map);
}

std::string DoubleToString(const FieldDescriptor& field, const Reflection& r, const Message& m,
                           int index) {
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
    const float f = index < 0 ? r.GetFloat(m, &field) : r.GetRepeatedFloat(m, &field, index);
    // Shortest digits that read back to the same float.
    for (int precision = 6; precision <= 9; ++precision) {
      std::string text = absl::StrFormat("%.*g", precision, f);
      if (std::strtof(text.c_str(), nullptr) == f) return text;
    }
    return absl::StrFormat("%.9g", f);
  }
  return ShortestDouble(index < 0 ? r.GetDouble(m, &field) : r.GetRepeatedDouble(m, &field, index));
}

YAML::Node ScalarToYaml(const FieldDescriptor& field, const Message& m, int index) {
  const Reflection& r = *m.GetReflection();
  const bool rep = index >= 0;
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return YAML::Node(
          absl::StrCat(rep ? r.GetRepeatedInt32(m, &field, index) : r.GetInt32(m, &field)));
    case FieldDescriptor::CPPTYPE_INT64:
      return YAML::Node(
          absl::StrCat(rep ? r.GetRepeatedInt64(m, &field, index) : r.GetInt64(m, &field)));
    case FieldDescriptor::CPPTYPE_UINT32:
      return YAML::Node(
          absl::StrCat(rep ? r.GetRepeatedUInt32(m, &field, index) : r.GetUInt32(m, &field)));
    case FieldDescriptor::CPPTYPE_UINT64:
      return YAML::Node(
          absl::StrCat(rep ? r.GetRepeatedUInt64(m, &field, index) : r.GetUInt64(m, &field)));
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return YAML::Node(DoubleToString(field, r, m, index));
    case FieldDescriptor::CPPTYPE_BOOL:
      return YAML::Node(std::string(
          (rep ? r.GetRepeatedBool(m, &field, index) : r.GetBool(m, &field)) ? "true" : "false"));
    case FieldDescriptor::CPPTYPE_ENUM:
      return YAML::Node((rep ? r.GetRepeatedEnum(m, &field, index) : r.GetEnum(m, &field))->name());
    case FieldDescriptor::CPPTYPE_STRING:
      return YAML::Node(rep ? r.GetRepeatedString(m, &field, index) : r.GetString(m, &field));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToYaml(rep ? r.GetRepeatedMessage(m, &field, index) : r.GetMessage(m, &field));
  }
  return YAML::Node();
}

}  // namespace

std::string UnknownFieldDetail(std::string_view key, const std::vector<std::string>& known) {
  const std::string lower = absl::AsciiStrToLower(std::string(key));
  std::string best;
  int best_distance = std::numeric_limits<int>::max();
  for (const std::string& name : known) {
    const int distance = EditDistance(lower, name);
    if (distance < best_distance) {
      best_distance = distance;
      best = name;
    }
  }
  // Only suggest names close enough to be a plausible typo.
  const int tolerance = std::max<int>(2, static_cast<int>(key.size()) / 3);
  if (!best.empty() && best_distance <= tolerance) {
    return absl::StrCat("unknown field (did you mean ", best, "?)");
  }
  return absl::StrCat("unknown field (expected one of: ", absl::StrJoin(known, ", "), ")");
}

void SourceMap::Record(const std::string& path, const YAML::Mark& mark) {
  if (!mark.is_null()) marks_[path] = mark;
}

bool SourceMap::Has(std::string_view path) const { return marks_.find(path) != marks_.end(); }

bool SourceMap::Find(std::string_view path, YAML::Mark* mark) const {
  std::string current(path);
  while (true) {
    auto it = marks_.find(current);
    if (it != marks_.end()) {
      *mark = it->second;
      return true;
    }
    if (current.empty()) return false;
    current = ParentPath(current);
  }
}

std::string ParentPath(std::string_view path) {
  if (path.empty()) return "";
  if (path.back() == ']') {
    const size_t open = path.rfind('[');
    if (open != std::string_view::npos) return std::string(path.substr(0, open));
  }
  const size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? "" : std::string(path.substr(0, dot));
}

std::string FormatMark(const YAML::Mark& mark) {
  if (mark.is_null()) return "";
  return absl::StrCat("line ", mark.line + 1, ", column ", mark.column + 1, ": ");
}

std::string Truncated(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return absl::StrCat(std::string(text.substr(0, max_bytes)), "... (", text.size(), " bytes)");
}

absl::Status YamlError(const YAML::Mark& mark, std::string_view path, std::string_view detail) {
  // Bounded whatever the input: a message quoting a 3 MB value would exceed gRPC's trailer limit
  // and reach the client as "Stream removed" instead of INVALID_ARGUMENT.
  return absl::InvalidArgumentError(absl::StrCat(FormatMark(mark), Truncated(path, 200),
                                                 path.empty() ? "" : ": ", Truncated(detail, 400)));
}

absl::Status YamlToField(const FieldDescriptor& field, const YAML::Node& value,
                         const YAML::Mark& key_mark, const std::string& path, Message* message,
                         SourceMap* source_map) {
  const Reflection& r = *message->GetReflection();
  if (source_map != nullptr) source_map->Record(path, key_mark);
  if (field.is_map()) {
    if (value.IsNull()) {
      r.ClearField(message, &field);
      return absl::OkStatus();
    }
    if (!value.IsMap()) {
      return YamlError(key_mark, path, absl::StrCat("expected a map (got ", KindName(value), ")"));
    }
    r.ClearField(message, &field);
    std::map<std::string, YAML::Mark> seen;
    for (auto it = value.begin(); it != value.end(); ++it) {
      const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      if (auto [pos, inserted] = seen.emplace(key, it->first.Mark()); !inserted) {
        return YamlError(it->first.Mark(), absl::StrCat(path, "[", key, "]"),
                         absl::StrCat("duplicate key (first at ", MarkText(pos->second), ")"));
      }
      absl::Status status = AddMapEntry(field, it->first, it->second, path, message, source_map);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (field.is_repeated()) {
    if (!value.IsSequence()) {
      return YamlError(key_mark, path, absl::StrCat("expected a list (got ", KindName(value), ")"));
    }
    r.ClearField(message, &field);
    for (size_t i = 0; i < value.size(); ++i) {
      const YAML::Node element = value[i];
      const std::string element_path = IndexPath(path, static_cast<int>(i));
      const YAML::Mark element_mark = MarkOr(element, key_mark);
      if (source_map != nullptr) source_map->Record(element_path, element_mark);
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        absl::Status status =
            YamlToMessage(element, r.AddMessage(message, &field), element_path, source_map);
        if (!status.ok()) return status;
        continue;
      }
      ScalarValue parsed;
      absl::Status status = ParseScalar(field, element, element_mark, element_path, &parsed);
      if (!status.ok()) return status;
      AddScalar(field, parsed, message);
    }
    return absl::OkStatus();
  }
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    if (!value.IsMap() && !value.IsNull()) {
      return YamlError(key_mark, path, absl::StrCat("expected a map (got ", KindName(value), ")"));
    }
    return YamlToMessage(value, r.MutableMessage(message, &field), path, source_map);
  }
  if (value.IsNull()) return YamlError(key_mark, path, "missing value");
  ScalarValue parsed;
  absl::Status status = ParseScalar(field, value, key_mark, path, &parsed);
  if (!status.ok()) return status;
  SetScalar(field, parsed, message);
  return absl::OkStatus();
}

absl::Status YamlToMessage(const YAML::Node& node, Message* message, const std::string& path_prefix,
                           SourceMap* source_map) {
  if (!node.IsDefined() || node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return YamlError(node.Mark(), path_prefix,
                     absl::StrCat("expected a map (got ", KindName(node), ")"));
  }
  const Descriptor& descriptor = *message->GetDescriptor();
  std::map<std::string, YAML::Mark> seen;
  // Which key set each oneof, so a second member is an error instead of silently winning.
  std::map<const google::protobuf::OneofDescriptor*, std::string> oneof_setter;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node& key_node = it->first;
    const YAML::Mark key_mark = key_node.Mark();
    if (!key_node.IsScalar()) {
      return YamlError(key_mark, path_prefix, "keys must be plain names");
    }
    const std::string& key = key_node.Scalar();
    const std::string path = JoinPath(path_prefix, key);
    if (auto [pos, inserted] = seen.emplace(key, key_mark); !inserted) {
      return YamlError(key_mark, path,
                       absl::StrCat("duplicate key (first at ", MarkText(pos->second), ")"));
    }
    const FieldDescriptor* field = descriptor.FindFieldByName(key);
    if (field == nullptr)
      return YamlError(key_mark, path, UnknownFieldDetail(key, FieldNames(descriptor)));
    if (const auto* oneof = field->real_containing_oneof(); oneof != nullptr) {
      auto [pos, inserted] = oneof_setter.emplace(oneof, key);
      if (!inserted) {
        std::vector<std::string> members;
        for (int i = 0; i < oneof->field_count(); ++i) members.push_back(oneof->field(i)->name());
        return YamlError(key_mark, path,
                         absl::StrCat("only one of ", absl::StrJoin(members, ", "),
                                      " may be set (already set: ", pos->second, ")"));
      }
    }
    absl::Status status = YamlToField(*field, it->second, key_mark, path, message, source_map);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<const FieldDescriptor*> FindFieldByPath(const Descriptor& root,
                                                       std::string_view dotted_path,
                                                       const std::string& error_path) {
  const Descriptor* descriptor = &root;
  const FieldDescriptor* field = nullptr;
  std::string walked;
  const std::vector<std::string> parts = absl::StrSplit(std::string(dotted_path), '.');
  for (const std::string& part : parts) {
    if (descriptor == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          error_path, ": ", walked, " is not a message, so it has no field \"", part, "\""));
    }
    walked = walked.empty() ? std::string(part) : absl::StrCat(walked, ".", part);
    field = descriptor->FindFieldByName(part);
    if (field == nullptr) {
      // "unknown field (did you mean lr?)" -> "unknown field train.optimizer.learning_rate (...)"
      const std::string detail = UnknownFieldDetail(part, FieldNames(*descriptor));
      return absl::InvalidArgumentError(absl::StrCat(error_path, ": unknown field ", walked,
                                                     detail.substr(strlen("unknown field"))));
    }
    descriptor = (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated())
                     ? field->message_type()
                     : nullptr;
  }
  return field;
}

absl::Status SetFieldByPath(Message* root, std::string_view dotted_path, const YAML::Node& value,
                            const YAML::Mark& mark, const std::string& error_path) {
  absl::StatusOr<const FieldDescriptor*> leaf =
      FindFieldByPath(*root->GetDescriptor(), dotted_path, error_path);
  if (!leaf.ok()) return leaf.status();
  Message* message = root;
  std::vector<std::string> parts = absl::StrSplit(std::string(dotted_path), '.');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts[i]);
    message = message->GetReflection()->MutableMessage(message, field);
  }
  return YamlToField(**leaf, value, mark, error_path, message);
}

YAML::Node MessageToYaml(const Message& message) {
  YAML::Node node(YAML::NodeType::Map);
  const Reflection& r = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(message, &fields);  // field-number order; proto3 presence rules
  for (const FieldDescriptor* field : fields) {
    if (field->is_map()) {
      YAML::Node map(YAML::NodeType::Map);
      const FieldDescriptor& key_field = *field->message_type()->map_key();
      const FieldDescriptor& value_field = *field->message_type()->map_value();
      for (int i = 0; i < r.FieldSize(message, field); ++i) {
        const Message& entry = r.GetRepeatedMessage(message, field, i);
        map[ScalarToYaml(key_field, entry, -1).Scalar()] = ScalarToYaml(value_field, entry, -1);
      }
      node[field->name()] = map;
    } else if (field->is_repeated()) {
      YAML::Node list(YAML::NodeType::Sequence);
      for (int i = 0; i < r.FieldSize(message, field); ++i) {
        list.push_back(ScalarToYaml(*field, message, i));
      }
      node[field->name()] = list;
    } else {
      node[field->name()] = ScalarToYaml(*field, message, -1);
    }
  }
  return node;
}

std::string MessageToYamlString(const Message& message) {
  YAML::Emitter out;
  out << MessageToYaml(message);
  return absl::StrCat(out.c_str(), "\n");
}

std::string ShortestDouble(double value) {
  for (int precision = 1; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace gauntlet
