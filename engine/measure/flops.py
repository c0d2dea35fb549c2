"""Compute of a checkpoint as counted: parameters and FLOPs, and how the counts compare with timm's
published GMACs.

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


def timm_module():
    """timm, imported when first needed (it imports torch)."""
    import timm
    import timm.models
    return timm


def check_model_name(name: str) -> str:
    """The architecture of `arch` or `arch.tag`; unknown names get close suggestions."""
    timm = timm_module()
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
    cfg = timm_module().models.get_pretrained_cfg(arch)
    return cfg.num_classes if cfg is not None and cfg.num_classes is not None else 1000


def default_input_size(arch: str) -> tuple[int, int]:
    cfg = timm_module().models.get_pretrained_cfg(arch)
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


def build_model(arch: str, img_size: int, img_width: int, num_classes: int):
    timm = timm_module()
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
        model = build_model(arch, img_size, img_width, num_classes)
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


def error_reason(error: BaseException) -> str:
    """An exception as one short line for a message."""
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
        meta_reason = error_reason(meta_error)
    params = params_on_meta(arch, img_size, img_width, num_classes)
    if params is not None and params > CPU_FALLBACK_MAX_PARAMS:
        return Count(arch, img_size, img_width, num_classes, params, None, None, None, "meta",
                     f"fails on the meta device ({meta_reason}) and is too large "
                     f"({params / 1e9:.1f}B params) to rebuild with real CPU tensors")
    try:
        return _count_on("cpu", arch, img_size, img_width, num_classes)
    except Exception as cpu_error:  # noqa: BLE001
        cpu_reason = error_reason(cpu_error)
    size_note = ""
    if (img_size, img_width) != (default_h, default_w):
        size_note = (f"{arch} cannot take a {img_size}x{img_width} input (its default is "
                     f"{default_h}x{default_w}); ")
    return Count(arch, img_size, img_width, num_classes, params, None, None, None, "cpu",
                 f"{size_note}meta: {meta_reason}; cpu: {cpu_reason}")


def params_on_meta(arch: str, img_size: int, img_width: int, num_classes: int) -> int | None:
    import torch
    try:
        with torch.device("meta"):
            model = build_model(arch, img_size, img_width, num_classes)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - unknown size: the CPU retry decides
        return None


def checkpoint_target(name: str, img_size: int | None = None) -> tuple[str, int, int | None, int]:
    """What to count or time for `arch` or `arch.tag`: a checkpoint at its eval (test) size with
    its own head. A bare arch means timm's default pretrained tag (as timm's validate.py and
    benchmark.py read it), so `resnet50` is measured where `resnet50.a1_in1k` is (288 px)."""
    arch = check_model_name(name)
    cfg = timm_module().models.get_pretrained_cfg(name)  # a bare arch: its default tag's config
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
                     error_reason(e)).as_dict()


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
                   text_params=None, error=error_reason(e))
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
