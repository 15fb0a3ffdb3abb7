"""One pinned source distribution from PyPI, verified: the tarball's URL comes from PyPI's JSON API, and
its bytes must have the size and sha256 pinned in code, so the JSON only tells where to look."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

from reposearcher_plugin.models.registry import ModelError

PYPI_JSON = "https://pypi.org/pypi/{project}/json"
CHUNK = 1 << 20

Log = Callable[[str], None]
Opener = Callable[[str], IO[bytes]]  # a URL -> a readable binary stream (a context manager)


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class Sdist:
    """One pinned source distribution on PyPI."""

    project: str
    version: str
    filename: str
    size: int
    sha256: str

    @property
    def top(self) -> str:
        """The one top-level folder of the tarball."""
        return self.filename.removesuffix(".tar.gz")


def fetch_url(url: str) -> IO[bytes]:
    return urllib.request.urlopen(url, timeout=120)


def sdist_url(sdist: Sdist, json_url: str | None = None, open_url: Opener = fetch_url) -> str:
    """The download URL of `sdist` from PyPI's JSON API (relative URLs, as a mirror serves, are resolved
    against the JSON's own). The JSON's digest must equal the pin: it only says where the bytes are."""
    where = json_url or PYPI_JSON.format(project=sdist.project)
    try:
        with open_url(where) as response:
            listing: Any = json.load(response)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {where}: {error}") from error
    files = (listing.get("releases") or {}).get(sdist.version) if isinstance(listing, dict) else None
    for entry in files or []:
        if isinstance(entry, dict) and entry.get("filename") == sdist.filename:
            listed = (entry.get("digests") or {}).get("sha256")
            if listed != sdist.sha256:
                raise ModelError(
                    f"{where} lists {sdist.filename} with sha256 {listed}, but {sdist.sha256} is pinned"
                )
            return urljoin(where, str(entry["url"]))
    raise ModelError(f"{where} does not list {sdist.filename} (version {sdist.version})")


def _verify(path: Path, sdist: Sdist) -> str | None:
    """Why `path` is not the pinned sdist, or None when it is."""
    size = path.stat().st_size
    if size != sdist.size:
        return f"{path} is {size:,} bytes, expected {sdist.size:,}"
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sdist.sha256:
        return f"{path} has sha256 {digest.hexdigest()}, expected {sdist.sha256}"
    return None


def download_sdist(
    sdist: Sdist,
    directory: Path,
    json_url: str | None = None,
    open_url: Opener = fetch_url,
    local: Path | None = None,
    log: Log = _quiet,
) -> Path:
    """`<directory>/<sdist file>`, verified: kept if already there, else copied from `local` or downloaded.

    Written to a temporary file in the same folder and renamed once its size and sha256 match."""
    dest = directory / sdist.filename
    if dest.is_file() and _verify(dest, sdist) is None:
        log(f"{dest} is there and verified")
        return dest
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{sdist.filename}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            if local is not None:
                log(f"copying {local}")
                with local.open("rb") as source:
                    shutil.copyfileobj(source, out, CHUNK)
            else:
                url = sdist_url(sdist, json_url, open_url)
                log(f"downloading {url}")
                _download(url, out, sdist.size, open_url)
        problem = _verify(Path(temporary), sdist)
        if problem:
            raise ModelError(problem.replace(temporary, str(local) if local else sdist.filename))
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from other users of a shared cache
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log(f"{dest}: {sdist.size:,} bytes, sha256 {sdist.sha256} (verified)")
    return dest


def _download(url: str, out: IO[bytes], limit: int, open_url: Opener) -> None:
    try:
        with open_url(url) as response:
            written = 0
            while chunk := response.read(CHUNK):
                written += len(chunk)
                if written > limit:  # a wrong file costs no more than the pinned size
                    raise ModelError(f"{url} is larger than the pinned {limit:,} bytes")
                out.write(chunk)
    except OSError as error:
        raise ModelError(f"cannot download {url}: {error}") from error
