#include "common/spec_validation.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/proto_merge.h"
#include "common/trial_expansion.h"
#include "common/yaml_proto.h"
#include "common/model_config.h"

namespace gauntlet {
namespace {

// More trials than this is almost certainly a sweep written by mistake (and would flood the store).
constexpr int64_t kMaxTrials = 10000;

absl::Status FieldError(const std::string& path, const std::string& detail) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", detail));
}

std::string Num(double value) { return ShortestDouble(value); }

// Collects every error, one "path: detail" line each, up to kMaxSpecErrors (then counts the
// rest), so one submit shows everything that is wrong with a spec.
class Checker {
 public:
  explicit Checker(std::string prefix = "") : prefix_(std::move(prefix)) {}

  void Fail(const std::string& field, const std::string& detail) {
    Add(absl::StrCat(prefix_, field, ": ", detail));
  }
  // Every line of `status` (errors of a nested check), prefixed where it names a field without
  // the prefix.
  void Merge(const absl::Status& status) {
    if (status.ok()) return;
    for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
      std::string path, detail;
      if (SplitFieldError(std::string(line), &path, &detail) && !prefix_.empty() &&
          !absl::StartsWith(path, prefix_)) {
        Add(absl::StrCat(prefix_, line));
      } else {
        Add(std::string(line));
      }
    }
  }
  // Lines already recorded are not repeated (a bad base field fails every grid point alike).
  void Add(std::string line) {
    // One error per line: a newline inside a quoted value must not split it.
    line = absl::StrReplaceAll(line, {{"\n", "\\n"}});
    if (!seen_.insert(line).second) return;
    if (static_cast<int>(errors_.size()) < kMaxSpecErrors) {
      errors_.push_back(std::move(line));
    } else {
      overflowed_ = true;
    }
  }
  size_t count() const { return errors_.size() + (overflowed_ ? 1 : 0); }
  // More errors than are listed were found: checking further would only cost time.
  bool overflowed() const { return overflowed_; }
  absl::Status status() const {
    if (errors_.empty()) return absl::OkStatus();
    std::string message = absl::StrJoin(errors_, "\n");
    if (overflowed_) {
      absl::StrAppend(&message, "\n... and more errors (the first ", kMaxSpecErrors,
                      " are listed)");
    }
    return absl::InvalidArgumentError(message);
  }

  template <typename T>
  void AtLeast(const std::string& field, T value, T min) {
    if (!(value >= min)) Fail(field, absl::StrCat("must be >= ", min, " (got ", value, ")"));
  }
  // Upper bounds: far above any real trial, low enough that nothing downstream overflows or
  // tries to allocate the impossible.
  void AtMost(const std::string& field, double value, double max) {
    auto text = [](double v) {
      return v == std::floor(v) && std::fabs(v) < 1e15 ? absl::StrCat(static_cast<int64_t>(v))
                                                       : Num(v);
    };
    if (!(value <= max)) {
      Fail(field, absl::StrCat("must be <= ", text(max), " (got ", text(value), ")"));
    }
  }
  void Positive(const std::string& field, double value) {
    if (!(value > 0)) Fail(field, absl::StrCat("must be > 0 (got ", Num(value), ")"));
  }
  void NonNegative(const std::string& field, double value) {
    if (!(value >= 0)) Fail(field, absl::StrCat("must be >= 0 (got ", Num(value), ")"));
  }
  // value in [lo, hi) or [lo, hi] as chosen.
  void InRange(const std::string& field, double value, double lo, double hi, bool hi_inclusive) {
    const bool ok = value >= lo && (hi_inclusive ? value <= hi : value < hi);
    if (!ok) {
      Fail(field, absl::StrCat("must be in [", Num(lo), ", ", Num(hi), hi_inclusive ? "]" : ")",
                               " (got ", Num(value), ")"));
    }
  }
  void OneOf(const std::string& field, const std::string& value,
             const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
      Fail(field,
           absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "), " (got \"",
                        Truncated(value, 64), "\")"));
    }
  }
  // Paths end up in filesystem calls and in a YAML file the trainer reads back: refuse control
  // characters outright rather than escaping them everywhere.
  void SanePath(const std::string& field, const std::string& path) {
    for (char c : path) {
      if (std::iscntrl(static_cast<unsigned char>(c))) {
        Fail(field, "must not contain control characters");
        return;
      }
    }
  }


 private:
  std::string prefix_;
  std::vector<std::string> errors_;
  std::set<std::string> seen_;
  bool overflowed_ = false;
};

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  auto head_ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!head_ok(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return head_ok(c) || c == '-' || c == '_' || c == '.'; });
}

