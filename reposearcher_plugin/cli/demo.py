"""`reposearcher demo`: the offline main job on a real repository, no model and no API key needed.

It fetches the release source of requests 2.31.0 from PyPI (the only network a development machine has),
indexes it, and localizes a real SWE-bench Lite issue about redirects with the embedded retrieval default.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from reposearcher_plugin.index import build_index, default_cache_dir

RELEASE = ("requests", "2.31.0")
# SWE-bench Lite psf__requests-1963, verbatim; its fix changed the function below (the issue is from 2014,
# the method still exists in 2.31.0).
DEMO_INSTANCE = "psf__requests-1963"
DEMO_FIX = "requests/sessions.py::SessionRedirectMixin.resolve_redirects"
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


def release_source(directory: Path | None = None) -> Path:
    """Download and unpack the release source once; later runs reuse it."""
    name, version = RELEASE
    store = directory or default_cache_dir() / "sources"
    root = store / f"{name}-{version}"
    if (root / name).is_dir():
        return root
    store.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += [f"{name}=={version}", "-d", str(store)]
    done = subprocess.run(command, capture_output=True, text=True)
    archive = store / f"{name}-{version}.tar.gz"
    if done.returncode != 0 or not archive.exists():
        raise RuntimeError(f"could not download {name}=={version} from PyPI: {done.stderr.strip()[-500:]}")
    with tarfile.open(archive) as tar:
        tar.extractall(store, filter="data")
    return root


def run_demo(path: str | None) -> int:
    from rich.console import Console
    from rich.table import Table

    from reposearcher_plugin.agent.localizers import RankingLocalizer

    console = Console()
    root = Path(path) if path else release_source()
    index = build_index(root)
    stats = index.stats
    console.print(
        f"Indexed {root}: {stats.files} files, {stats.entities} definitions in {stats.seconds:.2f} s"
    )
    console.print(f"\nIssue {DEMO_INSTANCE} (SWE-bench Lite):\n" + DEMO_ISSUE.split("\n", 1)[0], style="bold")
    result = RankingLocalizer().localize(index, DEMO_ISSUE, instance_id=DEMO_INSTANCE, repo=str(root))
    table = Table(
        "rank", "location", title="Where to change (retrieval default, offline)", title_justify="left"
    )
    for rank, location in enumerate(result.locations[:10], start=1):
        table.add_row(str(rank), location, style="bold green" if location == DEMO_FIX else None)
    console.print(table)
    console.print("files: " + ", ".join(result.files[:5]))
    rank = result.locations.index(DEMO_FIX) + 1 if DEMO_FIX in result.locations else None
    where = f"ranked #{rank}" if rank else "not in the ranking"
    console.print(f"The fix that resolved this issue changed {DEMO_FIX}: {where}.")
    console.print(
        "\nNext: reposearcher localize --repo PATH --issue ISSUE.md [--model hosted_vllm/... --api-base URL]",
        style="dim",
    )
    return 0
