#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace gauntlet::cli {
namespace {

using Row = std::vector<std::string>;

// Width on a terminal: UTF-8 continuation bytes take no column (the table uses "±").
size_t DisplayWidth(const std::string& s) {
  size_t width = 0;
  for (unsigned char c : s) width += (c & 0xC0) != 0x80;
  return width;
}

// Shortest decimal that reads back as the same double, so CSV loses nothing.
std::string Num(double v) {
  for (int precision = 6; precision < 17; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return absl::StrFormat("%.17g", v);
}

// Columns padded to their widest cell; numbers are right-aligned, text left-aligned.
std::string AlignedTable(const std::vector<Row>& rows, const std::vector<bool>& right_align) {
  std::vector<size_t> width;
  for (const Row& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], DisplayWidth(row[i]));
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const bool right = i < right_align.size() && right_align[i];
      const std::string pad(width[i] - DisplayWidth(row[i]), ' ');
      absl::StrAppend(&line, i == 0 ? "" : "  ", right ? pad : "", row[i], right ? "" : pad);
    }
    absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  return out;
}

std::string CsvCell(const std::string& cell) {
  if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
  return absl::StrCat("\"", absl::StrReplaceAll(cell, {{"\"", "\"\""}}), "\"");
}

std::string Loss(double v) { return absl::StrFormat("%.4f", v); }

// "90s", "5m", "1h": the column label of a wall-clock point.
std::string WallclockLabel(double seconds) {
  if (seconds >= 3600 && std::fmod(seconds, 3600) == 0) {
    return absl::StrCat(absl::StrFormat("%g", seconds / 3600), "h");
  }
  if (seconds >= 60 && std::fmod(seconds, 60) == 0) {
    return absl::StrCat(absl::StrFormat("%g", seconds / 60), "m");
  }
  // Default points are fractions of a measured time (75.0004 s): three significant digits suffice.
  return absl::StrCat(absl::StrFormat("%.3g", seconds), "s");
}

// The wall-clock points of the response (every variant is read at the same points).
std::vector<double> WallclockPoints(const v1::CompareExperimentResponse& response) {
  std::vector<double> points;
  for (const auto& v : response.variants()) {
    for (const auto& w : v.val_loss_at()) {
      if (std::find(points.begin(), points.end(), w.seconds()) == points.end()) {
        points.push_back(w.seconds());
      }
    }
  }
  std::sort(points.begin(), points.end());
  return points;
}

const v1::WallclockLoss* LossAt(const v1::VariantSummary& v, double seconds) {
  for (const auto& w : v.val_loss_at()) {
    if (w.seconds() == seconds) return &w;
  }
  return nullptr;
}

std::string MeanStd(double mean, double std, int n, const std::string& plus_minus) {
  if (n == 0) return "-";
  if (n == 1) return Loss(mean);
  return absl::StrCat(Loss(mean), plus_minus, Loss(std));
}

const v1::SignificanceTest* TestFor(const v1::VariantSummary& v, const std::string& basis) {
  for (const v1::SignificanceTest& t : v.vs_baseline()) {
    if (t.basis() == basis) return &t;
  }
  return nullptr;
}

std::string PValue(double p) {
  if (std::isnan(p)) return "-";
  return p < 1e-4 ? absl::StrFormat("%.1e", p) : absl::StrFormat("%.4f", p);
}

// "-0.0123 [-0.0201, -0.0045] p=0.0031", then the flag in parentheses when there is one.
std::string TestCell(const v1::SignificanceTest* t) {
  if (t == nullptr || std::isnan(t->diff())) return "-";
  std::string cell = absl::StrFormat("%+.4f", t->diff());
  if (!std::isnan(t->ci_low())) {
    absl::StrAppend(&cell, absl::StrFormat(" [%+.4f, %+.4f]", t->ci_low(), t->ci_high()));
  }
  absl::StrAppend(&cell, " p=", PValue(t->p_value()));
  if (!t->flag().empty()) absl::StrAppend(&cell, " (", t->flag(), ")");
  return cell;
}

// Epochs trained, marked when a trial went past one.
std::string EpochsCell(const v1::VariantSummary& v) {
  if (v.epochs_max() <= 0) return "-";
  const std::string e = absl::StrFormat("%.2f", v.epochs_max());
  return v.trials_past_one_epoch_size() > 0 ? absl::StrCat(e, " (>1!)") : e;
}

