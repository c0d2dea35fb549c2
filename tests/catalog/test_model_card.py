"""The Checkpoint page's model card: fields equal timm's own config and transform, for three
checkpoints of different families; heads split; bad names refused."""
import pytest
import timm
from timm.data import create_transform, resolve_data_config

from engine.catalog import model_card
from tests.app.test_app import open_page

CHECKPOINTS = ["convnext_tiny.fb_in22k_ft_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k", "efficientnet_b0.ra_in1k"]


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_model_card_fields_equal_timms_own(checkpoint, catalog_store):
    compute = catalog_store.checkpoint_detail(checkpoint)["compute"]
    card = model_card.card(checkpoint, compute)
    cfg = timm.models.get_pretrained_cfg(checkpoint)
    assert card["pretrained_config"] == cfg.to_dict()
    for key in ("mean", "std", "crop_pct", "interpolation", "pool_size", "classifier", "license", "hf_hub_id"):
        assert card["pretrained_config"][key] == getattr(cfg, key)
    config = resolve_data_config(pretrained_cfg=cfg.to_dict(), use_test_size=True)
    assert card["data_config"] == config
    assert card["transform"] == str(create_transform(**config, is_training=False))
    arch = checkpoint.split(".")[0]
    module = timm.models.model_entrypoint(arch).__module__
    assert card["module"] == module and card["source_url"].endswith(f"/timm/models/{module.rsplit('.', 1)[1]}.py")
    assert card["paper_links"] and all(link.startswith("http") and not link.endswith((",", ".")) for link in card["paper_links"])
    assert f'timm.create_model("{checkpoint}", pretrained=True)' in card["snippet"]
    exec(compile(card["snippet"].replace("pretrained=True", "pretrained=False"), "<snippet>", "exec"), {})
    # this checkpoint's head only; the architecture's other heads apart
    assert set(card["compute"]["num_classes"]) == {cfg.num_classes}
    assert cfg.num_classes not in set(card["other_heads"]["num_classes"])
    assert len(card["compute"]) + len(card["other_heads"]) == len(compute)
    split = card["flops_by_module"]
    assert split["share"].sum() == pytest.approx(1.0, abs=0.02) or len(split) == 12
    assert split["gflops"].is_monotonic_decreasing


def test_convnext_card_lists_its_21k_head_apart(catalog_store):
    card = model_card.card("convnext_tiny.fb_in22k_ft_in1k",
                           catalog_store.checkpoint_detail("convnext_tiny.fb_in22k_ft_in1k")["compute"])
    assert 21841 in set(card["other_heads"]["num_classes"])
    assert card["transform"].startswith("Compose(\n    Resize(size=288")  # the test size, crop 1.0


def test_an_unknown_checkpoint_gets_a_clear_error():
    with pytest.raises(model_card.ModelCardError, match="has no pretrained config 'resnet50.nope'"):
        model_card.card("resnet50.nope")


def test_checkpoint_page_shows_the_model_card(catalog_db, tmp_path, monkeypatch):
    import shutil
    db = tmp_path / "card.duckdb"
    shutil.copy(catalog_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    at = open_page("pages/checkpoint.py", {"checkpoint": "vit_base_patch16_224.augreg2_in21k_ft_in1k"})
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    assert any('timm.create_model("vit_base_patch16_224.augreg2_in21k_ft_in1k", pretrained=True)' in c for c in codes)
    assert any(c.startswith("Compose(") and "Normalize(mean=tensor([0.5000" in c for c in codes)
    assert any("arxiv.org/abs/2010.11929" in m.value and "vision_transformer.py" in m.value for m in at.markdown)
    assert any(h.value == "Model card" for h in at.subheader)
