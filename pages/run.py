"""Run: queue evaluations, hardware benchmarks or a sweep of a selection, and watch the queue."""
import pandas as pd
import streamlit as st

from engine.catalog.timm_models import filter_checkpoints as catalog_filter
from engine.errors import MatchupError
from engine.jobs import job_specs, submit
from engine.measure import sweep
from engine.store import StoreLockedError
from ui import access, loaders, tables, widgets

widgets.enter("run")
st.title("Run on this machine")
store = loaders.get_store()
rights = access.current()  # afresh on every run, from the sign-in or the connection: never from session state

if not rights.can_run:
    st.info(rights.why + " The queue below shows what this machine's workers are doing.")  # user text escaped in ui.access
else:
    if rights.mode == "open":
        st.caption(rights.why)
    catalog = loaders.checkpoint_table(str(store.path), store.freshness())
    kind = st.radio("What to run", ["eval", "probe", "zeroshot", "bench", "sweep"], horizontal=True, key="run_kind",
                    format_func={"eval": "Evaluate on a dataset", "probe": "Linear probe on your folder",
                                 "zeroshot": "Zero-shot on your classes (image-text)",
                                 "bench": "Hardware benchmark", "sweep": "Sweep: evaluate every match"}.get)
    if "zoo" in catalog:  # zero-shot runs image-text checkpoints; the others ImageNet classifiers
        catalog = catalog[catalog["zoo"].fillna("imagenet") == ("image-text" if kind == "zeroshot" else "imagenet")]
    with st.expander("Find checkpoints", expanded=True):
        a, b, c, d, e = st.columns(5)
        classes = a.multiselect("Class", sorted(catalog["arch_class"].dropna().unique()), key="run_classes")
        families = b.multiselect("Family", sorted(catalog["family"].dropna().unique()), key="run_families")
        scales = c.multiselect("Pre-training data", sorted(catalog["data_scale"].dropna().unique()),
                               key="run_scales")
        max_params = d.number_input("At most (M params)", min_value=0.0, value=0.0, step=5.0,
                                    help="0: no limit", key="run_max_params")
        if kind == "sweep":
            max_gflops = e.number_input("At most (GFLOPs)", min_value=0.0, value=0.0, step=1.0,
                                        help="counted, at the eval size; 0: no limit", key="run_max_gflops")
            selection = sweep.Selection(classes or None, families or None, scales or None, max_params or None,
                                        max_gflops or None)
            try:
                chosen = sweep.select(store, selection)
            except MatchupError as e:
                st.info(widgets.literal(e))
                chosen = []
            st.caption(f"{len(chosen)} checkpoints match; the sweep queues an evaluation of each one "
                       "not already measured (the same selection as `python -m engine sweep`).")
        else:
            shown = catalog_filter(catalog, classes, families, scales, max_params)
            chosen = st.multiselect(f"Checkpoints ({len(shown)} match; type to search)",
                                    shown["checkpoint"].tolist(), key="run_checkpoints", max_selections=50)
    a, b, c = st.columns(3)
    device = a.selectbox("Device", job_specs.available_devices(), key="run_device",
                         help="auto: whichever worker is free (a GPU worker uses its GPU)")
    precision = b.selectbox("Precision", ["fp32", "bf16", "fp16"], key="run_precision")
    spec = {"kind": "eval" if kind == "sweep" else kind, "device": device, "precision": precision}
    if kind in ("eval", "sweep"):
        roots = job_specs.data_roots()
        sets = job_specs.evaluation_sets(roots)
        if not sets:
            st.info("No evaluation sets: start the app with MATCHUP_DATA_ROOTS set to the folders that "
                    "hold them (e.g. MATCHUP_DATA_ROOTS=/data/imagenet). Nothing outside them is "
                    "readable from the browser. Hardware benchmarks need no data.")
        data = st.selectbox("Evaluation set", sets, key="run_data", format_func=str)
        batch = c.number_input("Batch size", min_value=1, value=64, key="run_batch")
        limit = st.number_input("Image limit (0: all images)", min_value=0, value=0, step=100, key="run_limit")
        spec.update(data=str(data) if data else None, batch_size=int(batch), limit=int(limit) or None)
    elif kind == "zeroshot":
        roots = job_specs.data_roots()
        sets = job_specs.evaluation_sets(roots)
        if not sets:
            st.info("No folders: start the app with MATCHUP_DATA_ROOTS set to the folders that hold your "
                    "images (one sub-folder per class, named after the class).")
        data = st.selectbox("Class folder (one sub-folder per class; its name is the class name)", sets,
                            key="run_zeroshot_data", format_func=str)
        batch = c.number_input("Batch size", min_value=1, value=64, key="run_zeroshot_batch")
        from engine.measure import zeroshot
        templates = st.selectbox("Prompt templates", ["(default)", *zeroshot.template_sets()], key="run_templates",
                                 help="CLIP Benchmark's sets; the default is imagenet1k for ImageNet synset "
                                      f"folders, else {zeroshot.DEFAULT_TEMPLATES}")
        spec.update(data=str(data) if data else None, batch_size=int(batch),
                    templates=None if templates == "(default)" else templates)
        st.caption("One job per checkpoint: each with its own preprocessing and tokenizer; a class's prompt "
                   "embedding is the mean of its templates' (`python -m engine zeroshot`).")
    elif kind == "probe":
        roots = job_specs.data_roots()
        sets = job_specs.evaluation_sets(roots)
        if not sets:
            st.info("No folders: start the app with MATCHUP_DATA_ROOTS set to the folders that hold your "
                    "labelled data (one sub-folder of images per class).")
        data = st.selectbox("Labelled folder (one sub-folder per class)", sets, key="run_probe_data", format_func=str)
        batch = c.number_input("Batch size", min_value=1, value=64, key="run_probe_batch")
        left, right = st.columns(2)
        folds = left.number_input("Folds (stratified)", min_value=2, max_value=100, value=5, key="run_folds")
        shots = right.number_input("Shots per class (0: k-fold on every image)", min_value=0, value=0,
                                   key="run_shots")
        spec.update(data=str(data) if data else None, batch_size=int(batch), folds=int(folds),
                    shots=int(shots) or None)
        st.caption("One job per checkpoint: frozen pre-logits features, logistic regression with its L2 "
                   "strength chosen by inner cross-validation (`python -m engine probe`).")
    else:
        roots = None
        batch = c.selectbox("Batch size", ["auto", 1, 8, 32, 64, 128, 256], key="run_batch_bench")
        spec.update(batch_size=batch)

    def queue_jobs(checkpoints):
        now = access.at_action(rights)
        if now is None:
            return
        for checkpoint in checkpoints:
            try:
                answer = submit.enqueue(store, {**spec, "checkpoint": checkpoint}, roots=roots, requested_by=now.user)
            except StoreLockedError as e:
                st.warning(widgets.literal(f"{checkpoint}: {e}"))
                continue
            except MatchupError as e:
                st.error(widgets.literal(f"{checkpoint}: {e}"))
                continue
            st.toast(widgets.literal({"queued": f"{checkpoint}: queued", "attached": f"{checkpoint}: already queued; "
                                      "following that job", "cached": f"{checkpoint}: already measured (see its "
                                      "Checkpoint page)"}[answer["outcome"]]))

    if kind == "sweep":
        request = repr((chosen, spec))
        if st.button("Plan the sweep", disabled=not chosen or not spec.get("data")):
            try:
                st.session_state["sweep_plan"] = (request, job_specs.sweep_plan(store, chosen, spec, roots))
            except MatchupError as e:
                st.error(widgets.literal(e))
        planned = st.session_state.get("sweep_plan")
        if planned and planned[0] == request:
            the_plan = planned[1]
            to_run = the_plan.to_run()
            hours = the_plan.estimated_seconds / 3600
            st.markdown(f"**Plan:** {len(to_run)} of {len(the_plan.checkpoints)} checkpoints to evaluate on "
                        f"{the_plan.n_images} images in {len(the_plan.groups)} preprocessing groups · counted "
                        f"{the_plan.total_flops / 1e12:,.1f} TFLOPs · about {hours:.2f} h on {the_plan.device} · "
                        f"{the_plan.download_bytes / 2**30:.1f} GiB to download · "
                        f"{the_plan.decoded_cache_bytes / 2**30:.1f} GiB of decoded-image cache")
            tables.show(pd.DataFrame(the_plan.checkpoints)[
                ["checkpoint", "status", "group", "gflops", "seconds", "estimate_source", "reason"]],
                hide_index=True, width="stretch", key="sweep_plan_table")
            if st.button(f"Queue {len(to_run)} job(s)", type="primary", disabled=not to_run, key="queue_sweep"):
                queue_jobs(to_run)
    elif st.button(f"Queue {len(chosen)} job(s)", type="primary", disabled=not chosen or
                   (kind in ("eval", "probe", "zeroshot") and not spec.get("data"))):
        queue_jobs(chosen)