constexpr char kNameRule[] = "must match [a-z0-9][a-z0-9._-]* and be at most 63 characters";

bool LooksLikeExperimentId(const std::string& name) {
  if (!absl::StartsWith(name, "exp-") || name.size() == 4) return false;
  return std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The system's own trees are never a corpus or a cache: refused before any worker sees them.
void NotSystem(const std::string& field, const std::string& path, Checker& c) {
  // Kernel interfaces, devices and configuration; home directories may well hold data roots.
  for (const char* system : {"/proc", "/sys", "/dev", "/etc", "/"}) {
    if (path == system || (std::string(system) != "/" &&
                           absl::StartsWith(path, absl::StrCat(system, "/")))) {
      c.Fail(field, absl::StrCat("must be under the workers' data or cache roots, not ", system,
                                 " (got \"", Truncated(path, 80), "\")"));
    }
  }
}

void CheckCorpusPath(const std::string& field, const std::string& path, Checker& c) {
  c.SanePath(field, path);
  // Relative paths resolve against each worker's --data_root, and a worker refuses a resolved
  // path outside its data roots; ".." would leave them, and the system's own trees are never a
  // corpus.
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") c.Fail(field, "must not contain \"..\"");
  }
  NotSystem(field, path, c);
}

void CheckSuffixes(const std::string& field,
                   const google::protobuf::RepeatedPtrField<std::string>& suffixes, Checker& c) {
  for (int i = 0; i < suffixes.size(); ++i) {
    const std::string item = absl::StrCat(field, "[", i, "]");
    if (suffixes.Get(i).empty()) c.Fail(item, "must not be empty");
    if (absl::StrContains(suffixes.Get(i), "/")) c.Fail(item, "must not contain '/'");
  }
}

