#include "server/experiment_queries.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/yaml_proto.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;

// The end of the page of `trials` that starts at `first`: at most `max_count` trials and
// `budget` bytes, whichever comes first, and at least one trial.
int PageEnd(const google::protobuf::RepeatedPtrField<v1::Trial>& trials, int first,
            int max_count, size_t budget) {
  int end = first;
  size_t bytes = 0;
  while (end < trials.size() && end < first + max_count &&
         (end == first || bytes + trials[end].ByteSizeLong() <= budget)) {
    bytes += trials[end++].ByteSizeLong();
  }
  return end;
}

}  // namespace

absl::StatusOr<v1::Experiment> GetExperimentPage(TrialLifecycle& lifecycle,
                                                 const v1::GetExperimentRequest& request,
                                                 int max_trials_per_page) {
  if (request.trial_page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial_page_size: must be >= 0, got ", request.trial_page_size()));
  }
  const int page_size = request.trial_page_size() == 0
                            ? max_trials_per_page
                            : std::min(request.trial_page_size(), max_trials_per_page);
  int first = 0;
  if (!request.trial_page_token().empty() &&
      (!absl::SimpleAtoi(request.trial_page_token(), &first) || first < 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trial_page_token: malformed '", Truncated(request.trial_page_token(), 80), "'"));
  }
  absl::StatusOr<v1::Experiment*> experiment = lifecycle.Lookup(request.experiment());
  if (!experiment.ok()) return experiment.status();
  // Only the page is copied: a 10,000-trial experiment costs one page, not all of it. The
  // trials are swapped out (O(1)) while the rest of the experiment is copied.
  v1::Experiment& stored = **experiment;
  google::protobuf::RepeatedPtrField<v1::Trial> trials;
  trials.Swap(stored.mutable_trials());
  v1::Experiment page = stored;
  trials.Swap(stored.mutable_trials());
  const auto& all = stored.trials();
  const int end = PageEnd(all, first, page_size, kMaxPageBytes);
  for (int i = first; i < end; ++i) *page.add_trials() = all[i];
  v1::Experiment view = ExperimentView(page, true, request.include_transitions());
  view.set_state(lifecycle.State(page.id()));
  view.clear_trial_counts();
  for (const v1::Trial& trial : all) {
    ++(*view.mutable_trial_counts())[TrialStateName(trial.state())];
  }
  if (end < all.size()) view.set_next_trial_page_token(absl::StrCat(end));
  return view;
}

absl::StatusOr<v1::ListExperimentsResponse> ListExperimentsPage(
    const TrialLifecycle& lifecycle, const v1::ListExperimentsRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", request.page_size()));
  }
  const int page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  // The token is the sequence number of the last experiment returned; pages go newest first.
  int64_t before = INT64_MAX;
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: malformed '", Truncated(request.page_token(), 80), "'"));
  }
  for (int i = 0; i < request.states_size(); ++i) {
    if (!v1::ExperimentState_IsValid(request.states(i)) ||
        request.states(i) == v1::EXPERIMENT_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("states[", i, "]: not an experiment state: ", request.states(i)));
    }
  }
  const std::set<int> states(request.states().begin(), request.states().end());
  std::vector<std::pair<int64_t, const v1::Experiment*>> order;
  for (const auto& [id, experiment] : lifecycle.experiments()) {
    const int64_t sequence = lifecycle.Sequence(id);
    if (sequence >= before) continue;
    if (!absl::StartsWith(experiment.spec().name(), request.name_prefix())) continue;
    if (!states.empty() && !states.count(lifecycle.State(id))) continue;
    order.push_back({sequence, &experiment});
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  v1::ListExperimentsResponse response;
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(page_size); ++i) {
    // Spec summary stays (name, variants...) but the YAML and trial specs are left out.
    *response.add_experiments() = ExperimentView(*order[i].second, false, false);
  }
  if (order.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(absl::StrCat(order[page_size - 1].first));
  }
  return response;
}

void TrimToFirstPage(v1::Experiment& view, int max_trials_per_page) {
  const size_t head = view.spec_yaml().size() + view.spec().ByteSizeLong();
  const int keep = PageEnd(view.trials(), 0, max_trials_per_page,
                           head < kMaxPageBytes ? kMaxPageBytes - head : 0);
  if (keep < view.trials_size()) {
    view.mutable_trials()->DeleteSubrange(keep, view.trials_size() - keep);
    view.set_next_trial_page_token(absl::StrCat(keep));
  }
}

}  // namespace gauntlet