// Notes under the table: what the test is, and every trial that went past one epoch.
std::string CompareNotes(const v1::CompareExperimentResponse& response) {
  std::string notes =
      "Δ vs baseline: mean final val loss difference, 95% CI and Welch's t-test p (matched tokens "
      "and matched training time in the JSON/CSV); \"n < 3\" and \"not significant\" (p >= 0.05) "
      "are flagged.\n";
  for (const auto& v : response.variants()) {
    if (v.trials_past_one_epoch_size() > 0) {
      absl::StrAppend(&notes, "Past one epoch (may rank overfitting): ", v.variant(), ": ",
                      absl::StrJoin(v.trials_past_one_epoch(), ", "), "\n");
    }
  }
  return notes;
}

// The contexts and batch sizes of the inference rows, in first-seen order: the table's columns.
void InferenceColumns(const v1::CompareExperimentResponse& response, std::vector<int>* contexts,
                      std::vector<int>* batches) {
  for (const auto& v : response.inference()) {
    for (const auto& p : v.prefill()) {
      if (std::find(contexts->begin(), contexts->end(), p.context()) == contexts->end()) {
        contexts->push_back(p.context());
      }
    }
    for (const auto& d : v.decode()) {
      if (std::find(batches->begin(), batches->end(), d.batch()) == batches->end()) {
        batches->push_back(d.batch());
      }
    }
  }
}

const v1::PrefillLatency* PrefillAt(const v1::InferenceVariantSummary& v, int context) {
  for (const auto& p : v.prefill()) {
    if (p.context() == context) return &p;
  }
  return nullptr;
}

const v1::DecodeThroughput* DecodeAt(const v1::InferenceVariantSummary& v, int batch) {
  for (const auto& d : v.decode()) {
    if (d.batch() == batch) return &d;
  }
  return nullptr;
}

// Step time over the memory-bandwidth bound ("-" when the bound is unknown, e.g. on CPU).
std::string BoundRatio(const v1::DecodeThroughput* d) {
  if (d == nullptr || d->bandwidth_bound_seconds() <= 0) return "-";
  return absl::StrFormat("%.1fx", d->seconds_per_step() / d->bandwidth_bound_seconds());
}

