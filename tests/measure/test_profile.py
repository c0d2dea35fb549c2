import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import timm
import torch

from engine.__main__ import main
from engine.measure import flops, profile
from engine.measure.profile import BenchSpec, ProfileError
from tests.conftest import ROOT, run_cli

TINY = "test_vit.r160_in1k"


# -- counting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,gflops", [
    ("resnet50", 8.18), ("vit_base_patch16_224", 35.13), ("convnext_tiny", 8.91),
    ("swin_tiny_patch4_window7_224", 8.98), ("deit_small_patch16_224", 9.20),
    ("efficientnet_b0", 0.772),
])
def test_counted_flops_reproduce_the_reference_values(arch, gflops):
    result = flops.count(arch, 224)
    assert result.error is None and result.device == "meta"
    assert result.flops / 1e9 == pytest.approx(gflops, rel=0.005)
    assert result.macs == result.flops / 2


def test_attention_matmuls_are_counted_and_split_out():
    vit = flops.count("vit_base_patch16_224", 224)
    # 12 blocks x (QK^T + AV) x 197 tokens^2 x 768 dims x 2 FLOPs per MAC
    assert vit.attention_flops == pytest.approx(12 * 2 * 197 * 197 * 768 * 2, rel=1e-6)
    assert flops.count("resnet50", 224).attention_flops == 0


def test_count_at_another_resolution_rebuilds_the_position_embedding():
    at_224 = flops.count("vit_base_patch16_224", 224)
    at_384 = flops.count("vit_base_patch16_224", 384)
    assert at_384.params - at_224.params == (24 * 24 - 14 * 14) * 768
    assert at_384.flops > 3 * at_224.flops


def test_checkpoint_is_counted_at_its_eval_size_with_its_own_head():
    assert flops.checkpoint_target("convnext_base.fb_in22k_ft_in1k") == ("convnext_base", 288, 288, 1000)
    assert flops.checkpoint_target("vit_base_patch16_224.augreg_in21k") == (
        "vit_base_patch16_224", 224, 224, 21843)
    # a bare name is timm's default pretrained tag, at its test size (timm's scripts do the same)
    assert flops.checkpoint_target("resnet50") == flops.checkpoint_target("resnet50.a1_in1k") == (
        "resnet50", 288, 288, 1000)
    assert flops.checkpoint_target("regnety_040") == flops.checkpoint_target(
        timm.models.get_pretrained_cfg("regnety_040").hf_hub_id.split("/")[-1])


def test_unknown_model_suggests_close_names():
    with pytest.raises(ProfileError) as err:
        flops.count_strict("resnt50")
    assert "Unknown model 'resnt50'" in str(err.value) and "resnet50" in str(err.value)
    with pytest.raises(ProfileError, match="no pretrained tag"):
        flops.count_strict("resnet50.no_such_tag")


def test_img_size_the_architecture_cannot_take_is_a_clear_error():
    with pytest.raises(ProfileError) as err:
        flops.count_strict("maxvit_tiny_tf_224", img_size=100)
    assert "cannot take a 100x100 input" in str(err.value)
    with pytest.raises(ProfileError, match="outside 8..8192"):
        flops.count_strict("resnet50", img_size=4)


READS_A_VALUE = """
import torch
from timm.models import register_model


class ReadsAValueInForward(torch.nn.Module):
    \"\"\"Data-dependent forward (`.item()`), which the meta device cannot run.\"\"\"

    def __init__(self, num_classes=1000, **kwargs):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.head = torch.nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.conv(x)
        if x.abs().sum().item() < 0:
            raise AssertionError("unreachable")
        return self.head(x.mean((2, 3)))


@register_model
def matchup_test_reads_a_value(pretrained=False, **kwargs):
    return ReadsAValueInForward(**kwargs)
"""


