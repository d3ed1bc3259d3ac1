#include "server/compare.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/welch.h"

namespace gauntlet {
namespace {

// Mean and sample standard deviation.
struct Stats {
  double mean = 0;
  double std = 0;
  int n = 0;
};

Stats Summarize(const std::vector<double>& values) {
  Stats s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= s.n;
  if (s.n > 1) {
    double sum_sq = 0;
    for (double v : values) sum_sq += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(sum_sq / (s.n - 1));
  }
  return s;
}

double Mean(const std::vector<double>& values) { return Summarize(values).mean; }

double Latest(const v1::Trial& trial, const std::string& name) {
  auto it = trial.latest_metrics().find(name);
  return it == trial.latest_metrics().end() ? 0 : it->second;
}

std::string GroupName(const v1::Trial& trial) {
  if (trial.grid_point().empty()) return trial.variant();
  // Sorted so the name does not depend on map iteration order.
  std::map<std::string, std::string> sorted(trial.grid_point().begin(), trial.grid_point().end());
  return absl::StrCat(trial.variant(), "[",
                      absl::StrJoin(sorted, ",", absl::PairFormatter("=")), "]");
}

struct Group {
  std::string name;
  std::string variant;
  std::string arch;
  std::string grid_key;  // the "[...]" suffix, "" without a sweep
  std::vector<const TrialResult*> completed;
};

// Per-trial final numbers: the summary's, else the latest metrics'.
struct Final {
  double params, steps_per_second, tokens_per_second, val_loss, val_loss_native, train_loss,
      peak_memory, mfu, layers_per_token, steps, train_seconds, epochs;
};

Final FinalOf(const TrialResult& r) {
  if (r.summary.has_value()) {
    const v1::TrainerSummary& s = *r.summary;
    return {static_cast<double>(s.params()), s.steps_per_second(), s.tokens_per_second(),
            s.final_val_loss(), s.final_val_loss_native(), s.final_train_loss(),
            s.peak_memory_bytes(), s.mfu(), s.layers_per_token(), static_cast<double>(s.steps()),
            s.train_seconds(), s.epochs()};
  }
  const v1::Trial& t = r.trial;
  double train_seconds = 0;
  for (const v1::MetricPoint& p : r.val_curve) train_seconds = std::max(train_seconds, p.train_seconds());
  return {0,
          Latest(t, "steps_per_second"),
          Latest(t, "tokens_per_second"),
          Latest(t, "val_loss"),
          Latest(t, "val_loss_native"),
          Latest(t, "train_loss"),
          Latest(t, "gpu_memory_peak_bytes"),
          Latest(t, "mfu"),
          Latest(t, "layers_per_token"),
          static_cast<double>(t.latest_step()),
          train_seconds,
          Latest(t, "epochs")};
}

std::vector<v1::MetricPoint> SortedCurve(const std::vector<v1::MetricPoint>& curve) {
  std::vector<v1::MetricPoint> sorted = curve;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const v1::MetricPoint& a, const v1::MetricPoint& b) {
                     return a.train_seconds() < b.train_seconds();
                   });
  return sorted;
}

// Linear interpolation of val loss at tokens `x` on a curve sorted by time (tokens grow with it).
std::optional<double> InterpolateAtTokens(const std::vector<v1::MetricPoint>& curve, double x) {
  if (curve.empty() || x < curve.front().tokens() || x > curve.back().tokens()) return std::nullopt;
  for (size_t i = 1; i < curve.size(); ++i) {
    const v1::MetricPoint& a = curve[i - 1];
    const v1::MetricPoint& b = curve[i];
    if (x <= b.tokens()) {
      const double span = static_cast<double>(b.tokens() - a.tokens());
      if (span <= 0) return b.value();
      return a.value() + (x - a.tokens()) / span * (b.value() - a.value());
    }
  }
  return curve.back().value();
}

constexpr double kAlpha = 0.05;  // the 95% interval's level
constexpr int kMinTrials = 3;

