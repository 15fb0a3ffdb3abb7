"""The process behind every ``bin/<tool>`` of the SWE-agent bundle: shell arguments in, observation out.

``python -m reposearcher_plugin.hosts.swe_agent_tool [--profile P] TOOL [ARGS...]``

SWE-agent renders a function call into a command line from the bundle's ``config.yaml``: required
arguments positional (shell-quoted), optional ones as ``--name value`` (see ``ToolSpec.swe_agent``).
A model typing into bash writes the same thing, or gives optional arguments positionally; both are read.
The repository is indexed through the disk parse cache, so a call costs a warm index load plus the
lookup, and the text printed is exactly what ``ToolBox.call`` returns to every other host.

Exit status: 0 on success, 1 when the tool refused or failed (the text says why), 2 on a usage error.
``--warm`` only indexes the repository (install.sh runs it so the agent's first call is fast); ``--check``
only checks that the installed tree-sitter parses with our grammars (install.sh runs it for every Python
it considers). Every call checks that too, once per installed runtime (a stamp in the cache directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reposearcher_plugin.files import write_atomic
from reposearcher_plugin.tools.profiles import profile_specs
from reposearcher_plugin.tools.spec import Param, ToolSpec

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class UsageError(ValueError):
    """The command line does not fit the tool; the message ends with the tool's usage."""


class NoRepository(ValueError):
    """Nothing says which repository to search, and the working directory is not in a git work tree."""


def usage(spec: ToolSpec) -> str:
    parts = [spec.name]
    for param in spec.params:
        shown = f"<{param.name}>" + (" ..." if param.type == "array" else "")
        parts.append(shown if param.required else f"[--{param.name} {shown}]")
    lines = [f"usage: {' '.join(parts)}", spec.description]
    for param in spec.params:
        flag = param.name if param.required else f"--{param.name}"
        kind = param.type + ("" if param.required else f", optional, default {json.dumps(param.default)}")
        lines.append(f"  {flag} ({kind}): {param.description}")
    return "\n".join(lines)


def parse_arguments(spec: ToolSpec, argv: Sequence[str]) -> dict[str, Any]:
    """Map a tool's command line to its arguments, typed per its schema; raises UsageError."""
    params = {param.name: param for param in spec.params}
    raw: dict[str, list[str]] = {}
    positional: list[str] = []

    def flag_name(token: str) -> str | None:
        if not token.startswith("--") or len(token) < 3:
            return None
        name = token[2:].partition("=")[0].replace("-", "_")
        return name if name in params else None

    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            positional.extend(argv[index:])
            break
        if token in ("-h", "--help"):
            raise UsageError("")
        name = flag_name(token)
        if name is None:  # includes "--word" that names no parameter: a value such as a search query
            positional.append(token)
            continue
        if name in raw:
            raise UsageError(f"--{name} given twice")
        if "=" in token:
            values = [token.partition("=")[2]]
        else:
            values = []
            # an array flag takes every value up to the next flag; others take one
            while index < len(argv) and flag_name(argv[index]) is None and argv[index] != "--":
                values.append(argv[index])
                index += 1
                if params[name].type != "array":
                    break
        if values:  # SWE-agent renders a null optional as a bare flag: treat it as not given
            raw[name] = values
    for param in spec.params:
        if param.name in raw or not positional:
            continue
        if param.type == "array":
            raw[param.name], positional = positional, []
        else:
            raw[param.name] = [positional.pop(0)]
    if positional:
        extra = " ".join(positional)
        raise UsageError(f"too many arguments: {extra!r} (quote an argument that contains spaces)")
    missing = [param.name for param in spec.params if param.required and param.name not in raw]
    if missing:
        raise UsageError(f"missing argument(s): {', '.join(missing)}")
    return {name: _convert(params[name], values) for name, values in raw.items()}


def _convert(param: Param, values: list[str]) -> Any:
    if param.type == "array":
        item = Param(param.name, param.items or "string", "")
        return [_scalar(item, value) for value in values]
    return _scalar(param, values[0])


def _scalar(param: Param, value: str) -> Any:
    try:
        if param.type == "integer":
            return int(value.strip())
        if param.type == "number":
            return float(value.strip())
        if param.type == "object":
            return json.loads(value)
    except ValueError:
        article = "an" if param.type in ("integer", "object") else "a"
        raise UsageError(f"argument {param.name} must be {article} {param.type}, got {value!r}") from None
    if param.type == "boolean":
        lowered = value.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise UsageError(f"argument {param.name} must be true or false, got {value!r}")
        return lowered in _TRUE
    return value


