#include "server/ordered_store.h"

#include <exception>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gauntlet {

uint64_t OrderedStore::Queue(Job job) {
  absl::MutexLock lock(&mu_);
  job.ticket = next_ticket_++;
  const uint64_t ticket = job.ticket;
  queue_.push_back(std::move(job));
  return ticket;
}

uint64_t OrderedStore::QueueCreate(const v1::Experiment& experiment) {
  Job job;
  job.write = [this, &experiment] { return inner_->CreateExperiment(experiment); };
  return Queue(std::move(job));
}

uint64_t OrderedStore::QueueMetrics(std::vector<v1::MetricPoint> points,
                                    std::vector<v1::Trial> trials) {
  Job job;
  job.points = std::move(points);
  job.trials = std::move(trials);
  return Queue(std::move(job));
}

absl::Status OrderedStore::Wait(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return done_.count(ticket) > 0 || !writing_;
    };
    mu_.Await(absl::Condition(&ready));
    if (auto it = done_.find(ticket); it != done_.end()) {
      absl::Status status = std::move(it->second);
      done_.erase(it);
      return status;
    }
    // Nobody writes and this ticket is still queued: write the queue, this ticket included.
    std::deque<Job> jobs;
    jobs.swap(queue_);
    writing_ = true;
    mu_.Unlock();
    std::map<uint64_t, absl::Status> results;
    try {
      results = Write(jobs);
    } catch (const std::exception& e) {
      // A write that threw (std::bad_alloc) fails its batch; the next writer starts clean.
      for (const Job& job : jobs) {
        results.try_emplace(job.ticket, absl::InternalError(absl::StrCat("store: ", e.what())));
      }
    }
    mu_.Lock();
    done_.merge(results);
    writing_ = false;
  }
}

absl::Status OrderedStore::Run(std::function<absl::Status()> write) {
  Job job;
  job.write = std::move(write);
  return Wait(Queue(std::move(job)));
}

std::map<uint64_t, absl::Status> OrderedStore::Write(std::deque<Job>& jobs) {
  std::map<uint64_t, absl::Status> results;
  for (size_t i = 0; i < jobs.size();) {
    if (jobs[i].write) {
      results[jobs[i].ticket] = jobs[i].write();
      ++i;
      continue;
    }
    // Consecutive metric batches: one transaction. A trial in several of them is written
    // once, with its row from the last (newest) batch.
    std::vector<v1::MetricPoint> points;
    std::map<std::string, const v1::Trial*> newest;
    size_t end = i;
    for (; end < jobs.size() && !jobs[end].write; ++end) {
      points.insert(points.end(), std::make_move_iterator(jobs[end].points.begin()),
                    std::make_move_iterator(jobs[end].points.end()));
      for (const v1::Trial& trial : jobs[end].trials) newest[trial.id()] = &trial;
    }
    std::vector<const v1::Trial*> trials;
    trials.reserve(newest.size());
    for (const auto& [id, trial] : newest) trials.push_back(trial);
    const absl::Status status = inner_->SaveMetrics(points, trials);
    for (; i < end; ++i) results[jobs[i].ticket] = status;
  }
  return results;
}

absl::Status OrderedStore::CreateExperiment(const v1::Experiment& experiment) {
  return Run([&] { return inner_->CreateExperiment(experiment); });
}

absl::Status OrderedStore::SaveTrial(const v1::Trial& trial,
                                     const v1::TrialTransition* transition) {
  return Run([&] { return inner_->SaveTrial(trial, transition); });
}

absl::Status OrderedStore::SaveTrials(const std::vector<const v1::Trial*>& trials) {
  return Run([&] { return inner_->SaveTrials(trials); });
}

absl::Status OrderedStore::SaveMetrics(const std::vector<v1::MetricPoint>& points,
                                       const std::vector<const v1::Trial*>& trials) {
  return Run([&] { return inner_->SaveMetrics(points, trials); });
}

absl::Status OrderedStore::SaveSummary(const std::string& trial_id,
                                       const v1::TrainerSummary& summary) {
  return Run([&] { return inner_->SaveSummary(trial_id, summary); });
}

absl::Status OrderedStore::AppendLogs(const std::vector<v1::LogChunk>& chunks) {
  // Log rows are append-only and never overtake a trial row: no place in the queue needed.
  return inner_->AppendLogs(chunks);
}

absl::Status OrderedStore::DownsampleMetrics(const std::string& trial_id,
                                             int max_points_per_name) {
  return inner_->DownsampleMetrics(trial_id, max_points_per_name);
}

}  // namespace gauntlet
