"""Attack every tool through every front end with hostile arguments, then kill batch runs: count what breaks.

One script, though long (a benchmark, not package code): the catalog of hostile values, the four front
ends' drivers and the report are kept together so that one command reproduces the committed table.

Usage (from the repository root; about 10 minutes of CPU, more wall time on a busy shared machine):

    nice -n 19 python eval/attack_tools.py --seed 12 \\
        --out-md eval/results/attack_tools.md --out-json eval/results/attack_tools.json

Options: ``--attempts-per-argument N`` (hostile values per tool argument, default 100), ``--kills N``
(kill -9 of `reposearcher run`, default 20; 0 skips the batch part), ``--kills-per-episode``,
``--swe-agent-attempts`` (bin-script calls, a sample), ``--front-ends toolbox,mcp,verl,swe-agent``,
``--keep`` (keep the temporary directory). Everything happens in one temporary directory, removed at the end:

1. A world: a small git repository with odd entries (a non-UTF-8 file name, ``c:colon.py``, a symlink to a
   directory outside the repository, a ``.py`` symlink to a file outside it, a symlink loop, FIFOs, a
   directory 300 levels deep) and, outside it, a sentinel directory whose file holds a random token (as
   Python identifiers, so an index that followed a symlink would serve it) beside files whose names hold
   a second token. The front ends run with a third token in their environment, and their working
   directory holds a file of the repository's layout that the repository lacks, with the first token.
2. Attempts: for every tool of every profile (``reposearcher_plugin.tools.profiles``) and every argument,
   ``--attempts-per-argument`` hostile values (a fixed catalog first, in a seeded order when cut, then
   seeded random mutations): ``../`` chains, absolute paths (the sentinel, /etc/passwd,
   /proc/self/environ), the outside symlinks and paths through them, NUL bytes, 300-byte names,
   surrogates and backslash escapes, Windows forms, ``~``, ``file://``, 1 MB strings, deep JSON, wrong
   JSON types, odd and huge integers; the call's other arguments hold ordinary values, so the hostile one
   reaches the code behind it. Plus, per tool, whole-argument attacks: non-mapping values, odd keys.
3. Front ends: ``ToolBox.call`` in this process (every attempt of every profile); the MCP server
   (``reposearcher mcp``, one server per base profile, through mcp's ``stdio_client`` and ``ClientSession``,
   plus ``localize``; what that client cannot encode, and malformed protocol lines, go as JSON-RPC lines
   of our own to a second server); the verl adapter (``RepoSearcherTool``: create -> execute -> release
   per call, as verl 0.9.1's agent loop does); the SWE-agent bundle's ``bin/`` scripts after its
   ``install.sh``, called through bash as SWE-agent renders a call (every value shell-quoted), a seeded
   sample since every call is a new process.
4. Judging each observation: a crash is an exception escaping the front end, a Python traceback in the
   observation, a dead MCP server, a call unanswered after ``CALL_TIMEOUT_S``, or a bin script exiting
   with a status other than 0/1/2; an escape is a sentinel token, /etc/passwd content or the environment
   token in an observation; a leak is the temporary directory's absolute path (repository, working
   directory, caches all live under it) or this package's install path in an observation when the call
   did not send it. ``internal`` counts calls answered by a catch-all handler (an exception inside a tool
   that the front end turned into a generic error): not a crash, but an unhandled case.
5. Batch: a clean ``reposearcher run`` (the offline default, ``--workers 2``) over 20 instances on three
   synthetic repositories (``--repos-dir``); then episodes: a fresh output, the run started and its whole
   process group killed (SIGKILL) at a seeded moment, started again on that output and killed again (up
   to ``--kills-per-episode`` times), then run to its end; each finished output is compared with the
   clean run's (rows lost, duplicated, differing; malformed lines).

Deterministic given ``--seed`` (the attempts, the world's names and tokens, the SWE-agent sample, the
kill moments); timings, and what a kill interrupts, depend on the machine. Progress goes to stderr; the
exit status is 1 when anything crashed, escaped, leaked or was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import random
import re
import resource
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import reposearcher_plugin  # noqa: E402
from reposearcher_plugin.tools.profiles import FINAL_TOOLS, PROFILES, ToolBox  # noqa: E402
from reposearcher_plugin.tools.spec import Param, ToolSpec  # noqa: E402

PACKAGE_DIR = str(Path(reposearcher_plugin.__file__).resolve().parent)
PATH_ARGUMENTS = frozenset({"file", "path", "file_name"})  # the arguments the tools resolve on disk
DEEP_LEVELS = 300
HUGE_INT = 10**4301 - 1  # 4,301 nines: one digit over what int() and str() convert by default
CALL_TIMEOUT_S = 120.0  # wall seconds: one call longer than this is a hang (the machine may be busy)
SWE_AGENT_COMMAND_LIMIT = 120_000  # bytes: Linux refuses one argv string over 128 KiB (MAX_ARG_STRLEN)
TRACEBACK = "Traceback (most recent call last)"
# what the front ends' catch-all handlers answer (profiles.ToolBox.call, session.ToolSession.call,
# mcp_server.ReposearcherService.call): an exception inside a tool turned into an error observation
CATCH_ALL = re.compile(r"failed on these arguments \(\w+\)|^Error: \w+ failed( \(\w+\)\.|: \w+)", re.M)
PASSWD_LINE = re.compile(r"^root:[^:\n]*:0:0:", re.M)
# ordinary values for the arguments a call holds besides the attacked one
BENIGN: dict[str, Any] = {
    "file": "pkg/core.py",
    "file_name": "pkg/core.py",
    "path": "pkg",
    "class_name": "Cart",
    "method_name": "total",
    "function_name": "helper",
    "func_name": "helper",
    "start_line": 1,
    "end_line": 8,
    "query": "cart total",
    "k": 3,
    "name": "helper",
    "locations": ["pkg/core.py::Cart.total"],
    "reason": "the total is wrong",
    "issue": "Cart.total returns a wrong sum: helper() ignores the quantity.",
    "depth": 2,
}
CORE_PY = '''"""The shop core."""


def helper(items):
    return sum(items)


class Cart:
    """A cart of items."""

    def total(self):
        return helper(self.items)
'''


def log(message: str) -> None:
    print(f"[attack] {message}", file=sys.stderr, flush=True)


# --- the world ----------------------------------------------------------------------------------------


@dataclass
class World:
    base: Path  # the temporary directory: everything below is the server's own, never to be shown
    repo: Path
    outside: Path  # the sentinel directory, beside the repository
    secret: Path
    cwd: Path  # the front ends' working directory
    token: str  # in the sentinel file (and the working directory's file)
    listing_token: str  # in the names of the sentinel directory's other files
    env_token: str  # in the front ends' environment (/proc/self/environ)

    def env(self) -> dict[str, str]:
        return {**os.environ, "REPOSEARCHER_ATTACK_TOKEN": self.env_token, "PYTHONPATH": str(ROOT)}

    def secrets(self) -> dict[str, str]:
        return {"sentinel token": self.token, "listing": self.listing_token, "environment": self.env_token}

    def private_paths(self) -> list[str]:
        paths = {str(self.base), os.path.realpath(self.base), PACKAGE_DIR}
        return sorted(paths, key=len, reverse=True)


def _git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=a", "-c", "user.email=a@a", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout


def commit_all(root: Path, message: str) -> str:
    if not (root / ".git").exists():
        _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", message)
    return _git(root, "rev-parse", "HEAD").strip()


def make_world(base: Path, rng: random.Random) -> World:
    """The attacked repository, the sentinel outside it and the front ends' working directory."""
    tag = "".join(rng.choices(string.ascii_lowercase, k=6))
    token, listing_token, env_token = (
        "".join(rng.choices(string.ascii_uppercase + string.digits, k=20)) for _ in range(3)
    )
    repo, outside, cwd = base / f"repo-{tag}", base / f"outside-{tag}", base / f"cwd-{tag}"
    outside.mkdir(parents=True)
    secret = outside / "secret.txt"
    secret.write_text(f"class Sentinel{token}:\n    def leak_{token}(self):\n        return '{token}'\n")
    for letter in "ab":
        (outside / f"listing_{listing_token}_{letter}.py").write_text(f"X_{listing_token} = 1\n")
    (cwd / "pkg").mkdir(parents=True)
    (cwd / "pkg" / "cwd_only.py").write_text(f"class CwdOnly{token}:\n    pass\n")
    (repo / "pkg" / "sub").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "core.py").write_text(CORE_PY)
    (repo / "pkg" / "sub" / "mod.py").write_text(
        "from pkg.core import helper\n\n\ndef use():\n    return helper([])\n"
    )
    (repo / "c:colon.py").write_text("def colon():\n    return ':'\n")
    with open(os.path.join(os.fsencode(repo / "pkg"), b"bad_\xff.py"), "wb") as handle:
        handle.write(b"class Odd:\n    def odd(self):\n        return 1\n")
    deep = repo / "deep" / Path(*(["d"] * DEEP_LEVELS))
    deep.mkdir(parents=True)
    (deep / "leaf.py").write_text("def leaf():\n    return 0\n")
    (repo / "link_out").symlink_to(outside)  # a directory outside, by its absolute path
    (repo / "pkg" / "leak.py").symlink_to(os.path.relpath(secret, repo / "pkg"))  # a file outside
    (repo / "loop_a").symlink_to("loop_b")
    (repo / "loop_b").symlink_to("loop_a")
    (repo / "pkg" / "link_in.py").symlink_to("core.py")  # an ordinary symlink inside
    commit_all(repo, "attacked")
    os.mkfifo(repo / "pipe.fifo")  # git keeps no FIFO: made after the commit, in the work tree
    os.mkfifo(repo / "pkg" / "fifo.py")
    return World(base, repo, outside, secret, cwd, token, listing_token, env_token)


