"""The coordinator's Welch t-test (server/welch.cc, used by `gauntlet compare`) against scipy:
difference of means, 95% confidence interval, degrees of freedom and two-sided p-value on
random samples of the sizes compare sees (3 to 10 seeds), plus the degenerate cases."""

import json
import random
import subprocess
import unittest

import scipy.stats

from tests import testlib


def welch(a, b):
    out = subprocess.run(
        [testlib.binary("server/welch_main"), ",".join(repr(x) for x in a),
         ",".join(repr(x) for x in b)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class WelchScipyTest(unittest.TestCase):

    def test_matches_scipy_on_random_samples(self):
        rng = random.Random(7)
        for n_a, n_b, shift in [(3, 3, 0.0), (3, 3, 0.05), (3, 5, 0.02), (5, 3, -0.1),
                                (10, 4, 0.01), (4, 10, 0.0), (8, 8, 0.003), (3, 7, 0.5)]:
            a = [3.2 + shift + rng.gauss(0, 0.02 * rng.uniform(0.5, 2)) for _ in range(n_a)]
            b = [3.2 + rng.gauss(0, 0.02 * rng.uniform(0.5, 2)) for _ in range(n_b)]
            with self.subTest(n_a=n_a, n_b=n_b, shift=shift):
                got = welch(a, b)
                ref = scipy.stats.ttest_ind(a, b, equal_var=False)
                ci = ref.confidence_interval(confidence_level=0.95)
                self.assertTrue(got["defined"])
                self.assertAlmostEqual(got["diff"], sum(a) / n_a - sum(b) / n_b, places=12)
                self.assertAlmostEqual(got["t"], ref.statistic, places=9)
                self.assertAlmostEqual(got["df"], ref.df, places=9)
                self.assertAlmostEqual(got["p_value"], ref.pvalue, places=9)
                self.assertAlmostEqual(got["ci_low"], ci.low, places=9)
                self.assertAlmostEqual(got["ci_high"], ci.high, places=9)

    def test_small_p_values_keep_their_precision(self):
        a = [3.00, 3.01, 2.99, 3.005]
        b = [3.50, 3.52, 3.49, 3.51]
        got = welch(a, b)
        ref = scipy.stats.ttest_ind(a, b, equal_var=False)
        self.assertLess(ref.pvalue, 1e-6)
        self.assertAlmostEqual(got["p_value"] / ref.pvalue, 1.0, places=6)

    def test_too_few_values_are_undefined_not_invented(self):
        got = welch([3.1], [3.2, 3.3, 3.25])
        self.assertFalse(got["defined"])
        self.assertAlmostEqual(got["diff"], 3.1 - 3.25, places=12)
        for key in ("p_value", "ci_low", "ci_high", "t"):
            self.assertNotEqual(got[key], got[key], key)  # NaN

    def test_zero_variance(self):
        self.assertEqual(welch([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])["p_value"], 1.0)
        self.assertEqual(welch([2.0, 2.0, 2.0], [3.0, 3.0, 3.0])["p_value"], 0.0)


if __name__ == "__main__":
    unittest.main()
