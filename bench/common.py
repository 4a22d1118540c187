"""Shared set-up of the benchmarks: the ComfyUI host and this pack, the machine, timing and memory.

Timing: every figure the benchmarks report as a ratio comes from configurations measured in the
same process, interleaved (one call of each in turn, repeated), after warm-up, as the median of
the repeats; CUDA is synchronised around each call.

Memory: on CUDA, torch.cuda.max_memory_allocated (reset before the call) minus what was
allocated before any model was built, i.e. weights plus working memory. On CPU the same quantity
from the kernel's resident-set high-water mark: freed heap pages are first handed back
(malloc_trim), the mark is reset (/proc/self/clear_refs, "5"), and after the call VmHWM minus the
resident size of the process before any model was built is reported.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pathlib
import platform
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT,):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def load_pack():
    """The real ComfyUI host (as the tests load it) and this pack as `comfyui_dps`."""
    from testkit.host import load_pack as load

    return load()


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def device() -> torch.device:
    load_pack()
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def sync(dev: torch.device | None = None) -> None:
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        torch.cuda.synchronize()


def timed(fn) -> float:
    """Seconds one call of fn takes (CUDA synchronised before and after)."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def interleaved(calls: dict, repeats: int, warmup: int = 1) -> tuple[dict, dict]:
    """(median seconds, all seconds recorded) per call of each function in `calls`, timed one of
    each in turn.

    Each function may return None (its own wall time is used) or a list of seconds it measured
    itself (steps inside one sampler run); the median is over everything recorded."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    samples = {name: [] for name in calls}
    names = list(calls)
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]  # rotate: no fixed neighbour
        for name in order:
            result = None

            def run(name=name):
                nonlocal result
                result = calls[name]()

            elapsed = timed(run)
            samples[name].extend(result if isinstance(result, list) else [elapsed])
    return {name: statistics.median(values) for name, values in samples.items()}, samples


def paired_ratios(samples: dict, base: str) -> dict:
    """Per call of `interleaved`'s samples (one per rotation each), the median of each rotation's own ratio
    to `base`'s: a machine that drifts between rotations (clock, other tenants) cancels out."""
    return {name: statistics.median(t / b for t, b in zip(values, samples[base], strict=True))
            for name, values in samples.items()}


@contextlib.contextmanager
def counting(modules: dict):
    """{name: {"forward": n, "backward": n}} filled while the block runs."""
    counts = {name: {"forward": 0, "backward": 0} for name in modules}
    handles = []
    for name, module in modules.items():
        def hook(_module, _inputs, output, name=name):
            counts[name]["forward"] += 1
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.requires_grad:
                def on_backward(grad, name=name):
                    counts[name]["backward"] += 1
                out.register_hook(on_backward)
        handles.append(module.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# Memory

_LIBC = None


def _trim_heap() -> None:
    global _LIBC
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim(0)
        except OSError:
            pass


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_memory_supported() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


class MemoryBaseline:
    """Remembers the memory in use before models were built; `peak(fn)` then gives bytes."""

    def __init__(self, dev: torch.device):
        self.device = dev
        self.cuda = dev.type == "cuda"
        _trim_heap()
        if self.cuda:
            torch.cuda.empty_cache()
            self.base = torch.cuda.memory_allocated(dev)
        else:
            self.base = _status_kib("VmRSS") * 1024 if cpu_memory_supported() else None

    @property
    def method(self) -> str:
        if self.cuda:
            return "torch.cuda.max_memory_allocated minus allocated before models were built"
        if self.base is None:
            return "unavailable (no /proc/self/clear_refs)"
        return "peak RSS (VmHWM after malloc_trim + clear_refs) minus RSS before models were built"

    def current(self) -> int | None:
        _trim_heap()
        if self.cuda:
            return torch.cuda.memory_allocated(self.device) - self.base
        if self.base is None:
            return None
        return _status_kib("VmRSS") * 1024 - self.base

    def peak(self, fn) -> tuple[int | None, int | None]:
        """(peak bytes above the baseline during fn, bytes in use above it just before fn)."""
        before = self.current()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            fn()
            sync()
            return torch.cuda.max_memory_allocated(self.device) - self.base, before
        if self.base is None:
            fn()
            return None, None
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        fn()
        return _status_kib("VmHWM") * 1024 - self.base, before


# ----------------------------------------------------------------------------------------------
# The machine

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": load_average(),
    }
    try:
        import comfyui_version  # noqa: F401  (present in ComfyUI >= 0.3.40)

        info["comfyui"] = comfyui_version.__version__
    except ImportError:
        pass
    return info


def mib(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f}"