# --- hostile values -----------------------------------------------------------------------------------


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def path_values(world: World) -> list[tuple[str, Any]]:
    """Values for the arguments the tools resolve on disk: every way out of the repository we know of."""
    to_secret = os.path.relpath(world.secret, world.repo)
    to_outside = os.path.relpath(world.outside, world.repo)
    absolute = str(world.secret)
    return [
        ("../ to the sentinel", to_secret),
        ("../ to the sentinel directory", to_outside),
        ("../ chain of 40 to the sentinel", "../" * 40 + absolute.lstrip("/")),
        ("../ after a real directory", f"pkg/../{to_secret}"),
        ("../ in the middle", f"pkg/sub/../../{to_secret}"),
        ("../ to /etc/passwd", "../" * 30 + "etc/passwd"),
        ("../ to /proc/self/environ", "../" * 30 + "proc/self/environ"),
        ("../ to the working directory", os.path.relpath(world.cwd / "pkg" / "cwd_only.py", world.repo)),
        ("absolute sentinel", absolute),
        ("absolute sentinel directory", str(world.outside)),
        ("absolute /etc/passwd", "/etc/passwd"),
        ("absolute /proc/self/environ", "/proc/self/environ"),
        ("absolute /proc/self/cwd", "/proc/self/cwd/pkg/cwd_only.py"),
        ("absolute path into the repository", str(world.repo / "pkg" / "core.py")),
        ("double slash absolute", "//etc/passwd"),
        ("a file only the working directory has", "pkg/cwd_only.py"),
        ("outside symlink", "link_out"),
        ("through the outside symlink", "link_out/secret.txt"),
        ("through the outside symlink, dotted", "./link_out/./secret.txt"),
        ("through the outside symlink, listing", "link_out/"),
        ("through the outside symlink and back", "link_out/../" + world.repo.name + "/pkg/core.py"),
        ("file symlink to the sentinel", "pkg/leak.py"),
        ("symlink loop", "loop_a"),
        ("through a symlink loop", "loop_a/x.py"),
        ("FIFO", "pipe.fifo"),
        ("FIFO named .py", "pkg/fifo.py"),
        ("deep directory", "deep/" + "d/" * DEEP_LEVELS + "leaf.py"),
        ("deep directory, dotdot out", "deep/" + "d/" * 10 + "../" * 12 + to_secret),
        ("NUL then ../", "pkg/core.py\x00../../etc/passwd"),
        ("NUL alone", "\x00"),
        ("300-byte name", "a" * 300 + ".py"),
        ("300-byte directory", "pkg/" + "b" * 300 + "/core.py"),
        ("5,000-character path", "a/" * 2500),
        ("lone surrogate", "pkg/\ud800.py"),
        ("surrogate-escaped non-UTF-8 name", "pkg/bad_\udcff.py"),
        ("backslash-escaped non-UTF-8 name", "pkg/bad_\\xff.py"),
        ("escaped dots", "\\x2e\\x2e/\\x2e\\x2e/etc/passwd"),
        ("escaped slashes", "..\\x2f..\\x2f..\\x2fetc\\x2fpasswd"),
        ("escaped NUL", "pkg/core.py\\x00"),
        ("escaped control character", "pkg/\\x0a.py"),
        ("trailing backslash", "pkg\\"),
        ("Windows drive", "C:\\x"),
        ("Windows drive, slash", "C:/Windows/win.ini"),
        ("Windows dotdot", "..\\..\\..\\etc\\passwd"),
        ("Windows dotdot to the sentinel", to_secret.replace("/", "\\")),
        ("UNC share", "\\\\server\\share\\x"),
        ("UNC, forward slashes", "//server/share/x"),
        ("c:colon.py (a real file)", "c:colon.py"),
        ("tilde", "~"),
        ("tilde, then passwd", "~/../../etc/passwd"),
        ("tilde user", "~root/.bashrc"),
        ("file URL to the sentinel", "file://" + absolute),
        ("file URL to passwd", "file:///etc/passwd"),
        ("percent-encoded dotdot", "%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        ("shell variable", "$HOME/.bashrc"),
        ("glob", "../*/secret.txt"),
        ("glob star", "*"),
        ("newline then ../", "pkg/core.py\n../../etc/passwd"),
        ("two-dot leader", "\u2025/\u2025/etc/passwd"),
        ("fullwidth dots", "\uff0e\uff0e/\uff0e\uff0e/etc/passwd"),
        ("dot", "."),
        ("dotdot", ".."),
        ("back to the root", "pkg/.."),
        ("empty", ""),
        ("blanks", "   "),
        ("1 MB name", "a" * (1 << 20)),
        ("1 MB of ../", "../" * 350_000),
    ]


def text_values(world: World) -> list[tuple[str, Any]]:
    """Values for the arguments that are names or free text (also sent to path arguments)."""
    return [
        ("regex metacharacters", "(.*)+[a-z]{1,}\\"),
        ("regex catastrophic", "(a+)+$" + "a" * 40),
        ("format string", "{0.__class__.__mro__}%s%n"),
        ("SQL", "x' OR '1'='1'; DROP TABLE files; --"),
        ("command substitution", "$(cat /etc/passwd)`id`"),
        ("shell chain", "; cat /etc/passwd; #"),
        ("dunder", "__class__.__init__.__globals__"),
        ("10,000 dots", "." * 10_000),
        ("dotted chain", ".".join(["Cart"] * 3000)),
        ("entity id", "pkg/core.py::Cart.total"),
        ("entity id outside", f"{to_secret_id(world)}::Sentinel"),
        ("colons", "::"),
        ("NUL in a name", "Cart\x00"),
        ("control characters", "\x01\x07\x1b[2J\x7f"),
        ("lone surrogate", "\udcff"),
        ("surrogate pair halves", "\ud83d\ude00\ud83d"),
        ("emoji", "\U0001f600" * 100),
        ("right-to-left override", "\u202eyp.eroc/gkp"),
        ("zero-width joiners", "Ca\u200drt"),
        ("combining marks", "C" + "\u0301" * 5000),
        ("1 MB word", "Cart" * 262_144),
        ("1 MB of words", "cart total helper " * 58_255),
        ("1 MB of NUL", "\x00" * (1 << 20)),
        ("1 MB of newlines", "\n" * (1 << 20)),
        ("deep JSON text", "[" * 5000),
        ("JSON text of an object", '{"file": "../../etc/passwd"}'),
        ("4,301 digits as text", "9" * 4301),
    ]


def to_secret_id(world: World) -> str:
    return os.path.relpath(world.secret, world.repo)


def integer_values() -> list[tuple[str, Any]]:
    return [
        ("superscript two", "\u00b2"),
        ("double minus", "--5"),
        ("4,301 digits", HUGE_INT),
        ("4,301 digits as text", "9" * 4301),
        ("5,000 digits, negative", -(10**5000 - 1)),
        ("2**63", 2**63),
        ("-2**63 - 1", -(2**63) - 1),
        ("2**31", 2**31),
        ("10**18", 10**18),
        ("10**19 as text", str(10**19)),
        ("zero", 0),
        ("minus one", -1),
        ("minus 10**9", -(10**9)),
        ("one and a half", 1.5),
        ("1e308", 1e308),
        ("-1e308", -1e308),
        ("integral float", 3.0),
        ("text with blanks", " 7 "),
        ("hex text", "0x10"),
        ("underscore text", "1_000"),
        ("exponent text", "1e3"),
        ("Arabic-Indic digits", "\u0661\u0662"),
        ("fullwidth digits", "\uff11\uff12"),
        ("text nan", "nan"),
        ("text Infinity", "Infinity"),
        ("plus sign", "+5"),
        ("minus zero", "-0"),
    ]


def type_values() -> list[tuple[str, Any]]:
    """Wrong JSON types: what a model sends when it misreads a schema."""
    return [
        ("null", None),
        ("true", True),
        ("false", False),
        ("number", 7),
        ("huge integer", HUGE_INT),
        ("empty list", []),
        ("list of a string", ["pkg/core.py"]),
        ("list of ../", ["../../etc/passwd"]),
        ("list of 100,000 items", ["x"] * 100_000),
        ("list of mixed types", [None, 1, "a", [2], {"b": 3}]),
        ("list of a huge integer", [HUGE_INT]),
        ("empty object", {}),
        ("object", {"path": "../../etc/passwd"}),
        ("object with a huge integer", {"n": HUGE_INT}),
        ("list nested 50", deep_list(50)),
        ("list nested 900", deep_list(900)),
        ("object nested 500", deep_dict(500)),
    ]


def array_values(world: World) -> list[tuple[str, Any]]:
    """Values for array arguments (``submit.locations``)."""
    paths = [value for _, value in path_values(world)[:30]]
    return [
        ("hostile paths", paths),
        ("list of NUL", ["\x00"] * 10),
        ("list of 1 MB strings", ["a" * (1 << 20)]),
        ("list of 10,000 ids", [f"pkg/core.py::Cart.m{i}" for i in range(10_000)]),
        ("list of surrogates", ["\udcff", "\ud800"]),
    ]


def whole_argument_values() -> list[tuple[str, Any]]:
    """The arguments object itself: not a mapping, or a mapping with keys no tool takes."""
    return [
        ("list", ["pkg/core.py"]),
        ("string", "pkg/core.py"),
        ("JSON text", json.dumps({"file": "../../etc/passwd"})),
        ("twice-encoded JSON", json.dumps(json.dumps({"file": "pkg/core.py"}))),
        ("number", 7),
        ("huge integer", HUGE_INT),
        ("true", True),
        ("null", None),
        ("list nested 900", deep_list(900)),
        ("unknown key", {"colour": "red"}),
        ("10,000 unknown keys", {f"k{i}": i for i in range(10_000)}),
        ("key with NUL", {"file\x00": "x"}),
        ("key that is a lone surrogate", {"\udcff": "x"}),
        ("key __proto__", {"__proto__": {"file": "../../etc/passwd"}}),
        ("empty key", {"": "x"}),
        ("1 MB key", {"a" * (1 << 20): 1}),
    ]


_PIECES = (
    "..", ".", "/", "//", "\\", "\\\\", "~", "link_out", "loop_a", "pkg", "core.py", "secret.txt",
    "etc", "passwd", "proc", "self", "environ", "\x00", "\udcff", "\ud800", "%2e", "\\x2e", "\\xff",
    "C:", "file:", "\n", " ", "*", "?", "$HOME", "\u2025", "\uff0e", "a" * 300, "deep", "d",
)  # fmt: skip


def fuzz_value(param: Param, rng: random.Random, world: World) -> tuple[str, Any]:
    """One seeded random value for ``param`` beyond the catalog: path pieces, or integers near limits."""
    if param.type == "integer" and rng.random() < 0.7:
        kind = rng.choice(["big", "text", "negative", "float"])
        if kind == "big":
            return "random big integer", rng.choice([1, -1]) * 10 ** rng.randrange(1, 4400)
        if kind == "text":
            return "random digit text", "".join(
                rng.choices("0123456789+-_ \u00b2\u0661", k=rng.randrange(1, 40))
            )
        if kind == "negative":
            return "random negative", -rng.randrange(1, 2**70)
        return "random float", rng.uniform(-1e20, 1e20)
    pieces = [*_PIECES, world.outside.name, world.repo.name]
    parts = rng.choices(pieces, k=rng.randrange(1, 14))
    joiner = rng.choice(["/", "", "\\"])
    value = joiner.join(parts)
    if rng.random() < 0.2:
        value = "/" + value
    return "random path pieces", value


@dataclass(frozen=True)
class Attempt:
    profile: str
    tool: str
    argument: str  # the attacked argument, or "*" for the arguments object itself
    label: str
    arguments: Any  # what is sent: a mapping, or (for "*") anything

    def sent_text(self) -> str:
        """Every string the call carries, so an echo of it is not taken for a leak."""
        out: list[str] = []
        stack: list[Any] = [self.arguments]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list | tuple):
                stack.extend(item)
        return "\n".join(out)