void FillTest(const WelchResult& w, v1::SignificanceTest* test) {
  test->set_n(w.n_a);
  test->set_n_baseline(w.n_b);
  test->set_diff(w.diff);
  test->set_ci_low(w.ci_low);
  test->set_ci_high(w.ci_high);
  test->set_t(w.t);
  test->set_df(w.df);
  test->set_p_value(w.p_value);
  if (w.n_a < kMinTrials || w.n_b < kMinTrials) {
    test->set_flag("n < 3");
  } else if (!(w.p_value < kAlpha)) {
    test->set_flag("not significant");
  }
}

// One row per inference group: every measurement averaged over its completed trials, matched by
// context / batch size (trials of a group share their spec, so they measured the same ones).
void AddInferenceRows(const std::vector<Group>& groups, const std::string& baseline,
                      v1::CompareExperimentResponse& response) {
  std::vector<int> rows;  // response.inference index of each group
  for (const Group& g : groups) {
    rows.push_back(response.inference_size());
    v1::InferenceVariantSummary* row = response.add_inference();
    row->set_variant(g.name);
    row->set_arch(g.arch);
    row->set_n(static_cast<int>(g.completed.size()));
    if (g.completed.empty()) continue;
    const v1::TrainerSummary& first = *g.completed.front()->summary;
    row->set_params(first.params());
    row->set_precision(first.inference().precision());
    row->set_device(first.inference().device());
    row->set_weights(first.inference().weights());
    std::map<int, std::vector<double>> prefill;
    std::map<int, std::vector<const v1::DecodeThroughput*>> decode;
    std::vector<double> kv, peak;
    for (const TrialResult* r : g.completed) {
      const v1::InferenceResult& in = r->summary->inference();
      for (const v1::PrefillLatency& p : in.prefill()) prefill[p.context()].push_back(p.seconds());
      for (const v1::DecodeThroughput& d : in.decode()) decode[d.batch()].push_back(&d);
      kv.push_back(in.kv_cache_bytes_per_token());
      peak.push_back(in.peak_memory_bytes());
    }
    for (const v1::PrefillLatency& p : first.inference().prefill()) {
      v1::PrefillLatency* out = row->add_prefill();
      out->set_context(p.context());
      out->set_seconds(Mean(prefill[p.context()]));
    }
    for (const v1::DecodeThroughput& d : first.inference().decode()) {
      std::vector<double> step, tps, bytes, bound;
      for (const v1::DecodeThroughput* x : decode[d.batch()]) {
        step.push_back(x->seconds_per_step());
        tps.push_back(x->tokens_per_second());
        bytes.push_back(x->bytes_per_step());
        bound.push_back(x->bandwidth_bound_seconds());
      }
      v1::DecodeThroughput* out = row->add_decode();
      out->set_batch(d.batch());
      out->set_seconds_per_step(Mean(step));
      out->set_tokens_per_second(Mean(tps));
      out->set_bytes_per_step(Mean(bytes));
      out->set_bandwidth_bound_seconds(Mean(bound));
      out->set_mode(d.mode());
    }
    row->set_kv_cache_bytes_per_token(Mean(kv));
    row->set_peak_memory_bytes(Mean(peak));
  }
  // Speedups against the baseline (the experiment's, when it is an inference variant, else the
  // first inference variant) at the same grid point: prefill at the largest context both
  // measured, decode at the smallest batch both measured.
  std::string base_variant = groups.empty() ? "" : groups.front().variant;
  for (const Group& g : groups) {
    if (g.variant == baseline) base_variant = baseline;
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    const v1::InferenceVariantSummary* base = nullptr;
    for (size_t j = 0; j < groups.size(); ++j) {
      if (groups[j].variant != base_variant) continue;
      if (base == nullptr || groups[j].grid_key == groups[i].grid_key) {
        base = &response.inference(rows[j]);
      }
      if (groups[j].grid_key == groups[i].grid_key) break;
    }
    v1::InferenceVariantSummary* row = response.mutable_inference(rows[i]);
    if (base == nullptr || row->n() == 0 || base->n() == 0) continue;
    for (int a = row->prefill_size() - 1; a >= 0 && row->prefill_speedup() == 0; --a) {
      for (const v1::PrefillLatency& b : base->prefill()) {
        if (b.context() == row->prefill(a).context() && row->prefill(a).seconds() > 0) {
          row->set_prefill_speedup(b.seconds() / row->prefill(a).seconds());
        }
      }
    }
    for (int a = 0; a < row->decode_size() && row->decode_speedup() == 0; ++a) {
      for (const v1::DecodeThroughput& b : base->decode()) {
        if (b.batch() == row->decode(a).batch() && b.tokens_per_second() > 0) {
          row->set_decode_speedup(row->decode(a).tokens_per_second() / b.tokens_per_second());
        }
      }
    }
  }
}

}  // namespace

