"""Compute of a checkpoint as measured here: speed (throughput, batch-1 latency) and peak memory
on this machine's device, cached by the software and hardware that measured it. FLOPs and
parameters are counted in engine.measure.flops.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.errors import MatchupError
from engine.measure.flops import ProfileError, build_model, checkpoint_target, error_reason, params_on_meta, timm_module

# -- measuring ----------------------------------------------------------------------------------
PRECISIONS = ("fp32", "bf16", "fp16")
AUTO_BATCH_START = {"cuda": 1024, "mps": 256, "cpu": 64}
WARMUP_STEPS, TIMED_STEPS, LATENCY_RUNS = 10, 40, 50


class OutOfMemory(Exception):
    """The model does not fit at the batch size tried."""


def resolve_device(device: str):
    """A torch.device that exists here, or an error that says what to use instead."""
    import torch
    device = (device or "cpu").strip().lower()
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ProfileError(
                f"--device {device} asks for a GPU, but torch {torch.__version__} sees none "
                "(torch.cuda.is_available() is False: no NVIDIA GPU, no driver, or a CPU-only "
                "torch build). Use --device cpu, or run on a machine with an NVIDIA GPU.")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ProfileError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                               f"GPU(s), numbered cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
        return torch.device("cuda", index)
    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ProfileError("--device mps asks for Apple's GPU, which torch does not see here. "
                               "Use --device cpu.")
        return torch.device("mps")
    raise ProfileError(f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps.")


def check_precision(precision: str, device) -> str:
    if precision not in PRECISIONS:
        raise ProfileError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type == "cpu":
        raise ProfileError("fp16 on CPU is refused: PyTorch's CPU half-precision kernels are slow "
                           "or missing, so the number would not describe real use. Use fp32 or "
                           "bf16 on CPU, and fp16 on a GPU.")
    return precision


def device_name(device) -> str:
    import platform
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return f"CPU {line.split(':', 1)[1].strip()}"
        except OSError:
            pass
        return f"CPU {platform.processor() or platform.machine()}"
    return device.type


def environment(device) -> dict:
    """Everything about this machine and software that can change a measured number."""
    import torch
    return {"device_name": device_name(device), "device_type": device.type,
            "torch_version": torch.__version__, "timm_version": timm_module().__version__,
            "cuda_version": torch.version.cuda if device.type == "cuda" else None,
            "threads": torch.get_num_threads()}


def available_memory_bytes(device) -> int | None:
    import torch
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA or CPU allocator out-of-memory, whatever exception type carries it."""
    import torch
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text
                                                or "can't allocate memory" in text)


class _PeakRss:
    """Peak resident memory of this process inside the block, from the Linux kernel's high-water
    mark: reset through /proc/self/clear_refs, read back as VmHWM (exact, and costs nothing while
    the model runs). Where that is unavailable the peak is unknown (None), not guessed."""

    def __init__(self):
        self.growth: int | None = None

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self):
        self._start = self._status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the high-water mark to the current RSS
            self._reset = True
        except OSError:
            self._reset = False
        return self

    def __exit__(self, *exc):
        peak = self._status("VmHWM")
        if self._reset and peak is not None and self._start is not None:
            self.growth = max(0, peak - self._start)


@dataclass
class BenchSpec:
    """One speed measurement; everything here can change the number."""
    model: str
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int | str = "auto"
    channels_last: bool = False
    compile: bool = False
    img_size: int | None = None
    warmup_steps: int = WARMUP_STEPS
    timed_steps: int = TIMED_STEPS
    latency_runs: int = LATENCY_RUNS
    max_memory_mb: float | None = None  # refuse weights past this; default: what is free


