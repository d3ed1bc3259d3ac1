// Prints WelchTTest of two samples as JSON, for checking it against an independent implementation
// (tests/stats/welch_scipy_test.py compares with scipy):
//   welch_main 1.0,1.1,0.9 1.2,1.3,1.25
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/welch.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: welch_main A1,A2,... B1,B2,...\n");
    return 2;
  }
  std::vector<double> samples[2];
  for (int s = 0; s < 2; ++s) {
    for (absl::string_view part : absl::StrSplit(argv[s + 1], ',', absl::SkipEmpty())) {
      double v;
      if (!absl::SimpleAtod(part, &v)) {
        std::fprintf(stderr, "not a number: %s\n", std::string(part).c_str());
        return 2;
      }
      samples[s].push_back(v);
    }
  }
  const gauntlet::WelchResult r = gauntlet::WelchTTest(samples[0], samples[1]);
  // JSON has no NaN/Infinity literals; Python's json module reads these spellings.
  const auto num = [](double v) {
    if (std::isnan(v)) return std::string("NaN");
    if (std::isinf(v)) return std::string(v > 0 ? "Infinity" : "-Infinity");
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.17g", v);
    return std::string(buffer);
  };
  std::printf("{\"diff\": %s, \"ci_low\": %s, \"ci_high\": %s, \"t\": %s, \"df\": %s, "
              "\"p_value\": %s, \"defined\": %s}\n",
              num(r.diff).c_str(), num(r.ci_low).c_str(), num(r.ci_high).c_str(),
              num(r.t).c_str(), num(r.df).c_str(), num(r.p_value).c_str(),
              r.defined ? "true" : "false");
  return 0;
}