def catalog_for(param: Param, world: World) -> list[tuple[str, Any]]:
    if param.type == "integer":
        values = integer_values()
    elif param.type == "array":
        values = array_values(world)
    elif param.name in PATH_ARGUMENTS:
        values = path_values(world) + text_values(world)
    else:
        values = text_values(world) + path_values(world)
    return values + type_values()


def argument_attempts(
    profile: str, spec: ToolSpec, param: Param, world: World, per_argument: int, rng: random.Random
) -> list[Attempt]:
    values = catalog_for(param, world)
    if per_argument < len(values):
        values = rng.sample(values, per_argument)
    while len(values) < per_argument:
        values.append(fuzz_value(param, rng, world))
    filler = {p.name: BENIGN[p.name] for p in spec.params if p.required and p.name != param.name}
    return [
        Attempt(profile, spec.name, param.name, label, {**filler, param.name: value})
        for label, value in values
    ]


def tool_specs(profile: str) -> tuple[ToolSpec, ...]:
    return PROFILES[profile]


def make_attempts(world: World, per_argument: int, seed: int) -> list[Attempt]:
    """Every (profile, tool, argument) with its hostile values, in a fixed order for the seed."""
    attempts: list[Attempt] = []
    for profile in sorted(PROFILES):
        for spec in tool_specs(profile):
            rng = random.Random(f"{seed}:{profile}:{spec.name}")
            for param in spec.params:
                attempts += argument_attempts(profile, spec, param, world, per_argument, rng)
            attempts += [
                Attempt(profile, spec.name, "*", label, value) for label, value in whole_argument_values()
            ]
    return attempts


# --- judging ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one front end made of its attempts."""

    name: str
    note: str = ""
    attempts: int = 0
    undeliverable: int = 0  # the front end's own transport could not carry the value (said per front end)
    crashes: int = 0
    escapes: int = 0
    leaks: int = 0
    internal: int = 0
    max_observation_chars: int = 0
    slowest_call_s: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process and every child it waited for (servers, bin scripts)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # figures of this front end alone
    slowest: list[tuple[float, str]] = field(default_factory=list)  # the 5 slowest calls
    largest: list[tuple[int, str]] = field(default_factory=list)  # the 5 largest observations

    def example(self, kind: str, attempt: Attempt, detail: str) -> None:
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 8:
            kept.append(
                {
                    "profile": attempt.profile,
                    "tool": attempt.tool,
                    "argument": attempt.argument,
                    "value": attempt.label,
                    "detail": detail[:400],
                }
            )

    def judge(self, world: World, attempt: Attempt, text: str, seconds: float) -> None:
        """Count one observation (``text``: everything the front end showed for the call)."""
        self.max_observation_chars = max(self.max_observation_chars, len(text))
        self.slowest_call_s = max(self.slowest_call_s, seconds)
        where = f"{attempt.profile}:{attempt.tool}.{attempt.argument} = {attempt.label}"
        self.slowest = sorted([*self.slowest, (round(seconds, 3), where)], reverse=True)[:5]
        self.largest = sorted([*self.largest, (len(text), where)], reverse=True)[:5]
        if TRACEBACK in text:
            self.crashes += 1
            self.example("crash", attempt, "traceback in the observation: " + _around(text, TRACEBACK))
        escaped = [kind for kind, secret in world.secrets().items() if secret in text]
        if PASSWD_LINE.search(text):
            escaped.append("/etc/passwd")
        if escaped:
            self.escapes += 1
            self.example("escape", attempt, f"{', '.join(escaped)}: {text[:300]}")
        sent = attempt.sent_text()
        leaked = [path for path in world.private_paths() if path in text and path not in sent]
        if leaked:
            self.leaks += 1
            self.example("leak", attempt, _around(text, leaked[0]))
        match = CATCH_ALL.search(text)
        if match:
            self.internal += 1
            self.example("internal", attempt, match.group())

    def crash(self, attempt: Attempt, detail: str) -> None:
        self.crashes += 1
        self.example("crash", attempt, detail)

    def row(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}