std::optional<double> InterpolateAt(const std::vector<v1::MetricPoint>& curve, double seconds) {
  if (curve.empty()) return std::nullopt;
  // Tolerance for "the end of the curve": the final eval's time is the trial's training time.
  const double eps = 1e-9 + 1e-9 * std::abs(seconds);
  if (seconds < curve.front().train_seconds() - eps || seconds > curve.back().train_seconds() + eps) {
    return std::nullopt;
  }
  for (size_t i = 1; i < curve.size(); ++i) {
    const v1::MetricPoint& a = curve[i - 1];
    const v1::MetricPoint& b = curve[i];
    if (seconds <= b.train_seconds() + eps) {
      const double span = b.train_seconds() - a.train_seconds();
      if (span <= 0) return b.value();
      const double w = std::clamp((seconds - a.train_seconds()) / span, 0.0, 1.0);
      return a.value() + w * (b.value() - a.value());
    }
  }
  return curve.back().value();
}

absl::StatusOr<v1::CompareExperimentResponse> CompareTrials(
    const v1::Experiment& experiment, const std::vector<TrialResult>& results,
    const v1::CompareExperimentRequest& request) {
  std::string baseline = request.baseline();
  if (baseline.empty()) baseline = experiment.spec().baseline();
  if (baseline.empty() && experiment.spec().variants_size() > 0) {
    baseline = experiment.spec().variants(0).name();
  }
  bool known = false;
  for (const v1::Variant& v : experiment.spec().variants()) known |= v.name() == baseline;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("baseline: unknown variant '", baseline, "' in experiment ", experiment.id()));
  }
  for (int i = 0; i < request.wallclock_points_size(); ++i) {
    const double t = request.wallclock_points(i);
    if (!std::isfinite(t) || t <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("wallclock_points[", i, "]: must be a positive number of seconds, got ", t));
    }
  }

  v1::CompareExperimentResponse response;
  response.set_experiment_id(experiment.id());
  response.set_baseline(baseline);

  // Groups in trial order, so the table follows the spec's variant order.
  std::vector<Group> groups;
  std::map<std::string, size_t> group_index;
  std::map<const TrialResult*, std::vector<v1::MetricPoint>> sorted_curves;
  std::vector<Group> inference_groups;
  std::map<std::string, size_t> inference_index;
  for (const TrialResult& r : results) {
    const std::string name = GroupName(r.trial);
    if (r.trial.spec().kind() == "inference") {
      auto [it, inserted] = inference_index.emplace(name, inference_groups.size());
      if (inserted) {
        Group& g = inference_groups.emplace_back();
        g.name = name;
        g.variant = r.trial.variant();
        g.arch = r.trial.spec().model().arch();
        g.grid_key = name.substr(r.trial.variant().size());
      }
      if (r.trial.state() == v1::TRIAL_STATE_COMPLETED && r.summary.has_value() &&
          r.summary->has_inference()) {
        inference_groups[it->second].completed.push_back(&r);
      }
      continue;
    }
    auto [it, inserted] = group_index.emplace(name, groups.size());
    if (inserted) {
      Group& g = groups.emplace_back();
      g.name = name;
      g.variant = r.trial.variant();
      g.arch = r.trial.spec().model().arch();
      g.grid_key = name.substr(r.trial.variant().size());
    }
    if (r.trial.state() == v1::TRIAL_STATE_COMPLETED) groups[it->second].completed.push_back(&r);
    sorted_curves[&r] = SortedCurve(r.val_curve);

    if (!r.val_curve.empty()) {
      v1::TrialCurve* curve = response.add_curves();
      curve->set_trial_id(r.trial.id());
      curve->set_variant(r.trial.variant());
      curve->set_seed(r.trial.seed());
      for (const v1::MetricPoint& p : sorted_curves[&r]) {
        curve->add_train_seconds(p.train_seconds());
        curve->add_tokens(p.tokens());
        curve->add_val_loss(p.value());
      }
    }
  }

  // Default read-off points: quarters of the shortest counted trial's training time.
  std::vector<double> points(request.wallclock_points().begin(), request.wallclock_points().end());
  if (points.empty()) {
    double shortest = 0;
    for (const Group& g : groups) {
      for (const TrialResult* r : g.completed) {
        const double t = FinalOf(*r).train_seconds;
        if (t > 0 && (shortest == 0 || t < shortest)) shortest = t;
      }
    }
    if (shortest > 0) points = {0.25 * shortest, 0.5 * shortest, 0.75 * shortest, shortest};
  }

  std::map<std::string, double> tokens_per_second;  // group name -> mean
  for (const Group& g : groups) {
    v1::VariantSummary* summary = response.add_variants();
    summary->set_variant(g.name);
    summary->set_arch(g.arch);
    summary->set_n(static_cast<int>(g.completed.size()));
    std::vector<double> params, sps, tps, val, native, train, peak, mfu, lpt, steps, seconds;
    for (const TrialResult* r : g.completed) {
      const Final f = FinalOf(*r);
      params.push_back(f.params);
      sps.push_back(f.steps_per_second);
      tps.push_back(f.tokens_per_second);
      val.push_back(f.val_loss);
      native.push_back(f.val_loss_native);
      train.push_back(f.train_loss);
      peak.push_back(f.peak_memory);
      mfu.push_back(f.mfu);
      lpt.push_back(f.layers_per_token);
      steps.push_back(f.steps);
      seconds.push_back(f.train_seconds);
    }
    summary->set_params(static_cast<int64_t>(std::llround(Mean(params))));
    summary->set_steps_per_second(Mean(sps));
    summary->set_tokens_per_second(Mean(tps));
    const Stats val_stats = Summarize(val);
    summary->set_val_loss_mean(val_stats.mean);
    summary->set_val_loss_std(val_stats.std);
    summary->set_val_loss_native_mean(Mean(native));
    summary->set_train_loss_mean(Mean(train));
    summary->set_peak_memory_bytes(Mean(peak));
    summary->set_mfu(Mean(mfu));
    summary->set_layers_per_token(Mean(lpt));
    summary->set_steps_mean(Mean(steps));
    summary->set_train_seconds_mean(Mean(seconds));
    for (const TrialResult* r : g.completed) {
      const double epochs = FinalOf(*r).epochs;
      summary->set_epochs_max(std::max(summary->epochs_max(), epochs));
      if (epochs > 1) summary->add_trials_past_one_epoch(r->trial.id());
    }
    for (double t : points) {
      std::vector<double> at;
      for (const TrialResult* r : g.completed) {
        if (std::optional<double> v = InterpolateAt(sorted_curves[r], t)) at.push_back(*v);
      }
      const Stats s = Summarize(at);
      v1::WallclockLoss* w = summary->add_val_loss_at();
      w->set_seconds(t);
      w->set_mean(s.mean);
      w->set_std(s.std);
      w->set_n(s.n);
    }
    tokens_per_second[g.name] = summary->tokens_per_second();
  }

  // Speedup against the baseline variant at the same grid point (or its first group).
  for (int i = 0; i < response.variants_size(); ++i) {
    const Group& g = groups[i];
    double base = 0;
    auto same_point = tokens_per_second.find(baseline + g.grid_key);
    if (same_point != tokens_per_second.end()) {
      base = same_point->second;
    } else {
      for (const Group& other : groups) {
        if (other.variant == baseline) {
          base = tokens_per_second[other.name];
          break;
        }
      }
    }
    v1::VariantSummary* summary = response.mutable_variants(i);
    summary->set_speedup(base > 0 ? summary->tokens_per_second() / base : 0);
  }

  // Significance of each variant's loss against the baseline group at the same grid point (or
  // the first baseline group): final, at matched tokens and at matched training time.
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    if (g.variant == baseline) continue;
    const Group* base = nullptr;
    for (const Group& other : groups) {
      if (other.variant != baseline) continue;
      if (base == nullptr || other.grid_key == g.grid_key) base = &other;
      if (other.grid_key == g.grid_key) break;
    }
    if (base == nullptr) continue;
    v1::VariantSummary* summary = response.mutable_variants(static_cast<int>(i));
    std::vector<double> a, b;
    for (const TrialResult* r : g.completed) a.push_back(FinalOf(*r).val_loss);
    for (const TrialResult* r : base->completed) b.push_back(FinalOf(*r).val_loss);
    v1::SignificanceTest* final_test = summary->add_vs_baseline();
    final_test->set_basis("final");
    FillTest(WelchTTest(a, b, 1 - kAlpha), final_test);

    // The furthest point every trial of both groups reached, in tokens and in seconds.
    double max_tokens = -1, max_seconds = -1;
    for (const Group* group : {&g, base}) {
      for (const TrialResult* r : group->completed) {
        const std::vector<v1::MetricPoint>& curve = sorted_curves[r];
        const double t = curve.empty() ? 0 : static_cast<double>(curve.back().tokens());
        const double sec = curve.empty() ? 0 : curve.back().train_seconds();
        max_tokens = max_tokens < 0 ? t : std::min(max_tokens, t);
        max_seconds = max_seconds < 0 ? sec : std::min(max_seconds, sec);
      }
    }
    for (const char* basis : {"matched_tokens", "matched_seconds"}) {
      const bool tokens = std::string(basis) == "matched_tokens";
      const double at = tokens ? max_tokens : max_seconds;
      std::vector<double> va, vb;
      for (auto [group, out] : {std::pair{&g, &va}, std::pair{base, &vb}}) {
        for (const TrialResult* r : group->completed) {
          std::optional<double> v = tokens ? InterpolateAtTokens(sorted_curves[r], at)
                                           : InterpolateAt(sorted_curves[r], at);
          if (at > 0 && v.has_value()) out->push_back(*v);
        }
      }
      v1::SignificanceTest* test = summary->add_vs_baseline();
      test->set_basis(basis);
      test->set_at(std::max(at, 0.0));
      FillTest(WelchTTest(va, vb, 1 - kAlpha), test);
    }
  }

  // Submodels of each group's trained models (e.g. MatFormer granularities), after the groups:
  // one row per name, over the completed trials whose summary scored it.
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    std::vector<std::string> names;  // first-seen order
    std::map<std::string, std::vector<const v1::SubmodelEval*>> evals;
    for (const TrialResult* r : g.completed) {
      if (!r->summary.has_value()) continue;
      for (const v1::SubmodelEval& e : r->summary->submodels()) {
        auto& list = evals[e.name()];
        if (list.empty()) names.push_back(e.name());
        list.push_back(&e);
      }
    }
    for (const std::string& name : names) {
      v1::VariantSummary* row = response.add_variants();
      row->set_variant(absl::StrCat(g.name, "/", name));
      row->set_submodel(name);
      row->set_arch(g.arch);
      row->set_params(response.variants(static_cast<int>(i)).params());
      std::vector<double> val, native;
      for (const v1::SubmodelEval* e : evals[name]) {
        val.push_back(e->val_loss());
        native.push_back(e->val_loss_native());
      }
      const Stats stats = Summarize(val);
      row->set_n(stats.n);
      row->set_val_loss_mean(stats.mean);
      row->set_val_loss_std(stats.std);
      row->set_val_loss_native_mean(Mean(native));
    }
  }
  AddInferenceRows(inference_groups, baseline, response);
  return response;
}

}  // namespace gauntlet