void CheckData(const v1::DataSpec& data, Checker& c) {
  if (data.path().empty() && data.sources().empty()) c.Fail("data.path", "required (or data.sources)");
  if (!data.path().empty() && !data.sources().empty()) {
    c.Fail("data.sources", "give data.path or data.sources, not both");
  }
  CheckCorpusPath("data.path", data.path(), c);
  c.OneOf("data.tokenizer", data.tokenizer(), {"char", "byte", "bpe", "unigram"});
  const bool subword = data.tokenizer() == "bpe" || data.tokenizer() == "unigram";
  if (data.has_vocab_size()) {
    if (!subword) c.Fail("data.vocab_size", "applies to tokenizer bpe or unigram only");
    // 256 byte pieces + <unk> + </s> + at least one learned piece; ids fit in 4 bytes anyway.
    if (data.vocab_size() < 260 || data.vocab_size() > 1000000) {
      c.Fail("data.vocab_size",
             absl::StrCat("must be in [260, 1000000] (got ", data.vocab_size(), ")"));
    }
  }
  if (!data.tokenizer_model().empty() && !subword) {
    c.Fail("data.tokenizer_model", "applies to tokenizer bpe or unigram only");
  }
  CheckCorpusPath("data.tokenizer_model", data.tokenizer_model(), c);
  if (data.has_tokenizer_sample_bytes() && data.tokenizer_sample_bytes() < 1) {
    c.Fail("data.tokenizer_sample_bytes", "must be >= 1");
  }
  if (!data.split().empty()) c.OneOf("data.split", data.split(), {"position", "document"});
  if (!(data.val_fraction() > 0 && data.val_fraction() < 1)) {
    c.Fail("data.val_fraction",
           absl::StrCat("must be in (0, 1) (got ", Num(data.val_fraction()), ")"));
  }
  c.SanePath("data.cache_dir", data.cache_dir());
  // A relative cache dir resolves inside the trainer's working directory (the worker's work
  // dir); a worker refuses an absolute one outside its --work_dir and --cache_roots.
  for (absl::string_view part : absl::StrSplit(data.cache_dir(), '/')) {
    if (part == "..") c.Fail("data.cache_dir", "must not contain \"..\"");
  }
  NotSystem("data.cache_dir", data.cache_dir(), c);
  CheckSuffixes("data.include_suffixes", data.include_suffixes(), c);
  c.AtLeast<int64_t>("data.max_bytes", data.max_bytes(), 0);
  std::set<std::string> names;
  for (int i = 0; i < data.sources_size(); ++i) {
    const v1::DataSource& source = data.sources(i);
    const std::string field = absl::StrCat("data.sources[", i, "]");
    if (source.path().empty()) c.Fail(field + ".path", "required");
    CheckCorpusPath(field + ".path", source.path(), c);
    if (source.has_weight() && !(source.weight() > 0 && std::isfinite(source.weight()))) {
      c.Fail(field + ".weight", absl::StrCat("must be > 0 (got ", Num(source.weight()), ")"));
    }
    CheckSuffixes(field + ".include_suffixes", source.include_suffixes(), c);
    c.AtLeast<int64_t>(field + ".max_bytes", source.max_bytes(), 0);
    const std::string name = source.name().empty()
                                 ? source.path().substr(source.path().find_last_of('/') + 1)
                                 : source.name();
    if (!names.insert(name).second) {
      c.Fail(field + ".name", absl::StrCat("\"", name, "\" names two sources"));
    }
  }
}

void CheckModel(const v1::ModelSpec& model, Checker& c) {
  const size_t before = c.count();
  if (model.arch().empty()) {
    c.Fail("model.arch", absl::StrCat("required (one of ", absl::StrJoin(KnownArchs(), ", "), ")"));
    return;
  }
  c.OneOf("model.arch", model.arch(), KnownArchs());
  c.OneOf("model.size", model.size(), KnownSizes());
  if (model.has_d_model()) c.AtMost("model.d_model", model.d_model(), 65536);
  if (model.has_n_layers()) c.AtMost("model.n_layers", model.n_layers(), 1024);
  if (model.has_n_heads()) c.AtMost("model.n_heads", model.n_heads(), 1024);
  if (model.has_seq_len()) c.AtMost("model.seq_len", model.seq_len(), 1 << 20);
  if (model.has_d_ff()) c.AtMost("model.d_ff", model.d_ff(), 1 << 20);
  if (c.count() != before) return;
  // Named size + overrides; dimension rules (heads divide d_model, even head width, ...) live
  // with the model code. The real vocabulary is unknown until the corpus is tokenized.
  c.Merge(ResolveModelConfig(model, kValidationVocabSize).status());
}

