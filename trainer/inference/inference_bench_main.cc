// Inference speed per architecture through the KV cache: prefill latency at each --contexts
// (batch 1), decode tokens/s at each --batches after a --decode_context-token prompt, KV-cache
// bytes per token (measured, and the formula of common/model_config.h) and peak device memory.
// Random weights and tokens: speed does not depend on them. Prints one markdown row per arch and
// with --json_out writes them as a JSON list.
//
// The model's window (seq_len) is raised to fit the longest context, which only extends the RoPE
// table. bf16 casts the parameters (and so activations and the cache) to bfloat16, as a
// deployment would.
//
//   bazel run -c opt --config=cuda //trainer/inference:inference_bench_main -- \
//       --archs=standard,hybrid --size=seed --precision=bf16
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/model_config.h"
#include "gauntlet/v1/spec.pb.h"
#include "trainer/inference/inference_bench.h"
#include "trainer/models/registry.h"
#include "common/clock.h"

ABSL_FLAG(std::string, archs, "standard,worker,sparse_depth,hybrid", "Comma-separated archs");
ABSL_FLAG(std::string, size, "seed", "Named model size");
ABSL_FLAG(int, vocab_size, 65, "Vocabulary (65: TinyShakespeare's characters)");
ABSL_FLAG(std::string, contexts, "256,1024,4096", "Prefill lengths to time");
ABSL_FLAG(std::string, batches, "1,32", "Decode batch sizes to time");
ABSL_FLAG(int, decode_context, 256, "Prompt length before the timed decode steps");
ABSL_FLAG(int, decode_steps, 64, "Timed decode steps per run");
ABSL_FLAG(bool, static_decode, false,
          "Time the shape-static decode step (DecodeStepStatic, eager) instead of DecodeStep");
ABSL_FLAG(int, warmup, 1, "Untimed runs of each measurement");
ABSL_FLAG(int, repeats, 3, "Timed runs of each measurement (median reported)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda");
ABSL_FLAG(std::string, precision, "auto", "auto (bf16 on GPU, fp32 on CPU), fp32 or bf16");
ABSL_FLAG(std::string, json_out, "", "Also write the rows here as JSON");