// The inference table (inference variants), beside the training one.
std::vector<Row> InferenceRows(const v1::CompareExperimentResponse& response) {
  std::vector<int> contexts, batches;
  InferenceColumns(response, &contexts, &batches);
  Row header = {"inference variant", "arch", "params", "n", "precision"};
  for (int c : contexts) header.push_back(absl::StrCat("prefill ", c, " ms"));
  for (int b : batches) header.push_back(absl::StrCat("decode b", b, " tok/s"));
  for (int b : batches) header.push_back(absl::StrCat("b", b, " vs bound"));
  for (const char* h : {"KV B/token", "peak mem", "prefill speedup", "decode speedup", "decode"}) {
    header.push_back(h);
  }
  std::vector<Row> rows = {header};
  for (const auto& v : response.inference()) {
    Row row = {v.variant(), v.arch(), HumanCount(v.params()), absl::StrCat(v.n()),
               v.precision().empty() ? "-" : v.precision()};
    for (int c : contexts) {
      const v1::PrefillLatency* p = PrefillAt(v, c);
      row.push_back(p == nullptr || v.n() == 0 ? "-" : absl::StrFormat("%.3f", 1e3 * p->seconds()));
    }
    for (int b : batches) {
      const v1::DecodeThroughput* d = DecodeAt(v, b);
      row.push_back(d == nullptr || v.n() == 0 ? "-" : HumanCount(d->tokens_per_second()));
    }
    std::string mode;
    for (int b : batches) {
      const v1::DecodeThroughput* d = DecodeAt(v, b);
      row.push_back(BoundRatio(d));
      if (d != nullptr && mode.empty()) mode = d->mode();
    }
    row.push_back(v.n() == 0 ? "-" : absl::StrFormat("%.0f", v.kv_cache_bytes_per_token()));
    row.push_back(v.peak_memory_bytes() > 0 ? HumanBytes(v.peak_memory_bytes()) : "-");
    row.push_back(v.prefill_speedup() > 0 ? absl::StrFormat("%.2fx", v.prefill_speedup()) : "-");
    row.push_back(v.decode_speedup() > 0 ? absl::StrFormat("%.2fx", v.decode_speedup()) : "-");
    row.push_back(mode.empty() ? "-" : mode);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string MarkdownTable(const std::vector<Row>& rows) {
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    absl::StrAppend(&out, "| ", absl::StrJoin(rows[r], " | "), " |\n");
    if (r == 0) {
      std::vector<std::string> rule = {"---"};
      for (size_t i = 1; i < rows[0].size(); ++i) rule.push_back("---:");
      absl::StrAppend(&out, "| ", absl::StrJoin(rule, " | "), " |\n");
    }
  }
  return out;
}

std::string InferenceNotes() {
  return "Inference: prefill of one prompt (batch 1); decode tokens/s after the trial's prompt; "
         "\"vs bound\": decode step time over the least bytes a step reads (weights + KV cache) "
         "at the device's memory bandwidth; speedups against the baseline inference variant.\n";
}

std::string FormatCompareRows(const v1::CompareExperimentResponse& response, bool markdown) {
  const std::vector<double> points = WallclockPoints(response);
  const std::string pm = " ± ";
  Row header = {"variant", "params", "n", "steps/s", "tok/s", "val loss", "native val"};
  for (double s : points) header.push_back(absl::StrCat("val@", WallclockLabel(s)));
  for (const char* h : {"Δ val vs baseline", "epochs", "speedup", "peak mem", "MFU"}) {
    header.push_back(h);
  }
  std::vector<Row> rows = {header};
  for (const auto& v : response.variants()) {
    Row row = {v.variant() == response.baseline() ? absl::StrCat(v.variant(), " (baseline)")
                                                  : v.variant(),
               HumanCount(v.params()),
               absl::StrCat(v.n()),
               // A submodel row (e.g. a MatFormer granularity) was scored, not trained or timed.
               v.submodel().empty() ? absl::StrFormat("%.2f", v.steps_per_second()) : "-",
               v.submodel().empty() ? HumanCount(v.tokens_per_second()) : "-",
               MeanStd(v.val_loss_mean(), v.val_loss_std(), v.n(), pm),
               v.n() == 0 ? "-" : Loss(v.val_loss_native_mean())};
    for (double s : points) {
      const v1::WallclockLoss* w = LossAt(v, s);
      row.push_back(w == nullptr ? "-" : MeanStd(w->mean(), w->std(), w->n(), pm));
    }
    row.push_back(TestCell(TestFor(v, "final")));
    row.push_back(EpochsCell(v));
    row.push_back(v.submodel().empty() ? absl::StrFormat("%.2fx", v.speedup()) : "-");
    row.push_back(v.peak_memory_bytes() > 0 ? HumanBytes(v.peak_memory_bytes()) : "-");
    row.push_back(v.mfu() > 0 ? absl::StrFormat("%.1f%%", 100 * v.mfu()) : "-");
    rows.push_back(std::move(row));
  }
  const bool training = !response.variants().empty();
  const bool inference = !response.inference().empty();
  if (markdown) {
    std::string out;
    if (training || !inference) absl::StrAppend(&out, MarkdownTable(rows), "\n", CompareNotes(response));
    if (inference) {
      absl::StrAppend(&out, training ? "\n" : "", MarkdownTable(InferenceRows(response)), "\n",
                      InferenceNotes());
    }
    return out;
  }
  std::string out = absl::StrCat("experiment ", response.experiment_id(), " (baseline ",
                                 response.baseline(), ")\n");
  if (training || !inference) {
    std::vector<bool> right(header.size(), true);
    right[0] = false;
    absl::StrAppend(&out, AlignedTable(rows, right), CompareNotes(response));
  }
  if (inference) {
    const std::vector<Row> inference_rows = InferenceRows(response);
    std::vector<bool> right(inference_rows[0].size(), true);
    right[0] = right[1] = right[4] = false;
    right.back() = false;
    absl::StrAppend(&out, training ? "\n" : "", AlignedTable(inference_rows, right),
                    InferenceNotes());
  }
  return out;
}

// The inference rows as CSV: every measurement in base units.
std::string InferenceCsv(const v1::CompareExperimentResponse& response) {
  std::vector<int> contexts, batches;
  InferenceColumns(response, &contexts, &batches);
  Row header = {"inference_variant", "arch", "params", "n", "precision", "device", "weights"};
  for (int c : contexts) header.push_back(absl::StrCat("prefill_", c, "_seconds"));
  for (int b : batches) {
    for (const char* f : {"seconds_per_step", "tokens_per_second", "bytes_per_step",
                          "bandwidth_bound_seconds", "mode"}) {
      header.push_back(absl::StrCat("decode_b", b, "_", f));
    }
  }
  for (const char* h : {"kv_cache_bytes_per_token", "peak_memory_bytes", "prefill_speedup",
                        "decode_speedup"}) {
    header.push_back(h);
  }
  std::string out = absl::StrCat(absl::StrJoin(header, ","), "\n");
  for (const auto& v : response.inference()) {
    Row row = {CsvCell(v.variant()), CsvCell(v.arch()),      absl::StrCat(v.params()),
               absl::StrCat(v.n()),  CsvCell(v.precision()), CsvCell(v.device()),
               CsvCell(v.weights())};
    for (int c : contexts) {
      const v1::PrefillLatency* p = PrefillAt(v, c);
      row.push_back(p == nullptr ? "" : Num(p->seconds()));
    }
    for (int b : batches) {
      const v1::DecodeThroughput* d = DecodeAt(v, b);
      if (d == nullptr) {
        for (int i = 0; i < 5; ++i) row.push_back("");
        continue;
      }
      for (double x : {d->seconds_per_step(), d->tokens_per_second(), d->bytes_per_step(),
                       d->bandwidth_bound_seconds()}) {
        row.push_back(Num(x));
      }
      row.push_back(CsvCell(d->mode()));
    }
    for (double x : {v.kv_cache_bytes_per_token(), v.peak_memory_bytes(), v.prefill_speedup(),
                     v.decode_speedup()}) {
      row.push_back(Num(x));
    }
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

std::string FormatCompareCsv(const v1::CompareExperimentResponse& response) {
  const std::vector<double> points = WallclockPoints(response);
  Row header = {"variant", "arch", "params", "n", "steps_per_second", "tokens_per_second",
                "val_loss_mean", "val_loss_std", "val_loss_native_mean", "train_loss_mean"};
  for (double s : points) {
    header.push_back(absl::StrFormat("val_loss_at_%gs_mean", s));
    header.push_back(absl::StrFormat("val_loss_at_%gs_std", s));
  }
  for (const char* h : {"speedup", "peak_memory_bytes", "mfu", "layers_per_token", "steps_mean",
                        "train_seconds_mean"}) {
    header.push_back(h);
  }
  static constexpr const char* kBases[] = {"final", "matched_tokens", "matched_seconds"};
  for (const char* basis : kBases) {
    for (const char* f : {"at", "diff", "ci_low", "ci_high", "p_value", "n", "n_baseline", "flag"}) {
      header.push_back(absl::StrCat(basis, "_", f));
    }
  }
  header.push_back("epochs_max");
  header.push_back("trials_past_one_epoch");
  std::string out = absl::StrCat(absl::StrJoin(header, ","), "\n");
  for (const auto& v : response.variants()) {
    Row row = {CsvCell(v.variant()),
               CsvCell(v.arch()),
               absl::StrCat(v.params()),
               absl::StrCat(v.n()),
               Num(v.steps_per_second()),
               Num(v.tokens_per_second()),
               Num(v.val_loss_mean()),
               Num(v.val_loss_std()),
               Num(v.val_loss_native_mean()),
               Num(v.train_loss_mean())};
    for (double s : points) {
      const v1::WallclockLoss* w = LossAt(v, s);
      row.push_back(w == nullptr ? "" : Num(w->mean()));
      row.push_back(w == nullptr ? "" : Num(w->std()));
    }
    for (double x : {v.speedup(), v.peak_memory_bytes(), v.mfu(), v.layers_per_token(),
                     v.steps_mean(), v.train_seconds_mean()}) {
      row.push_back(Num(x));
    }
    for (const char* basis : kBases) {
      const v1::SignificanceTest* t = TestFor(v, basis);
      if (t == nullptr) {
        for (int i = 0; i < 8; ++i) row.push_back("");
        continue;
      }
      const auto opt = [](double x) { return std::isnan(x) ? std::string() : Num(x); };
      for (double x : {t->at(), t->diff(), t->ci_low(), t->ci_high(), t->p_value()}) {
        row.push_back(opt(x));
      }
      row.push_back(absl::StrCat(t->n()));
      row.push_back(absl::StrCat(t->n_baseline()));
      row.push_back(CsvCell(t->flag()));
    }
    row.push_back(Num(v.epochs_max()));
    row.push_back(CsvCell(absl::StrJoin(v.trials_past_one_epoch(), ";")));
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

}  // namespace

std::string HumanCount(double value) {
  const double a = std::fabs(value);
  if (a >= 1e9) return absl::StrFormat("%.1fB", value / 1e9);
  if (a >= 1e6) return absl::StrFormat("%.1fM", value / 1e6);
  if (a >= 1e3) return absl::StrFormat("%.1fk", value / 1e3);
  return absl::StrFormat("%.0f", value);
}

std::string HumanBytes(double bytes) {
  const double a = std::fabs(bytes);
  if (a >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  if (a >= 1024.0 * 1024) return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024));
  if (a >= 1024.0) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%.0f B", bytes);
}

std::string HumanDuration(double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds)) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string StateName(v1::TrialState state) {
  std::string name = v1::TrialState_Name(state);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "TRIAL_STATE_"));
}

