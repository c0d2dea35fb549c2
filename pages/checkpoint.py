"""Checkpoint: everything about one checkpoint, with where each number came from."""
import json

import pandas as pd
import streamlit as st

from engine.catalog import model_card
from engine.catalog.training_ranges import flops_text, range_text
from engine.errors import MatchupError
from ui import loaders, tables, widgets


@st.cache_data(show_spinner=False, max_entries=64)
def model_card_of(checkpoint: str, compute: pd.DataFrame) -> dict:
    return model_card.card(checkpoint, compute)


widgets.enter("checkpoint")

store = loaders.get_store()
ids = store.checkpoint_ids()
st.title("Checkpoint")
if not ids:
    st.info("The catalog is empty: run `python -m engine catalog refresh`.")
    st.stop()
checkpoint = widgets.url_selectbox("Checkpoint", ids, "checkpoint",
                                  default="convnext_tiny.in12k_ft_in1k" if "convnext_tiny.in12k_ft_in1k" in ids else ids[0])
detail = store.checkpoint_detail(checkpoint)
facts = detail["facts"].iloc[0]


def test_or_train(test_key: str, key: str):
    """timm's test-time value where the config has one, else the train-time one."""
    return facts[key] if pd.isna(facts[test_key]) else facts[test_key]


a, b, c, d = st.columns(4)
a.metric("class", facts["arch_class"])
b.metric("family", facts["family"])
c.metric("pre-training data", facts["pretrain_data"], help=f"bucket {facts['data_scale']}")
d.metric("eval size", f"{test_or_train('test_h', 'input_h')} px")
st.markdown(f"Hub repo: [`{facts['hub_repo']}`](https://huggingface.co/{facts['hub_repo']}) · "
            f"crop {test_or_train('test_crop_pct', 'crop_pct')} ({facts['crop_mode']}) · "
            f"{facts['interpolation']} · {facts['num_classes']} classes · timm {facts['timm_version']}")
image_text = detail["image_text"]
if not image_text.empty:  # an OpenCLIP checkpoint: its data, its tag's samples, timm's copy of its image tower
    it = image_text.iloc[0]
    st.markdown(f"Image-text model **{it['model']}** (tag `{it['tag']}`) · image tower {it['image_tower']}, text tower "
                f"{it['text_tower']} · data {it['data_label'] or 'unknown'} · samples seen "
                + ("unknown" if pd.isna(it["samples_seen"]) else f"{it['samples_seen']:,.0f}")
                + f" (from {it['samples_how']})"
                + (f" · timm ships the same image tower as `{it['timm_checkpoint']}` ({it['timm_link_evidence']})"
                   if isinstance(it["timm_checkpoint"], str) and it["timm_checkpoint"] else "")
                + (" · trained with QuickGELU" if it["quick_gelu"] else ""))
    st.subheader("Published zero-shot and retrieval results (OpenCLIP)")
    tables.show(detail["published_image_text"], hide_index=True, width="stretch")
    st.subheader("Zero-shot on your classes (measured here)")
    if detail["zeroshots"].empty:
        st.caption(f"Nothing yet: `python -m engine zeroshot {checkpoint} --data DIR` (one sub-folder per class).")
    else:
        tables.show(detail["zeroshots"], hide_index=True, width="stretch")
card_slot = st.container()  # filled last: the card needs timm, which a fresh server may still be importing
st.subheader("Compute (counted here)")
compute = detail["compute"]


def compute_table(rows):
    return rows.assign(gflops=rows["flops"] / 1e9, params_m=rows["params"] / 1e6)[
        ["img_size", "num_classes", "params_m", "gflops", "counter", "error"]]


own_compute = st.empty()
if compute.empty:
    st.caption("Not counted yet: `python -m engine profile " + checkpoint + "`.")
else:
    tables.show(compute_table(compute), own_compute, hide_index=True, width="stretch")
module_split, other_heads = st.container(), st.container()
gmacs = detail["published_gmacs"]
if not gmacs.empty and not compute.empty:
    st.caption("Cross-check: timm's published infer_gmacs (×2 for FLOPs) per benchmark file below.")
    tables.show(gmacs, hide_index=True, width="stretch")
st.subheader("Training compute (over its lineage)")
training = detail["training"]
if training.empty or pd.isna(training["train_flops_low"].iloc[0]) and not training["n_stages"].iloc[0]:
    row = None if training.empty else training.iloc[0]
    st.caption("Unknown: no sourced training recipe for this tag and architecture or its lineage "
               "(data/training_recipes.csv; docs/training-compute.md: how to add one). It is left out of the training-compute axis"
               + (f"; the verdicts' coverage check brackets it at {row['bracket_note']} "
                  f"({flops_text(row['bracket_low'])}–{flops_text(row['bracket_high'])} FLOPs)"
                  if row is not None and pd.notna(row["bracket_low"]) else "")
               + (f". {row['note']}" if row is not None and isinstance(row["note"], str) and row["note"] else "."))