def _around(text: str, needle: str, width: int = 160) -> str:
    at = text.find(needle)
    return text[max(0, at - width) : at + len(needle) + width]


class Hang(BaseException):
    """Not an Exception: no handler in the tools may swallow it and answer as if the call had ended."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise Hang in this (main) thread after ``seconds``: a blocking open() of a FIFO is interrupted."""

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for: unlike wall time, it does not
    grow when the shared machine is busy."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _error_line(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {str(error)[:300]}"
    except Exception:  # str() of the error itself may fail (a 5,000-digit integer in its message)
        return type(error).__name__


# --- front end 1: ToolBox.call in this process ---------------------------------------------------------


def build_world_index(world: World) -> Any:
    from reposearcher_plugin.index import ParseCache, build_index

    return build_index(world.repo, cache=ParseCache(world.base / "cache-inproc"), workers=1)


def attack_toolbox(world: World, attempts: Sequence[Attempt]) -> Tally:
    tally = Tally("ToolBox.call (in process)", "every attempt of every profile")
    started = time.perf_counter()
    index = build_world_index(world)
    boxes = {profile: ToolBox(index, profile) for profile in PROFILES}
    for number, attempt in enumerate(attempts, 1):
        tally.attempts += 1
        began = time.perf_counter()
        try:
            with watchdog(CALL_TIMEOUT_S):
                observation = boxes[attempt.profile].call(attempt.tool, attempt.arguments)
            text = observation.text
            if not isinstance(text, str):
                raise TypeError(f"observation text is {type(text).__name__}")
        except BaseException as error:  # the contract: never raises; a Hang is a crash too
            if isinstance(error, KeyboardInterrupt):
                raise
            tally.crash(attempt, _error_line(error))
            continue
        tally.judge(world, attempt, text, time.perf_counter() - began)
        if number % 500 == 0:
            log(f"toolbox: {number}/{len(attempts)}")
    tally.seconds = time.perf_counter() - started
    return tally


# --- front end 2: the MCP server over stdio ------------------------------------------------------------


def mcp_profiles() -> list[str]:
    # the -rl profiles serve the same tools as their base profile (less submit, which MCP leaves out)
    return [profile for profile in sorted(PROFILES) if not profile.endswith("-rl")]


def attack_mcp(world: World, attempts: Sequence[Attempt], per_argument: int, seed: int) -> Tally:
    from reposearcher_plugin.hosts.mcp_server import LOCALIZE_TOOL

    tally = Tally("MCP server (stdio)", "")
    started = time.perf_counter()
    raw_sent = 0
    for profile in mcp_profiles():
        rng = random.Random(f"{seed}:{profile}:localize")
        mine = [a for a in attempts if a.profile == profile and a.tool not in FINAL_TOOLS]
        for param in LOCALIZE_TOOL.params:
            mine += argument_attempts(profile, LOCALIZE_TOOL, param, world, per_argument, rng)
        mine += [Attempt(profile, "localize", "*", label, value) for label, value in whole_argument_values()]
        # what mcp's client cannot encode (a lone surrogate, nesting past pydantic's limit) goes as raw
        # JSON-RPC lines written by hand, the way any other client could send it
        client = [attempt for attempt in mine if _client_can_send(attempt.arguments)]
        raw = [attempt for attempt in mine if not _client_can_send(attempt.arguments)]
        raw_sent += len(raw)
        log(f"mcp {profile}: {len(client)} attempts through mcp's client, {len(raw)} as raw JSON-RPC")
        asyncio.run(_mcp_session(world, profile, client, tally))
        _raw_mcp_session(world, profile, [*raw, *protocol_attempts(profile)], tally)
    tally.note = (
        f"one server per profile ({', '.join(mcp_profiles())}; the -rl profiles serve the same tools) for "
        "every attempt of its tools but submit/exit, plus `localize`; through mcp's `stdio_client` and "
        "`ClientSession` (non-mapping arguments as raw `tools/call` requests on its dispatcher), and "
        f"{raw_sent} attempts the client cannot encode plus {len(protocol_attempts('default'))} malformed "
        "protocol lines per server as JSON-RPC lines of our own (lone surrogates as \\\\u escapes)"
    )
    tally.seconds = time.perf_counter() - started
    return tally


def holds_huge_integer(value: Any) -> bool:
    """Whether an integer of over 4,300 digits is anywhere in ``value``: mcp's stdio server (2.3) reads
    such a request and never answers it, whatever the handler returns (a request with 4,300 digits gets
    its answer), so it never reaches our code through MCP."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > HUGE_INT // 10:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _mcp_accepts(tool: str, arguments: Any) -> bool:
    """Whether mcp's server passes these arguments on to our handler (it validates the request first)."""
    import mcp.types

    if holds_huge_integer(arguments):
        return False
    try:
        mcp.types.CallToolRequestParams.model_validate({"name": tool, "arguments": arguments})
    except Exception:
        return False
    return True


def _client_can_send(arguments: Any) -> bool:
    import pydantic_core

    try:
        pydantic_core.to_json(arguments)  # what mcp's stdio transport does with every message
    except Exception:
        return False
    return True


def mcp_config(world: World) -> Path:
    """The server's localizer options: the default, but a `localize` model string that litellm cannot
    reach (there is no network here) fails at once instead of after retries with backoff."""
    config = world.base / "mcp-localizer.yaml"
    config.write_text("model: retrieval\nretries: 0\n")
    return config


def mcp_server_command(world: World, profile: str) -> list[str]:
    return [
        sys.executable, "-m", "reposearcher_plugin.cli.main", "mcp", "--repo", str(world.repo),
        "--profile", profile, "--cache-dir", str(world.base / "cache-mcp"), "--log-level", "WARNING",
        "--config", str(mcp_config(world)),
    ]  # fmt: skip


def _mcp_texts(result: Any) -> str:
    if isinstance(result, dict):  # a raw JSON-RPC result
        blocks = result.get("content") or []
        return "\n".join(str(block.get("text", "")) for block in blocks if isinstance(block, dict))
    return "\n".join(getattr(block, "text", "") for block in getattr(result, "content", []))


async def _mcp_session(world: World, profile: str, attempts: Sequence[Attempt], tally: Tally) -> None:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = mcp_server_command(world, profile)
    params = StdioServerParameters(command=command[0], args=command[1:], cwd=str(world.cwd), env=world.env())
    server_log = world.base / f"mcp-{profile}.log"
    with server_log.open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.list_tools()
            await _mcp_warm_up(session)
            for number, attempt in enumerate(attempts, 1):
                tally.attempts += 1
                began = time.perf_counter()
                ours = _mcp_accepts(attempt.tool, attempt.arguments)  # else mcp refuses it before our code
                try:
                    # mcp answers a request it refuses at once, or never: no need to wait long for it
                    with anyio.fail_after(CALL_TIMEOUT_S if ours else 2):
                        if isinstance(attempt.arguments, dict):
                            result = await session.call_tool(attempt.tool, attempt.arguments)
                        else:  # mcp's client refuses to build such a request: send it as a raw one
                            result = await session._dispatcher.send_raw_request(
                                "tools/call", {"name": attempt.tool, "arguments": attempt.arguments}, {}
                            )
                except Exception as error:
                    if not await _mcp_alive(session):
                        tally.crash(attempt, "server dead after: " + _error_line(error))
                        return
                    answered = type(error).__name__ in ("MCPError", "McpError")  # a JSON-RPC error answer
                    if not ours:
                        tally.undeliverable += 1
                        if not answered:
                            tally.counts[
                                "requests mcp left unanswered (not an object, or a huge integer)"
                            ] += 1
                            continue
                    if answered:
                        tally.counts["answered with a JSON-RPC error"] += 1
                        tally.judge(world, attempt, str(error), time.perf_counter() - began)
                    else:
                        tally.crash(attempt, _error_line(error))
                    continue
                tally.judge(world, attempt, _mcp_texts(result), time.perf_counter() - began)
                if number % 250 == 0:
                    log(f"mcp {profile}: {number}/{len(attempts)}")
            if attempts and not await _mcp_alive(session):
                tally.crash(attempts[-1], "server dead at the end")
    _server_log_figures(server_log, profile, tally)


