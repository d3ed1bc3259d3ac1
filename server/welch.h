#ifndef GAUNTLET_SERVER_WELCH_H_
#define GAUNTLET_SERVER_WELCH_H_

// Welch's unequal-variance two-sample t-test, for "is this variant's loss really different from
// the baseline's": the difference of means, its confidence interval and a two-sided p-value.

#include <vector>

namespace gauntlet {

struct WelchResult {
  int n_a = 0, n_b = 0;
  double diff = 0;      // mean(a) - mean(b); NaN when either sample is empty
  double ci_low = 0;    // confidence interval of diff; NaN when undefined (n < 2 on a side)
  double ci_high = 0;
  double t = 0;         // NaN when undefined
  double df = 0;        // Welch-Satterthwaite degrees of freedom
  double p_value = 0;   // two-sided; NaN when undefined
  bool defined = false; // both samples have >= 2 values
};

// `confidence` in (0, 1), e.g. 0.95. With zero variance on both sides the difference is exact:
// p = 1 (CI [0, 0]) when the means agree, else p = 0 (CI the point diff).
WelchResult WelchTTest(const std::vector<double>& a, const std::vector<double>& b,
                       double confidence = 0.95);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WELCH_H_
