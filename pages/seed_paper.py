"""Seed paper: Smith et al. 2023 in two parts, what its own numbers say and what the public zoo says on the same questions."""
import altair as alt
import streamlit as st

from engine.analysis import seed_paper
from ui import charts, loaders, tables, widgets

widgets.enter("seed_paper")
st.title("ConvNets Match Vision Transformers at Scale")
st.caption("Smith, Brock, Berrada, De (2023), arXiv 2310.16764: NFNets pre-trained on JFT-4B and "
           "fine-tuned on ImageNet, against ViTs of comparable pre-training compute.")
if st.query_params.get("zoo") == "image-text":
    st.info("The seed paper compares ImageNet classifiers (NFNets and ViTs pre-trained on JFT-4B). Its follow-up "
            "question, on image-text data, is the image-text zoo's: the Overview there compares OpenCLIP's ConvNeXt "
            "and ViT towers at the same training compute on the same data (LAION-2B by default).")
parts = loaders.seed_paper_claims()
st.header("Part 1 — what the paper's own numbers say")
st.caption("Reproduced from the numbers the papers report (data/reference/paper_facts.csv, each row citing its "
           "source); nothing here is measured or estimated by Matchup.")
reference = loaders.get_store().table_frame("reference_points")
seed = seed_paper.figure_points(reference)
if seed.empty:
    st.info("No reference points with pre-training compute: `python -m engine catalog refresh` loads them.")
else:
    # Log-log like the paper's figure; explicit domains so every point sits inside the axes, and
    # tooltips instead of labels (ten names on a few pixels of error overlap).
    x = alt.X("compute_value:Q", title="pre-training compute (TPU-v4 core hours, log)",
              scale=alt.Scale(type="log", domain=seed_paper.log_domain(seed["compute_value"]), nice=False))
    y = alt.Y("error:Q", title="ImageNet top-1 error (%, log)",
              scale=alt.Scale(type="log", domain=seed_paper.log_domain(seed["error"]), nice=False))
    chart = alt.Chart(seed).mark_point(filled=True, size=110).encode(
        x=x, y=y, color=alt.Color("series:N", title="series",
                                  scale=alt.Scale(domain=["NFNet", "ViT", "other"],
                                                  range=[charts.CLASS_COLORS["ConvNet"], charts.CLASS_COLORS["ViT"],
                                                         "#999999"])),
        shape=alt.Shape("series:N", title="series"),
        tooltip=["model", "series", "pretrain_data", alt.Tooltip("compute_value:Q", format=",.0f"),
                 "imagenet_top1", "source", "notes"])
    st.altair_chart(chart, width="stretch")
    tables.show(seed[["model", "series", "pretrain_data", "compute_value", "imagenet_top1", "source", "notes"]],
                 hide_index=True, width="stretch")

st.subheader("The paper's claims, checked against its own numbers")
for claim in parts["paper"]:
    st.markdown(f"**{widgets.literal(claim['claim'])}** — {widgets.literal(claim['verdict'])}.")
    if claim["rows"]:
        st.caption("Source rows (the papers): " + widgets.literal('; '.join(claim['rows'][:12])))

st.subheader("ConvNeXt vs Swin at equal FLOPs (Liu et al. 2022)")
convnext = reference[reference["source"] == "liu2022_convnext"]
tables.show(convnext[["model", "arch_class", "pretrain_data", "gflops", "params_m", "imagenet_top1",
                       "compute_value", "compute_unit", "source"]], hide_index=True, width="stretch")
st.caption("FLOPs as the paper reports them (multiply-adds); compute_value is V100 inference images/s.")

st.subheader("NFNet vs ViT with extra data, in TPU-v3 core days (Brock et al. 2021)")
nfnet = reference[(reference["source"] == "brock2021_nfnet") & (reference["compute_unit"] == "tpu_v3_core_days")]
tables.show(nfnet[["model", "arch_class", "pretrain_data", "compute_value", "imagenet_top1", "params_m", "source"]],
             hide_index=True, width="stretch")

st.header("Part 2 — what the public zoo says on the same questions")
st.caption("Computed here from timm's published ImageNet results and Matchup's training-compute estimates, every "
           "number with its interval; on the same pre-training data where the zoo has both classes on one source "
           f"({seed_paper.ZOO_SAME_DATA}), and over the mix, said as such.")
st.subheader("On the training-compute axis, the paper beside the zoo")
utilisation = widgets.url_select_slider("TPU-v4 utilisation assumed for the paper's core hours",
                                        [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "utilisation", seed_paper.DEFAULT_UTILISATION,
                                        format_func=lambda u: f"{u:.0%}")
points = loaders.current_points()
zoo = points[(points["cost_metric"] == "train_flops") & (points["quality_metric"] == "imagenet.top1")]
both = seed_paper.on_training_axis(reference, zoo, float(utilisation))
if both.empty or not both["series"].str.startswith("zoo").any():
    st.info("No checkpoint has a training-compute estimate yet: `python -m engine catalog refresh` estimates them.")
else:
    series = ["zoo: ConvNet", "zoo: ViT", "paper: NFNet", "paper: ViT"]
    colours = [charts.CLASS_COLORS["ConvNet"], charts.CLASS_COLORS["ViT"], "#003c5a", "#7a2e00"]
    st.altair_chart(alt.Chart(both).mark_point(filled=True).encode(
        # padding: a point at the domain's edge (a log scale's nice bound) is drawn whole inside the plot
        x=alt.X("train_flops:Q", scale=alt.Scale(type="log", padding=12), title="training compute (FLOPs, log)"),
        y=alt.Y("error:Q", scale=alt.Scale(type="log", padding=12), title="ImageNet top-1 error (%, log)"),
        color=alt.Color("series:N", scale=alt.Scale(domain=series, range=colours), title=None),
        shape=alt.Shape("series:N", scale=alt.Scale(domain=series, range=["circle", "circle", "diamond", "diamond"]),
                        title=None),
        size=alt.condition("indexof(datum.series, 'paper') == 0", alt.value(160), alt.value(30)),
        tooltip=["name", "series", alt.Tooltip("train_flops:Q", format=".3g"), alt.Tooltip("error:Q", format=".2f"),
                 "source"]), width="stretch")
    st.caption(f"The paper's points: TPU-v4 core hours × 3600 s × 137.5 TFLOP/s (a core's bf16 peak, half of a v4 "
               f"chip's 275) × {float(utilisation):.0%} utilisation (the slider). The zoo's points: training compute "
               "estimated from each checkpoint's sourced recipe (all stages; checkpoints without one are left out).")

st.subheader("The same claims, asked of the zoo")
for claim in parts["zoo"]:
    st.markdown(f"**{widgets.literal(claim['claim'])}** — {widgets.literal(claim['verdict'])}.")
    if claim["rows"]:
        st.caption("Computed from: " + widgets.literal('; '.join(claim['rows'][:12])))