namespace gauntlet {
namespace {

bool ParseList(const std::string& flag, const std::string& text, std::vector<int64_t>& out) {
  for (const absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(part, &value)) {
      std::cerr << "error: --" << flag << ": '" << part << "' is not an integer\n";
      return false;
    }
    out.push_back(value);
  }
  return true;
}

int Main() {
  InferenceBenchOptions options;
  options.prefill_contexts.clear();
  options.decode_batches.clear();
  if (!ParseList("contexts", absl::GetFlag(FLAGS_contexts), options.prefill_contexts) ||
      !ParseList("batches", absl::GetFlag(FLAGS_batches), options.decode_batches)) {
    return 2;
  }
  options.decode_context = absl::GetFlag(FLAGS_decode_context);
  options.decode_steps = absl::GetFlag(FLAGS_decode_steps);
  options.static_decode = absl::GetFlag(FLAGS_static_decode);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.repeats = absl::GetFlag(FLAGS_repeats);

  const std::string device_flag = absl::GetFlag(FLAGS_device);
  torch::Device device(torch::kCPU);
  if (device_flag == "cuda" || (device_flag == "auto" && torch::cuda::is_available())) {
    device = torch::Device(torch::kCUDA, 0);
  } else if (device_flag != "cpu" && device_flag != "auto") {
    std::cerr << "error: --device: '" << device_flag << "' is not auto, cpu or cuda\n";
    return 2;
  }
  std::string precision = absl::GetFlag(FLAGS_precision);
  if (precision == "auto") precision = device.is_cuda() ? "bf16" : "fp32";
  if (precision != "fp32" && precision != "bf16") {
    std::cerr << "error: --precision: '" << precision << "' is not auto, fp32 or bf16\n";
    return 2;
  }
  const int64_t window = std::max<int64_t>(
      options.decode_context + options.decode_steps,
      options.prefill_contexts.empty()
          ? 1
          : *std::max_element(options.prefill_contexts.begin(), options.prefill_contexts.end()));
  const int64_t value_bytes = precision == "bf16" ? 2 : 4;

  std::vector<std::string> json_rows;
  std::cout << absl::StrFormat(
      "| arch | size | precision | %s | %s | KV bytes/token (formula) | peak MiB |\n",
      absl::StrJoin(
          options.prefill_contexts, " | ",
          [](std::string* out, int64_t c) { absl::StrAppend(out, "prefill ", c, " ms"); }),
      absl::StrJoin(options.decode_batches, " | ", [](std::string* out, int64_t b) {
        absl::StrAppend(out, "decode b", b, " tok/s");
      }));
  for (const absl::string_view arch : absl::StrSplit(absl::GetFlag(FLAGS_archs), ',')) {
    v1::ModelSpec spec;
    spec.set_arch(std::string(arch));
    spec.set_size(absl::GetFlag(FLAGS_size));
    spec.set_seq_len(static_cast<int32_t>(window));
    spec.set_dropout(0.0);
    absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec, absl::GetFlag(FLAGS_vocab_size));
    if (!config.ok()) {
      std::cerr << "error: " << arch << ": " << config.status().message() << "\n";
      return 2;
    }
    torch::manual_seed(0);
    absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(*config);
    if (!model.ok()) {
      std::cerr << "error: " << arch << ": " << model.status().message() << "\n";
      return 2;
    }
    (*model)->to(device);
    if (precision == "bf16") {
      // Parameters only: the RoPE buffers stay float32, so long-context angles keep their
      // precision (the tables are rounded to bf16 once, as under training's autocast).
      torch::NoGradGuard no_grad;
      for (torch::Tensor& p : (*model)->parameters()) p.set_data(p.data().to(torch::kBFloat16));
    }
    MonotonicClock clock;
    absl::StatusOr<InferenceBenchResult> r = RunInferenceBench(**model, options, device, clock);
    if (!r.ok()) {
      std::cerr << "error: " << arch << ": " << r.status().message() << "\n";
      return 2;
    }
    const double formula =
        KvCacheBytesPerToken(*config, options.decode_context + options.decode_steps, value_bytes);
    std::vector<std::string> cells;
    std::vector<std::string> prefill_json, decode_json;
    for (const PrefillTiming& p : r->prefill) {
      cells.push_back(absl::StrFormat("%.2f", p.ms));
      prefill_json.push_back(absl::StrFormat("{\"context\": %d, \"ms\": %.4f}", p.context, p.ms));
    }
    for (const DecodeTiming& d : r->decode) {
      cells.push_back(absl::StrFormat("%.0f", d.tokens_per_s));
      decode_json.push_back(
          absl::StrFormat("{\"batch\": %d, \"ms_per_step\": %.4f, \"tokens_per_s\": %.2f}", d.batch,
                          d.ms_per_step, d.tokens_per_s));
    }
    const double peak_mib = static_cast<double>(r->peak_memory_bytes) / (1 << 20);
    std::cout << absl::StrFormat("| %s | %s | %s | %s | %.0f (%.0f) | %s |\n", arch, config->size,
                                 precision, absl::StrJoin(cells, " | "),
                                 r->kv_cache_bytes_per_token, formula,
                                 device.is_cuda() ? absl::StrFormat("%.1f", peak_mib) : "n/a");
    json_rows.push_back(absl::StrFormat(
        "{\"arch\": \"%s\", \"size\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\", "
        "\"prefill\": [%s], \"decode\": [%s], \"kv_cache_bytes_per_token\": %.2f, "
        "\"kv_cache_bytes_per_token_formula\": %.2f, \"parameter_bytes\": %d, "
        "\"peak_memory_bytes\": %d}",
        arch, config->size, precision, device.str(), absl::StrJoin(prefill_json, ", "),
        absl::StrJoin(decode_json, ", "), r->kv_cache_bytes_per_token, formula, r->parameter_bytes,
        r->peak_memory_bytes));
  }
  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  if (!json_out.empty()) {
    std::ofstream out(json_out);
    out << "[\n  " << absl::StrJoin(json_rows, ",\n  ") << "\n]\n";
    if (!out) {
      std::cerr << "error: --json_out: cannot write " << json_out << "\n";
      return 2;
    }
  }
  return 0;
}

}  // namespace
}  // namespace gauntlet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gauntlet::Main();
}
