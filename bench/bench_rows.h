#ifndef GAUNTLET_BENCH_BENCH_ROWS_H_
#define GAUNTLET_BENCH_BENCH_ROWS_H_

// trainer_bench's files. One result per model, written as the JSON rows bench/reference/report.py
// merges with the PyTorch references' rows (keys documented there and in docs/BENCHMARKS.md).
// Torch-free: LibTorch's bundled protobuf headers would shadow the system ones used for the JSON
// here.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

struct BenchRow {
  std::string model;  // e.g. "seed-worker", "gpt2-small"
  std::string arch, size;
  std::string error;  // non-empty: the run failed, figures are absent
  std::string gpu;    // device name, e.g. "NVIDIA H200" or "cpu"
  std::string precision;
  double tokens_per_s = 0;
  std::vector<double> tokens_per_s_runs;  // every timed run; tokens_per_s is their median
  double mfu = 0;
  double flops_per_token = 0;  // LanguageModelImpl::TrainingFlopsPerToken at seq_len
  double peak_flops = 0;       // dense bf16 peak of one GPU; 0 = unknown (MFU then absent)
  double step_ms = 0;
  double peak_memory_gib = 0;
  int64_t steps = 0;  // per timed run
  int64_t batch = 0, seq_len = 0, vocab_size = 0, params = 0;
  int64_t d_model = 0, n_layers = 0, n_heads = 0, d_ff = 0;
  double dropout = 0;
};

// A JSON list with one object per row ("impl": "gauntlet"); unknown figures are null.
std::string BenchRowsToJson(const std::vector<BenchRow>& rows);

absl::Status WriteBenchRows(const std::string& path, const std::vector<BenchRow>& rows);

// The first TrainerStarted event in an events file (JSON lines, EventWriter's format): what the
// run itself counted (FLOPs per token, device, vocabulary).
absl::StatusOr<v1::TrainerStarted> ReadTrainerStarted(const std::string& events_path);

}  // namespace gauntlet

#endif  // GAUNTLET_BENCH_BENCH_ROWS_H_
