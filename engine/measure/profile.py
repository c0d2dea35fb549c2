"""Compute of a checkpoint: parameters and FLOPs (counted) and speed and memory (measured).

Counting follows DESIGN.md's one convention: forward pass, batch 1, 2 FLOPs per multiply-add,
attention matmuls included, counted by torch.utils.flop_counter.FlopCounterMode on the meta
device (no weights, no real memory). MACs = FLOPs / 2.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass

from engine.errors import MatchupError

COUNTER = "torch.utils.flop_counter.FlopCounterMode"
# Ops whose FLOPs are attention (query-key and attention-value products). Published counters
# (fvcore, deepspeed) often miss them; the cross-check uses this split to explain outliers.
ATTENTION_OPS = ("scaled_dot_product", "bmm", "baddbmm")
# Past this many parameters a model that fails on meta is not rebuilt with real CPU tensors.
CPU_FALLBACK_MAX_PARAMS = 2_000_000_000


class ProfileError(MatchupError):
    """A model cannot be counted or measured as asked."""


def _timm():
    import timm
    import timm.models
    return timm


def check_model_name(name: str) -> str:
    """The architecture of `arch` or `arch.tag`; unknown names get close suggestions."""
    timm = _timm()
    arch = name.split(".", 1)[0]
    if timm.models.is_model(arch):
        if "." in name and name not in timm.list_pretrained(name):
            raise ProfileError(f"{arch} exists but has no pretrained tag {name.split('.', 1)[1]!r}; "
                               f"its checkpoints: {', '.join(timm.list_pretrained(arch + '.*')[:8])}.")
        return arch
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ProfileError(f"Unknown model {name!r}: timm {timm.__version__} has no architecture "
                       f"{arch!r}.{hint} `python -m engine catalog list` shows every checkpoint.")


def default_num_classes(arch: str) -> int:
    """The head timm builds when asked for `arch` alone (its default pretrained config)."""
    cfg = _timm().models.get_pretrained_cfg(arch)
    return cfg.num_classes if cfg is not None and cfg.num_classes is not None else 1000


def default_input_size(arch: str) -> tuple[int, int]:
    cfg = _timm().models.get_pretrained_cfg(arch)
    size = cfg.input_size if cfg is not None else (3, 224, 224)
    return size[1], size[2]


@dataclass
class Count:
    arch: str
    img_size: int
    img_width: int
    num_classes: int
    params: int | None
    flops: float | None
    macs: float | None
    attention_flops: float | None
    device: str  # "meta", or "cpu" where the meta device failed
    error: str | None = None
    flops_by_module: dict | None = None  # module class -> FLOPs in its own ops (not children's)
    reparameterizable: bool | None = None  # has branches that fuse for inference (RepVGG-style)

    def as_dict(self) -> dict:
        return asdict(self)


def _build(arch: str, img_size: int, img_width: int, num_classes: int):
    timm = _timm()
    kwargs = {"pretrained": False, "num_classes": num_classes}
    model = None
    if (img_size, img_width) != default_input_size(arch):
        try:
            model = timm.create_model(arch, **kwargs, img_size=(img_size, img_width))
        except TypeError:  # a model without an img_size argument takes any input size
            pass
    if model is None:
        model = timm.create_model(arch, **kwargs)
    # No parameter needs a gradient: FlopCounterMode's module tracker would otherwise hook
    # parameters passed between modules (CaiT's class token) and fail under inference_mode.
    return model.eval().requires_grad_(False)


def _count_on(device: str, arch: str, img_size: int, img_width: int, num_classes: int) -> Count:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device(device):
        model = _build(arch, img_size, img_width, num_classes)
        params = sum(p.numel() for p in model.parameters())
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(torch.zeros(1, 3, img_size, img_width))
    counts = counter.get_flop_counts()
    by_op = counts.get("Global", {})
    attention = sum(v for op, v in by_op.items() if any(a in str(op) for a in ATTENTION_OPS))
    flops = float(counter.get_total_flops())
    reparameterizable = any(callable(getattr(m, "reparameterize", None)) for m in model.modules())
    return Count(arch, img_size, img_width, num_classes, params, flops, flops / 2,
                 float(attention), device, None, _flops_by_module(model, counts), reparameterizable)


def _flops_by_module(model, counts: dict) -> dict[str, float]:
    """FLOPs per module class, each module credited only with ops outside its children, so the
    parts add up to the total (e.g. {'Linear': ..., 'Attention': ..., 'LSTM': ...})."""
    totals = {path: float(sum(ops.values())) for path, ops in counts.items() if path != "Global"}
    child_sums = dict.fromkeys(totals, 0.0)
    for path, total in totals.items():  # credit each path to its nearest counted ancestor
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            ancestor = ".".join(parts[:cut])
            if ancestor in totals:
                child_sums[ancestor] += total
                break
    modules = dict(model.named_modules())
    by_class: dict[str, float] = {}
    for path, total in totals.items():
        own = total - child_sums[path]
        if own <= 0:
            continue
        parts = path.split(".")
        module = modules.get(".".join(parts[1:]))  # the first part is the root's class name
        name = type(module).__name__ if module is not None else parts[-1]
        by_class[name] = by_class.get(name, 0.0) + own
    return dict(sorted(by_class.items(), key=lambda kv: -kv[1]))


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300]


def count(arch: str, img_size: int | None = None, num_classes: int | None = None,
          img_width: int | None = None) -> Count:
    """Params and FLOPs at batch 1; failures come back as a Count with `error`, never dropped."""
    arch = check_model_name(arch)
    default_h, default_w = default_input_size(arch)
    img_size = img_size or default_h
    img_width = img_width or (default_w if img_size == default_h else img_size)
    if img_size < 8 or img_size > 8192:
        raise ProfileError(f"img_size {img_size} is outside 8..8192 pixels.")
    num_classes = default_num_classes(arch) if num_classes is None else num_classes
    try:
        return _count_on("meta", arch, img_size, img_width, num_classes)
    except Exception as meta_error:  # noqa: BLE001 - any failure on meta gets a real-tensor retry
        meta_reason = _reason(meta_error)
    params = _params_on_meta(arch, img_size, img_width, num_classes)
    if params is not None and params > CPU_FALLBACK_MAX_PARAMS:
        return Count(arch, img_size, img_width, num_classes, params, None, None, None, "meta",
                     f"fails on the meta device ({meta_reason}) and is too large "
                     f"({params / 1e9:.1f}B params) to rebuild with real CPU tensors")
    try:
        return _count_on("cpu", arch, img_size, img_width, num_classes)
    except Exception as cpu_error:  # noqa: BLE001
        cpu_reason = _reason(cpu_error)
    size_note = ""
    if (img_size, img_width) != (default_h, default_w):
        size_note = (f"{arch} cannot take a {img_size}x{img_width} input (its default is "
                     f"{default_h}x{default_w}); ")
    return Count(arch, img_size, img_width, num_classes, params, None, None, None, "cpu",
                 f"{size_note}meta: {meta_reason}; cpu: {cpu_reason}")


def _params_on_meta(arch: str, img_size: int, img_width: int, num_classes: int) -> int | None:
    import torch
    try:
        with torch.device("meta"):
            model = _build(arch, img_size, img_width, num_classes)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - unknown size: the CPU retry decides
        return None


def checkpoint_target(name: str, img_size: int | None = None) -> tuple[str, int, int | None, int]:
    """What to count or time for `arch` or `arch.tag`: a checkpoint at its eval (test) size with
    its own head. A bare arch means timm's default pretrained tag (as timm's validate.py and
    benchmark.py read it), so `resnet50` is measured where `resnet50.a1_in1k` is (288 px)."""
    arch = check_model_name(name)
    cfg = _timm().models.get_pretrained_cfg(name)  # a bare arch: its default tag's config
    if cfg is None:
        h, w = default_input_size(arch)
        num_classes = default_num_classes(arch)
    else:
        h, w = (cfg.test_input_size or cfg.input_size)[1:]
        num_classes = cfg.num_classes if cfg.num_classes is not None else 1000
    if img_size is not None and img_size != h:
        h, w = img_size, img_size
    return arch, h, w, num_classes


def count_strict(name: str, img_size: int | None = None) -> Count:
    """`count` for one model a user asked for: a failure is an error with the reason."""
    arch, h, w, num_classes = checkpoint_target(name, img_size)
    result = count(arch, h, num_classes, w)
    if result.error:
        raise ProfileError(f"Cannot count {arch} at {result.img_size}x{result.img_width}: "
                           f"{result.error}.")
    return result


def _count_worker(target: tuple) -> dict:
    import torch
    torch.set_num_threads(1)
    arch, img_size, img_width, num_classes = target
    try:
        return count(arch, img_size, num_classes, img_width).as_dict()
    except Exception as e:  # noqa: BLE001 - recorded with its reason, never dropped
        return Count(arch, img_size, img_width, num_classes, None, None, None, None, "meta",
                     _reason(e)).as_dict()


def count_many(targets: list[tuple[int, ...]], jobs: int | None = None, progress=None):
    """Count (arch, img_size, img_width, num_classes) targets in worker processes; yields dicts."""
    jobs = jobs or max(1, (os.cpu_count() or 1))
    if jobs == 1:
        for target in targets:
            result = _count_worker(target)
            if progress:
                progress(result)
            yield result
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        for result in pool.map(_count_worker, targets, chunksize=4):
            if progress:
                progress(result)
            yield result


def count_image_text(model: str, image_size: int, text_length: int) -> dict:
    """An OpenCLIP model's towers counted by the same convention, on the meta device: the image
    tower on one image at `image_size`, the text tower on one caption of `text_length` tokens,
    and the whole training forward (image and text; CoCa's multimodal decoder too). A model that
    cannot be built (a Hugging Face text tower whose config is not cached, offline) is a row with
    its error, never dropped."""
    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    row = {"model": model, "image_size": int(image_size), "text_length": int(text_length), "counter": COUNTER,
           "torch_version": torch.__version__, "open_clip_version": open_clip.__version__, "error": None}
    try:
        with torch.device("meta"):  # built on meta too, not built on the CPU and then moved
            net = open_clip.create_model(model, pretrained=None, device="meta", force_image_size=int(image_size),
                                         force_context_length=int(text_length)).eval().requires_grad_(False)
        image = torch.zeros(1, 3, int(image_size), int(image_size), device="meta")
        text = torch.zeros(1, int(text_length), dtype=torch.long, device="meta")
        totals = {}
        for part, run in (("image_flops", lambda: net.encode_image(image)), ("text_flops", lambda: net.encode_text(text)),
                          ("train_forward_flops", lambda: net(image, text))):
            counter = FlopCounterMode(display=False)
            with counter, torch.inference_mode():
                run()
            totals[part] = float(counter.get_total_flops())
        image_params = sum(p.numel() for p in net.visual.parameters())
        row.update(totals, image_params=image_params,
                   text_params=sum(p.numel() for p in net.parameters()) - image_params)
    except Exception as e:  # noqa: BLE001 - recorded with its reason
        row.update(image_flops=None, text_flops=None, train_forward_flops=None, image_params=None,
                   text_params=None, error=_reason(e))
    return row


def _count_image_text_worker(target: tuple) -> dict:
    import torch
    torch.set_num_threads(1)
    return count_image_text(*target)


def count_image_text_many(targets: list[tuple[str, int, int]], jobs: int | None = None, progress=None):
    """count_image_text over (model, image size, text length) targets in worker processes."""
    jobs = jobs or max(1, (os.cpu_count() or 1))
    if jobs == 1:
        results = map(_count_image_text_worker, targets)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_count_image_text_worker, targets)
    try:
        for result in results:
            if progress:
                progress(result)
            yield result
    finally:
        if jobs != 1:
            pool.shutdown()


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
            "torch_version": torch.__version__, "timm_version": _timm().__version__,
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

    params = _params_on_meta(arch, h, w, num_classes)
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
            model = _build(arch, h, w, num_classes).to(device, memory_format=memory_format)
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
                                       f"{_reason(e)}") from None
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


# -- cross-check against published counters ---------------------------------------------------------
CROSSCHECK_TOLERANCE = 0.03
# timm publishes GMACs with two decimals: the true value lies within +-0.005 of the printed one.
PUBLISHED_ROUNDING_GMACS = 0.005


def agrees(counted_gmacs: float, published_gmacs: float) -> bool:
    """Within 3% of the published value, allowing for that value's rounding."""
    return (abs(counted_gmacs - published_gmacs)
            <= CROSSCHECK_TOLERANCE * published_gmacs + PUBLISHED_ROUNDING_GMACS)


def _outlier_reason(row) -> str:
    counted, published = row.counted_gmacs, row.published_gmacs
    by_module = row.flops_by_module
    if isinstance(by_module, str):
        import json
        by_module = json.loads(by_module)
    by_module = by_module or {}
    if counted > published and row.reparameterizable:
        return ("re-parameterizable net: counted the multi-branch graph timm builds; the published "
                "number is for the fused inference graph")
    if counted > published:
        for module_class, flops in by_module.items():
            if module_class in ("Conv2d", "Linear"):
                continue
            gmacs = flops / 2e9
            if agrees(counted - gmacs, published):
                return (f"published counter omits the {module_class} ops ({gmacs:.2f} of "
                        f"{counted:.2f} GMACs); without them the counts agree")
        attention = row.attention_gmacs or 0
        if attention > 0:
            return (f"counted more: attention matmuls are {attention / counted:.0%} of the count "
                    "and the published counter misses part of them")
        main = next(iter(by_module), "Conv2d")
        return (f"counted more, all of it in plain {main}/Linear ops that the published counter "
                "evidently counts differently for this net (not explained further)")
    return ("counted less: the published counter also counts non-matmul work (elementwise "
            "squeeze-excite and activation ops, weight standardization, norms, pooling) that "
            "FlopCounterMode does not")


def crosscheck(frame):
    """Counted vs published MACs per (arch, img_size): the ratio, whether it is within 3%, and
    for each outlier the likely reason."""
    frame = frame.copy()
    frame["ratio"] = frame["counted_gmacs"] / frame["published_gmacs"]
    frame["within_tolerance"] = [agrees(c, p) for c, p in
                                 zip(frame["counted_gmacs"], frame["published_gmacs"])]
    frame["within_3pct_strict"] = (frame["ratio"] - 1).abs() <= CROSSCHECK_TOLERANCE
    frame["reason"] = None
    outliers = ~frame["within_tolerance"]
    if outliers.any():
        frame.loc[outliers, "reason"] = [_outlier_reason(r) for r in frame[outliers].itertuples()]
    return frame


def crosscheck_summary(frame) -> dict:
    checked = crosscheck(frame)
    n = len(checked)
    quantiles = checked["ratio"].quantile([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]) if n else None
    return {
        "pairs": n,
        "within_tolerance": int(checked["within_tolerance"].sum()),
        "share_within_tolerance": float(checked["within_tolerance"].mean()) if n else None,
        "share_within_3pct_strict": float(checked["within_3pct_strict"].mean()) if n else None,
        "tolerance": (f"|counted - published| <= {CROSSCHECK_TOLERANCE:.0%} of published + "
                      f"{PUBLISHED_ROUNDING_GMACS} GMACs (published values have two decimals)"),
        "ratio_quantiles": ({f"p{int(q * 100)}": float(v) for q, v in quantiles.items()}
                            if n else {}),
        "outliers": checked[~checked["within_tolerance"]][
            ["arch", "arch_class", "img_size", "counted_gmacs", "published_gmacs", "ratio",
             "reason", "source_file"]].to_dict(orient="records"),
    }