void CheckTrain(const v1::TrainSpec& train, Checker& c) {
  c.AtLeast<int32_t>("train.batch_size", train.batch_size(), 1);
  c.AtMost("train.batch_size", train.batch_size(), 65536);
  c.AtLeast<int32_t>("train.grad_accum_steps", train.grad_accum_steps(), 1);
  c.AtMost("train.grad_accum_steps", train.grad_accum_steps(), 65536);
  if (train.has_oom_min_batch_size()) {
    c.AtLeast<int32_t>("train.oom_min_batch_size", train.oom_min_batch_size(), 1);
    c.AtMost("train.oom_min_batch_size", train.oom_min_batch_size(), train.batch_size());
  }
  const v1::OptimizerSpec& opt = train.optimizer();
  c.OneOf("train.optimizer.name", opt.name(), {"adamw"});
  c.Positive("train.optimizer.lr", opt.lr());
  c.AtMost("train.optimizer.lr", opt.lr(), 10);
  c.AtMost("train.optimizer.eps", opt.eps(), 1);
  c.AtMost("train.optimizer.weight_decay", opt.weight_decay(), 10);
  c.AtMost("train.schedule.warmup_steps", train.schedule().warmup_steps(), 1e12);
  c.AtMost("train.grad_clip", train.grad_clip(), 1e6);
  c.AtMost("train.bucket_mib", train.bucket_mib(), 65536);
  c.InRange("train.optimizer.beta1", opt.beta1(), 0, 1, false);
  c.InRange("train.optimizer.beta2", opt.beta2(), 0, 1, false);
  c.Positive("train.optimizer.eps", opt.eps());
  c.NonNegative("train.optimizer.weight_decay", opt.weight_decay());
  const v1::ScheduleSpec& schedule = train.schedule();
  c.OneOf("train.schedule.kind", schedule.kind(), {"constant", "cosine"});
  c.AtLeast<int64_t>("train.schedule.warmup_steps", schedule.warmup_steps(), 0);
  c.InRange("train.schedule.min_lr_ratio", schedule.min_lr_ratio(), 0, 1, true);
  c.NonNegative("train.grad_clip", train.grad_clip());
  c.OneOf("train.precision", train.precision(), {"auto", "fp32", "bf16"});
  c.AtLeast<int32_t>("train.log_every", train.log_every(), 1);
  c.Positive("train.bucket_mib", train.bucket_mib());
}

void CheckBudget(const v1::BudgetSpec& budget, Checker& c) {
  switch (budget.limit_case()) {
    case v1::BudgetSpec::kSteps:
      c.AtLeast<int64_t>("budget.steps", budget.steps(), 1);
      c.AtMost("budget.steps", budget.steps(), 1e12);
      break;
    case v1::BudgetSpec::kTokens:
      c.AtLeast<int64_t>("budget.tokens", budget.tokens(), 1);
      c.AtMost("budget.tokens", budget.tokens(), 1e15);
      break;
    case v1::BudgetSpec::kSeconds:
      c.Positive("budget.seconds", budget.seconds());
      c.AtMost("budget.seconds", budget.seconds(), 30 * 86400);  // 30 days
      break;
    case v1::BudgetSpec::LIMIT_NOT_SET:
      c.Fail("budget", "exactly one of steps, tokens, seconds is required");
      break;
  }
}

void CheckEval(const v1::EvalSpec& eval, Checker& c) {
  c.OneOf("eval.protocol", eval.protocol(), {"fair", "seed"});
  c.AtLeast<int64_t>("eval.every_steps", eval.every_steps(), 0);
  c.NonNegative("eval.every_seconds", eval.every_seconds());
  c.AtLeast<int64_t>("eval.max_tokens", eval.max_tokens(), 0);
  c.AtLeast<int32_t>("eval.batch_size", eval.batch_size(), 1);
  c.AtMost("eval.batch_size", eval.batch_size(), 65536);
  c.AtMost("eval.every_seconds", eval.every_seconds(), 30 * 86400);
  c.AtMost("eval.seed_batches", eval.seed_batches(), 1e6);
  c.AtMost("eval.seed_final_batches", eval.seed_final_batches(), 1e6);
  c.AtLeast<int32_t>("eval.seed_batches", eval.seed_batches(), 1);
  c.AtLeast<int32_t>("eval.seed_final_batches", eval.seed_final_batches(), 1);
}