async def _mcp_warm_up(session: Any) -> None:
    """Index the repository and import litellm (a `localize` with a model string does) before the clock
    runs: on a busy machine the first such call can take minutes, which is start-up, not a hang."""
    await session.call_tool("get_repo_structure", {})
    await session.call_tool("localize", {"issue": BENIGN["issue"], "model": "openai/warm-up"})
    await session.call_tool("localize", {"issue": BENIGN["issue"]})


def _server_log_figures(server_log: Path, profile: str, tally: Tally) -> None:
    logged = server_log.read_text(errors="replace")
    tally.counts["tracebacks in the server logs"] += logged.count(TRACEBACK)
    tally.examples.setdefault("server log", []).append(
        {
            "profile": profile,
            "log": server_log.name,
            "tracebacks": logged.count(TRACEBACK),
            "tail": logged[-600:],
        }
    )


async def _mcp_alive(session: Any) -> bool:
    import anyio

    try:
        with anyio.fail_after(CALL_TIMEOUT_S):
            await session.send_ping()
        return True
    except Exception:
        return False


def protocol_attempts(profile: str) -> list[Attempt]:
    """Lines no well-behaved client writes (``arguments`` holds the raw bytes of the line)."""

    def call(arguments: bytes) -> bytes:
        head = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"show_code","arguments":'
        return head + arguments + b"}}"

    lines = [
        ("invalid UTF-8", b'\xff\xfe{"jsonrpc":"2.0","id":%d,"method":"ping"}'),
        ("cut-off request", b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"show_c'),
        ("100,000 [", b"[" * 100_000),
        ("NaN literal", call(b'{"file":"pkg/core.py","start_line":NaN,"end_line":Infinity}')),
        ("1e400", call(b'{"file":"pkg/core.py","start_line":1e400,"end_line":-1e400}')),
        ("lone surrogate escapes in keys", call(b'{"\\ud800":"x","file\\udcff":"../../etc/passwd"}')),
        ("8 MB string", call(b'{"file":"' + b"../" * 2_800_000 + b'etc/passwd"}')),
        ("unknown method", b'{"jsonrpc":"2.0","id":%d,"method":"../../etc/passwd","params":{}}'),
        ("object id", b'{"jsonrpc":"2.0","id":{"a":[1]},"method":"ping"}'),
        ("empty batch", b"[]"),
        ("batch of calls", b"[" + call(b'{"file":"../x"}') + b"]"),
        (
            "tool name with NUL",
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"show\\u0000code"}}',
        ),
        ("params a string", b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":"../../etc/passwd"}'),
    ]
    return [Attempt(profile, "(protocol)", "*", label, line) for label, line in lines]


class RawMcp:
    """A JSON-RPC client of our own over the server's stdio: sends what mcp's client cannot."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], errlog: Any) -> None:
        import queue
        import threading

        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.received: dict[str, dict[str, Any]] = {}  # answers read while waiting for another id
        self.next_id = 1000
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: bytes) -> int:
        """Write one line (``%d`` in it becomes a new request id); returns that id."""
        self.next_id += 1
        line = line.replace(b"%d", str(self.next_id).encode())
        with contextlib.suppress(OSError):  # a dead server: alive() says so
            assert self.process.stdin is not None
            self.process.stdin.write(line + b"\n")
            self.process.stdin.flush()
        return self.next_id

    def answer(self, request_id: Any, timeout: float = CALL_TIMEOUT_S) -> dict[str, Any] | None:
        """The response to ``request_id``; None on timeout or end of output."""
        import queue

        key = json.dumps(request_id)
        if key in self.received:
            return self.received.pop(key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                return None
            try:
                message = json.loads(line)
            except ValueError:
                message = {"id": None, "unreadable": line.decode("utf-8", "replace")}
            if not isinstance(message, dict) or "method" in message:
                continue  # a notification or a request of the server's own
            if json.dumps(message.get("id"), sort_keys=True) == key:
                return message
            self.received[json.dumps(message.get("id"), sort_keys=True)] = message
        return None

    def request(
        self, method: str, params: dict[str, Any], timeout: float = CALL_TIMEOUT_S
    ) -> dict[str, Any] | None:
        line = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        return self.answer(self.send(line.replace('"id": 0', '"id": %d').encode()), timeout)

    def alive(self) -> bool:
        return self.process.poll() is None and self.request("ping", {}) is not None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def raw_json(value: Any) -> bytes | None:
    """``value`` as JSON with every non-ASCII character escaped (a lone surrogate as ``\\udcff``), huge
    integers as digits; None when even that cannot be written."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value, ensure_ascii=True).encode("ascii")
    except (ValueError, RecursionError):
        return None
    finally:
        sys.set_int_max_str_digits(limit)


def mcp_reads(line: bytes) -> bool:
    """Whether mcp's own stdio server reads this line as a message; it drops one it cannot (no answer:
    its id is never read), so such a line never reaches our handlers."""
    import mcp.types

    try:
        mcp.types.jsonrpc_message_adapter.validate_json(line.decode("utf-8", "replace"), by_name=False)
    except Exception:
        return False
    return True


def _raw_mcp_session(world: World, profile: str, attempts: Sequence[Attempt], tally: Tally) -> None:
    import mcp.types

    server_log = world.base / f"mcp-{profile}-raw.log"
    with server_log.open("w") as errlog:
        client = RawMcp(mcp_server_command(world, profile), world.cwd, world.env(), errlog)
        try:
            hello = {
                "protocolVersion": mcp.types.LATEST_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "attack", "version": "0"},
            }
            if client.request("initialize", hello) is None:
                raise RuntimeError(
                    f"the MCP server did not answer initialize: {server_log.read_text()[-2000:]}"
                )
            client.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
            for attempt in attempts:
                if attempt.tool == "(protocol)":
                    line = attempt.arguments
                else:
                    arguments = raw_json(attempt.arguments)
                    if arguments is None:
                        tally.undeliverable += 1
                        continue
                    name = json.dumps(attempt.tool).encode()
                    line = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":' + name
                    line += (
                        b',"arguments":' + arguments.replace(b"%", b"\\u0025") + b"}}"
                    )  # % only in strings
                tally.attempts += 1
                began = time.perf_counter()
                read = mcp_reads(line.replace(b"%d", b"1")) and not holds_huge_integer(attempt.arguments)
                request_id = client.send(line)
                if read and b"%d" in line:  # a request mcp reads, with an id: it must be answered
                    message = client.answer(request_id)
                    if message is None:
                        tally.crash(attempt, "no answer" if client.process.poll() is None else "server dead")
                        if client.process.poll() is not None:
                            return
                        continue
                else:
                    if not read:
                        tally.undeliverable += 1
                    if not client.alive():  # the ping's answer comes after whatever the line caused
                        tally.crash(attempt, "server dead after this line")
                        return
                    message = client.answer(request_id, timeout=0.01) or client.answer(None, timeout=0.01)
                text = ""
                if message is not None:
                    result = message.get("result")
                    text = (
                        _mcp_texts(result)
                        if isinstance(result, dict)
                        else json.dumps(message, ensure_ascii=False)
                    )
                    if isinstance(message.get("error"), dict):
                        tally.counts["answered with a JSON-RPC error"] += 1
                tally.judge(world, attempt, text, time.perf_counter() - began)
            if not client.alive():
                tally.crash(attempts[-1], "server dead at the end")
        finally:
            client.close()
    _server_log_figures(server_log, profile, tally)


# --- front end 3: the verl tool adapter ----------------------------------------------------------------


def attack_verl(world: World, attempts: Sequence[Attempt]) -> Tally:
    tally = Tally("verl adapter (create/execute/release)", "")
    started = time.perf_counter()
    asyncio.run(_verl_calls(world, attempts, tally))
    tally.seconds = time.perf_counter() - started
    return tally


