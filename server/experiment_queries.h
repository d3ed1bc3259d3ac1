#ifndef GAUNTLET_SERVER_EXPERIMENT_QUERIES_H_
#define GAUNTLET_SERVER_EXPERIMENT_QUERIES_H_

#include "absl/status/statusor.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "server/trial_lifecycle.h"

namespace gauntlet {

// The read side of the Coordinator API over the trial lifecycle (the caller holds the lock that
// guards it). Every response is bounded: pages of trials end at a count and at kMaxPageBytes,
// whichever comes first, so none nears the client's 4 MB limit however large the specs are.
inline constexpr size_t kMaxPageBytes = 2 << 20;

// One page of an experiment's trials (GetExperiment), with its counts per state over all
// trials; `max_trials_per_page` caps the requested page size.
absl::StatusOr<v1::Experiment> GetExperimentPage(TrialLifecycle& lifecycle,
                                                 const v1::GetExperimentRequest& request,
                                                 int max_trials_per_page);

// Experiments newest first, filtered by name prefix and states (ListExperiments).
absl::StatusOr<v1::ListExperimentsResponse> ListExperimentsPage(
    const TrialLifecycle& lifecycle, const v1::ListExperimentsRequest& request);

// Cuts a SubmitExperiment reply to its first page of trials; the rest is a GetExperiment away.
void TrimToFirstPage(v1::Experiment& view, int max_trials_per_page);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_EXPERIMENT_QUERIES_H_
