"""The batches an evaluation pass reads: each checkpoint's own eval transform (timm's validate.py
form), images decoded by DataLoader workers (an undecodable one skipped, counted and listed) or read
back from the decoded-image cache, moved to the device with the next copy overlapped, and the
pixel scale and autocast every pass applies there. `settings` is an evaluate.EvalSettings (its
batch size, workers and strictness are read here)."""
from __future__ import annotations

from engine.measure import decoded
from engine.measure.datasets import EvalDataset
from engine.measure.eval_metrics import EvalError


def make_transform(config: dict):
    """validate.py's eval transform (prefetcher form: normalisation happens on the device)."""
    from timm.data import create_transform
    return create_transform(input_size=config["input_size"], is_training=False,
                            use_prefetcher=True, interpolation=config["interpolation"],
                            mean=config["mean"], std=config["std"], crop_pct=config["crop_pct"],
                            crop_mode=config["crop_mode"])


class _Images:
    """Torch dataset over an EvalDataset: (uint8 CHW tensor, index, decoded, why not). An image
    that cannot be decoded (truncated, empty, not an image) comes back as zeros with the reason,
    so one bad file never stops a run: it is skipped, counted and listed."""

    def __init__(self, dataset: EvalDataset, transform, shape: tuple):
        self.dataset, self.transform, self.shape = dataset, transform, shape

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        import torch
        try:
            image = self.transform(self.dataset.load(index))
            if not isinstance(image, torch.Tensor):
                image = torch.as_tensor(image)
            return image, index, True, ""
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a broken file
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
            return torch.zeros(self.shape, dtype=torch.uint8), index, False, why


def decoding_batches(dataset: EvalDataset, config: dict, settings, device, writer, bad: dict):
    """(uint8 images, indices, decoded mask) decoded by DataLoader workers; undecodable images go
    to `bad` (index -> why) and every batch into the cache `writer` when there is one."""
    import torch
    loader = torch.utils.data.DataLoader(
        _Images(dataset, make_transform(config), tuple(config["input_size"])),
        batch_size=settings.batch_size, shuffle=False, num_workers=settings.workers,
        pin_memory=device.type == "cuda", persistent_workers=False)
    for images, indices, ok, why in loader:
        indices = indices.tolist()
        for index, good, reason in zip(indices, ok.tolist(), why):
            if not good and settings.strict:
                raise strict_error(dataset, index, reason)
            if not good:
                bad[index] = reason
                if writer is not None:
                    writer.mark_bad(index, reason)
        if writer is not None:
            writer.write(indices, images.numpy(), ok.tolist())
        yield images, indices, ok


def strict_error(dataset: EvalDataset, index: int, why: str) -> EvalError:
    """--strict's one message for the first undecodable image (eval, sweep and probe)."""
    return EvalError(f"{dataset.files[index]} cannot be decoded ({why}); --strict stops at the first such "
                     "image and stores nothing. Fix or remove it, or run without --strict: undecodable "
                     "images are then skipped, counted and listed in the result.")


class _CachedBatches:
    """Batch b of a decoded-cache entry: a torch dataset of whole batches, so DataLoader workers
    read the memory-mapped pixels and its pin thread pins them while the GPU computes."""

    def __init__(self, entry: decoded.Entry, batch_size: int):
        self.entry, self.batch_size = entry, batch_size

    def __len__(self):
        return -(-len(self.entry) // self.batch_size)

    def __getitem__(self, b):
        import torch
        start, stop = b * self.batch_size, min((b + 1) * self.batch_size, len(self.entry))
        ok = torch.tensor([i not in self.entry.bad for i in range(start, stop)])
        return torch.from_numpy(self.entry.read(start, stop)), torch.arange(start, stop), ok  # CRC-checked


def cached_batches(entry: decoded.Entry, settings, device):
    """The same batches as decoding gives, read from a decoded-cache entry."""
    import torch
    loader = torch.utils.data.DataLoader(_CachedBatches(entry, settings.batch_size), batch_size=None,
                                         num_workers=settings.workers, pin_memory=device.type == "cuda")
    for images, indices, ok in loader:
        yield images, indices.tolist(), ok


def on_device(batches, device):
    """Batches moved to the device; on CUDA the next batch's copy runs on a side stream while
    the current batch's forward runs (pinned memory, non-blocking)."""
    import torch
    if device.type != "cuda":
        yield from batches
        return
    stream = torch.cuda.Stream(device=device)
    pending = None
    for images, indices, ok in batches:
        with torch.cuda.stream(stream):
            images = images.to(device, non_blocking=True)
        if pending is not None:
            yield pending
        torch.cuda.current_stream(device).wait_stream(stream)
        images.record_stream(torch.cuda.current_stream(device))
        pending = (images, indices, ok)
    if pending is not None:
        yield pending


def pixel_scale(mean, std, device):
    """(mean, std) tensors for uint8 NCHW batches: the normalisation eval does on the device."""
    import torch
    return (torch.tensor([x * 255 for x in mean], device=device).view(1, 3, 1, 1),
            torch.tensor([x * 255 for x in std], device=device).view(1, 3, 1, 1))


def autocast_for(precision: str, device):
    """torch.autocast for bf16/fp16, nothing for fp32."""
    import contextlib
    import torch
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()
