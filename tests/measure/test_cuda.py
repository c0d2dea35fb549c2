"""The GPU path (pinned memory, copies overlapped with the forward, normalisation on the device,
channels_last, bf16 autocast, the decoded cache read into pinned memory): runs where torch sees a
CUDA GPU (`bench/gpu_check.sh`), skipped elsewhere."""
import pytest
import torch

from engine.measure import datasets, evaluate, sweep
from engine.measure.evaluate import EvalSettings
from engine.store import Store
from tests.conftest import TINY_CHECKPOINTS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _agreement(a: list[int], b: list[int]) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def test_cuda_fp32_agrees_with_the_cpu(offline_hub, image_folder, tmp_path):
    dataset = datasets.open_dataset(image_folder)
    cpu = evaluate.evaluate(Store(tmp_path / "cpu.duckdb"), list(TINY_CHECKPOINTS), dataset,
                            EvalSettings(batch_size=5, workers=0, decoded_cache=False))
    gpu = evaluate.evaluate(Store(tmp_path / "gpu.duckdb"), list(TINY_CHECKPOINTS), dataset,
                            EvalSettings(device="cuda", batch_size=5, workers=2, decoded_cache=False))
    for c, g in zip(cpu, gpu):
        assert g["device_name"] != c["device_name"] and g["cuda_version"] == torch.version.cuda
        assert _agreement(c["details"]["predictions"], g["details"]["predictions"]) >= 11 / 12
        assert g["cache_key"] == c["cache_key"]  # the device is provenance, not part of the measurement's key


def test_cuda_bf16_channels_last_from_the_decoded_cache_equals_decoding(offline_hub, image_folder, tmp_path):
    dataset = datasets.open_dataset(image_folder)
    settings = EvalSettings(device="cuda", precision="bf16", batch_size=4, workers=2, channels_last=True)
    torch.backends.cudnn.deterministic = True
    try:
        first = evaluate.evaluate(Store(tmp_path / "a.duckdb"), ["test_convnext.r160_in1k"], dataset, settings)[0]
        again = evaluate.evaluate(Store(tmp_path / "b.duckdb"), ["test_convnext.r160_in1k"], dataset, settings)[0]
    finally:
        torch.backends.cudnn.deterministic = False
    assert first["details"]["pixels_from"] == "decoded here" and again["details"]["pixels_from"] == "decoded cache"
    assert first["details"]["predictions"] == again["details"]["predictions"]
    assert first["precision"] == "bf16" and 0 <= again["ece"] <= 1


def test_a_sweep_on_cuda_with_compile(offline_hub, image_folder, store):
    dataset = datasets.open_dataset(image_folder)
    settings = EvalSettings(device="cuda", precision="bf16", batch_size=6, workers=2, compile=True)
    the_plan = sweep.plan(store, list(TINY_CHECKPOINTS), dataset, settings)  # no catalog needed to run
    report = sweep.run(store, the_plan, dataset, settings, show_progress=False)
    assert [r["status"] for r in report.results] == ["done"] * len(TINY_CHECKPOINTS)
    assert store.count("evals") == len(TINY_CHECKPOINTS)