def test_model_that_fails_on_meta_is_counted_with_real_cpu_tensors(tmp_path):
    # in its own process, so the extra model never enters this session's timm registry
    (tmp_path / "reads_a_value.py").write_text(READS_A_VALUE)
    code = ("import json, reads_a_value; from engine.measure import flops; "
            "print(json.dumps(flops.count('matchup_test_reads_a_value', 224, 1000).as_dict()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None and result["device"] == "cpu"
    conv_macs, head_macs = 222 * 222 * 8 * 3 * 3 * 3, 8 * 1000
    assert result["flops"] == 2 * (conv_macs + head_macs)
    assert result["flops_by_module"] == {"Conv2d": 2 * conv_macs, "Linear": 2 * head_macs}


def test_flops_are_split_by_module_class_and_add_up():
    sequencer = flops.count("sequencer2d_s", 224)
    assert sum(sequencer.flops_by_module.values()) == pytest.approx(sequencer.flops)
    assert sequencer.flops_by_module["LSTM"] / sequencer.flops == pytest.approx(0.41, abs=0.02)
    assert flops.count("repvgg_a0", 224).reparameterizable
    assert not flops.count("resnet50", 224).reparameterizable


def test_count_many_records_failures_with_their_reason_instead_of_dropping_them():
    targets = [("resnet18", 224, 224, 1000), ("maxvit_tiny_tf_224", 100, 100, 1000)]
    results = list(flops.count_many(targets, jobs=1))
    assert [r["arch"] for r in results] == ["resnet18", "maxvit_tiny_tf_224"]
    assert results[0]["error"] is None and results[1]["error"]


def test_profile_cli_stores_counts_and_answers_json(tmp_path, capsys):
    db = str(tmp_path / "m.duckdb")
    assert main(["--db", db, "profile", TINY, "resnet18", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # resnet18 bare is its default tag resnet18.a1_in1k, measured at that tag's test size
    assert [(r["arch"], r["img_size"]) for r in rows] == [("test_vit", 160), ("resnet18", 288)]
    from engine.store import Store
    stored = Store(db).compute_for("resnet18", 288, 1000)
    assert stored["flops"] == rows[1]["flops"] and stored["counter"].startswith(flops.COUNTER)


def test_compute_targets_cover_every_checkpoint_at_its_eval_size(catalog_store):
    targets = catalog_store.compute_targets(missing_only=False)
    keys = set(zip(targets["arch"], targets["img_size"], targets["num_classes"]))
    assert ("convnext_base", 288, 1000) in keys           # fb_in22k_ft_in1k at its test size
    assert ("vit_base_patch16_224", 224, 21843) in keys   # the in21k head
    with catalog_store.connect() as con:
        n_pairs = con.execute("SELECT count(DISTINCT (arch, coalesce(test_h, input_h), num_classes))"
                              " FROM checkpoints WHERE zoo = 'imagenet'").fetchall()[0][0]
    assert len(keys) >= n_pairs  # (image-text towers are counted with their text towers: image_text_compute)


def test_shipped_compute_matches_a_fresh_count(catalog_store):
    shipped = catalog_store.compute_for("convnext_base", 288, 1000)
    assert shipped is not None, "data/compute.csv should be loaded by catalog refresh"
    fresh = flops.count("convnext_base", 288, 1000)
    assert shipped["flops"] == fresh.flops and shipped["params"] == fresh.params


# -- cross-check --------------------------------------------------------------------------------
def test_crosscheck_flags_outliers_and_gives_each_a_reason():
    lstm = {"Linear": 9.5e9, "LSTM": 6.8e9, "Conv2d": 0.37e9}
    frame = pd.DataFrame([
        # arch, class, size, counted, published, attention, by module, reparameterizable
        ("resnet50", "ConvNet", 224, 4.089, 4.11, 0.0, {"Conv2d": 8.1e9}, False),
        ("tiny", "ConvNet", 224, 0.0565, 0.06, 0.0, {"Conv2d": 1.1e8}, False),  # within rounding
        ("seq_like", "MLP", 224, 8.334, 4.96, 0.0, lstm, False),  # published skips the LSTM
        ("rep_like", "ConvNet", 224, 1.51, 1.36, 0.0, {"Conv2d": 3e9}, True),
        ("vit_like", "ViT", 224, 4.06, 3.83, 0.71, {"Linear": 6.7e9, "Attention": 1.4e9}, False),
        ("mobile_like", "ConvNet", 224, 0.2166, 0.23, 0.0, {"Conv2d": 4.3e8}, False),
    ], columns=["arch", "arch_class", "img_size", "counted_gmacs", "published_gmacs",
                "attention_gmacs", "flops_by_module", "reparameterizable"]
    ).assign(family="x", source_file="f.csv", params_m=1.0)
    checked = flops.crosscheck(frame).set_index("arch")
    assert list(checked["within_tolerance"]) == [True, True, False, False, False, False]
    assert not checked.loc["tiny", "within_3pct_strict"]
    assert "omits the LSTM ops" in checked.loc["seq_like", "reason"]
    assert "re-parameterizable" in checked.loc["rep_like", "reason"]
    assert "attention matmuls are 17%" in checked.loc["vit_like", "reason"]
    assert "counted less" in checked.loc["mobile_like", "reason"]
    summary = flops.crosscheck_summary(frame)
    assert summary["pairs"] == 6 and summary["within_tolerance"] == 2
    assert [o["arch"] for o in summary["outliers"]] == ["seq_like", "rep_like", "vit_like", "mobile_like"]


def test_crosscheck_joins_counted_and_published_macs(catalog_store, tmp_path):
    from engine.catalog import timm_published
    (tmp_path / "benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv").write_text(
        "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count,"
        "infer_gmacs,infer_macts\nresnet50,224,3000,85,256,25.56,4.11,11.1\n")
    timm_published.import_dir(catalog_store, tmp_path)
    summary = flops.crosscheck_summary(catalog_store.compute_crosscheck())
    resnet = [r for r in flops.crosscheck(catalog_store.compute_crosscheck()).itertuples()
              if r.arch == "resnet50"][0]
    assert resnet.ratio == pytest.approx(8.178368512 / 2 / 4.11, rel=1e-6)
    assert summary["pairs"] == 1 and summary["within_tolerance"] == 1


# -- measuring ----------------------------------------------------------------------------------
FAST = dict(warmup_steps=2, timed_steps=3, latency_runs=50)


def test_bench_measures_and_caches_on_cpu(store):
    spec = BenchSpec(TINY, batch_size=4, **FAST)
    first = profile.bench(store, spec)
    assert first["cached"] is False and first["error"] is None
    assert first["throughput"] > 0 and first["batch_size"] == 4
    assert 0 < first["latency_p50_ms"] <= first["latency_p90_ms"]
    assert first["peak_memory_mb"] > 1 and first["device_name"].startswith("CPU")
    assert first["details"]["threads"] == torch.get_num_threads()
    again = profile.bench(store, spec)
    assert again["cached"] is True and again["cache_key"] == first["cache_key"]
    assert again["throughput"] == first["throughput"]
    forced = profile.bench(store, spec, force=True)
    assert forced["cached"] is False and forced["created_at"] >= first["created_at"]
    assert store.count("benchmarks") == 1
    other = profile.bench(store, BenchSpec(TINY, batch_size=2, **FAST))
    assert other["cache_key"] != first["cache_key"] and store.count("benchmarks") == 2


def test_a_benchmark_reports_progress_images_per_second_and_eta(store):
    """A queued benchmark once sat at 0% for minutes: now every step reports done/total, images/s
    and an ETA, and the last report is the whole run."""
    states = []
    profile.bench(store, BenchSpec(TINY, batch_size=4, **FAST), progress=states.append)
    total = 2 * FAST["warmup_steps"] + FAST["latency_runs"] + FAST["timed_steps"]
    assert [s["done"] for s in states] == list(range(1, total + 1)) and {s["total"] for s in states} == {total}
    assert all(s["images_per_sec"] > 0 and s["eta_s"] >= 0 for s in states)
    assert states[-1]["eta_s"] == 0 and states[0]["eta_s"] > 0


def test_peak_memory_on_cpu_covers_at_least_the_weights(store):
    result = profile.bench(store, BenchSpec("resnet18", batch_size=2, **FAST))
    weights_mb = 11_689_512 * 4 / 2**20
    assert weights_mb <= result["peak_memory_mb"] < 20 * weights_mb


def test_bench_auto_batch_and_bf16_channels_last_on_cpu(store):
    result = profile.bench(store, BenchSpec(TINY, precision="bf16", channels_last=True,
                                            batch_size="auto", **FAST))
    assert result["error"] is None and result["batch_size"] == profile.AUTO_BATCH_START["cpu"]
    assert result["precision"] == "bf16" and result["channels_last"]


def test_fp16_on_cpu_is_refused_with_the_reason(store):
    with pytest.raises(ProfileError, match="fp16 on CPU is refused"):
        profile.bench(store, BenchSpec(TINY, precision="fp16"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    done = run_cli("bench", TINY, "--device", "cuda", db=tmp_path / "m.duckdb")
    assert done.returncode == 2
    assert "sees none" in done.stderr and "--device cpu" in done.stderr
    assert "Traceback" not in done.stderr


def test_model_that_exceeds_memory_at_batch_1_is_recorded_not_a_crash(tmp_path):
    db = tmp_path / "m.duckdb"
    done = run_cli("bench", "vit_large_patch16_224", "--max-memory-mb", "64", "--json", db=db)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["error"].startswith("out of memory at batch 1") and row["throughput"] is None
    from engine.store import Store
    assert Store(db).benchmark(row["cache_key"])["error"] == row["error"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bench_on_cuda_uses_events_and_reports_allocated_memory(store):
    result = profile.bench(store, BenchSpec(TINY, device="cuda", precision="bf16", batch_size=8, **FAST))
    assert result["error"] is None and result["cuda_version"] == torch.version.cuda
    assert result["peak_memory_mb"] > 0 and result["throughput"] > 0


def test_bench_with_torch_compile_is_a_separate_measurement(store):
    spec = dict(batch_size=2, warmup_steps=2, timed_steps=3, latency_runs=50)
    eager = profile.bench(store, BenchSpec("test_resnet.r160_in1k", **spec))
    compiled = profile.bench(store, BenchSpec("test_resnet.r160_in1k", compile=True, **spec))
    assert compiled["compiled"] and not eager["compiled"]
    assert compiled["error"] is None and compiled["throughput"] > 0
    assert compiled["cache_key"] != eager["cache_key"]
