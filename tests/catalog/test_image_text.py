"""The image-text zoo: OpenCLIP's catalog, its published tables, and exact training compute."""
import pandas as pd
import pytest

from engine.catalog import image_text, image_text_published as published, timm_models, training_compute
from tests.conftest import run_cli, write_open_clip_docs


def test_every_open_clip_pair_is_catalogued_with_class_data_and_samples(catalog_store):
    listing = timm_models.list_checkpoints(catalog_store, zoo="image-text").set_index("checkpoint")
    assert len(listing) == len(image_text.pairs()) and (listing["zoo"] == "image-text").all()
    convnext = listing.loc["open_clip:convnext_base_w.laion2b_s13b_b82k"]
    assert (convnext["arch_class"], convnext["pretrain_data"], convnext["samples_seen"]) == ("ConvNet", "LAION-2B", 13e9)
    assert convnext["timm_checkpoint"] == "convnext_base.clip_laion2b"
    resnet = listing.loc["open_clip:RN50.openai"]  # OpenAI: 32 epochs of WIT-400M
    assert (resnet["arch_class"], resnet["pretrain_data"], resnet["samples_seen"]) == ("ConvNet", "OpenAI WIT-400M", 12.8e9)
    assert listing.loc["open_clip:ViT-L-14.openai", "timm_checkpoint"] == "vit_large_patch14_clip_224.openai"
    assert listing.loc["open_clip:coca_ViT-B-32.laion2b_s13b_b90k", "arch_class"] == "ViT"
    # e32 = 32 epochs of LAION-400M as OpenCLIP counted it
    assert listing.loc["open_clip:ViT-B-32.laion400m_e32", "samples_seen"] == pytest.approx(32 * 407.3e6, rel=1e-3)
    assert set(listing["arch_class"]) <= {"ConvNet", "ViT", "Hybrid"}
    # the ImageNet zoo is unchanged by it
    assert not timm_models.list_checkpoints(catalog_store, zoo="imagenet")["checkpoint"].str.startswith("open_clip:").any()


def test_samples_seen_parsed_from_tags():
    assert image_text.samples_in_tag("laion2b_s34b_b79k") == 34e9
    assert image_text.samples_in_tag("datacomp_m_s128m_b4k") == 128e6
    assert image_text.samples_in_tag("laion2b_e16") is None and image_text.samples_in_tag("webli") is None


def test_training_compute_is_three_forward_passes_of_both_towers_per_sample_seen(catalog_store):
    with catalog_store.connect() as con:
        rows = con.execute("SELECT checkpoint, train_flops, train_flops_low, complete, confidence, note "
                           "FROM training_compute "
                           "WHERE checkpoint LIKE 'open_clip:%'").df().set_index("checkpoint")
        counted = con.execute("SELECT model, image_size, image_flops, text_flops FROM image_text_compute "
                              "WHERE model = 'convnext_base_w' AND image_size = 256").df().iloc[0]
    assert len(rows) == len(image_text.pairs())
    exact = rows.loc["open_clip:convnext_base_w.laion2b_s13b_b82k"]
    assert exact["confidence"] == "exact"
    assert exact["train_flops"] == pytest.approx(3 * (counted["image_flops"] + counted["text_flops"]) * 13e9)
    # a tag that states no samples seen: unknown, said so, nothing invented
    siglip = rows.loc["open_clip:PE-Core-T-16-384.meta"]
    assert pd.isna(siglip["train_flops"]) and "unknown" in siglip["note"] and "samples seen" in siglip["note"]
    assert rows["train_flops"].notna().sum() >= 145
    # an image tower initialised from a run not counted here is a lower bound, never a complete total
    eva = rows.loc["open_clip:EVA02-B-16.merged2b_s8b_b131k"]
    assert pd.isna(eva["train_flops"]) and eva["train_flops_low"] > 0 and not eva["complete"]


def test_counted_flops_agree_with_open_clips_published_profile(catalog_store):
    published.load_snapshot(catalog_store)
    with catalog_store.connect() as con:
        both = con.execute("""SELECT c.image_flops / 1e9 AS ours_image, p.image_gflops, c.text_flops / 1e9 AS ours_text,
                                     p.text_gflops
                              FROM image_text_compute c JOIN published_image_text_profile p
                                ON p.model = c.model AND p.image_size = c.image_size WHERE c.error IS NULL""").df()
    assert len(both) >= 40
    assert (both["ours_image"] / both["image_gflops"] - 1).abs().max() < 0.005
    assert (both["ours_text"] / both["text_gflops"] - 1).abs().max() < 0.005