void CheckResources(const v1::ResourceSpec& resources, Checker& c) {
  c.AtLeast<int32_t>("resources.gpus_per_trial", resources.gpus_per_trial(), 1);
  c.AtLeast<int32_t>("resources.max_nodes", resources.max_nodes(), 1);
  c.AtMost("resources.gpus_per_trial", resources.gpus_per_trial(), 4096);
  if (resources.max_nodes() > resources.gpus_per_trial()) {
    c.Fail("resources.max_nodes",
           absl::StrCat("must be <= resources.gpus_per_trial (", resources.gpus_per_trial(),
                        "): every node runs at least one rank (got ", resources.max_nodes(), ")"));
  }
  // "" leaves the choice to the scheduler.
  if (!resources.device().empty()) c.OneOf("resources.device", resources.device(), {"gpu", "cpu"});
}

void CheckCheckpoint(const v1::CheckpointSpec& checkpoint, Checker& c) {
  c.AtLeast<int64_t>("checkpoint.every_steps", checkpoint.every_steps(), 0);
  c.AtLeast<int32_t>("checkpoint.keep_last", checkpoint.keep_last(), 1);
  c.AtMost("checkpoint.keep_last", checkpoint.keep_last(), 1000);
}

// Bounds keep one inference trial's allocations and time finite: the largest context is the
// model's window (RoPE table) and a prefill of it; the largest batch x context is a KV cache.
constexpr int kMaxInferenceContext = 1 << 17;
constexpr int kMaxInferenceBatch = 4096;

void CheckInference(const v1::InferenceSpec& inference, Checker& c) {
  if (inference.prefill_contexts().empty() && inference.decode_batches().empty()) {
    c.Fail("inference", "needs prefill_contexts or decode_batches (nothing to measure)");
  }
  std::set<int> seen;
  for (int i = 0; i < inference.prefill_contexts_size(); ++i) {
    const std::string field = absl::StrCat("inference.prefill_contexts[", i, "]");
    c.AtLeast<int32_t>(field, inference.prefill_contexts(i), 1);
    c.AtMost(field, inference.prefill_contexts(i), kMaxInferenceContext);
    if (!seen.insert(inference.prefill_contexts(i)).second) {
      c.Fail(field, absl::StrCat("duplicate context ", inference.prefill_contexts(i)));
    }
  }
  seen.clear();
  for (int i = 0; i < inference.decode_batches_size(); ++i) {
    const std::string field = absl::StrCat("inference.decode_batches[", i, "]");
    c.AtLeast<int32_t>(field, inference.decode_batches(i), 1);
    c.AtMost(field, inference.decode_batches(i), kMaxInferenceBatch);
    if (!seen.insert(inference.decode_batches(i)).second) {
      c.Fail(field, absl::StrCat("duplicate batch size ", inference.decode_batches(i)));
    }
  }
  c.AtLeast<int32_t>("inference.decode_context", inference.decode_context(), 1);
  c.AtLeast<int32_t>("inference.decode_steps", inference.decode_steps(), 1);
  if (static_cast<int64_t>(inference.decode_context()) + inference.decode_steps() >
      kMaxInferenceContext) {
    c.Fail("inference.decode_steps",
           absl::StrCat("decode_context + decode_steps must be <= ", kMaxInferenceContext,
                        " (got ", inference.decode_context(), " + ", inference.decode_steps(),
                        ")"));
  }
  c.AtLeast<int32_t>("inference.warmup", inference.warmup(), 0);
  c.AtMost("inference.warmup", inference.warmup(), 100);
  c.AtLeast<int32_t>("inference.repeats", inference.repeats(), 1);
  c.AtMost("inference.repeats", inference.repeats(), 1000);
  c.SanePath("inference.checkpoint_path", inference.checkpoint_path());
  for (absl::string_view part : absl::StrSplit(inference.checkpoint_path(), '/')) {
    if (part == "..") c.Fail("inference.checkpoint_path", "must not contain \"..\"");
  }
}

