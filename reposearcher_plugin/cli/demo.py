"""`reposearcher demo`: the offline main job on a real repository, no model and no API key needed.

It fetches the release source of requests 2.2.1 from PyPI (the only network a development machine has),
indexes it, and localizes a real SWE-bench Lite issue about redirects with the embedded retrieval default.
2.2.1 is the last release before that issue's fix (merged for 2.3.0), so the demo searches the code the
issue was written against, not code that already holds the fix.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from reposearcher_plugin.cache_home import default_cache_dir
from reposearcher_plugin.index import build_index

RELEASE = ("requests", "2.2.1")
# pip cannot download it: `pip download` builds the sdist's metadata, and requests 2.2.1's setup.py
# imports the package, which fails on Python >= 3.10 (collections.Mapping). So the archive comes straight
# from PyPI's file store, checked against the sha256 PyPI's simple index publishes for it.
RELEASE_URL = (
    "https://files.pythonhosted.org/packages/d1/0c/2dc2996268bc64b531a5a2dc6f4ec04552f3a8a2a86e88aeedcb92987741/"
    "requests-2.2.1.tar.gz"
)
RELEASE_SHA256 = "1266921f1bed5fbf364cd83cf239b6d7b3ea5c32ccccbc93980d9ba12cdcfd02"
# SWE-bench Lite psf__requests-1963, verbatim (created 2014-03-15, after 2.2.1 of 2014-01-23)
DEMO_INSTANCE = "psf__requests-1963"
DEMO_FIX = "requests/sessions.py::SessionRedirectMixin.resolve_redirects"
DEMO_FIX_FILE = "requests/sessions.py"
DEMO_FIX_ADDED_LINE = "# Override the original request."  # a line the fix added
DEMO_ISSUE = """\
`Session.resolve_redirects` copies the original request for all subsequent requests, can cause incorrect \
method selection
Consider the following redirection chain:

```
POST /do_something HTTP/1.1
Host: server.example.com
...

HTTP/1.1 303 See Other
Location: /new_thing_1513

GET /new_thing_1513
Host: server.example.com
...

HTTP/1.1 307 Temporary Redirect
Location: //failover.example.com/new_thing_1513
```

The intermediate 303 See Other has caused the POST to be converted to
a GET.  The subsequent 307 should preserve the GET.  However, because
`Session.resolve_redirects` starts each iteration by copying the _original_
request object, Requests will issue a POST!
"""


def release_source(directory: Path | None = None, url: str = RELEASE_URL) -> Path:
    """Download, check and unpack the release source once; later runs reuse it."""
    name, version = RELEASE
    store = directory or default_cache_dir() / "sources"
    root = store / f"{name}-{version}"
    if (root / name).is_dir():
        return root
    store.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            archive = response.read()
    except OSError as error:
        raise RuntimeError(
            f"could not download {name} {version} from PyPI ({error}); "
            "run `reposearcher demo PATH` on a repository you have instead"
        ) from error
    digest = hashlib.sha256(archive).hexdigest()
    if digest != RELEASE_SHA256:
        raise RuntimeError(f"{url} has sha256 {digest}, not the published {RELEASE_SHA256}; not using it")
    with tempfile.TemporaryDirectory(dir=store) as scratch:  # unpacked whole or not at all
        archive_path = Path(scratch) / f"{name}-{version}.tar.gz"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(scratch, filter="data")
        (Path(scratch) / root.name).rename(root)
    return root


def pre_fix_note(root: Path) -> str:
    """Say which code is searched: the demo is only honest on code the fix has not touched yet."""
    name, version = RELEASE
    fixed_file = root / DEMO_FIX_FILE
    if not fixed_file.is_file():
        return f"{DEMO_FIX_FILE} is not in {root}: the fix's location cannot be found here."
    if DEMO_FIX_ADDED_LINE in fixed_file.read_text(encoding="utf-8", errors="replace"):
        return (
            f"Note: {DEMO_FIX_FILE} here already holds the fix's lines; the ranking below is not a fair test."
        )
    if root.name == f"{name}-{version}":
        return (
            f"Searching {name} {version}, the last release before this issue's fix: "
            f"{DEMO_FIX_FILE} does not hold the fix's lines yet."
        )
    return f"{DEMO_FIX_FILE} does not hold the fix's lines: this is pre-fix code."


def run_demo(path: str | None) -> int:
    from reposearcher_plugin.agent.localizers import RankingLocalizer
    from reposearcher_plugin.cli.console import output_console, ranked_table

    console = output_console()
    root = Path(path) if path else release_source()
    index = build_index(root)
    stats = index.stats
    console.print(
        f"Indexed {root}: {stats.files} files, {stats.entities} definitions in {stats.seconds:.2f} s"
    )
    console.print(pre_fix_note(root))
    console.print(f"\nIssue {DEMO_INSTANCE} (SWE-bench Lite):\n" + DEMO_ISSUE.split("\n", 1)[0], style="bold")
    result = RankingLocalizer().localize(index, DEMO_ISSUE, instance_id=DEMO_INSTANCE, repo=str(root))
    title = "Where to change (retrieval default, offline)"
    console.print(ranked_table(title, result.locations[:10], highlight=DEMO_FIX))
    console.print("files: " + ", ".join(result.files[:5]))
    rank = result.locations.index(DEMO_FIX) + 1 if DEMO_FIX in result.locations else None
    where = f"ranked #{rank}" if rank else "not in the ranking"
    console.print(f"The fix that resolved this issue changed {DEMO_FIX}: {where}.")
    console.print(
        "\nNext: reposearcher localize --repo PATH --issue ISSUE.md [--model hosted_vllm/... --api-base URL]",
        style="dim",
    )
    return 0