def test_shipped_open_clip_snapshot_loads_offline_with_its_provenance(catalog_store):
    assert "loaded" in published.load_snapshot(catalog_store)
    assert "already" in published.load_snapshot(catalog_store).lower()
    [shipped] = catalog_store.image_text_provenance()
    assert shipped["origin"] == "snapshot" and shipped["commit"] == published.OPEN_CLIP_COMMIT and shipped["files"] == 3
    with catalog_store.connect() as con:
        metrics = dict(con.execute("SELECT metric, count(*) FROM published_image_text GROUP BY metric").fetchall())
    assert len([m for m in metrics if m.startswith("zeroshot:")]) == 39  # 38 tasks and their average
    assert metrics["zeroshot:imagenet1k.top1"] >= 100 and metrics["retrieval:mscoco.image_recall@5"] >= 50


def test_import_reads_open_clips_tables_and_refuses_a_damaged_one(store, tmp_path):
    folder = write_open_clip_docs(tmp_path / "docs")
    report = published.import_dir(store, folder)
    assert report.imported == {published.RESULTS_FILE: 78, published.RETRIEVAL_FILE: 24, published.PROFILE_FILE: 2}
    with store.connect() as con:
        value = con.execute("SELECT value FROM published_image_text WHERE checkpoint = "
                            "'open_clip:ViT-B-32.laion2b_s34b_b79k' AND metric = 'zeroshot:imagenet1k.top1'").fetchone()[0]
    assert value == pytest.approx(51.0)  # 0.51 in the table: percent here, as timm's results
    (folder / published.RESULTS_FILE).write_text("name,pretrained\nViT-B-32,laion2b_s34b_b79k\n")
    report = published.import_dir(store, folder)
    assert published.RESULTS_FILE in report.failed and "Nothing from this file was imported" in report.failed[published.RESULTS_FILE]
    with store.connect() as con:  # the earlier rows of that file stay whole
        assert con.execute("SELECT count(*) FROM published_image_text WHERE source_file = ?",
                           [published.RESULTS_FILE]).fetchone()[0] == 78


def test_catalog_list_and_training_compute_show_the_zoo(catalog_db, tmp_path):
    import json
    import shutil
    db = tmp_path / "c.duckdb"
    shutil.copy(catalog_db, db)
    listed = run_cli("catalog", "list", "--zoo", "image-text", "--json", db=db)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == len(image_text.pairs())
    assert {"checkpoint", "arch_class", "pretrain_data", "samples_seen", "timm_checkpoint"} <= set(rows[0])
    computed = run_cli("catalog", "training-compute", "--json", db=db)
    assert computed.returncode == 0, computed.stderr
    assert any(r["checkpoint"] == "open_clip:RN50.openai" and r["train_flops"] for r in json.loads(computed.stdout))


def test_data_sources_have_a_size_and_scale():
    datasets = training_compute.load_datasets()
    for tag in ("laion2b_s34b_b79k", "laion400m_e32", "openai", "datacomp_xl_s13b_b90k", "dfn5b", "webli",
                "metaclip_fullcc", "commonpool_xl_s13b_b90k"):
        name, label = image_text.data_source(tag)
        assert name in datasets and label, tag


def test_analysis_compares_convnets_and_vits_on_the_same_data_at_the_same_training_compute(catalog_store):
    from engine.analysis import points_table, robustness, when
    published.load_snapshot(catalog_store)
    points = points_table.assemble_points(catalog_store.analysis_inputs())
    laion = points_table.select(points, "train_flops", "zeroshot:imagenet1k.top1", zoo="image-text",
                            data_sources=["LAION-2B"])
    assert {"ConvNet", "ViT"} <= set(laion["arch_class"]) and (laion["pretrain_data"] == "LAION-2B").all()
    assert (laion["source"] == "published").all() and laion["cost"].gt(1e20).all()
    grid = when.when(points_table.select(points, "train_flops", "zeroshot:imagenet1k.top1", zoo="image-text"),
                     "zeroshot:imagenet1k.top1", [1e22, 1e23], n_boot=200, by="pretrain_data")
    assert "LAION-2B" in {cell["group"] for cell in grid["cells"]}
    # ObjectNet has no classifier result on the same axes: the trend is the zoo's own, and says so
    result = robustness.image_text_robustness(points, "zeroshot:objectnet", n_boot=200)
    assert result["trend"]["fitted_on"] == robustness.ZOO_TREND and result["n_checkpoints"] >= 50