// The post-training stages; the model is resolved again (cheap) to count its attention layers.
void CheckStages(const v1::TrialSpec& spec, Checker& c) {
  if (!spec.stages().has_attn_drop()) return;
  const v1::AttnDropStage& stage = spec.stages().attn_drop();
  if (!stage.has_drop()) {
    c.Fail("stages.attn_drop.drop", "required: how many attention sub-layers to remove");
  } else {
    c.AtLeast<int32_t>("stages.attn_drop.drop", stage.drop(), 1);
  }
  c.AtLeast<int64_t>("stages.attn_drop.finetune_steps", stage.finetune_steps(), 0);
  c.AtMost("stages.attn_drop.finetune_steps", stage.finetune_steps(), 1e9);
  if (stage.has_finetune_lr()) {
    c.Positive("stages.attn_drop.finetune_lr", stage.finetune_lr());
    c.AtMost("stages.attn_drop.finetune_lr", stage.finetune_lr(), 10);
  }
  if (stage.has_calibration_windows()) {
    c.AtLeast<int32_t>("stages.attn_drop.calibration_windows", stage.calibration_windows(), 1);
    c.AtMost("stages.attn_drop.calibration_windows", stage.calibration_windows(), 4096);
  }
  absl::StatusOr<ModelConfig> model = ResolveModelConfig(spec.model(), kValidationVocabSize);
  if (!model.ok()) return;  // CheckModel reported it
  if (model->mixers.empty()) {
    c.Fail("stages.attn_drop",
           absl::StrCat("needs a layer-stack arch (sqa, mixed, looped, matformer, attn_drop), "
                        "got model.arch ",
                        model->arch));
    return;
  }
  const int64_t attention = std::count_if(model->mixers.begin(), model->mixers.end(),
                                          [](const std::string& m) { return IsAttentionMixer(m); });
  if (stage.has_drop() && stage.drop() > attention) {
    c.Fail("stages.attn_drop.drop",
           absl::StrCat("must be <= the model's attention layers (", attention, "), got ",
                        stage.drop()));
  }
}

// Fields the coordinator sets per trial; an experiment must not set them.
absl::Status CheckNoPerTrialFields(const v1::TrialSpec& spec, const std::string& prefix) {
  if (spec.seed() != 0) {
    return FieldError(prefix + "seed", "is set per trial from the experiment's seeds; use seeds");
  }
  if (!spec.run_dir().empty()) {
    return FieldError(prefix + "run_dir", "is set by the worker for each trial");
  }
  return absl::OkStatus();
}

// True when `path` is `axis` or a field inside it.
bool UnderAxis(const std::string& path, const std::string& axis) {
  return path == axis || absl::StartsWith(path, axis + ".") || absl::StartsWith(path, axis + "[");
}

}  // namespace

bool SplitFieldError(const std::string& message, std::string* path, std::string* detail) {
  const size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    const char ch = message[i];
    const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' ||
                    ch == '[' || ch == ']' || ch == '-';
    if (!ok) return false;
  }
  *path = message.substr(0, colon);
  *detail = message.substr(colon + 2);
  return true;
}

absl::Status ValidateTrialSpec(const v1::TrialSpec& spec, const std::string& path_prefix) {
  Checker c(path_prefix);
  CheckData(spec.data(), c);
  CheckModel(spec.model(), c);
  CheckTrain(spec.train(), c);
  c.OneOf("kind", spec.kind().empty() ? "train" : spec.kind(), {"train", "inference"});
  // An inference trial trains nothing: its budget and evaluation do not apply (a base spec
  // shared with training variants may still carry them).
  if (spec.kind() == "inference") {
    CheckInference(spec.inference(), c);
    if (spec.resources().gpus_per_trial() != 1) {
      c.Fail("resources.gpus_per_trial",
             absl::StrCat("must be 1 for kind: inference (one device; got ",
                          spec.resources().gpus_per_trial(), ")"));
    }
  } else {
    CheckBudget(spec.budget(), c);
  }
  CheckEval(spec.eval(), c);
  CheckResources(spec.resources(), c);
  CheckCheckpoint(spec.checkpoint(), c);
  CheckStages(spec, c);
  c.AtLeast<int64_t>("seed", spec.seed(), 0);
  c.SanePath("run_dir", spec.run_dir());
  return c.status();
}

