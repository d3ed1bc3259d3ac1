"""stage_images.sh stages a real binary with exactly the libraries it needs from outside glibc."""

import os
import subprocess
import unittest

from tests import testlib
from tests.deploy import deploylib

GLIBC = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux",
         "libstdc++.so", "libgcc_s.so")


def stage(dest, *binaries):
    return subprocess.run(["bash", deploylib.runfile("deploy/stage_images.sh"), "stage-binaries",
                           dest, *binaries], capture_output=True, text=True, timeout=120)


class StageImagesTest(unittest.TestCase):

    def test_coordinator_context_is_self_contained(self):
        dest = os.path.join(testlib.tmpdir(), "coordinator")
        result = stage(dest, testlib.binary("server/coordinator"))
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(["coordinator"], os.listdir(os.path.join(dest, "bin")))
        libs = os.listdir(os.path.join(dest, "lib"))
        self.assertTrue(any(name.startswith("libgrpc++.so") for name in libs), libs)
        self.assertFalse([name for name in libs if name.startswith(GLIBC)])
        for name in libs:
            self.assertFalse(os.path.islink(os.path.join(dest, "lib", name)), name)
        # With only the staged folder added, every non-glibc library resolves inside it.
        ldd = subprocess.run(["ldd", os.path.join(dest, "bin", "coordinator")],
                             env={"LD_LIBRARY_PATH": os.path.join(dest, "lib")},
                             capture_output=True, text=True, check=True).stdout
        self.assertNotIn("not found", ldd)
        for line in ldd.splitlines():
            if "=>" in line and not line.strip().startswith(GLIBC):
                self.assertIn(os.path.join(dest, "lib"), line)

    def test_rejects_a_missing_binary(self):
        dest = testlib.tmpdir()
        result = stage(dest, os.path.join(dest, "no-such-binary"))
        self.assertNotEqual(0, result.returncode)
        self.assertIn("no-such-binary is not an executable", result.stderr)


if __name__ == "__main__":
    unittest.main()
