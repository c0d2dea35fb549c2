"""Seed paper: Smith et al. 2023's comparison redrawn from the reference points, and the peers' tables."""
import altair as alt
import streamlit as st

from ui import loaders, widgets

widgets.enter("seed_paper")
st.title("ConvNets Match Vision Transformers at Scale")
st.caption("Smith, Brock, Berrada, De (2023), arXiv 2310.16764: NFNets pre-trained on JFT-4B and "
           "fine-tuned on ImageNet, against ViTs of comparable pre-training compute.")
reference = loaders.get_store().table_frame("reference_points")
seed = reference[(reference["compute_unit"] == "tpu_v4_core_hours") & reference["imagenet_top1"].notna()]
seed = seed.assign(error=100 - seed["imagenet_top1"])
chart = alt.Chart(seed).mark_point(filled=True, size=90).encode(
    x=alt.X("compute_value:Q", scale=alt.Scale(type="log"), title="pre-training compute (TPU-v4 core hours, log)"),
    y=alt.Y("error:Q", scale=alt.Scale(type="log", zero=False), title="ImageNet top-1 error (%, log)"),
    color=alt.Color("arch_class:N", title="class"),
    tooltip=["model", "arch_class", "pretrain_data", "compute_value", "imagenet_top1", "source", "notes"])
labels = chart.mark_text(align="left", dx=8, fontSize=11).encode(text="model:N")
st.altair_chart(chart + labels, width="stretch")
st.dataframe(seed[["model", "arch_class", "pretrain_data", "compute_value", "imagenet_top1", "source", "notes"]],
             hide_index=True, width="stretch")

st.subheader("ConvNeXt vs Swin at equal FLOPs (Liu et al. 2022)")
convnext = reference[reference["source"] == "liu2022_convnext"]
st.dataframe(convnext[["model", "arch_class", "pretrain_data", "gflops", "params_m", "imagenet_top1",
                       "compute_value", "compute_unit", "source"]], hide_index=True, width="stretch")
st.caption("FLOPs as the paper reports them (multiply-adds); compute_value is V100 inference images/s.")

st.subheader("NFNet vs ViT with extra data, in TPU-v3 core days (Brock et al. 2021)")
nfnet = reference[(reference["source"] == "brock2021_nfnet") & (reference["compute_unit"] == "tpu_v3_core_days")]
st.dataframe(nfnet[["model", "arch_class", "pretrain_data", "compute_value", "imagenet_top1", "params_m", "source"]],
             hide_index=True, width="stretch")