else:
    row = training.iloc[0]
    samples = "unknown" if pd.isna(row["samples_seen"]) else f"{row.samples_seen:,.0f}"
    state = "complete" if row["complete"] else f"**incomplete**, missing {row['missing_stages'] or 'a stage'}"
    st.markdown(f"**{range_text(row['train_flops'], row['train_flops_low'], row['train_flops_high'])} FLOPs** "
                f"({row['placement'] or 'not placed'}; {state}) · pre-training {flops_text(row['pretrain_flops'])} · "
                f"samples seen {samples} · confidence **{row['confidence']}**"
                + (f" · {row['note']}" if isinstance(row["note"], str) and row["note"] else ""))
    lineage = json.loads(row["lineage"]) if isinstance(row["lineage"], str) else []
    if lineage:
        st.markdown("What trained it: " + "; then ".join(lineage[::-1]) + ".")
    stages = pd.DataFrame(json.loads(row["stages"])).reindex(columns=[
        "stage", "kind", "dataset", "epochs", "samples", "train_res", "objective", "network", "from",
        "flops_per_sample", "flops", "flops_low", "flops_high", "confidence", "source", "range_note", "note"])
    for column in ("samples", "flops_per_sample", "flops", "flops_low", "flops_high"):
        stages[column] = pd.to_numeric(stages[column], errors="coerce")  # drawn in the one FLOP format
    stages = stages.rename(columns={"flops_per_sample": "FLOPs per sample", "flops": "FLOPs", "flops_low": "FLOPs low",
                                    "flops_high": "FLOPs high", "train_res": "train res (px)"})
    tables.show(stages[["stage", "kind", "dataset", "epochs", "samples", "train res (px)", "objective", "FLOPs",
                        "FLOPs low", "FLOPs high", "confidence", "source"]])
    with st.expander("Each stage's network, FLOPs per sample and notes"):
        tables.show(stages[["stage", "network", "from", "FLOPs per sample", "range_note", "note"]])
    st.caption("The FLOPs the recipe executed: per stage 3 × forward FLOPs of the network that ran, at the "
               "stage's train resolution, × samples seen × its multipliers, plus frozen networks run per sample "
               "(teachers, BEiT's tokenizer); token-dropping masked modelling (MAE) at its visible fraction, dense "
               "masking (BEiT, EVA-02, FCMAE as its paper ran it) in full. Low/high: the counting convention's "
               "spread, an assumed length over the analogy it rests on, a missing stage from 0 to its longest "
               "plausible length.")
st.subheader("Published results")
tables.show(detail["published"], hide_index=True, width="stretch")
st.subheader("Measured here")
if not detail["probes"].empty:
    st.markdown("**Linear probes on your folders** (`python -m engine probe`)")
    tables.show(detail["probes"], hide_index=True, width="stretch")
if detail["evals"].empty and detail["benchmarks"].empty:
    st.caption(f"Nothing yet: `python -m engine eval {checkpoint} --data DIR` or `python -m engine bench {checkpoint}`.")
if not detail["evals"].empty:
    tables.show(detail["evals"], hide_index=True, width="stretch")
if not detail["benchmarks"].empty:
    tables.show(detail["benchmarks"], hide_index=True, width="stretch")

card = None
if image_text.empty:  # timm's model card; an OpenCLIP checkpoint has its own facts above
    with card_slot, st.spinner("Loading the model card (timm)…"):
        try:
            card = model_card_of(checkpoint, detail["compute"])
        except MatchupError as e:
            st.warning(str(e))
if card is not None:
    card_slot.subheader("Model card")
    links = " · ".join(f"[{u.split('//', 1)[-1]}]({u})" for u in card["paper_links"]) or "none in its docstring"
    card_slot.markdown(f"Licence **{card['license'] or 'not stated'}** · weights origin "
                       f"{card['origin'] or 'the Hub repo above'} · defined in [`{card['module']}`]"
                       f"({card['source_url']}) · papers: {links}")
    card_slot.caption("Use it (copy with the button at the code's corner):")
    card_slot.code(card["snippet"], language="python")
    card_slot.caption("Eval transform, exactly as timm builds it from this checkpoint's config at its test size "
                      "(Matchup's eval applies the same steps, normalising on the device):")
    card_slot.code(card["transform"], language="text")
    with card_slot.expander("Full pretrained config (timm)"):
        st.json(card["pretrained_config"])
    with card_slot.expander(f"`{card['module']}` docstring"):
        st.text(card["docstring"] or "(no docstring)")
    if not compute.empty:
        tables.show(compute_table(card["compute"]), own_compute, hide_index=True, width="stretch")
    if not compute.empty and not card["flops_by_module"].empty:
        module_split.caption(f"Counted FLOPs by module type at {card['data_config']['input_size'][-1]} px:")
        tables.show(card["flops_by_module"], module_split, hide_index=True, width="stretch",
                               column_config={"share": st.column_config.ProgressColumn(
                                   "share", format="percent", min_value=0, max_value=1)})
    if not compute.empty and not card["other_heads"].empty:
        other_heads.markdown(f"**Other heads of `{facts['arch']}`** (counted for tags with another number of "
                             "classes; not this checkpoint)")
        tables.show(compute_table(card["other_heads"]), other_heads, hide_index=True, width="stretch")
