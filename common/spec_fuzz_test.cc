// A bounded mutation fuzzer over what the coordinator does with a user's YAML: parse, validate
// and expand (ParseExperimentSpecYaml + ExpandTrials), and what a trainer does with its spec
// (ParseTrialSpecYaml). Seeds: every spec in tests/testdata/specs and configs/, plus generated
// hostile inputs too large to keep as files. It runs for GAUNTLET_FUZZ_SECONDS (default 20) and
// checks, for every input: no crash, OK or INVALID_ARGUMENT only, a non-empty message of bounded
// size, and bounded time. libFuzzer (clang -fsanitize=fuzzer) cannot be wired into this Bazel
// 4.2.3 gcc toolchain cleanly, so the driver is our own; FuzzOneInput is libFuzzer-shaped.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/spec_yaml.h"
#include "common/trial_expansion.h"

namespace gauntlet {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxMessageBytes = 2048;

// One input through every entry point; returns a description of the broken invariant or "".
std::string FuzzOneInput(const std::string& input) {
  for (int entry = 0; entry < 2; ++entry) {
    absl::Status status;
    if (entry == 0) {
      absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(input);
      status = spec.status();
      if (spec.ok()) status = ExpandTrials(*spec).status();
    } else {
      status = ParseTrialSpecYaml(input).status();
    }
    if (status.ok()) continue;
    if (status.code() != absl::StatusCode::kInvalidArgument) {
      return absl::StrCat("entry ", entry, ": code ", absl::StatusCodeToString(status.code()),
                          ": ", status.message().substr(0, 200));
    }
    if (status.message().empty()) return absl::StrCat("entry ", entry, ": empty message");
    if (status.message().size() > kMaxMessageBytes) {
      return absl::StrCat("entry ", entry, ": message of ", status.message().size(), " bytes");
    }
  }
  return "";
}

fs::path RunfilesRoot() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return fs::path(srcdir != nullptr ? srcdir : ".") / (workspace != nullptr ? workspace : "");
}

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  for (const char* dir : {"tests/testdata/specs/valid", "tests/testdata/specs/invalid", "configs"}) {
    if (!fs::exists(RunfilesRoot() / dir)) continue;
    for (const auto& entry : fs::directory_iterator(RunfilesRoot() / dir)) {
      if (entry.path().extension() != ".yaml") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      seeds.push_back(text.str());
    }
  }
  const std::string tail =
      "data: {path: x}\nbudget: {steps: 10}\nvariants: [{name: a, model: {arch: standard}}]\n";
  // The hostile cases of issue 11 that are too big for files.
  seeds.push_back(absl::StrCat("name: ", std::string(3 << 20, 'n'), "\n", tail));
  std::string anchor = absl::StrCat("description: &big ", std::string(60000, 'x'), "\n");
  std::string aliases = "variants:\n";
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&aliases, "  - {name: v", i, ", model: {arch: standard}, data: {path: *big}}\n");
  }
  seeds.push_back(absl::StrCat("name: amp\n", anchor, "budget: {steps: 10}\n", aliases));
  seeds.push_back(absl::StrCat("name: deep\ndata: ", std::string(5000, '['), "\n", tail));
  seeds.push_back(absl::StrCat("name: seeds\nseeds: [", std::string(200000, '1'), "]\n", tail));
  std::string many_seeds = "name: many\nseeds: [";
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&many_seeds, i, ",");
  seeds.push_back(absl::StrCat(many_seeds, "0]\n", tail));
  return seeds;
}

// A mutation of `input`: byte flips, YAML punctuation, duplicated or spliced spans.
std::string Mutate(const std::string& input, const std::vector<std::string>& seeds,
                   std::mt19937_64& rng) {
  static const char* kTokens[] = {"&a ", "*a", "!", "!!str ", "{", "}", "[", "]", ": ", "- ",
                                  "\n", "#", "\"", "'", "|", ">", "---\n", "...", "\xff",
                                  "\xc3\x28", "1e308", "-1", "nan", "~", "<<: *a", "exp-7"};
  std::string out = input;
  const int edits = 1 + rng() % 4;
  for (int e = 0; e < edits; ++e) {
    const size_t at = out.empty() ? 0 : rng() % (out.size() + 1);
    switch (rng() % 5) {
      case 0:
        if (!out.empty() && at < out.size()) out[at] = static_cast<char>(rng());
        break;
      case 1:
        out.insert(at, kTokens[rng() % (sizeof(kTokens) / sizeof(kTokens[0]))]);
        break;
      case 2:
        if (at < out.size()) out.erase(at, 1 + rng() % std::min<size_t>(16, out.size() - at));
        break;
      case 3: {  // duplicate a span
        if (out.empty()) break;
        const size_t from = rng() % out.size();
        const size_t len = 1 + rng() % std::min<size_t>(64, out.size() - from);
        if (out.size() < (1 << 20)) out.insert(at, out.substr(from, len));
        break;
      }
      default: {  // splice in a piece of another seed
        const std::string& other = seeds[rng() % seeds.size()];
        if (other.empty()) break;
        const size_t from = rng() % other.size();
        out.insert(at, other.substr(from, 1 + rng() % std::min<size_t>(128, other.size() - from)));
      }
    }
  }
  return out;
}

TEST(SpecFuzzTest, ParseValidateExpandAreBoundedOnHostileAndMutatedInput) {
  const std::vector<std::string> seeds = Seeds();
  ASSERT_GT(seeds.size(), 40u) << "seed corpus not found under " << RunfilesRoot();
  const char* env = std::getenv("GAUNTLET_FUZZ_SECONDS");
  const double budget = env != nullptr ? std::atof(env) : 20.0;
  std::mt19937_64 rng(env != nullptr && std::getenv("GAUNTLET_FUZZ_SEED")
                          ? std::strtoull(std::getenv("GAUNTLET_FUZZ_SEED"), nullptr, 10)
                          : 20261130);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t runs = 0;
  double slowest = 0;
  auto run = [&](const std::string& input) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string broken = FuzzOneInput(input);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    slowest = std::max(slowest, seconds);
    ++runs;
    // A hang detector, not a speed target: real inputs take milliseconds.
    EXPECT_LT(seconds, 10.0) << "input of " << input.size() << " bytes";
    EXPECT_EQ(broken, "") << "input (first 300 bytes): " << input.substr(0, 300);
    return broken.empty();
  };
  for (const std::string& seed : seeds) {
    if (!run(seed)) return;
  }
  while (elapsed() < budget) {
    if (!run(Mutate(seeds[rng() % seeds.size()], seeds, rng))) return;
  }
  std::cout << "spec fuzz: " << runs << " inputs in " << elapsed() << " s, slowest "
            << slowest * 1e3 << " ms" << std::endl;
}

}  // namespace
}  // namespace gauntlet