std::string StateName(v1::ExperimentState state) {
  std::string name = v1::ExperimentState_Name(state);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "EXPERIMENT_STATE_"));
}

absl::StatusOr<std::string> FormatCompare(const v1::CompareExperimentResponse& response,
                                          absl::string_view format) {
  if (format == "table") return FormatCompareRows(response, /*markdown=*/false);
  if (format == "markdown") return FormatCompareRows(response, /*markdown=*/true);
  if (format == "csv") {
    // Two CSV tables, the inference one after a blank line, when the experiment has both.
    if (response.inference().empty()) return FormatCompareCsv(response);
    if (response.variants().empty()) return InferenceCsv(response);
    return absl::StrCat(FormatCompareCsv(response), "\n", InferenceCsv(response));
  }
  if (format == "json") {
    // The table's data without the per-trial curves (those are for --plot).
    v1::CompareExperimentResponse table = response;
    table.clear_curves();
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(table, &json, options).ok()) {
      return absl::InternalError("cannot print the comparison as JSON");
    }
    return json;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--format: '", format, "' is not one of table, markdown, csv, json"));
}

std::string CurvesJson(const v1::CompareExperimentResponse& response) {
  v1::CompareExperimentResponse curves;
  curves.set_experiment_id(response.experiment_id());
  curves.set_baseline(response.baseline());
  *curves.mutable_curves() = response.curves();
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(curves, &json, options);
  return json;
}

