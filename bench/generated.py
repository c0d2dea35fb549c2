"""What the evaluation benchmarks share: a temporary offline Hub cache of seeded checkpoints and
an ImageNet-layout folder of generated 500x375 JPEGs (no internet here; speed and prediction
checks do not depend on trained weights)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def offline_set(prefix: str, checkpoints, n_images: int, n_classes: int = 10):
    """(temporary folder, the opened evaluation set); HF_HUB_CACHE, HF_HUB_OFFLINE and
    MATCHUP_CACHE point inside the folder from now on."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(HF_HUB_CACHE=str(tmp / "hub"), HF_HUB_OFFLINE="1", MATCHUP_CACHE=str(tmp / "cache"))
    from engine.measure import datasets
    from tests.conftest import make_image_folder, write_hub_checkpoint
    for seed, checkpoint in enumerate(checkpoints):
        write_hub_checkpoint(tmp / "hub", checkpoint, seed)
    synsets = list(datasets.imagenet_synsets())[:n_classes]
    make_image_folder(tmp / "val", synsets=synsets, per_class=max(1, n_images // n_classes))
    return tmp, datasets.open_dataset(tmp / "val")
