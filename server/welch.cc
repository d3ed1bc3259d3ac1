#include "server/welch.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>

namespace gauntlet {
namespace {

void MeanVar(const std::vector<double>& x, double* mean, double* var) {
  *mean = 0;
  for (double v : x) *mean += v;
  *mean /= static_cast<double>(x.size());
  *var = 0;
  if (x.size() < 2) return;
  for (double v : x) *var += (v - *mean) * (v - *mean);
  *var /= static_cast<double>(x.size() - 1);
}

}  // namespace

WelchResult WelchTTest(const std::vector<double>& a, const std::vector<double>& b,
                       double confidence) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  WelchResult r;
  r.n_a = static_cast<int>(a.size());
  r.n_b = static_cast<int>(b.size());
  r.diff = r.ci_low = r.ci_high = r.t = r.df = r.p_value = kNaN;
  if (a.empty() || b.empty()) return r;
  double mean_a, var_a, mean_b, var_b;
  MeanVar(a, &mean_a, &var_a);
  MeanVar(b, &mean_b, &var_b);
  r.diff = mean_a - mean_b;
  if (a.size() < 2 || b.size() < 2) return r;
  r.defined = true;
  const double va = var_a / r.n_a, vb = var_b / r.n_b;
  const double se = std::sqrt(va + vb);
  if (se == 0) {
    r.t = r.diff == 0 ? 0 : std::copysign(std::numeric_limits<double>::infinity(), r.diff);
    r.df = r.n_a + r.n_b - 2;
    r.p_value = r.diff == 0 ? 1 : 0;
    r.ci_low = r.ci_high = r.diff;
    return r;
  }
  r.t = r.diff / se;
  r.df = (va + vb) * (va + vb) / (va * va / (r.n_a - 1) + vb * vb / (r.n_b - 1));
  const boost::math::students_t dist(r.df);
  r.p_value = 2 * boost::math::cdf(boost::math::complement(dist, std::fabs(r.t)));
  const double q = boost::math::quantile(boost::math::complement(dist, (1 - confidence) / 2));
  r.ci_low = r.diff - q * se;
  r.ci_high = r.diff + q * se;
  return r;
}

}  // namespace gauntlet
