"""The image files pass the Dockerfile rules, and each rule catches what it is for."""

import unittest

from deploy.tools import dockerfile_lint
from tests.deploy import deploylib

GOOD = """\
FROM debian:12.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
FROM debian:12.11-slim
COPY --from=build /etc/ssl /etc/ssl
USER 10001:10001
HEALTHCHECK CMD ["/bin/true"]
ENTRYPOINT ["/bin/app"]
"""


def rules(text):
    return [(f.rule, f.line) for f in dockerfile_lint.lint(text)]


class RealDockerfilesTest(unittest.TestCase):

    def test_images_pass(self):
        for name in ("coordinator", "worker"):
            with open(deploylib.runfile(f"deploy/docker/{name}.Dockerfile")) as f:
                findings = dockerfile_lint.lint(f.read())
            self.assertEqual([], [f"{f.line}: {f.rule} {f.message}" for f in findings], name)


class RulesTest(unittest.TestCase):

    def test_good_file_is_clean(self):
        self.assertEqual([], rules(GOOD))

    def test_unpinned_and_latest_base(self):
        self.assertIn(("GL003", 1), rules(GOOD.replace("debian:12.11-slim AS", "debian AS")))
        self.assertIn(("GL003", 4), rules(GOOD.replace("FROM debian:12.11-slim\n",
                                                       "FROM debian:latest\n")))
        self.assertIn(("GL003", 4), rules(GOOD.replace("FROM debian:12.11-slim\n",
                                                       "FROM debian:bookworm-slim\n")))

    def test_digest_pin_accepted(self):
        digest = "debian@sha256:" + "a" * 64
        self.assertEqual([], rules(GOOD.replace("FROM debian:12.11-slim\n", f"FROM {digest}\n")))

    def test_root_or_missing_user(self):
        self.assertIn(("GL011", 6), rules(GOOD.replace("USER 10001:10001", "USER root")))
        self.assertIn(("GL011", 4), rules(GOOD.replace("USER 10001:10001\n", "")))

    def test_missing_healthcheck(self):
        self.assertIn(("GL012", 4), rules(GOOD.replace('HEALTHCHECK CMD ["/bin/true"]\n', "")))
        self.assertIn(("GL012", 7), rules(GOOD.replace('HEALTHCHECK CMD ["/bin/true"]',
                                                       "HEALTHCHECK NONE")))

    def test_package_manager_and_compiler_in_final_stage(self):
        text = GOOD.replace("USER 10001", "RUN apt-get install -y --no-install-recommends g++ "
                                          "&& rm -rf /var/lib/apt/lists/*\nUSER 10001")
        found = rules(text)
        self.assertIn(("GL013", 6), found)
        self.assertIn(("GL014", 6), found)
        self.assertIn(("GL014", 6), rules(GOOD.replace("USER 10001", "RUN make install\n"
                                                                     "USER 10001")))

    def test_copy_from_unknown_stage(self):
        self.assertIn(("GL005", 5), rules(GOOD.replace("--from=build", "--from=builder")))

    def test_apt_hygiene_in_build_stage(self):
        self.assertIn(("GL009", 2), rules(GOOD.replace(" --no-install-recommends", "")))
        self.assertIn(("GL009", 2), rules(GOOD.replace(" \\\n    && rm -rf /var/lib/apt/lists/*",
                                                       "")))

    def test_unpinned_pip(self):
        text = GOOD.replace("FROM debian:12.11-slim\n",
                            "RUN pip install torch numpy==1.26.4\nFROM debian:12.11-slim\n")
        self.assertEqual([("GL008", 4)], rules(text))

    def test_shell_form_entrypoint_and_single_stage(self):
        single = GOOD.split("FROM debian:12.11-slim\n", 1)[1].replace("COPY --from=build "
                                                                       "/etc/ssl /etc/ssl\n", "")
        found = rules("FROM debian:12.11-slim\n" + single.replace('["/bin/app"]', "/bin/app"))
        self.assertIn(("GL002", 1), found)
        self.assertIn(("GL015", 4), found)

    def test_continuation_lines_keep_first_line_number(self):
        text = GOOD.replace("USER 10001", "RUN true \\\n    && apt-get clean\nUSER 10001")
        self.assertIn(("GL013", 6), rules(text))


if __name__ == "__main__":
    unittest.main()
