"""Checkpoint: everything about one checkpoint, with where each number came from."""
import pandas as pd
import streamlit as st

from ui import loaders, widgets

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
st.subheader("Compute (counted here)")
compute = detail["compute"]
if compute.empty:
    st.caption("Not counted yet: `python -m engine profile " + checkpoint + "`.")
else:
    st.dataframe(compute.assign(gflops=compute["flops"] / 1e9, params_m=compute["params"] / 1e6)[
        ["img_size", "num_classes", "params_m", "gflops", "counter", "error"]], hide_index=True, width="stretch")
gmacs = detail["published_gmacs"]
if not gmacs.empty and not compute.empty:
    st.caption("Cross-check: timm's published infer_gmacs (×2 for FLOPs) per benchmark file below.")
    st.dataframe(gmacs, hide_index=True, width="stretch")
st.subheader("Published results")
st.dataframe(detail["published"], hide_index=True, width="stretch")
st.subheader("Measured here")
if detail["evals"].empty and detail["benchmarks"].empty:
    st.caption(f"Nothing yet: `python -m engine eval {checkpoint} --data DIR` or `python -m engine bench {checkpoint}`.")
if not detail["evals"].empty:
    st.dataframe(detail["evals"], hide_index=True, width="stretch")
if not detail["benchmarks"].empty:
    st.dataframe(detail["benchmarks"], hide_index=True, width="stretch")