async def _verl_calls(world: World, attempts: Sequence[Attempt], tally: Tally) -> None:
    from verl.tools.schemas import OpenAIFunctionToolSchema

    from reposearcher_plugin.rl.verl_tools import RepoSearcherTool, tool_config

    profiles = sorted({attempt.profile for attempt in attempts})
    tools: dict[tuple[str, str], Any] = {}
    for profile in profiles:
        config = tool_config(profile, index_cache_dir=str(world.base / "cache-verl"))
        for entry in config["tools"]:
            schema = OpenAIFunctionToolSchema.model_validate(entry["tool_schema"])
            with contextlib.redirect_stdout(io.StringIO()):  # verl's BaseTool prints every schema
                tool = RepoSearcherTool(entry["config"], schema)
            tools[(profile, tool.name)] = tool
    served = [attempt for attempt in attempts if (attempt.profile, attempt.tool) in tools]
    left_out = sorted({f"{a.profile}:{a.tool}" for a in attempts} - {f"{p}:{t}" for p, t in tools})
    tally.note = "every attempt of the tools verl gets (`tool_config`; left out: " + ", ".join(left_out) + ")"
    create_kwargs = {"repo_path": str(world.repo)}
    for number, attempt in enumerate(served, 1):
        tool = tools[(attempt.profile, attempt.tool)]
        tally.attempts += 1
        began = time.perf_counter()
        try:
            instance_id, _ = await asyncio.wait_for(tool.create(create_kwargs=create_kwargs), CALL_TIMEOUT_S)
            try:
                response, _, _ = await asyncio.wait_for(
                    tool.execute(instance_id, attempt.arguments, agent_data=None), CALL_TIMEOUT_S
                )
            finally:
                await tool.release(instance_id)
            text = response.text or ""
        except Exception as error:
            tally.crash(attempt, _error_line(error))
            continue
        tally.judge(world, attempt, text, time.perf_counter() - began)
        if number % 500 == 0:
            log(f"verl: {number}/{len(served)}")
    live = sum(tool.live_instances for tool in tools.values())
    if live:
        tally.crash(served[-1], f"{live} tool instances never released")


# --- front end 4: the SWE-agent bundle's bin scripts ----------------------------------------------------


def checkout_python(where: Path) -> Path:
    """A venv over this interpreter's packages whose site imports this checkout, even under ``-E -P``
    (as the bundle's scripts run it): what ``install.sh`` finds as ``$REPOSEARCHER_PYTHON``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(where)],
        check=True,
        capture_output=True,
    )
    site = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (site / "zz_reposearcher_checkout.pth").write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n")
    return where / "bin" / "python"


def swe_agent_command(config: dict[str, Any], tool: str, values: Any) -> str:
    """The command SWE-agent's function-calling parser makes of a call (its ``Command.invoke_format``):
    each argument through its ``argument_format``, omitted ones empty. Every value is shell-quoted here
    (SWE-agent quotes strings; a non-string value is sent as its JSON text); a non-mapping arguments
    object becomes one quoted word after the tool name."""
    entry = config["tools"][tool]
    if not isinstance(values, dict):
        return f"{tool} {shlex.quote(_json_text(values))}"
    formatted: dict[str, str] = {}
    for argument in entry["arguments"]:
        name = argument["name"]
        if name not in values:
            formatted[name] = ""
            continue
        value = values[name]
        if argument["type"] == "array" and isinstance(value, list):
            rendered = " ".join(shlex.quote(v if isinstance(v, str) else _json_text(v)) for v in value)
        else:
            rendered = shlex.quote(value if isinstance(value, str) else _json_text(value))
        form = argument.get("argument_format", "{{value}}")
        formatted[name] = form.replace("{{value|join(' ')}}", rendered).replace("{{value}}", rendered)
    unknown = [f"--{key} {shlex.quote(_json_text(v))}" for key, v in values.items() if key not in formatted]
    invoke = re.sub(r"\[?<([a-zA-Z_][a-zA-Z0-9_-]*)>\]?", r"{\1}", entry["signature"])
    return " ".join([invoke.format(**formatted).strip(), *unknown]).strip()


def _json_text(value: Any) -> str:
    """A value as a command line carries it: a string as it is, anything else as its JSON text."""
    if isinstance(value, str):
        return value
    text = raw_json(value)
    return text.decode("ascii") if text is not None else "[" * 2000  # nesting past the encoder's limit


def swe_agent_sample(attempts: Sequence[Attempt], count: int, seed: int) -> list[Attempt]:
    """``count`` attempts of the bundled tools, spread evenly over (tool, argument), seeded."""
    from reposearcher_plugin.hosts.swe_agent import LEFT_OUT_TOOLS

    rng = random.Random(f"{seed}:swe-agent")
    groups: dict[tuple[str, str, str], list[Attempt]] = {}
    for attempt in attempts:
        if attempt.profile in ("default", "tooltrain") and attempt.tool not in LEFT_OUT_TOOLS:
            groups.setdefault((attempt.profile, attempt.tool, attempt.argument), []).append(attempt)
    for group in groups.values():
        rng.shuffle(group)
    sample: list[Attempt] = []
    keys = sorted(groups)
    while len(sample) < count and any(groups.values()):
        for key in keys:
            if groups[key] and len(sample) < count:
                sample.append(groups[key].pop())
    return sample


def attack_swe_agent(world: World, attempts: Sequence[Attempt], count: int, seed: int) -> Tally:
    import yaml

    from reposearcher_plugin.hosts.swe_agent import write_bundle

    tally = Tally("SWE-agent bundle (bin scripts)", "")
    started = time.perf_counter()
    sample = swe_agent_sample(attempts, count, seed)
    python = checkout_python(world.base / "venv")
    home = world.base / "home"
    home.mkdir()
    env = {
        **world.env(),
        "HOME": str(home),
        "REPOSEARCHER_PYTHON": str(python),
        "REPOSEARCHER_CACHE": str(world.base / "cache-swe"),
        "ROOT": str(world.repo),
    }
    for variable in ("PYTHONPATH", "BASH_ENV", "ENV", "PROMPT_COMMAND", "REPOSEARCHER_REPO"):
        env.pop(variable, None)
    bundles: dict[str, tuple[Path, dict[str, Any]]] = {}
    for profile in sorted({attempt.profile for attempt in sample}):
        bundle = write_bundle(world.base / "tools" / profile / "reposearcher", profile)
        install = subprocess.run(
            ["bash", "-c", "source install.sh"],
            cwd=bundle,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if install.returncode != 0 or not (bundle / "python_path").exists():
            raise RuntimeError(f"install.sh failed for {profile}: {install.stdout}{install.stderr}")
        bundles[profile] = (bundle, yaml.safe_load((bundle / "config.yaml").read_text()))
    for number, attempt in enumerate(sample, 1):
        bundle, config = bundles[attempt.profile]
        try:
            command = swe_agent_command(config, attempt.tool, attempt.arguments)
            data = command.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that stands for no byte: no command line holds it
            tally.undeliverable += 1
            continue
        if b"\0" in data or len(data) > SWE_AGENT_COMMAND_LIMIT:
            tally.undeliverable += 1  # no shell command carries a NUL; argv strings stop at 128 KiB
            continue
        tally.attempts += 1
        call_env = {**env, "PATH": f"{bundle / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
        began = time.perf_counter()
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=world.repo,
                env=call_env,
                capture_output=True,
                timeout=CALL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            tally.crash(attempt, f"no answer after {CALL_TIMEOUT_S:.0f} s")
            continue
        text = (done.stdout + done.stderr).decode("utf-8", "replace")
        if done.returncode not in (0, 1, 2):
            tally.crash(attempt, f"exit status {done.returncode}: {text[-300:]}")
        tally.judge(world, attempt, text, time.perf_counter() - began)
        if number % 25 == 0:
            log(f"swe-agent: {number}/{len(sample)}")
    tally.note = (
        f"a seeded sample of {len(sample)} attempts spread over every (tool, argument) of the default and "
        "tooltrain bundles, each a `bash -c` of the rendered command (a new Python process per call); "
        "undeliverable: values no command line can carry (NUL, unencodable surrogates, over 120 KB)"
    )
    tally.seconds = time.perf_counter() - started
    return tally


# --- the batch part: kill -9 of `reposearcher run` ------------------------------------------------------

BATCH_REPOS = {
    "acme/shop": {
        "shop/__init__.py": "",
        "shop/cart.py": "from shop.pricing import total\n\n\nclass Cart:\n    def checkout(self):\n"
        "        return total(self.items)\n\n"
        "    def add(self, item, quantity=1):\n        self.items.append(item)\n",
        "shop/pricing.py": "def total(items):\n    return sum(price for price, _ in items)\n\n\n"
        "def discount(amount, rate):\n    return amount * rate\n",
    },
    "acme/web": {
        "web/__init__.py": "",
        "web/sessions.py": "class Session:\n"
        "    def resolve_redirects(self, response):\n        return response\n\n"
        "    def send(self, request):\n        return request\n",
        "web/utils.py": "def requote_uri(uri):\n    return uri.replace(' ', '%20')\n\n\n"
        "def parse_header(value):\n    return value.split(';')\n",
    },
    "acme/calc": {
        "calc/__init__.py": "",
        "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef divide(a, b):\n    return a / b\n",
        "calc/parse.py": "from calc.ops import add\n\n\nclass Parser:\n    def tokens(self, text):\n"
        "        return text.split()\n\n    def evaluate(self, text):\n        return add(1, 2)\n",
    },
}
BATCH_ISSUES = [
    ("acme/shop", "Cart.checkout ignores quantity in total()"),
    ("acme/shop", "discount() rounds the amount wrongly"),
    ("acme/shop", "Cart.add drops the quantity argument"),
    ("acme/shop", "pricing total fails on an empty cart"),
    ("acme/shop", "checkout crashes when items is None"),
    ("acme/shop", "discount rate above 1 is accepted"),
    ("acme/shop", "total should use Decimal"),
    ("acme/web", "Session.resolve_redirects drops the query string"),
    ("acme/web", "requote_uri double-quotes percent signs"),
    ("acme/web", "parse_header splits on quoted semicolons"),
    ("acme/web", "Session.send ignores timeouts"),
    ("acme/web", "redirect loop in resolve_redirects"),
    ("acme/web", "parse_header returns empty strings"),
    ("acme/calc", "divide by zero raises instead of returning inf"),
    ("acme/calc", "Parser.tokens splits on tabs wrongly"),
    ("acme/calc", "Parser.evaluate ignores its text"),
    ("acme/calc", "add() concatenates strings"),
    ("acme/calc", "ops.divide loses precision"),
    ("acme/calc", "tokens should keep quoted strings together"),
    ("acme/calc", "evaluate crashes on an empty expression"),
]


def make_batch(base: Path) -> dict[str, Path]:
    """Three repositories under ``repos/owner+name`` (two commits each) and a 20-instance dataset."""
    repos = base / "repos"
    commits: dict[str, list[str]] = {}
    for repo, files in BATCH_REPOS.items():
        root = repos / repo.replace("/", "+")
        for relative, text in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
        first = commit_all(root, "v1")
        (root / "NEWS.txt").write_text("v2\n")
        commits[repo] = [first, commit_all(root, "v2")]
    rows = [
        {
            "instance_id": f"{repo.split('/')[1]}-{number}",
            "repo": repo,
            "base_commit": commits[repo][number % 2],
            "problem_statement": text,
        }
        for number, (repo, text) in enumerate(BATCH_ISSUES)
    ]
    data = base / "batch.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"data": data, "repos": repos, "base": base}


def run_command(batch: dict[str, Path], out: Path) -> list[str]:
    base = batch["base"]
    return [
        sys.executable, "-m", "reposearcher_plugin.cli.main", "run", "--dataset", str(batch["data"]),
        "--repos-dir", str(batch["repos"]), "--out", str(out), "--offline", "--workers", "2",
        "--cache-dir", str(base / "snapshots"), "--index-cache-dir", str(base / "index-cache"),
    ]  # fmt: skip


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a predictions file, and how many of its lines are not JSON objects."""
    rows, malformed = [], 0
    if not path.exists():
        return rows, malformed
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            malformed += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            malformed += 1
    return rows, malformed