@st.fragment(run_every=2)
def queue():
    """The queue, refreshed every 2 s on its own (the rest of the page does not rerun)."""
    st.subheader("Queue")
    watch = loaders.quick_store()
    try:
        watch.requeue_stale(submit.job_timeout_s(), submit.MAX_ATTEMPTS)
        frame = watch.jobs_frame(limit=30)
        workers = submit.live_workers(watch)
    except StoreLockedError:
        st.warning("Waiting for the database: another process is writing to it (an import or a "
                   "long CLI run). The queue refreshes by itself as soon as it is free.")
        return
    embedded = loaders.embedded_worker(str(watch.path))
    if embedded is None:
        st.caption("The app's embedded worker is off (MATCHUP_NO_EMBEDDED_WORKER or a read-only demo): "
                   "queued jobs wait for a worker started by hand, `python -m engine worker` "
                   "(`--device cuda:0` on a GPU box, one per GPU).")
    if workers.empty:
        st.caption("No worker is running." + (" The app starts one for queued jobs; on a GPU box run "
                                               "`python -m engine worker --device cuda:0` (one per GPU)."
                                               if embedded is not None else ""))
    else:
        st.caption("Workers: " + ", ".join(f"{w.id} on {w.device}" + (" (embedded)" if w.embedded else "")
                                           for w in workers.itertuples()))
    if frame.empty:
        st.caption("No jobs yet.")
        return
    serving = workers["device"].tolist() + ([embedded.device] if embedded is not None else [])
    for job in frame.itertuples():
        left, right = st.columns([5, 1])
        with left:
            detail = job.detail if isinstance(job.detail, dict) else loaders.json_or_none(job.detail)
            text = f"**{job.state}** · {widgets.literal(job.label)}"
            if isinstance(job.requested_by, str) and job.requested_by:
                text += f" · asked by {widgets.literal(job.requested_by)}"
            if job.state == "running":
                rate = (detail or {}).get("images_per_sec")
                eta = (detail or {}).get("eta_s")
                extra = "".join([f" · {rate:.1f} img/s" if rate else "",
                                 f" · ETA {eta:.0f} s" if eta is not None else ""])
                st.progress(float(job.progress or 0.0), text=f"{text} · {100 * (job.progress or 0):.0f}%{extra}")
            else:
                if job.state == "done" and pd.notna(job.result_top1):
                    text += f" → top-1 {job.result_top1:.2f}% on {int(job.result_images)} images"
                elif job.state == "done" and pd.notna(job.result_zeroshot_top1):
                    text += (f" → zero-shot top-1 {job.result_zeroshot_top1:.2f}% on {int(job.result_zeroshot_images)} "
                             f"images, {int(job.result_zeroshot_classes)} classes")
                elif job.state == "done" and pd.notna(job.result_probe_accuracy):
                    text += f" → probe accuracy {job.result_probe_accuracy:.2f}% on {int(job.result_probe_images)} images"
                elif job.state == "done" and pd.notna(job.result_throughput):
                    text += f" → {job.result_throughput:.1f} img/s"
                elif job.state == "queued":
                    waiting = submit.waiting_for(job.device, job.precision or "fp32", serving)
                    text += f" · {waiting}" if waiting else ""
                st.markdown(text)
            if isinstance(job.error, str) and job.error:  # None or NaN (pandas) when the job did not fail
                st.error(widgets.readable(job.error), icon=":material/error:")
        mine = rights.admin or (rights.user is not None and job.requested_by == rights.user)
        if rights.can_run and mine and job.state in ("queued", "running"):
            if right.button("Cancel", key=f"cancel-{job.id}", disabled=bool(job.cancel_requested)):
                now = access.at_action(rights)
                try:
                    if now is not None:
                        submit.cancel(watch, job.id, now.user, now.admin)
                except MatchupError as e:
                    st.error(widgets.literal(e))
                else:
                    st.rerun(scope="fragment")
        if rights.can_run and job.state in ("failed", "cancelled"):
            retried = job.state == "failed" and right.button(
                "Retry", key=f"retry-{job.id}", help="Queue the same job again, as a new job.")
            cleared = mine and right.button("Clear", key=f"clear-{job.id}",
                                            help="Hide it from this list; the job stays in the store.")
            now = access.at_action(rights) if retried or cleared else None
            if now is not None:
                try:
                    if retried:
                        submit.retry(watch, job.id, now.user)
                    else:
                        submit.clear(watch, job.id, now.user, now.admin)
                except MatchupError as e:
                    st.error(widgets.literal(e))
                else:
                    st.rerun(scope="fragment")


queue()