std::string FormatExperimentList(const v1::ListExperimentsResponse& response) {
  std::vector<Row> rows = {{"ID", "NAME", "STATE", "TRIALS", "CREATED"}};
  for (const auto& e : response.experiments()) {
    std::vector<std::string> counts;
    // Fixed order, so columns line up between experiments.
    for (const char* state : {"pending", "scheduled", "running", "completed", "failed",
                              "canceled"}) {
      for (const auto& [name, n] : e.trial_counts()) {
        if (absl::AsciiStrToLower(absl::StripPrefix(name, "TRIAL_STATE_")) == state && n > 0) {
          counts.push_back(absl::StrCat(n, " ", state));
        }
      }
    }
    rows.push_back({e.id(), e.spec().name(), StateName(e.state()),
                    counts.empty() ? "-" : absl::StrJoin(counts, ", "),
                    absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                     absl::FromUnixSeconds(e.created_unix_time()),
                                     absl::LocalTimeZone())});
  }
  return AlignedTable(rows, {});
}

std::string FormatExperiment(const v1::Experiment& e) {
  std::string out = absl::StrCat("Experiment ", e.id(), "  ", e.spec().name(), "\n");
  if (!e.spec().description().empty()) absl::StrAppend(&out, "  ", e.spec().description(), "\n");
  absl::StrAppend(&out, "State:    ", StateName(e.state()), "\n");
  absl::StrAppend(&out, "Created:  ",
                  absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                   absl::FromUnixSeconds(e.created_unix_time()),
                                   absl::LocalTimeZone()),
                  "\n");
  absl::StrAppend(&out, "Baseline: ", e.spec().baseline(), "\n\n");
  std::vector<Row> rows = {{"TRIAL", "VARIANT", "SEED", "STATE", "ATTEMPT", "PLACEMENT", "STEP",
                            "LOSS", "VAL", "TOK/S", "MESSAGE"}};
  for (const auto& t : e.trials()) {
    std::vector<std::string> slices;
    for (const auto& s : t.placement().slices()) {
      slices.push_back(absl::StrCat(s.worker_id(), ":", absl::StrJoin(s.devices(), ",")));
    }
    auto metric = [&](const char* name, bool human) -> std::string {
      auto it = t.latest_metrics().find(name);
      if (it == t.latest_metrics().end()) return "-";
      return human ? HumanCount(it->second) : Loss(it->second);
    };
    std::string message = t.status_message();
    if (t.state() == v1::TRIAL_STATE_PENDING && !message.empty()) {
      message = absl::StrCat("waiting: ", message);
    }
    rows.push_back({t.id(), t.variant(), absl::StrCat(t.seed()), StateName(t.state()),
                    absl::StrCat(t.attempt()), slices.empty() ? "-" : absl::StrJoin(slices, " "),
                    absl::StrCat(t.latest_step()), metric("train_loss", false),
                    metric("val_loss", false), metric("tokens_per_second", true), message});
  }
  absl::StrAppend(&out, AlignedTable(rows, {false, false, true, false, true, false, true, true,
                                            true, true, false}));
  return out;
}