def kill_when(process: subprocess.Popen[bytes], out: Path, delay: float | None, rows: int) -> bool:
    """Wait until ``delay`` seconds have passed (or, with ``delay`` None, until ``out`` holds ``rows``
    lines); True when the process ended first."""
    began = time.perf_counter()
    while process.poll() is None:
        if delay is not None and time.perf_counter() - began >= delay:
            return False
        if delay is None and out.exists() and out.read_bytes().count(b"\n") >= rows:
            return False
        time.sleep(0.005)
    return True


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run ``command`` (a `reposearcher run` writing ``--out``) to its end: (seconds, seconds until its
    first row, exit status, stderr)."""
    out = Path(command[command.index("--out") + 1])
    began = time.perf_counter()
    first_row = None
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            if first_row is None and out.exists() and out.stat().st_size:
                first_row = time.perf_counter() - began
            time.sleep(0.02)
        seconds = time.perf_counter() - began
        stderr.seek(0)
        return seconds, first_row or seconds, process.returncode, stderr.read().decode("utf-8", "replace")


def attack_batch(world: World, kills: int, per_episode: int, seed: int) -> dict[str, Any]:
    """``kills`` kill -9 of `reposearcher run`, in episodes of ``per_episode``: each episode starts a fresh
    output and kills the run, then the resumed run, and so on, then lets one resume finish and compares
    the output with a clean run's."""
    rng = random.Random(f"{seed}:kills")
    batch = make_batch(world.base / "batch")
    env = {**world.env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.perf_counter()
    clean_out = world.base / "batch" / "clean.jsonl"
    clean_s, first_row_s, status, stderr = timed_run(run_command(batch, clean_out), env)
    if status != 0:
        raise RuntimeError(f"the clean batch run failed: {stderr[-2000:]}")
    clean_rows, _ = read_rows(clean_out)
    clean = {row["instance_id"]: row["locations"] for row in clean_rows}
    log(f"batch: clean run of {len(clean)} instances in {clean_s:.1f} s, first row after {first_row_s:.1f} s")
    figures: Counter[str] = Counter()
    episodes = []
    killed_so_far = 0
    while killed_so_far < kills:
        out = world.base / "batch" / f"episode-{len(episodes)}.jsonl"
        kills_here = []
        for _ in range(min(per_episode, kills - killed_so_far)):
            before, _ = read_rows(out)
            # half the kills at a moment of the run (from half its start-up, when no row is written
            # yet, to its end), half right after its n-th new row, while it writes the others
            by_rows = rng.random() < 0.5
            delay = rng.uniform(0.5 * first_row_s, clean_s)
            rows_wanted = rng.randint(1, max(1, len(clean) - len(before) - 1))
            process = subprocess.Popen(
                run_command(batch, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            if kill_when(process, out, delay if not by_rows else None, len(before) + rows_wanted):
                kills_here.append({"delay_s": round(delay, 2), "finished_first": True})
                break  # the run ended before its kill: nothing left to interrupt in this episode
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the whole group: the parent and its workers
            process.wait()
            killed_so_far += 1
            after, cut_lines = read_rows(out)
            kills_here.append(
                {
                    "when": f"after {rows_wanted} new rows" if by_rows else f"at {delay:.2f} s",
                    "rows_before": len(before),
                    "rows_at_kill": len(after),
                    "cut_lines": cut_lines,
                }
            )
            figures["kills"] += 1
            figures["kills with rows written in the killed run"] += len(after) > len(before)
            figures["cut lines at kill"] += cut_lines
        resumed = subprocess.run(
            run_command(batch, out), env=env, capture_output=True, text=True, timeout=1800
        )
        final_rows, malformed = read_rows(out)
        ids = Counter(row.get("instance_id") for row in final_rows)
        by_id = {row.get("instance_id"): row for row in final_rows}
        lost = sorted(set(clean) - set(ids))
        duplicated = sorted(key for key, count in ids.items() if count > 1)
        differing = sorted(key for key in clean if key in by_id and by_id[key].get("locations") != clean[key])
        errors = sorted(str(row.get("instance_id")) for row in final_rows if row.get("error"))
        episodes.append(
            {
                "kills": kills_here,
                "resume_status": resumed.returncode,
                "lost": lost,
                "duplicated": duplicated,
                "differing": differing,
                "malformed_after_resume": malformed,
                "error_rows": errors,
            }
        )
        figures["episodes"] += 1
        figures["lost"] += len(lost)
        figures["duplicated"] += len(duplicated)
        figures["differing"] += len(differing)
        figures["malformed after resume"] += malformed
        figures["error rows"] += len(errors)
        figures["failed resumes"] += resumed.returncode != 0
        log(
            f"batch: episode {len(episodes)}: {len(kills_here)} starts, {killed_so_far}/{kills} kills; "
            f"after the resume lost {len(lost)}, duplicated {len(duplicated)}, differing {len(differing)}"
        )
    return {
        "instances": len(clean),
        "clean_run_s": round(clean_s, 2),
        "first_row_s": round(first_row_s, 2),
        "per_episode": per_episode,
        "episodes": episodes,
        "figures": dict(figures),
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- report -------------------------------------------------------------------------------------------


def render_markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Attacking the tools: hostile arguments through every front end, and kill -9 of batch runs",
        "",
        "Command (from the repository root):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Wall time {result['wall_s']:.0f} s, CPU {result['cpu_s']:.0f} s (this process and its children) on "
        f"{result['machine']}, load average {result['load_before']} at the start and "
        f"{result['load_after']} at the end (the machine is shared; wall times include waiting for a "
        f"core). {result['attempts_total']:,} attempts generated: {result['per_argument']} per argument "
        f"for the {result['arguments']} arguments of the {result['tools']} tools of the profiles "
        f"{', '.join(result['profiles'])} (the fixed catalog first, then seeded mutations), plus "
        f"{result['whole_argument']} whole-argument attacks per tool. A crash is an exception out of the "
        "front end, a traceback in an observation, a dead server or a call unanswered after "
        f"{CALL_TIMEOUT_S:.0f} s; an escape is the sentinel token (file content or directory listing), "
        "/etc/passwd content or the environment token in an observation; a leak is the temporary "
        "directory (repository, working directory, caches) or the package's path in an observation when "
        "the call did not send it; internal counts calls a catch-all handler answered (an exception inside "
        "a tool, turned into a generic error); undeliverable counts values the front end's own transport "
        "cannot carry to our code (see below).",
        "",
        "| front end | attempts | crashes | escapes | leaks | internal | undeliverable "
        "| max observation chars "
        "| slowest call s | wall s | CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tally in result["front_ends"]:
        lines.append(
            f"| {tally['name']} | {tally['attempts']:,} | {tally['crashes']} | {tally['escapes']} | "
            f"{tally['leaks']} | {tally['internal']} | {tally['undeliverable']} | "
            f"{tally['max_observation_chars']:,} | {tally['slowest_call_s']:.2f} | {tally['seconds']:.0f} | "
            f"{tally['cpu_seconds']:.0f} |"
        )
    total = result["totals"]
    lines.append(
        f"| **all** | **{total['attempts']:,}** | **{total['crashes']}** | **{total['escapes']}** | "
        f"**{total['leaks']}** | {total['internal']} | {total['undeliverable']} | | | | |"
    )
    lines += [
        "",
        "What each front end was sent (slowest call: wall seconds; on a busy machine mostly waiting):",
        "",
    ]
    for tally in result["front_ends"]:
        extra = ""
        if tally.get("counts"):
            extra = (
                " " + "; ".join(f"{name}: {count:,}" for name, count in sorted(tally["counts"].items())) + "."
            )
        largest = tally["largest"][0][1] if tally.get("largest") else "-"
        lines.append(f"- {tally['name']}: {tally['note']}.{extra} Largest observation: {largest}.")
    batch = result.get("batch")
    if batch:
        figures = batch["figures"]
        lines += [
            "",
            f"## kill -9 of `reposearcher run` ({batch['instances']} instances, 3 repositories, "
            "`--workers 2`)",
            "",
            f"A clean run took {batch['clean_run_s']:.1f} s, its first row came after "
            f"{batch['first_row_s']:.1f} s. Each episode starts a fresh output, starts the run and kills its "
            "process group (SIGKILL), half the time at a seeded moment between half that first-row time "
            "and the clean run's length, half the time right after its n-th new row (n seeded); starts "
            "the same command again on that output and kills it again, up to "
            f"{batch['per_episode']} times; then one more run of the command finishes it, and its output is "
            "compared with the clean run's (rows lost, duplicated, with other locations; lines that are not "
            "JSON).",
            "",
            "| episodes | kills | kills after rows were written | cut lines at kill | lost | duplicated | "
            "differing | malformed after resume | error rows | failed resumes |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {figures.get('episodes', 0)} | {figures.get('kills', 0)} | "
            f"{figures.get('kills with rows written in the killed run', 0)} | "
            f"{figures.get('cut lines at kill', 0)} | {figures.get('lost', 0)} | "
            f"{figures.get('duplicated', 0)} | "
            f"{figures.get('differing', 0)} | {figures.get('malformed after resume', 0)} | "
            f"{figures.get('error rows', 0)} | {figures.get('failed resumes', 0)} |",
        ]
    problems = [
        (tally["name"], kind, example)
        for tally in result["front_ends"]
        for kind in ("crash", "escape", "leak", "internal")
        for example in tally["examples"].get(kind, [])
    ]
    if problems:
        lines += [
            "",
            "## Examples (up to 8 per front end and kind)",
            "",
            "| front end | kind | profile | tool | argument | value | detail |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, kind, example in problems:
            detail = example["detail"].replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(
                f"| {name} | {kind} | {example['profile']} | {example['tool']} | {example['argument']} | "
                f"{example['value']} | {detail} |"
            )
    return "\n".join(lines) + "\n"


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--attempts-per-argument", type=int, default=100, help="hostile values per argument")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of `reposearcher run` in all")
    parser.add_argument("--kills-per-episode", type=int, default=5, help="kills before a resume may finish")
    parser.add_argument("--swe-agent-attempts", type=int, default=48, help="sampled bin-script calls")
    parser.add_argument(
        "--front-ends", default="toolbox,mcp,verl,swe-agent", help="comma-separated subset to run"
    )
    parser.add_argument("--out-md", type=Path, help="write the tables here")
    parser.add_argument("--out-json", type=Path, help="write every figure and example here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (its path is logged)"
    )
    args = parser.parse_args(argv)
    load_before, cpu_before = _load(), cpu_seconds()
    logging.disable(logging.CRITICAL)  # the tools log refusals and warnings; the tables say what happened
    started = time.perf_counter()
    chosen = [name.strip() for name in args.front_ends.split(",") if name.strip()]
    base = Path(tempfile.mkdtemp(prefix="reposearcher-attack-"))
    home = Path.cwd()
    try:
        rng = random.Random(args.seed)
        world = make_world(base, rng)
        os.environ["REPOSEARCHER_ATTACK_TOKEN"] = world.env_token  # this process's /proc/self/environ too
        os.environ["REPOSEARCHER_CACHE"] = str(base / "cache-home")
        os.chdir(world.cwd)  # relative paths resolved against the working directory would find its file
        attempts = make_attempts(world, args.attempts_per_argument, args.seed)
        log(f"world in {base}; {len(attempts)} attempts")
        runs: dict[str, Callable[[], Tally]] = {
            "toolbox": lambda: attack_toolbox(world, attempts),
            "mcp": lambda: attack_mcp(world, attempts, args.attempts_per_argument, args.seed),
            "verl": lambda: attack_verl(world, attempts),
            "swe-agent": lambda: attack_swe_agent(world, attempts, args.swe_agent_attempts, args.seed),
        }
        front_ends: list[Tally] = []
        for name, run in runs.items():
            if name in chosen:
                cpu = cpu_seconds()
                front_ends.append(run())
                front_ends[-1].cpu_seconds = cpu_seconds() - cpu
        for tally in front_ends:
            log(f"{tally.name}: {tally.attempts} attempts, {tally.crashes} crashes, {tally.escapes} escapes, "
                f"{tally.leaks} leaks, {tally.internal} internal")  # fmt: skip
        batch = attack_batch(world, args.kills, args.kills_per_episode, args.seed) if args.kills else None
    finally:
        os.chdir(home)
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    rows = [tally.row() for tally in front_ends]
    keys = ("attempts", "crashes", "escapes", "leaks", "internal", "undeliverable")
    specs = [spec for profile in PROFILES for spec in tool_specs(profile)]
    result = {
        "seed": args.seed,
        "per_argument": args.attempts_per_argument,
        "profiles": sorted(PROFILES),
        "tools": len(specs),
        "arguments": sum(len(spec.params) for spec in specs),
        "attempts_total": len(attempts),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "load_before": load_before,
        "load_after": _load(),
        "cpu_s": round(cpu_seconds() - cpu_before, 1),
        "whole_argument": len(whole_argument_values()),
        "front_ends": rows,
        "totals": {key: sum(row[key] for row in rows) for key in keys},
        "batch": batch,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    command = "nice -n 19 python eval/attack_tools.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    if args.out_md:
        args.out_md.write_text(render_markdown(result, command), encoding="utf-8")
    if args.out_json:
        args.out_json.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str) + "\n")
    print(render_markdown(result, command))
    bad = result["totals"]["crashes"] + result["totals"]["escapes"] + result["totals"]["leaks"]
    if batch:
        bad += batch["figures"].get("lost", 0) + batch["figures"].get("duplicated", 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