def _sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Steps:
    """Counts a benchmark's steps for its progress callback: done/total, images/s of the current
    batch size and an ETA (the remaining images at that rate; before the batched phase, its images
    at the batch-1 rate, an upper bound)."""

    def __init__(self, total: int, planned_images: int, progress=None):
        self.total, self.done, self.planned_images, self.progress = total, 0, planned_images, progress
        self.images, self.seconds, self.batch = 0, 0.0, None

    def phase(self, batch_size: int, steps: int) -> None:
        if self.batch is not None:  # a retried or later phase: its steps replace the plan's
            self.planned_images = max(self.planned_images - batch_size * steps, 0)
        self.batch, self.images, self.seconds = batch_size, 0, 0.0
        self.remaining_in_phase = steps

    def step(self, seconds: float) -> None:
        self.done += 1
        self.images += self.batch
        self.seconds += seconds
        self.remaining_in_phase -= 1
        if self.progress is None:
            return
        rate = self.images / self.seconds if self.seconds > 0 else None
        left = self.remaining_in_phase * self.batch + self.planned_images
        self.progress({"done": min(self.done, self.total), "total": self.total, "images_per_sec": rate,
                       "eta_s": left / rate if rate else None})


def _timed_steps(model, batch, device, steps: int, autocast, counter: _Steps | None = None) -> list[float]:
    """Seconds per step; CUDA timed with events around each step."""
    import time
    import torch
    times = []
    if counter is not None:
        counter.phase(len(batch), steps)
    with torch.inference_mode(), autocast():
        for _ in range(steps):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(batch)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000)
            else:
                started = time.perf_counter()
                model(batch)
                _sync(device)
                times.append(time.perf_counter() - started)
            if counter is not None:
                counter.step(times[-1])
    return times


def measure(spec: BenchSpec, progress=None) -> dict:
    """Throughput, batch-1 latency and peak memory of a randomly initialised model. `progress`
    gets {done, total, images_per_sec, eta_s} after every timed or warm-up step."""
    import contextlib
    import statistics
    import torch
    device = resolve_device(spec.device)
    precision = check_precision(spec.precision, device)
    arch, h, w, num_classes = checkpoint_target(spec.model, spec.img_size)
    env = environment(device)
    result = {"arch": arch, "img_size": h, "img_width": w, "num_classes": num_classes,
              "precision": precision, "channels_last": spec.channels_last,
              "compiled": spec.compile, **env, "throughput": None, "batch_size": None,
              "latency_p50_ms": None, "latency_p90_ms": None, "peak_memory_mb": None,
              "error": None}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    params = params_on_meta(arch, h, w, num_classes)
    limit = (spec.max_memory_mb * 2**20 if spec.max_memory_mb is not None
             else available_memory_bytes(device))
    if params is not None and limit is not None and params * 4 * 1.2 > limit:
        result["error"] = (f"out of memory at batch 1: {params / 1e6:.0f}M fp32 parameters need "
                           f"~{params * 4.8 / 2**30:.1f} GiB, {limit / 2**30:.1f} GiB available "
                           f"on {env['device_name']}")
        return result

    memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format
    sampler = _PeakRss() if device.type == "cpu" else contextlib.nullcontext()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with sampler:
            model = build_model(arch, h, w, num_classes).to(device, memory_format=memory_format)
            if spec.compile:
                model = torch.compile(model)

            latency_runs = max(spec.latency_runs, 50)
            planned_batch = (AUTO_BATCH_START.get(device.type, 64) if spec.batch_size == "auto"
                             else int(spec.batch_size))
            counter = _Steps(2 * spec.warmup_steps + latency_runs + spec.timed_steps,
                             planned_batch * (spec.warmup_steps + spec.timed_steps), progress)

            def run(batch_size: int, steps: int, warmup: int) -> list[float]:
                batch = torch.randn(batch_size, 3, h, w, device=device).to(memory_format=memory_format)
                try:
                    _timed_steps(model, batch, device, warmup, autocast, counter)
                    return _timed_steps(model, batch, device, steps, autocast, counter)
                except MatchupError:  # the progress callback's own stop (a cancelled job)
                    raise
                except Exception as e:  # noqa: BLE001
                    if is_out_of_memory(e):
                        raise OutOfMemory(str(e)) from None
                    raise ProfileError(f"{arch} does not run at {h}x{w} on {env['device_name']}: "
                                       f"{error_reason(e)}") from None
                finally:
                    del batch
                    if device.type == "cuda":
                        torch.cuda.empty_cache()

            # batch-1 latency first: it also proves the model fits at all
            try:
                latencies = run(1, latency_runs, spec.warmup_steps)
            except OutOfMemory:
                result["error"] = f"out of memory at batch 1 on {env['device_name']}"
                return result
            latencies_ms = sorted(t * 1000 for t in latencies)
            result["latency_p50_ms"] = statistics.median(latencies_ms)
            result["latency_p90_ms"] = latencies_ms[int(round(0.9 * (len(latencies_ms) - 1)))]

            batch_size = (AUTO_BATCH_START.get(device.type, 64) if spec.batch_size == "auto"
                          else int(spec.batch_size))
            tried = []
            while True:
                tried.append(batch_size)
                try:
                    steps = run(batch_size, spec.timed_steps, spec.warmup_steps)
                    break
                except OutOfMemory:
                    if spec.batch_size != "auto" or batch_size == 1:
                        result["error"] = f"out of memory at batch {batch_size} on {env['device_name']}"
                        return result
                    batch_size //= 2
            result["batch_size"] = batch_size
            result["throughput"] = batch_size * len(steps) / sum(steps)
            result["batch_sizes_tried"] = tried
    except OutOfMemory as e:
        result["error"] = f"out of memory on {env['device_name']}: {e}"
        return result
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_memory_mb"] = sampler.growth / 2**20 if sampler.growth is not None else None
    result.update(warmup_steps=spec.warmup_steps, timed_steps=spec.timed_steps,
                  latency_runs=max(spec.latency_runs, 50))
    return result


