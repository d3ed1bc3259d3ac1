// Runs every spec case under tests/testdata/specs and every experiment in configs/.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/spec_yaml.h"
#include "common/trial_expansion.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

namespace fs = std::filesystem;

fs::path RunfilesRoot() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return fs::path(srcdir != nullptr ? srcdir : ".") /
         (workspace != nullptr ? workspace : "gauntlet");
}

std::vector<fs::path> YamlFiles(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(RunfilesRoot() / dir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The text after "# <key>: " on the first line, or "" when the first line is something else.
std::string FirstLineDirective(const std::string& text, const std::string& key) {
  const std::string first_line = text.substr(0, text.find('\n'));
  absl::string_view rest(first_line);
  if (!absl::ConsumePrefix(&rest, absl::StrCat("# ", key, ": "))) return "";
  return std::string(rest);
}

bool IsTrialCase(const fs::path& path) {
  return absl::StartsWith(path.filename().string(), "trial_");
}

absl::Status Parse(const fs::path& path, const std::string& text, int64_t* trials) {
  if (IsTrialCase(path)) {
    *trials = 1;
    return ParseTrialSpecYaml(text).status();
  }
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(text);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::vector<ExpandedTrial>> expanded = ExpandTrials(*spec);
  if (!expanded.ok()) return expanded.status();
  *trials = static_cast<int64_t>(expanded->size());
  return absl::OkStatus();
}

TEST(SpecTestdataTest, ValidCasesParseAndExpandToTheStatedTrialCount) {
  const std::vector<fs::path> files = YamlFiles("tests/testdata/specs/valid");
  ASSERT_GE(files.size(), 5u) << "test data missing from the runfiles";
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.filename().string());
    const std::string text = ReadFile(path);
    int64_t expected_trials = 0;
    ASSERT_TRUE(absl::SimpleAtoi(FirstLineDirective(text, "trials"), &expected_trials))
        << "first line must be '# trials: N'";
    int64_t trials = 0;
    absl::Status status = Parse(path, text, &trials);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(trials, expected_trials);
  }
}

TEST(SpecTestdataTest, InvalidCasesFailWithTheStatedError) {
  const std::vector<fs::path> files = YamlFiles("tests/testdata/specs/invalid");
  ASSERT_GE(files.size(), 20u) << "test data missing from the runfiles";
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.filename().string());
    const std::string text = ReadFile(path);
    const std::string expected = FirstLineDirective(text, "error");
    ASSERT_FALSE(expected.empty()) << "first line must be '# error: <message>'";
    int64_t trials = 0;
    absl::Status status = Parse(path, text, &trials);
    ASSERT_FALSE(status.ok()) << "parsed, but must fail with: " << expected;
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(status.message(), expected))
        << "\n  expected: " << expected << "\n  actual:   " << status.message();
  }
}

TEST(SpecTestdataTest, EveryShippedConfigParses) {
  const std::vector<fs::path> files = YamlFiles("configs");
  ASSERT_GE(files.size(), 4u);
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.filename().string());
    int64_t trials = 0;
    absl::Status status = Parse(path, ReadFile(path), &trials);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_GT(trials, 0);
  }
}

}  // namespace
}  // namespace gauntlet
