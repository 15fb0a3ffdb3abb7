"""A CPU platform for verl 0.9.1, so ToolTrain's SFT stage runs through verl's own trainer without a GPU.

Why it exists: verl 0.9.1 has no CPU platform. ``verl.utils.device.auto_set_device`` rewrites
``trainer.device=cpu`` to the detected platform (``cuda`` when nothing is detected), and
``initialize_global_process_group`` then asks for ``cpu:gloo,cuda:nccl``, which fails on a machine without
CUDA. verl does have a plugin hook: ``verl/__init__.py`` imports every module named in
``VERL_USE_EXTERNAL_MODULES`` (comma separated), a module can register a ``PlatformBase`` subclass with
``PlatformRegistry.register(platform=...)``, and ``VERL_PLATFORM=<name>`` selects it when the platform
singleton is first resolved (``verl.plugin.platform.get_platform``). This module registers ``cpu``:
device ``cpu``, collective backend ``gloo``, and as device module ``torch.cpu`` completed with the
CUDA-style functions verl calls on its device module without checking (``memory_reserved``,
``mem_get_info``, ``get_rng_state``, ...; the SFT trainer's ``aggressive_empty_cache`` calls
``memory_reserved()`` whenever ``is_available()``, which plain ``torch.cpu`` lacks).

Use it (``verl_recipes/run_sft.sh`` with ``DEVICE=cpu`` does all of this)::

    VERL_USE_EXTERNAL_MODULES=reposearcher_plugin.rl.cpu_platform VERL_PLATFORM=cpu \\
    VERL_ENGINE_DEVICE=cuda \\
    torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer ... \\
        trainer.device=cpu engine.strategy=fsdp2 engine.use_torch_compile=false \\
        model.use_remove_padding=false ++model.override_config.attn_implementation=sdpa

``VERL_ENGINE_DEVICE=cuda`` is needed because verl registers its FSDP engine for the devices
``cuda``/``npu`` only (``EngineRegistry.register(..., device=["cuda", "npu"])``) and looks it up by the
platform's device name; that variable overrides the lookup key, and nothing in the engine is CUDA
specific once the platform says ``cpu``. Flash attention, remove-padding (flash-attn varlen) and
``torch.compile`` are GPU paths, hence sdpa, padded batches and no compile.

One more thing the platform interface cannot express: verl's ``initialize_global_process_group`` (the SFT
trainer's) and ``initialize_global_process_group_ray`` build the backend string
``f"cpu:gloo,{device}:{backend}"``, which torch refuses for ``device == "cpu"`` ("Duplicate device type
cpu"). :func:`patch_verl` wraps both so that, while this platform is the active one, they ask for plain
``gloo``; with any other platform the wrappers call verl's originals unchanged.

Importing this module registers the platform, and applies :func:`patch_verl` only when ``VERL_PLATFORM=cpu``
(the plugin hook imports it from ``verl/__init__.py``, before any verl module binds those functions by
name). It never selects the platform itself: auto-detection skips it (see
:meth:`PlatformCPU.is_platform_available`), so a GPU run that imports it is unchanged. Code that selects
it with ``verl.plugin.platform.set_platform(PlatformCPU())`` instead should call :func:`patch_verl` first.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry, get_platform

PLATFORM = "cpu"
MODULE = __name__
# What a process needs in its environment for verl to run on this platform (see the module docstring).
ENV = {"VERL_USE_EXTERNAL_MODULES": MODULE, "VERL_PLATFORM": PLATFORM, "VERL_ENGINE_DEVICE": "cuda"}


class CPUDeviceModule(ModuleType):
    """``torch.cpu`` (every attribute it has is its own) plus the ``torch.cuda``-style functions verl calls
    on its device module: memory statistics (0: the CPU has no caching allocator to count), host memory
    for ``mem_get_info``, the global RNG state, and no-ops for cache and IPC housekeeping."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def reset_accumulated_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        """(free, total) bytes of host memory."""
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "CPU"  # the key of verl's flops table (utils/flops_counter.py) for CPUs

    @staticmethod
    def get_device_properties(device: Any = None) -> SimpleNamespace:
        return SimpleNamespace(name="CPU", total_memory=CPUDeviceModule.mem_get_info()[1])

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)


DEVICE_MODULE = CPUDeviceModule("reposearcher_plugin.rl.cpu_platform.device", CPUDeviceModule.__doc__)


@PlatformRegistry.register(platform=PLATFORM)
class PlatformCPU(PlatformBase):
    """verl's platform interface on the host CPU: one "device", gloo collectives, no profiler."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Auto-detection probes every registered platform in order and takes the first available one. A
        # CPU is always there, so answering True would steal runs (e.g. CPU-only Ray actors of a GPU job
        # whose nvidia-smi is not on PATH, which verl otherwise sends to its "nvidia" fallback). The CPU
        # platform is chosen only explicitly, with VERL_PLATFORM=cpu.
        return False

    def current_device(self) -> str:  # type: ignore[override]
        # verl passes this to ``tensor.to(...)`` and ``torch.device(...)``; an index would mean cuda:N.
        return torch.cpu.current_device()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None  # one host, nothing to select (torchrun's LOCAL_RANK is passed here)

    def synchronize(self, device_index: int | None = None) -> None:
        return None  # CPU kernels are synchronous

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None  # expandable segments etc. are CUDA caching-allocator settings

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "VERL_CPU_VISIBLE_DEVICES"  # no such thing; a name no launcher sets

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "CPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_cpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def is_active() -> bool:
    """Whether verl's platform singleton is this CPU platform (resolving it if nothing has yet)."""
    return isinstance(get_platform(), PlatformCPU)


def _initialize_global_process_group(
    original: Callable[..., tuple[int, int, int]], timeout_second: int = 36000
) -> tuple[int, int, int]:
    if not is_active():
        return original(timeout_second)
    import torch.distributed

    torch.distributed.init_process_group(
        backend="gloo",
        timeout=timedelta(seconds=timeout_second),
        init_method=os.environ.get("DIST_INIT_METHOD", None),
    )
    return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def _initialize_global_process_group_ray(
    original: Callable[..., None], timeout_second: int | None = None, backend: str | None = None
) -> None:
    if backend is None and is_active():
        backend = "gloo"
    return original(timeout_second=timeout_second, backend=backend)


def patch_verl() -> None:
    """Make verl's process-group initializers ask for ``gloo`` while this platform is active (idempotent)."""
    import verl.utils.distributed as distributed

    for name, wrapper in (
        ("initialize_global_process_group", _initialize_global_process_group),
        ("initialize_global_process_group_ray", _initialize_global_process_group_ray),
    ):
        original = getattr(distributed, name)
        if getattr(original, "_reposearcher_cpu", False):
            continue
        patched = functools.wraps(original)(functools.partial(wrapper, original))
        patched._reposearcher_cpu = True  # type: ignore[attr-defined]
        setattr(distributed, name, patched)


if os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM:
    patch_verl()
