"""What an evaluation reports: the running sums behind top-1/5, NLL, ECE and per-class counts, and
whether a checkpoint's head predicts the ImageNet-1k classes the set is scored on (its label offset)."""
from __future__ import annotations

from engine.errors import MatchupError
from engine.measure.datasets import EvalDataset

ECE_BINS = 15


class EvalError(MatchupError):
    """An evaluation cannot run or produced unusable numbers."""


class Metrics:
    """Running sums for one checkpoint, kept on the device the logits are on, so a batch adds to
    them without waiting for the GPU; `finish` reads them once."""

    def __init__(self, num_classes: int, device="cpu"):
        import torch
        self.n = 0  # known from batch sizes: no device read
        self.top1 = torch.zeros((), dtype=torch.int64, device=device)
        self.top5 = torch.zeros((), dtype=torch.int64, device=device)
        self.nll = torch.zeros((), dtype=torch.float64, device=device)
        self.bin_count = torch.zeros(ECE_BINS, dtype=torch.float64, device=device)
        self.bin_conf = torch.zeros(ECE_BINS, dtype=torch.float64, device=device)
        self.bin_correct = torch.zeros(ECE_BINS, dtype=torch.float64, device=device)
        self.class_total = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.class_correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.real_n = self.real_top1 = self.real_top5 = 0
        self.predictions = []  # one tensor per batch

    def update(self, logits, targets, real: list[list[int]] | None, subset):
        import torch
        import torch.nn.functional as F
        probs = logits.softmax(dim=1)
        confidence, predicted = probs.max(dim=1)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct = predicted == targets
        self.n += len(targets)
        self.top1 += correct.sum()
        self.top5 += (top5 == targets[:, None]).any(dim=1).sum()
        self.nll += F.cross_entropy(logits, targets, reduction="sum").double()
        # nan_to_num: a model with non-finite logits is failed at the next check; its sums don't matter
        bins = (confidence * ECE_BINS).nan_to_num(0.0).long().clamp_(0, ECE_BINS - 1)
        self.bin_count += torch.bincount(bins, minlength=ECE_BINS).double()
        self.bin_conf += torch.bincount(bins, weights=confidence.double(), minlength=ECE_BINS)
        self.bin_correct += torch.bincount(bins, weights=correct.double(), minlength=ECE_BINS)
        self.class_total.index_add_(0, targets, torch.ones_like(targets))
        self.class_correct.index_add_(0, targets, correct.long())
        self.predictions.append(predicted)
        if real is not None:
            in_1k = (lambda i: subset[i]) if subset else (lambda i: i)
            for labels, pred, top in zip(real, predicted.tolist(), top5.tolist()):
                if labels:
                    self.real_n += 1
                    self.real_top1 += in_1k(pred) in labels
                    self.real_top5 += any(in_1k(t) in labels for t in top)

    def finish(self) -> dict:
        top1, top5, nll = int(self.top1), int(self.top5), float(self.nll)
        ece = float((self.bin_conf - self.bin_correct).abs().sum() / max(self.n, 1))
        result = {"n_images": self.n, "top1": 100 * top1 / self.n,
                  "top5": 100 * top5 / self.n, "nll": nll / self.n, "ece": ece,
                  "per_class_correct": self.class_correct.tolist(),
                  "per_class_total": self.class_total.tolist(),
                  "ece_bins": {"count": self.bin_count.tolist(), "confidence": self.bin_conf.tolist(),
                               "correct": self.bin_correct.tolist()}}
        if self.real_n:
            result.update(top1=100 * self.real_top1 / self.real_n, top5=100 * self.real_top5 / self.real_n,
                          real_n_images=self.real_n, single_label_top1=100 * top1 / self.n)
        return result

    def predicted(self) -> list[int]:
        import torch
        return torch.cat(self.predictions).tolist() if self.predictions else []


def head_error(checkpoint: str, classes: int | None, offset: int, dataset: EvalDataset) -> EvalError | None:
    """Why a head with `classes` outputs cannot be scored on the 1k classes (None: it can)."""
    if classes is not None and classes - offset == 1000:
        return None
    what = {0: "no classifier head (a feature extractor)", 21841: "an ImageNet-21k head",
            21843: "an ImageNet-21k head", 11821: "an ImageNet-12k head"}.get(classes, f"a {classes}-class head")
    return EvalError(f"{checkpoint} has {what}; {dataset.variant} is scored on the 1000 "
                     "ImageNet-1k classes. Pick a checkpoint fine-tuned on ImageNet-1k "
                     f"(a tag ending in _in1k, e.g. `catalog list` shows them).")


def check_head(checkpoint: str, cfg, model, dataset: EvalDataset) -> int:
    """The label offset to drop; refuses a head that does not predict ImageNet-1k classes."""
    offset = cfg.label_offset or 0
    error = head_error(checkpoint, getattr(model, "num_classes", None), offset, dataset)
    if error is not None:
        raise error
    return offset
