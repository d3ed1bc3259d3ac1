#!/usr/bin/env python3
"""A small hadolint-style checker for Gauntlet's Dockerfiles.

There is no Docker engine (and no hadolint binary) on the build machines, so the image files are
checked statically against the rules our images rely on. Usage:

    python3 deploy/tools/dockerfile_lint.py deploy/docker/*.Dockerfile

Prints one `path:line: RULE message` per finding and exits 1 when there is any.
"""

import json
import re
import shlex
import sys
from dataclasses import dataclass, field

# Tools that must not run (package managers) or be installed (compilers) in the final stage.
PACKAGE_MANAGERS = ("apt-get", "apt", "aptitude", "dpkg", "yum", "dnf", "apk", "pip", "pip3",
                    "conda", "npm")
BUILD_TOOLS = ("gcc", "g++", "cc", "c++", "clang", "clang++", "make", "cmake", "ninja", "bazel",
               "nvcc", "build-essential", "git", "curl", "wget")
ROOT_USERS = ("root", "0")
# A pinned tag names a version: digits with dots ("12.11", "13.0.0-runtime"), a date, or a digest.
PINNED_TAG = re.compile(r"\d+\.\d+|\d{8}")


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str
    flags: dict = field(default_factory=dict)


@dataclass
class Stage:
    index: int
    name: str
    image: str
    line: int
    instructions: list = field(default_factory=list)


@dataclass
class Finding:
    line: int
    rule: str
    message: str


def parse(text):
    """Splits a Dockerfile into instructions, joining backslash continuations."""
    instructions = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # Comment lines inside a continuation are dropped by Docker too.
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        keyword, _, rest = pending.partition(" ")
        instruction = Instruction(start, keyword.upper(), rest.strip())
        while instruction.args.startswith("--"):
            flag, _, remainder = instruction.args.partition(" ")
            name, _, value = flag[2:].partition("=")
            instruction.flags[name] = value
            instruction.args = remainder.strip()
        instructions.append(instruction)
        pending = ""
    return instructions


def stages(instructions):
    result = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            result.append(Stage(len(result), name, words[0] if words else "", instruction.line))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def _commands(shell_text):
    """The program names a RUN executes: the first word of each && / ; / | separated command."""
    names = []
    for part in re.split(r"&&|\|\||;|\|", shell_text):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and ("=" in words[0] or words[0] in ("sudo", "env", "exec")):
            words = words[1:]  # Skip VAR=value prefixes and wrappers.
        if words:
            names.append((words[0].rsplit("/", 1)[-1], words))
    return names


def _is_exec_form(args):
    try:
        value = json.loads(args)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def lint(text):
    findings = []
    instructions = parse(text)
    all_stages = stages(instructions)
    if not all_stages:
        return [Finding(1, "GL001", "no FROM instruction")]
    if len(all_stages) < 2:
        findings.append(Finding(all_stages[0].line, "GL002",
                                "single-stage build: build or fetch in a stage of its own"))

    names = {}
    for stage in all_stages:
        image = stage.image
        if "@sha256:" not in image:
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if image in names:
                pass  # FROM an earlier stage is pinned by that stage.
            elif not tag:
                findings.append(Finding(stage.line, "GL003", f"base image {image} has no tag"))
            elif tag == "latest" or not PINNED_TAG.search(tag):
                findings.append(Finding(stage.line, "GL003",
                                        f"base image {image} is not pinned to a version"))
        if stage.name:
            if stage.name in names:
                findings.append(Finding(stage.line, "GL004",
                                        f"stage name {stage.name} is used twice"))
            names[stage.name] = stage.index

        for instruction in stage.instructions:
            source = instruction.flags.get("from")
            if instruction.keyword == "COPY" and source is not None:
                known = source in names or (source.isdigit() and int(source) < stage.index)
                if not known or names.get(source) == stage.index:
                    findings.append(Finding(instruction.line, "GL005",
                                            f"COPY --from={source} names no earlier stage"))
            if instruction.keyword == "ADD" and re.search(r"https?://", instruction.args):
                findings.append(Finding(instruction.line, "GL006",
                                        "ADD of a URL: fetch in a build stage with a checksum"))
            if instruction.keyword == "WORKDIR" and not instruction.args.startswith("/"):
                findings.append(Finding(instruction.line, "GL007",
                                        "WORKDIR must be an absolute path"))
            if instruction.keyword == "RUN":
                for name, words in _commands(instruction.args):
                    if name in ("pip", "pip3") and "install" in words:
                        packages = [w for w in words[words.index("install") + 1:]
                                    if not w.startswith("-") and "/" not in w]
                        for package in packages:
                            if "==" not in package:
                                findings.append(Finding(instruction.line, "GL008",
                                                        f"pip package {package} is not pinned"))
                    if name == "apt-get" and "install" in words:
                        if "--no-install-recommends" not in words:
                            findings.append(Finding(instruction.line, "GL009",
                                                    "apt-get install without "
                                                    "--no-install-recommends"))
                        if "/var/lib/apt/lists" not in instruction.args:
                            findings.append(Finding(instruction.line, "GL009",
                                                    "apt lists not removed in the same RUN"))
                    if name == "sudo" or instruction.args.lstrip().startswith("sudo "):
                        findings.append(Finding(instruction.line, "GL010", "sudo in RUN"))

    final = all_stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        findings.append(Finding(final.line, "GL011", "final stage sets no USER (runs as root)"))
    elif users[-1].args.split(":")[0] in ROOT_USERS:
        findings.append(Finding(users[-1].line, "GL011", "final stage runs as root"))
    checks = [i for i in final.instructions if i.keyword == "HEALTHCHECK"]
    if not checks:
        findings.append(Finding(final.line, "GL012", "final stage has no HEALTHCHECK"))
    elif checks[-1].args.upper().startswith("NONE"):
        findings.append(Finding(checks[-1].line, "GL012", "HEALTHCHECK NONE in final stage"))
    for instruction in final.instructions:
        if instruction.keyword == "RUN":
            for name, words in _commands(instruction.args):
                if name in PACKAGE_MANAGERS:
                    findings.append(Finding(instruction.line, "GL013",
                                            f"{name} runs in the final stage"))
                if name in BUILD_TOOLS or any(w in BUILD_TOOLS for w in words[1:]
                                              if name in PACKAGE_MANAGERS):
                    findings.append(Finding(instruction.line, "GL014",
                                            f"build tool {name} in the final stage"))
        if instruction.keyword in ("ENTRYPOINT", "CMD") and not _is_exec_form(instruction.args):
            findings.append(Finding(instruction.line, "GL015",
                                    f"{instruction.keyword} is not in exec (JSON) form"))
    if not any(i.keyword == "ENTRYPOINT" for i in final.instructions):
        findings.append(Finding(final.line, "GL016", "final stage has no ENTRYPOINT"))
    return sorted(findings, key=lambda f: (f.line, f.rule))


def main(paths):
    failed = False
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for finding in lint(f.read()):
                failed = True
                print(f"{path}:{finding.line}: {finding.rule} {finding.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