std::string FormatProgressLine(const v1::Trial& trial, const TrialProgress& p, int bar_width) {
  const v1::BudgetSpec& budget = trial.spec().budget();
  double done = 0, total = 0;
  std::string of;
  switch (budget.limit_case()) {
    case v1::BudgetSpec::kSteps:
      done = p.step;
      total = budget.steps();
      of = absl::StrCat("step ", p.step, "/", budget.steps());
      break;
    case v1::BudgetSpec::kTokens:
      done = p.tokens;
      total = budget.tokens();
      of = absl::StrCat(HumanCount(p.tokens), "/", HumanCount(budget.tokens()), " tok");
      break;
    case v1::BudgetSpec::kSeconds:
      done = p.train_seconds;
      total = budget.seconds();
      of = absl::StrCat("step ", p.step, ", ", HumanDuration(p.train_seconds), "/",
                        HumanDuration(budget.seconds()));
      break;
    case v1::BudgetSpec::LIMIT_NOT_SET:
      of = absl::StrCat("step ", p.step);
      break;
  }
  double fraction = total > 0 ? std::clamp(done / total, 0.0, 1.0) : 0;
  if (trial.state() == v1::TRIAL_STATE_COMPLETED) fraction = 1;
  const int filled = static_cast<int>(fraction * bar_width);
  const std::string bar = absl::StrCat("[", std::string(filled, '#'),
                                       std::string(bar_width - filled, '.'), "]");
  std::string eta = "-";
  if (trial.state() == v1::TRIAL_STATE_RUNNING && fraction > 0 && fraction < 1 &&
      p.train_seconds > 0) {
    // Progress is linear in training time for every budget kind.
    eta = HumanDuration(p.train_seconds * (1 / fraction - 1));
  } else if (trial.state() == v1::TRIAL_STATE_COMPLETED) {
    eta = "done";
  }
  auto metric = [&](const char* name) -> const double* {
    auto it = p.latest.find(name);
    return it == p.latest.end() ? nullptr : &it->second;
  };
  const double* loss = metric("train_loss");
  const double* val = metric("val_loss");
  const double* tps = metric("tokens_per_second");
  return absl::StrFormat("%-12s %-16s %s %3.0f%% %s | loss %s | val %s | %s tok/s | ETA %s | %s",
                         trial.id(), trial.variant(), bar, 100 * fraction, of,
                         loss ? absl::StrFormat("%.3f", *loss) : "-",
                         val ? absl::StrFormat("%.3f", *val) : "-",
                         tps ? HumanCount(*tps) : "-", eta, StateName(trial.state()));
}

}  // namespace gauntlet::cli
