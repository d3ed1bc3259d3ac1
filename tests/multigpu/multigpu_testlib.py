"""Runs a bench/*.sh script against the real binaries of this test's runfiles."""

import os
import subprocess

from tests import testlib

# A small generated corpus: tokenizing it is instant, and the tests need no shared data.
CORPUS = "".join(f"{i}: sphinx of black quartz, judge my vow; the five boxing wizards jump.\n"
                 for i in range(600))


def corpus(workdir):
    path = os.path.join(workdir, "corpus.txt")
    with open(path, "w") as f:
        f.write(CORPUS)
    return path


def run_script(name, args, workdir, timeout=110):
    env = dict(os.environ,
               GAUNTLET_TRAINER_BIN=testlib.binary("trainer/trainer"),
               GAUNTLET_WORKER_BIN=testlib.binary("worker/worker"),
               GAUNTLET_COORDINATOR_BIN=testlib.binary("server/coordinator"),
               GAUNTLET_GAUNTLET_BIN=testlib.binary("cli/gauntlet"),
               GAUNTLET_CACHE=os.path.join(workdir, "cache"))
    result = subprocess.run(
        ["bash", os.path.join(testlib.workspace_root(), "bench", name),
         "--data", corpus(workdir), "--work_dir", os.path.join(workdir, "run"),
         "--timeout", "90", *args],
        capture_output=True, text=True, env=env, timeout=timeout)
    print(result.stdout)
    print(result.stderr[-4000:])
    return result