def repository_root(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``$REPOSEARCHER_REPO``, else SWE-agent's ``$ROOT`` (it exports the repository root there before
    installing tools), else the nearest directory above the working directory holding ``.git``. The agent
    may ``cd`` into a sub-directory; the index stays the repository's. Raises NoRepository otherwise: the
    working directory itself could be ``/`` or ``$HOME``, and indexing that is never what was meant."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("REPOSEARCHER_REPO", "").strip()
    if explicit:
        if not Path(explicit).is_dir():
            raise NoRepository(f"REPOSEARCHER_REPO={explicit} is not a directory")
        return Path(explicit)
    root = environ.get("ROOT", "").strip()  # a common name: one that names no directory is not ours
    if root and Path(root).is_dir():
        return Path(root)
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / ".git").exists():
            return directory
    raise NoRepository(
        f"no repository to search: {here} is not inside a git work tree and neither REPOSEARCHER_REPO "
        "nor ROOT is set; cd into the repository or set REPOSEARCHER_REPO=/path/to/repository"
    )


def _grammar_stamp() -> Path:
    from reposearcher_plugin.cache_home import default_cache_dir
    from reposearcher_plugin.index.languages import grammar_fingerprint

    return default_cache_dir() / "grammar-checks" / f"{grammar_fingerprint()}.ok"


def check_runtime(force: bool = False) -> None:
    """languages.check_grammars, skipped when this exact runtime passed before (this runs once per tool
    call, and loading every grammar costs about 0.1 s); raises GrammarRuntimeError."""
    from reposearcher_plugin.index.languages import check_grammars

    stamp = _grammar_stamp()
    if not force and stamp.exists():
        return
    check_grammars()
    with contextlib.suppress(OSError):  # a read-only cache only costs the next call another check
        write_atomic(stamp, "ok\n")


def _index(root: Path) -> Any:
    from reposearcher_plugin.index import build_index

    return build_index(root)


def run(argv: Sequence[str], out: Any = None) -> int:
    out = out or sys.stdout
    args = list(argv)
    profile = "default"
    warm = check = False
    while args and args[0].startswith("--"):
        option = args.pop(0)
        if option == "--profile" and args:
            profile = args.pop(0)
        elif option.startswith("--profile="):
            profile = option.partition("=")[2]
        elif option == "--warm":
            warm = True
        elif option == "--check":
            check = True
        else:
            out.write(f"reposearcher tool runner: unknown option {option}\n")
            return 2
    try:
        specs = {spec.name: spec for spec in profile_specs(profile)}
    except ValueError as error:
        out.write(f"reposearcher tool runner: {error}\n")
        return 2
    if check or warm:
        return _prepare("RepoSearcher tools", out, warm=warm, force_check=check)
    if not args:
        out.write("usage: python -m reposearcher_plugin.hosts.swe_agent_tool [--profile P] TOOL [ARGS...]\n")
        return 2
    name, rest = args[0], args[1:]
    spec = specs.get(name)
    if spec is None:
        out.write(f"Unknown tool {name!r}. Available tools: {', '.join(specs)}.\n")
        return 2
    try:
        arguments = parse_arguments(spec, rest)
    except UsageError as error:
        message = f"{name}: {error}\n" if str(error) else ""
        out.write(message + usage(spec) + "\n")
        return 2
    from reposearcher_plugin.index.walk import IndexInputError
    from reposearcher_plugin.tools.profiles import ToolBox

    root = _checked_root(name, out)
    if root is None:
        return 1
    try:
        index = _index(root)
    except (IndexInputError, OSError) as error:
        out.write(f"{name}: cannot index the repository at {root}: {error}\n")
        return 1
    observation = ToolBox(index, profile).call(name, arguments)
    out.write(observation.text + ("" if observation.text.endswith("\n") else "\n"))
    return 0 if observation.ok else 1


def _checked_root(label: str, out: Any, force_check: bool = False) -> Path | None:
    """The repository, once the runtime check passed; None (the reason written to ``out``) otherwise.
    Both failures are loud on purpose: an empty index would answer every search "No class named ..."."""
    from reposearcher_plugin.index.languages import GrammarRuntimeError

    try:
        check_runtime(force=force_check)
        return repository_root()
    except (GrammarRuntimeError, NoRepository) as error:
        out.write(f"{label}: error: {error}\n")
    return None


def _prepare(label: str, out: Any, *, warm: bool, force_check: bool) -> int:
    """``--check``: the runtime only (forced, whatever a stamp says); ``--warm``: that, then the index."""
    if not warm:
        from reposearcher_plugin.index.languages import GrammarRuntimeError

        try:
            check_runtime(force=True)
        except GrammarRuntimeError as error:
            out.write(f"{label}: error: {error}\n")
            return 1
        return 0
    root = _checked_root(label, out, force_check=force_check)
    if root is None:
        return 1
    index = _index(root)
    out.write(f"RepoSearcher: indexed {index.stats.files} files of {root} in {index.stats.seconds:.2f} s\n")
    return 0


def main() -> None:
    # the container's locale may be POSIX; code and paths are printed as UTF-8 whatever it says
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    status = run(sys.argv[1:])
    sys.stdout.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