def bench_key(spec: BenchSpec) -> tuple[str, dict]:
    """The cache key of a measurement: model structure, settings and this machine's software."""
    from engine.store import cache_key
    device = resolve_device(spec.device)
    check_precision(spec.precision, device)
    arch, h, w, num_classes = checkpoint_target(spec.model, spec.img_size)
    payload = {"kind": "benchmark", "arch": arch, "img_size": h, "img_width": w,
               "num_classes": num_classes, "precision": spec.precision,
               "batch_size": spec.batch_size, "channels_last": spec.channels_last,
               "compiled": spec.compile, "warmup_steps": spec.warmup_steps,
               "timed_steps": spec.timed_steps, "latency_runs": max(spec.latency_runs, 50),
               **environment(device)}
    return cache_key(payload), payload


def bench(store, spec: BenchSpec, force: bool = False, progress=None) -> dict:
    """A stored measurement when one exists for the same key, else measure and store it."""
    key, payload = bench_key(spec)
    if not force:
        cached = store.benchmark(key)
        if cached is not None:
            return {**cached, "cached": True}
    result = measure(spec, progress)
    row = {"cache_key": key, "checkpoint": spec.model, "arch": result["arch"],
           "img_size": result["img_size"], "batch_size": result["batch_size"],
           "precision": result["precision"], "channels_last": spec.channels_last,
           "compiled": spec.compile, "device_name": result["device_name"],
           "throughput": result["throughput"], "latency_p50_ms": result["latency_p50_ms"],
           "latency_p90_ms": result["latency_p90_ms"], "peak_memory_mb": result["peak_memory_mb"],
           "error": result["error"], "torch_version": result["torch_version"],
           "timm_version": result["timm_version"], "cuda_version": result["cuda_version"],
           "details": {**payload, "requested_batch_size": spec.batch_size,
                       "batch_sizes_tried": result.get("batch_sizes_tried"),
                       "num_classes": result["num_classes"], "img_width": result["img_width"]}}
    store.put_benchmark(row)
    return {**store.benchmark(key), "cached": False}
