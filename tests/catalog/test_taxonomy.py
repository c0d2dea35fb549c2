import csv

import pytest
import timm
import timm.models

from engine.catalog import taxonomy


def _module_of(arch: str) -> str:
    return next(m for m in timm.models.list_modules() if arch in timm.list_models(module=m))


def test_every_installed_timm_module_is_in_the_class_map():
    missing = sorted(set(timm.models.list_modules()) - set(taxonomy.module_classes()))
    assert not missing, (f"timm {timm.__version__} has modules the class map does not cover: "
                         f"{missing}; add them to data/timm_module_classes.csv")


def test_class_map_rows_are_unique_and_valid():
    with open(taxonomy.MODULE_MAP_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    modules = [row["module"] for row in rows]
    assert len(modules) == len(set(modules))
    assert {row["arch_class"] for row in rows} <= set(taxonomy.ARCH_CLASSES)


def test_unknown_module_is_an_error_not_a_guess():
    with pytest.raises(taxonomy.UnknownModuleError, match="timm_module_classes.csv"):
        taxonomy.arch_class("brand_new_net", "brand_new_module")


@pytest.mark.parametrize("arch,expected", [
    ("caformer_s18", "Hybrid"), ("convformer_s18", "ConvNet"), ("poolformer_s12", "ConvNet"),
    ("mobilenetv4_hybrid_medium", "Hybrid"), ("mobilenetv4_conv_small", "ConvNet"),
    ("mobilenetv3_large_100", "ConvNet"),
    ("fastvit_t8", "ConvNet"), ("fastvit_t12", "ConvNet"), ("fastvit_s12", "ConvNet"),
    ("fastvit_sa12", "Hybrid"), ("fastvit_ma36", "Hybrid"),
    ("convnext_base", "ConvNet"), ("vit_base_patch16_224", "ViT"), ("swin_tiny_patch4_window7_224", "ViT"),
    ("dm_nfnet_f0", "ConvNet"), ("coatnet_0_rw_224", "Hybrid"), ("mixer_b16_224", "MLP"),
    ("vit_base_r50_s16_384", "Hybrid"),
])
def test_class_of_architectures_including_per_name_overrides(arch, expected):
    assert taxonomy.arch_class(arch, _module_of(arch)) == expected


@pytest.mark.parametrize("tag,num_classes,pretrain,finetune,scale", [
    ("in1k", 1000, "ImageNet-1k", None, "≈1M"),
    ("a1_in1k", 1000, "ImageNet-1k", None, "≈1M"),
    ("fb_in22k_ft_in1k", 1000, "ImageNet-21k", "ImageNet-1k", "≈10M"),
    ("augreg_in21k", 21843, "ImageNet-21k", None, "≈10M"),
    ("sw_in12k_ft_in1k", 1000, "ImageNet-12k", "ImageNet-1k", "≈10M"),  # sw = a recipe, not semi-weak
    ("laion2b_ft_in12k_in1k", 1000, "LAION-2B", "ImageNet-1k", "≥1B"),
    ("laion400m_e32", 0, "LAION-400M", None, "≥1B"),
    ("openai_ft_in12k_in1k", 1000, "OpenAI WIT-400M", "ImageNet-1k", "≥1B"),
    ("datacompxl", 0, "DataComp-XL", None, "≥1B"),
    ("dfn5b", 0, "DFN-5B", None, "≥1B"),
    ("metaclip_2pt5b", 0, "MetaCLIP-2.5B", None, "≥1B"),
    ("metaclip_400m", 0, "MetaCLIP-400M", None, "≥1B"),
    ("webli", 0, "WebLI", None, "≥1B"),
    ("ns_jft_in1k", 1000, "JFT-300M", "ImageNet-1k", "≈100M"),
    ("fb_swsl_ig1b_ft_in1k", 1000, "Instagram-1B", "ImageNet-1k", "≥1B"),
    ("fb_ssl_yfcc100m_ft_in1k", 1000, "YFCC-100M", "ImageNet-1k", "≈100M"),
    ("lvd142m", 0, "LVD-142M", None, "≈100M"),
    ("mim_m38m_ft_in22k_in1k", 1000, "Merged-38M", "ImageNet-1k", "≈100M"),
    ("qwen3_vl_8b", 0, "undisclosed", None, None),
    ("r160_in1k", 1000, "ImageNet-1k", None, "≈1M"),
    ("mystery", 21843, "ImageNet-21k", None, "≈10M"),   # only the head says what it saw
    ("mystery", 1000, "unknown", None, None),
])
def test_pretrain_data_parsed_from_tag(tag, num_classes, pretrain, finetune, scale):
    parsed = taxonomy.parse_pretrain(tag, num_classes)
    assert (parsed.pretrain_data, parsed.finetune_data, parsed.data_scale) == (pretrain, finetune, scale)


def test_every_pretrained_checkpoint_has_known_or_declared_pretrain_data():
    unknown = []
    for name in timm.list_pretrained():
        arch, tag = taxonomy.split_checkpoint(name)
        num_classes = timm.models.get_pretrained_cfg(name).num_classes
        if taxonomy.parse_pretrain(tag, num_classes, arch).pretrain_data == taxonomy.UNKNOWN:
            unknown.append(name)
    assert not unknown, f"tags the parser does not understand: {unknown[:20]}"


@pytest.mark.parametrize("images,bucket", [
    (1.28e6, "≈1M"), (3.0e6, "≈1M"), (3.3e6, "≈10M"), (14.2e6, "≈10M"), (38e6, "≈100M"),
    (3e8, "≈100M"), (4e8, "≥1B"), (1e10, "≥1B"), (None, None),
])
def test_data_scale_bucket_is_nearest_power_of_ten(images, bucket):
    assert taxonomy.data_scale(images) == bucket


@pytest.mark.parametrize("arch,family", [
    ("resnet50d", "resnet"), ("tf_efficientnet_b0", "efficientnet"), ("swinv2_base_window8_256", "swinv2"),
    ("mobilenetv3_large_100", "mobilenetv3"), ("dm_nfnet_f0", "nfnet"), ("vit_base_patch16_224", "vit"),
    ("convnextv2_tiny", "convnextv2"), ("eva02_base_patch14_224", "eva"), ("test_vit", "test"),
])
def test_family_from_architecture_name(arch, family):
    assert taxonomy.family(arch) == family