absl::Status ValidateExperimentSpec(const v1::ExperimentSpec& spec) {
  Checker c;
  if (!ValidName(spec.name())) {
    c.Fail("name", spec.name().empty() ? std::string("required")
                                       : absl::StrCat(kNameRule, " (got \"",
                                                      Truncated(spec.name(), 64), "\")"));
  } else if (LooksLikeExperimentId(spec.name())) {
    // Commands take an id or a name: a name shaped like an id could hit another experiment.
    c.Fail("name", absl::StrCat("must not look like an experiment id (exp-<n>), got \"",
                                spec.name(), "\""));
  }
  if (spec.max_restarts() > 100) {
    c.Fail("max_restarts", absl::StrCat("must be <= 100 (got ", spec.max_restarts(), ")"));
  }
  if (spec.max_restarts() < 0) {
    c.Fail("max_restarts", absl::StrCat("must be >= 0 (got ", spec.max_restarts(), ")"));
  }
  c.Merge(CheckNoPerTrialFields(spec.base(), ""));
  if (spec.variants_size() == 0) c.Fail("variants", "at least one variant is required");
  std::map<std::string, int> variant_index;
  for (int i = 0; i < spec.variants_size(); ++i) {
    const v1::Variant& variant = spec.variants(i);
    const std::string prefix = absl::StrCat("variants[", i, "].");
    if (!ValidName(variant.name())) {
      c.Fail(prefix + "name", variant.name().empty()
                                  ? std::string("required")
                                  : absl::StrCat(kNameRule, " (got \"",
                                                 Truncated(variant.name(), 64), "\")"));
    } else if (auto [it, inserted] = variant_index.emplace(variant.name(), i); !inserted) {
      c.Fail(prefix + "name", absl::StrCat("duplicate variant name \"", variant.name(),
                                           "\" (also variants[", it->second, "])"));
    }
    c.Merge(CheckNoPerTrialFields(variant.overrides(), prefix));
    if (spec.base().model().arch().empty() && variant.overrides().model().arch().empty()) {
      c.Fail(prefix + "model.arch",
             absl::StrCat("required: set model.arch in the base or in every variant (",
                          absl::StrJoin(KnownArchs(), ", "), ")"));
    }
  }
  // An inference variant that loads a training variant's checkpoints: that variant must exist
  // and train (its trial with the same seed and grid point is the one loaded).
  for (int i = 0; i < spec.variants_size(); ++i) {
    v1::TrialSpec merged = spec.base();
    MergeOverrides(spec.variants(i).overrides(), &merged);
    const std::string& from = merged.inference().checkpoint_variant();
    if (from.empty()) continue;
    const std::string field = absl::StrCat("variants[", i, "].inference.checkpoint_variant");
    auto it = variant_index.find(from);
    if (!merged.inference().checkpoint_path().empty()) {
      // The coordinator sets checkpoint_path from checkpoint_variant in each trial.
      c.Fail(absl::StrCat("variants[", i, "].inference.checkpoint_path"),
             "give checkpoint_variant or checkpoint_path, not both");
    } else if (merged.kind() != "inference") {
      c.Fail(field, "applies to kind: inference only");
    } else if (it == variant_index.end()) {
      c.Fail(field, absl::StrCat("must name a variant (got \"", Truncated(from, 64), "\")"));
    } else {
      v1::TrialSpec source = spec.base();
      MergeOverrides(spec.variants(it->second).overrides(), &source);
      if (source.kind() == "inference") {
        c.Fail(field, absl::StrCat("must name a training variant (\"", from,
                                   "\" is an inference variant)"));
      }
    }
  }
  if (!spec.variants().empty() && variant_index.count(spec.baseline()) == 0) {
    c.Fail("baseline", absl::StrCat("must name a variant (got \"",
                                    Truncated(spec.baseline(), 64), "\")"));
  }
  if (spec.seeds_size() == 0) c.Fail("seeds", "at least one seed is required");
  std::set<int64_t> seeds;
  for (int i = 0; i < spec.seeds_size(); ++i) {
    const std::string field = absl::StrCat("seeds[", i, "]");
    if (spec.seeds(i) < 0) {
      c.Fail(field, absl::StrCat("must be >= 0 (got ", spec.seeds(i), ")"));
    } else if (!seeds.insert(spec.seeds(i)).second) {
      c.Fail(field, absl::StrCat("duplicate seed ", spec.seeds(i)));
    }
  }
  // The grid can be expanded only when every axis is usable.
  bool expandable = spec.variants_size() > 0 && spec.seeds_size() > 0;
  int64_t grid_size = 1;
  std::set<std::string> axes;
  for (const v1::SweepAxis& axis : spec.sweep()) {
    const std::string field = absl::StrCat("sweep.", axis.path());
    const size_t before = c.count();
    if (!axes.insert(axis.path()).second) {
      c.Fail(field, "duplicate sweep path");
      expandable = false;
      continue;
    }
    for (const std::string& other : axes) {
      if (other != axis.path() &&
          (UnderAxis(axis.path(), other) || UnderAxis(other, axis.path()))) {
        c.Fail(field, absl::StrCat("overlaps sweep path ", other));
      }
    }
    absl::StatusOr<const google::protobuf::FieldDescriptor*> target =
        FindFieldByPath(*v1::TrialSpec::descriptor(), axis.path(), field);
    c.Merge(target.status());
    if (axis.path() == "seed" || axis.path() == "run_dir") {
      c.Fail(field, "cannot be swept (use seeds; run_dir is set per trial)");
    }
    if (axis.values_size() == 0) c.Fail(field, "needs at least one value");
    std::set<std::string> values;
    for (int j = 0; j < axis.values_size(); ++j) {
      if (!values.insert(axis.values(j)).second) {
        c.Fail(absl::StrCat(field, "[", j, "]"),
               absl::StrCat("duplicate value \"", Truncated(axis.values(j), 64), "\""));
      }
    }
    if (c.count() != before) expandable = false;
    grid_size *= std::max(1, axis.values_size());
    if (grid_size * spec.variants_size() * std::max(1, spec.seeds_size()) > kMaxTrials) break;
  }
  const int64_t trials = grid_size * spec.variants_size() * std::max(1, spec.seeds_size());
  if (trials > kMaxTrials) {
    c.Fail(spec.sweep_size() > 0 ? "sweep" : "seeds",
           absl::StrCat("expands to more than ", kMaxTrials, " trials"));
    expandable = false;
  }
  if (!expandable) return c.status();

  // Every variant at every grid point must resolve to a valid trial. Seeds change nothing here.
  for (int i = 0; i < spec.variants_size() && !c.overflowed(); ++i) {
    for (const GridIndex& point : SweepGrid(spec)) {
      if (c.overflowed()) break;
      absl::StatusOr<v1::TrialSpec> trial = ResolveTrialSpec(spec, i, point, spec.seeds(0));
      absl::Status status = trial.ok() ? ValidateTrialSpec(*trial) : trial.status();
      if (status.ok()) continue;
      for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
        std::string path, detail;
        const std::string message(line);
        if (!SplitFieldError(message, &path, &detail) || absl::StartsWith(path, "sweep.")) {
          c.Add(message);
          continue;
        }
        // Blame the grid value when the bad field is one the sweep sets: it was applied last.
        bool blamed = false;
        for (int a = 0; a < spec.sweep_size() && !blamed; ++a) {
          if (UnderAxis(path, spec.sweep(a).path())) {
            c.Fail(absl::StrCat("sweep.", spec.sweep(a).path(), "[", point[a], "]"),
                   absl::StrCat(detail, " (variant \"", spec.variants(i).name(), "\")"));
            blamed = true;
          }
        }
        if (!blamed) c.Fail(absl::StrCat("variants[", i, "].", path), detail);
      }
    }
  }
  return c.status();
}

}  // namespace gauntlet
