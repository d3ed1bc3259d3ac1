#include "common/spec_yaml.h"

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/spec_defaults.h"
#include "common/spec_validation.h"
#include "common/yaml_proto.h"
#include "google/protobuf/descriptor.h"
#include "yaml-cpp/yaml.h"

namespace gauntlet {
namespace {

using google::protobuf::FieldDescriptor;

// TrialSpec fields the coordinator or worker sets per trial, never an experiment.
bool PerTrialField(const std::string& key) { return key == "seed" || key == "run_dir"; }

// The TrialSpec keys an experiment (top level or variant) may use.
std::vector<std::string> TrialKeys() {
  std::vector<std::string> keys;
  const auto& d = *v1::TrialSpec::descriptor();
  for (int i = 0; i < d.field_count(); ++i) {
    if (!PerTrialField(d.field(i)->name())) keys.push_back(d.field(i)->name());
  }
  return keys;
}

// Input limits. A spec is a page of YAML; these are far above any real one and far below what
// would hurt the coordinator (memory, response size, time).
constexpr size_t kMaxSpecBytes = 256 << 10;
// Scalar bytes with every alias expanded where it is used: YAML anchors let a small text stand
// for an enormous document ("billion laughs"; 100 aliases of a 1 MB anchor).
constexpr int64_t kMaxExpandedBytes = 1 << 20;
constexpr int64_t kMaxNodes = 50000;
constexpr int kMaxDepth = 32;
constexpr size_t kMaxScalarBytes = 4096;

// Line and column (1-based, in bytes) of byte `offset` of `text`.
YAML::Mark MarkAt(std::string_view text, size_t offset) {
  YAML::Mark mark;
  mark.pos = static_cast<int>(offset);
  mark.line = 0;
  mark.column = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++mark.line;
      mark.column = 0;
    } else {
      ++mark.column;
    }
  }
  return mark;
}

// Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, surrogates or
// code points above U+10FFFF), or npos.
size_t FirstInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    int len;
    uint32_t cp;
    if (c < 0x80) {
      if (c == 0) return i;  // NUL is valid UTF-8 but never valid YAML text
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

absl::Status CheckText(std::string_view text) {
  if (text.size() > kMaxSpecBytes) {
    return YamlError(YAML::Mark(), "", absl::StrCat("the spec is ", text.size(),
                                                    " bytes; at most ", kMaxSpecBytes));
  }
  if (size_t bad = FirstInvalidUtf8(text); bad != std::string_view::npos) {
    return YamlError(MarkAt(text, bad), "",
                     absl::StrCat("not valid UTF-8 text (byte 0x",
                                  absl::Hex(static_cast<unsigned char>(text[bad]),
                                            absl::kZeroPad2),
                                  ")"));
  }
  return absl::OkStatus();
}

struct TreeBudget {
  int64_t nodes = 0;
  int64_t bytes = 0;
};

// Walks the document as the parser will see it (aliases expanded), stopping at the first limit.
absl::Status CheckTree(const YAML::Node& node, int depth, TreeBudget& budget) {
  if (++budget.nodes > kMaxNodes) {
    return YamlError(node.Mark(), "", absl::StrCat("more than ", kMaxNodes,
                                                   " YAML nodes (aliases counted where used)"));
  }
  if (depth > kMaxDepth) {
    return YamlError(node.Mark(), "", absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  }
  const std::string& tag = node.Tag();
  // "?" plain, "!" quoted; anything else was written explicitly and would be silently ignored.
  if (!tag.empty() && tag != "?" && tag != "!") {
    return YamlError(node.Mark(), "",
                     absl::StrCat("explicit YAML tags are not supported (", Truncated(tag, 40),
                                  ")"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      if (node.Scalar().size() > kMaxScalarBytes) {
        return YamlError(node.Mark(), "", absl::StrCat("a value of ", node.Scalar().size(),
                                                       " bytes; at most ", kMaxScalarBytes));
      }
      budget.bytes += node.Scalar().size();
      if (budget.bytes > kMaxExpandedBytes) {
        return YamlError(node.Mark(), "",
                         absl::StrCat("the spec expands to more than ", kMaxExpandedBytes,
                                      " bytes of values (aliases counted where used)"));
      }
      return absl::OkStatus();
    case YAML::NodeType::Sequence:
      for (const YAML::Node& child : node) {
        if (absl::Status s = CheckTree(child, depth + 1, budget); !s.ok()) return s;
      }
      return absl::OkStatus();
    case YAML::NodeType::Map:
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (absl::Status s = CheckTree(it->first, depth + 1, budget); !s.ok()) return s;
        if (absl::Status s = CheckTree(it->second, depth + 1, budget); !s.ok()) return s;
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<YAML::Node> LoadYaml(std::string_view text) {
  if (absl::Status s = CheckText(text); !s.ok()) return s;
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (!root.IsDefined() || root.IsNull()) {
      return YamlError(YAML::Mark(), "", "the spec is empty");
    }
    if (!root.IsMap()) return YamlError(root.Mark(), "", "the spec must be a YAML map");
    TreeBudget budget;
    if (absl::Status s = CheckTree(root, 0, budget); !s.ok()) return s;
    return root;
  } catch (const YAML::Exception& e) {
    return YamlError(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
  }
}

// Rejects repeated keys in one map (yaml-cpp keeps both silently).
absl::Status CheckDuplicate(const std::string& key, const YAML::Mark& mark, const std::string& path,
                            std::map<std::string, YAML::Mark>* seen) {
  auto [it, inserted] = seen->emplace(key, mark);
  if (inserted) return absl::OkStatus();
  return YamlError(mark, path,
                   absl::StrCat("duplicate key (first at line ", it->second.line + 1, ", column ",
                                it->second.column + 1, ")"));
}

// A TrialSpec key inside an experiment (top level into base, or a variant's overrides).
absl::Status ParseTrialKey(const YAML::Node& key, const YAML::Node& value, const std::string& path,
                           const std::vector<std::string>& allowed, v1::TrialSpec* spec,
                           SourceMap* source_map) {
  const std::string& name = key.Scalar();
  if (PerTrialField(name)) {
    return YamlError(key.Mark(), path,
                     name == "seed" ? "not allowed in an experiment: seeds are set with `seeds`"
                                    : "not allowed in an experiment: the worker sets it per trial");
  }
  const FieldDescriptor* field = v1::TrialSpec::descriptor()->FindFieldByName(name);
  if (field == nullptr) return YamlError(key.Mark(), path, UnknownFieldDetail(name, allowed));
  return YamlToField(*field, value, key.Mark(), path, spec, source_map);
}

absl::Status ParseVariant(const YAML::Node& node, const std::string& path, v1::Variant* variant,
                          SourceMap* source_map) {
  if (!node.IsMap()) {
    return YamlError(node.Mark(), path, "expected a map with a name and TrialSpec overrides");
  }
  std::vector<std::string> allowed = TrialKeys();
  allowed.insert(allowed.begin(), "name");
  std::map<std::string, YAML::Mark> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return YamlError(it->first.Mark(), path, "keys must be plain names");
    const std::string& key = it->first.Scalar();
    const std::string key_path = absl::StrCat(path, ".", key);
    absl::Status status = CheckDuplicate(key, it->first.Mark(), key_path, &seen);
    if (!status.ok()) return status;
    if (key == "name") {
      status = YamlToField(*v1::Variant::descriptor()->FindFieldByName("name"), it->second,
                           it->first.Mark(), key_path, variant, source_map);
    } else {
      status = ParseTrialKey(it->first, it->second, key_path, allowed, variant->mutable_overrides(),
                             source_map);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// `sweep: {field.path: [v1, v2]}` becomes repeated SweepAxis; values stay YAML text and are
// parsed against the field's type when trials resolve (and at validation).
absl::Status ParseSweep(const YAML::Node& node, const YAML::Mark& key_mark,
                        v1::ExperimentSpec* spec, SourceMap* source_map) {
  source_map->Record("sweep", key_mark);
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return YamlError(key_mark, "sweep", "expected a map of field path -> list of values");
  }
  std::map<std::string, YAML::Mark> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      return YamlError(it->first.Mark(), "sweep", "keys must be field paths");
    }
    const std::string& axis_path = it->first.Scalar();
    const std::string path = absl::StrCat("sweep.", axis_path);
    absl::Status status = CheckDuplicate(axis_path, it->first.Mark(), path, &seen);
    if (!status.ok()) return status;
    source_map->Record(path, it->first.Mark());
    if (!it->second.IsSequence()) {
      return YamlError(it->first.Mark(), path, "expected a list of values");
    }
    v1::SweepAxis* axis = spec->add_sweep();
    axis->set_path(axis_path);
    for (size_t j = 0; j < it->second.size(); ++j) {
      const YAML::Node value = it->second[j];
      const std::string value_path = absl::StrCat(path, "[", j, "]");
      source_map->Record(value_path, value.Mark());
      if (value.IsScalar()) {
        axis->add_values(value.Scalar());
      } else if (value.IsNull()) {
        return YamlError(it->first.Mark(), value_path, "missing value");
      } else {
        // Lists and maps (e.g. hybrid.layer_types) are kept as flow YAML.
        YAML::Emitter out;
        out << YAML::Flow << value;
        axis->add_values(out.c_str());
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseExperiment(const YAML::Node& root, v1::ExperimentSpec* spec,
                             SourceMap* source_map) {
  source_map->Record("", root.Mark());
  std::vector<std::string> allowed = TrialKeys();
  const auto& experiment = *v1::ExperimentSpec::descriptor();
  for (int i = 0; i < experiment.field_count(); ++i) {
    if (experiment.field(i)->name() != "base") allowed.push_back(experiment.field(i)->name());
  }
  std::map<std::string, YAML::Mark> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Mark key_mark = it->first.Mark();
    if (!it->first.IsScalar()) return YamlError(key_mark, "", "keys must be plain names");
    const std::string& key = it->first.Scalar();
    absl::Status status = CheckDuplicate(key, key_mark, key, &seen);
    if (!status.ok()) return status;
    if (key == "sweep") {
      status = ParseSweep(it->second, key_mark, spec, source_map);
    } else if (key == "variants") {
      source_map->Record(key, key_mark);
      if (!it->second.IsSequence()) {
        return YamlError(key_mark, key, "expected a list of variants");
      }
      for (size_t v = 0; v < it->second.size() && status.ok(); ++v) {
        const std::string path = absl::StrCat("variants[", v, "]");
        source_map->Record(path, it->second[v].Mark());
        status = ParseVariant(it->second[v], path, spec->add_variants(), source_map);
      }
    } else if (const FieldDescriptor* field = experiment.FindFieldByName(key);
               field != nullptr && key != "base") {
      status = YamlToField(*field, it->second, key_mark, key, spec, source_map);
    } else {
      status = ParseTrialKey(it->first, it->second, key, allowed, spec->mutable_base(), source_map);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Adds the line and column to a validation error ("path: detail"), which names a field of the
// parsed proto. Errors of a resolved variant come as "variants[i].field": the field was set either
// by that variant's overrides or by the base, whichever the YAML shows closest.
// `key` gets the located error without the variant named, so the same base error reached through
// several variants is listed once.
absl::Status LocateOne(const std::string& message, const SourceMap& source_map,
                       const v1::ExperimentSpec* experiment, std::string* key) {
  *key = message;
  std::string path, detail;
  if (absl::StartsWith(message, "... and ")) return absl::InvalidArgumentError(message);
  if (!SplitFieldError(message, &path, &detail)) {
    YAML::Mark root;
    source_map.Find("", &root);
    return YamlError(root, "", message);
  }
  static const std::regex kVariantPath(R"(^variants\[(\d+)\]\.(.+)$)");
  std::smatch match;
  if (experiment != nullptr && std::regex_match(path, match, kVariantPath)) {
    const int index = std::stoi(match[1].str());
    const std::string field = match[2].str();
    const std::string variant_prefix = absl::StrCat("variants[", index, "]");
    for (std::string candidate = field;; candidate = ParentPath(candidate)) {
      const std::string in_variant =
          candidate.empty() ? variant_prefix : absl::StrCat(variant_prefix, ".", candidate);
      YAML::Mark mark;
      if (source_map.Has(in_variant) && source_map.Find(in_variant, &mark)) {
        return YamlError(mark, path, detail);
      }
      if (!candidate.empty() && source_map.Has(candidate) && source_map.Find(candidate, &mark)) {
        // Set in the base. Name the variant when its overrides touch the same section, since
        // the combination may be what is wrong.
        std::string context;
        const std::string section = field.substr(0, field.find_first_of(".["));
        const FieldDescriptor* section_field =
            v1::TrialSpec::descriptor()->FindFieldByName(section);
        const v1::TrialSpec& overrides = experiment->variants(index).overrides();
        if (section_field != nullptr && index < experiment->variants_size() &&
            overrides.GetReflection()->HasField(overrides, section_field)) {
          context = absl::StrCat(" (variant \"", experiment->variants(index).name(), "\")");
        }
        *key = std::string(YamlError(mark, field, detail).message());
        return YamlError(mark, field, detail + context);
      }
      if (candidate.empty()) break;
    }
  }
  YAML::Mark mark = YAML::Mark::null_mark();
  source_map.Find(path, &mark);
  return YamlError(mark, path, detail);
}

// Locates every line of a validation error (one error per line), in the order found.
absl::Status Locate(const absl::Status& status, const SourceMap& source_map,
                    const v1::ExperimentSpec* experiment) {
  std::vector<std::string> lines;
  std::set<std::string> seen;
  for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
    std::string key;
    absl::Status located = LocateOne(std::string(line), source_map, experiment, &key);
    if (seen.insert(key).second) lines.emplace_back(located.message());
  }
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

}  // namespace

absl::StatusOr<v1::ExperimentSpec> ParseExperimentSpecYaml(std::string_view yaml) {
  absl::StatusOr<YAML::Node> root = LoadYaml(yaml);
  if (!root.ok()) return root.status();
  v1::ExperimentSpec spec;
  SourceMap source_map;
  try {
    absl::Status parsed = ParseExperiment(*root, &spec, &source_map);
    if (!parsed.ok()) return parsed;
  } catch (const YAML::Exception& e) {
    return YamlError(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
  }
  ApplyExperimentDefaults(&spec);
  absl::Status valid = ValidateExperimentSpec(spec);
  if (!valid.ok()) return Locate(valid, source_map, &spec);
  return spec;
}

absl::StatusOr<v1::TrialSpec> ParseTrialSpecYaml(std::string_view yaml) {
  absl::StatusOr<YAML::Node> root = LoadYaml(yaml);
  if (!root.ok()) return root.status();
  v1::TrialSpec spec;
  SourceMap source_map;
  source_map.Record("", root->Mark());
  try {
    absl::Status parsed = YamlToMessage(*root, &spec, "", &source_map);
    if (!parsed.ok()) return parsed;
  } catch (const YAML::Exception& e) {
    return YamlError(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
  }
  ApplyTrialDefaults(&spec);
  absl::Status valid = ValidateTrialSpec(spec);
  if (!valid.ok()) return Locate(valid, source_map, nullptr);
  return spec;
}

std::string TrialSpecToYaml(const v1::TrialSpec& spec) { return MessageToYamlString(spec); }

}  // namespace gauntlet
