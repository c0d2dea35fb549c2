"""A job queue in the `jobs` table, so evaluations and benchmarks can be asked for from the browser
or the shell and run by workers (one per GPU on a lab box, or the app's embedded one).

One job is one checkpoint measured one way. `enqueue` answers from the store when the result
is already there, attaches to an identical job that is queued or running, else queues a new
one. A worker claims the oldest job its device can run, heartbeats with progress, stops when
cancelled, and writes the result and the job's `done` state in one transaction. A job whose
worker stops heartbeating (crash, kill -9) goes back to the queue after `job_timeout_s()`.
"""
from __future__ import annotations

import os
import re
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path

from engine import options
from engine.errors import MatchupError
from engine.store import Store, cache_key

KINDS = ("eval", "bench", "probe", "zeroshot")
DEVICES = ("cpu", "cuda", "auto")
MAX_ATTEMPTS = 3
# timm ids: `arch` or `arch.tag`, lower-case letters, digits and underscores (tags may hold dashes)
CHECKPOINT_ID = re.compile(r"^[a-z0-9_]{1,100}(\.[a-z0-9_-]{1,100})?$")
# OpenCLIP ids: open_clip:<model>.<tag> (model names hold capitals and dashes) or open_clip:hf-hub:ORG/REPO
IMAGE_TEXT_ID = re.compile(r"^open_clip:([A-Za-z0-9_-]{1,100}\.[A-Za-z0-9_-]{1,100}|hf-hub:[\w.-]{1,100}/[\w.-]{1,100})$")


class JobError(MatchupError):
    """A job cannot be queued as asked; the message says what to change."""


def heartbeat_s() -> float:
    return options.env("MATCHUP_HEARTBEAT_S", 2.0)


def job_timeout_s() -> float:
    """How long a running job's worker may stay silent before the job is re-queued."""
    return options.env("MATCHUP_JOB_TIMEOUT", 60.0)


def read_only() -> bool:
    return os.environ.get("MATCHUP_READONLY", "").strip().lower() in ("1", "true", "yes", "on")


def data_roots() -> list[Path]:
    """MATCHUP_DATA_ROOTS: the folders evaluation sets may come from when asked from the
    browser (os.pathsep-separated, like PATH)."""
    raw = os.environ.get("MATCHUP_DATA_ROOTS", "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def within_roots(path: str | os.PathLike, roots: list[Path]) -> Path:
    """The resolved path when it lies inside one of `roots` (symlinks followed), else a JobError."""
    resolved = Path(path).expanduser().resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    where = ", ".join(str(r) for r in roots) or "none are configured"
    raise JobError(f"{resolved} is outside the evaluation-set folders this app may read ({where}). "
                   "Pick a set under one of them, or have the admin add its folder to "
                   "MATCHUP_DATA_ROOTS.")


def evaluation_sets(roots: list[Path]) -> list[Path]:
    """Each root and the folders directly under it, for the browser to choose from."""
    found = []
    for root in roots:
        if root.is_dir():
            found.append(root)
            found += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return found


def available_devices() -> list[str]:
    """What a job may ask for here: cpu, each GPU torch sees, and auto (any worker)."""
    import torch
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *gpus, "auto"]


def check_checkpoint_id(checkpoint: str, kind: str = "eval") -> str:
    """Refuse anything that is not shaped like a timm id (an OpenCLIP id for zero-shot jobs)
    before any lookup or load."""
    if kind == "zeroshot":
        if not isinstance(checkpoint, str) or not IMAGE_TEXT_ID.match(checkpoint):
            raise JobError(f"{checkpoint!r} is not an image-text checkpoint id (open_clip:<model>.<tag>, e.g. "
                           "open_clip:ViT-B-32.laion2b_s34b_b79k).")
        return checkpoint
    if not isinstance(checkpoint, str) or not CHECKPOINT_ID.match(checkpoint):
        raise JobError(f"{checkpoint!r} is not a timm checkpoint id (arch or arch.tag: lower-case "
                       "letters, digits and underscores, e.g. resnet50.a1_in1k).")
    return checkpoint


def _text(spec: dict, key: str, default: str | None = None) -> str | None:
    """A text field of a spec (a path, a device name): text or absent, nothing else."""
    value = spec.get(key, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise JobError(f"{key} must be text, not {value!r}.")
    return value


def _flag(spec: dict, key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise JobError(f"{key} must be true or false, not {value!r}.")
    return value


def normalize(spec: dict, roots: list[Path] | None = None) -> dict:
    """A validated, complete job spec (defaults filled in). With `roots`, an evaluation set must
    lie inside them (requests from the browser). Every field is checked for its type as well as
    its value: a spec from a script or a crafted request gets a JobError, never a traceback."""
    from engine.catalog import hub
    if not isinstance(spec, dict):
        raise JobError(f"A job spec is a mapping of fields, not {type(spec).__name__}.")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise JobError(f"Unknown job kind {kind!r}; use one of {', '.join(KINDS)}.")
    checkpoint = check_checkpoint_id(spec.get("checkpoint"), kind)
    device = _text(spec, "device", "cpu")
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(device)):
        raise JobError(f"Unknown device {device!r}; use cpu, cuda, cuda:N or auto.")
    precision = _text(spec, "precision", "fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise JobError(f"Unknown precision {precision!r}; use fp32, bf16 or fp16.")
    if device == "cpu" and precision == "fp16":
        raise JobError("fp16 is not supported on the CPU; use bf16 or fp32, or a cuda device.")
    out = {"kind": kind, "checkpoint": checkpoint, "device": device, "precision": precision,
           "channels_last": _flag(spec, "channels_last")}
    if kind == "eval":
        hub.pretrained_cfg(checkpoint)  # unknown ids: a clear error with close names
        data = _text(spec, "data")
        if not data:
            raise JobError("An evaluation job needs an evaluation set (data: a folder).")
        labels = _text(spec, "labels")
        if roots is not None:
            data = str(within_roots(data, roots))
            if labels:
                within_roots(labels, roots)
        elif not str(data).startswith("hfds/"):
            data = str(Path(data).expanduser().resolve())
        batch_size = options.check("batch_size", spec.get("batch_size", 64), optional=False)
        limit = options.check("limit", spec.get("limit"))
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        variant = _text(spec, "variant", "imagenet")
        from engine.measure.datasets import VARIANTS
        if variant not in VARIANTS:
            raise JobError(f"Unknown variant {variant!r}; use one of {', '.join(VARIANTS)}.")
        out.update(data=data, labels=labels, variant=variant,
                   batch_size=batch_size, limit=int(limit) if limit else None,
                   workers=options.check("workers", spec.get("workers")), file_rule=file_rule,
                   strict=_flag(spec, "strict"))
    elif kind == "zeroshot":
        from engine.measure import zeroshot
        zeroshot.spec_of(checkpoint)  # unknown model or tag: a clear error with close names
        data, classnames, templates = _text(spec, "data"), _text(spec, "classnames"), _text(spec, "templates")
        if not data:
            raise JobError("A zero-shot job needs a class folder (data: a folder with one sub-folder per class).")
        resolve = (lambda p: str(within_roots(p, roots))) if roots is not None else (
            lambda p: str(Path(p).expanduser().resolve()))
        data = resolve(data)
        classnames = resolve(classnames) if classnames else None
        if templates and templates not in zeroshot.template_sets():
            templates = resolve(templates)
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        limit = options.check("limit", spec.get("limit"))
        out.update(data=data, classnames=classnames, templates=templates or None,
                   batch_size=options.check("batch_size", spec.get("batch_size", 64), optional=False),
                   limit=int(limit) if limit else None, workers=options.check("workers", spec.get("workers")),
                   file_rule=file_rule, strict=_flag(spec, "strict"))
    elif kind == "probe":
        hub.pretrained_cfg(checkpoint)
        data, val = _text(spec, "data"), _text(spec, "val")
        if not data:
            raise JobError("A probe job needs a labelled folder (data: a folder with one sub-folder per class).")
        data = str(within_roots(data, roots)) if roots is not None else str(Path(data).expanduser().resolve())
        if val:
            val = str(within_roots(val, roots)) if roots is not None else str(Path(val).expanduser().resolve())
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        out.update(data=data, val=val or None, folds=options.check("folds", spec.get("folds", 5), optional=False),
                   shots=options.check("shots", spec.get("shots")),
                   seed=options.check("seed", spec.get("seed", 0), optional=False),
                   batch_size=options.check("batch_size", spec.get("batch_size", 64), optional=False),
                   workers=options.check("workers", spec.get("workers")), file_rule=file_rule,
                   strict=_flag(spec, "strict"))
    else:
        from engine.measure import profile
        img_size = options.check("img_size", spec.get("img_size"))
        profile.checkpoint_target(checkpoint, img_size)  # unknown arch: clear error
        batch_size = spec.get("batch_size", "auto")
        out.update(batch_size=batch_size if batch_size == "auto" else options.check("batch_size", batch_size),
                   img_size=img_size, compile=_flag(spec, "compile"))
    return out


def _open_dataset(spec: dict):
    from engine.measure import datasets
    return datasets.open_dataset(spec["data"], labels=spec.get("labels"), variant=spec["variant"],
                                 file_rule=spec.get("file_rule", "matchup"))


def _zeroshot_folder(spec: dict):
    from engine.measure import zeroshot
    return zeroshot.open_folder(spec["data"], classnames=spec.get("classnames"), file_rule=spec.get("file_rule", "matchup"))


def _eval_settings(spec: dict, device: str):
    from engine.measure.evaluate import EvalSettings
    extra = {"workers": spec["workers"]} if spec.get("workers") is not None else {}
    return EvalSettings(device=device, precision=spec["precision"], batch_size=spec["batch_size"],
                        limit=spec["limit"], channels_last=spec["channels_last"],
                        strict=spec.get("strict", False), **extra)


def _probe_folders(spec: dict):
    """(folder, validation folder or None) of a probe job, each read once."""
    from engine.measure import probe
    data = probe.open_folder(spec["data"], spec.get("file_rule", "matchup"))
    val = probe.open_folder(spec["val"], spec.get("file_rule", "matchup")) if spec.get("val") else None
    return data, val


def _probe_settings(spec: dict, device: str):
    from engine.measure import probe
    extra = {"workers": spec["workers"]} if spec.get("workers") is not None else {}
    return probe.ProbeSettings(folds=spec["folds"], shots=spec.get("shots"), seed=spec.get("seed", 0),
                               device=device, precision=spec["precision"], batch_size=spec["batch_size"],
                               strict=spec.get("strict", False), **extra)


def _bench_spec(spec: dict, device: str):
    from engine.measure.profile import BenchSpec
    return BenchSpec(model=spec["checkpoint"], device=device, precision=spec["precision"],
                     batch_size=spec["batch_size"], channels_last=spec["channels_last"],
                     compile=spec["compile"], img_size=spec["img_size"])


def sweep_plan(store: Store, checkpoints: list[str], spec: dict, roots: list[Path] | None = None):
    """The plan a sweep of `checkpoints` queued as evaluations with `spec` follows (the Run page
    shows it before anything is queued); timed for the GPU when the jobs ask for one and it is here."""
    import torch
    from engine.measure import sweep
    if not checkpoints:
        raise JobError("No checkpoints to sweep: widen the filters.")
    spec = normalize({**spec, "kind": "eval", "checkpoint": checkpoints[0]}, roots)
    gpu = spec["device"] != "cpu" and torch.cuda.is_available()
    index = int(spec["device"].split(":")[1]) if ":" in spec["device"] else 0
    return sweep.plan(store, checkpoints, _open_dataset(spec), _eval_settings(spec, "cpu"),
                      estimate_for=torch.cuda.get_device_name(index) if gpu else None)


def label(spec: dict) -> str:
    if spec["kind"] == "probe":
        how = f"{spec['shots']} shots" if spec.get("shots") else ("on val" if spec.get("val") else f"{spec['folds']} folds")
        return f"probe {spec['checkpoint']} on {Path(spec['data']).name} ({how}, {spec['device']}, {spec['precision']})"
    if spec["kind"] == "zeroshot":
        limit = f", {spec['limit']} images" if spec.get("limit") else ""
        return f"zero-shot {spec['checkpoint']} on {Path(spec['data']).name}{limit} ({spec['device']}, {spec['precision']})"
    if spec["kind"] == "eval":
        limit = f", {spec['limit']} images" if spec.get("limit") else ""
        return f"eval {spec['checkpoint']} on {Path(spec['data']).name}{limit} ({spec['device']}, {spec['precision']})"
    return f"bench {spec['checkpoint']} ({spec['device']}, {spec['precision']}, batch {spec['batch_size']})"


def request_key(spec: dict) -> tuple[str, dict | None]:
    """The key that makes two requests the same job; for an evaluation it includes the
    evaluation set's fingerprint, so a changed folder is a new job. Also returns the opened
    evaluation set (a probe: its folders; None for a benchmark), so it is read once."""
    if spec["kind"] == "eval":
        dataset = _open_dataset(spec)
        if spec["limit"] and spec["limit"] >= len(dataset):
            spec["limit"] = None  # every image either way: one measurement, one job, one row
        payload = {**spec, "data_fingerprint": dataset.fingerprint}
        return cache_key(payload), dataset
    if spec["kind"] == "zeroshot":
        dataset = _zeroshot_folder(spec)
        if spec["limit"] and spec["limit"] >= len(dataset):
            spec["limit"] = None
        return cache_key({**spec, "data_fingerprint": dataset.fingerprint}), dataset
    if spec["kind"] == "probe":
        data, val = _probe_folders(spec)
        return cache_key({**spec, "data_fingerprint": data.fingerprint,
                          "val_fingerprint": val.fingerprint if val else None}), (data, val)
    return cache_key(spec), None


def _cached(store: Store, spec: dict, dataset) -> dict | None:
    """A stored result for this request on this machine (eval: the weights already cached)."""
    if spec["device"] not in ("cpu",):
        return None  # what device a worker will use is not known here
    if spec["kind"] == "eval":
        from engine.measure import evaluate
        settings = _eval_settings(spec, "cpu")
        return evaluate.lookup(store, spec["checkpoint"], dataset.limit(settings.limit), settings)
    if spec["kind"] == "zeroshot":
        from engine.measure import zeroshot
        return zeroshot.lookup(store, spec["checkpoint"], dataset, spec.get("templates"), _eval_settings(spec, "cpu"))
    if spec["kind"] == "probe":
        from engine.measure import probe
        data, val = dataset  # the folders request_key read
        return probe.lookup(store, spec["checkpoint"], data, _probe_settings(spec, "cpu"), val)
    from engine.measure import profile
    key, _ = profile.bench_key(_bench_spec(spec, "cpu"))
    return store.benchmark(key)


def enqueue(store: Store, spec: dict, roots: list[Path] | None = None, requested_by: str | None = None) -> dict:
    """Ask for one job. Returns {"outcome": "cached" | "attached" | "queued", "job": id or
    None, "result": the stored row when cached}. Refused in read-only mode. `requested_by`: who
    asked (a signed-in user's e-mail, cli:<os user>); a user at MATCHUP_MAX_QUEUED_PER_USER
    queued or running jobs is refused."""
    if read_only():
        raise JobError("This Matchup runs read-only (MATCHUP_READONLY=1): nothing can be queued "
                       "here. Run your own copy to measure checkpoints.")
    spec = normalize(spec, roots)
    check_servable(store, spec)
    key, dataset = request_key(spec)
    result = _cached(store, spec, dataset)
    if result is not None:
        return {"outcome": "cached", "job": None, "result": result, "spec": spec}
    from engine.jobs import access
    from engine.store.queue import QueueFull
    limit = None if requested_by is None or requested_by.startswith("cli:") else access.max_queued_per_user()  # the shell is trusted
    try:
        job_id, attached = store.enqueue_job(uuid.uuid4().hex[:12], spec["kind"], spec, key, label(spec),
                                             spec["device"], requested_by, limit)
    except QueueFull as e:
        raise JobError(f"{requested_by} already has {e.held} jobs queued or running, the most one user may have "
                       f"here (MATCHUP_MAX_QUEUED_PER_USER = {limit}). Wait for some to finish, or cancel some.") from None
    return {"outcome": "attached" if attached else "queued", "job": job_id, "result": None, "spec": spec}


def cancel(store: Store, job: str, by: str | None = None, admin: bool = False) -> str | None:
    """Cancel a job as `by` (None or an admin: any job; else only their own). Returns the job's
    state as store.cancel_job does; another user's job is a JobError."""
    state = store.cancel_job(job, None if admin else by)
    if state == "not yours":
        raise JobError(f"Job {job} was asked for by someone else; only they or an admin (MATCHUP_ADMINS) can "
                       "cancel it.")
    return state


def _can_run(worker_device: str, device: str, precision: str) -> bool:
    """Whether a worker on `worker_device` takes a job asking for `device` at `precision`."""
    family = "cuda" if worker_device.startswith("cuda") else worker_device
    return device in ("auto", worker_device, family) and not (family == "cpu" and precision == "fp16")


def waiting_for(job_device: str, precision: str, worker_devices: list[str]) -> str | None:
    """Why a queued job is not picked up (no live worker here can run it), or None."""
    if any(_can_run(d, job_device, precision) for d in worker_devices):
        return None
    if job_device in ("auto", "cuda"):
        return "waiting for a worker with a GPU" + (" (fp16 runs on GPUs only)" if precision == "fp16" else "")
    return f"waiting for a worker with {job_device}"


def check_servable(store: Store, spec: dict) -> None:
    """Refuse at the door a job that neither this machine's devices nor a live worker can run,
    instead of letting it wait forever."""
    here = [d for d in available_devices() if d != "auto"]
    serving = here + live_workers(store)["device"].tolist()
    if waiting_for(spec["device"], spec["precision"], serving) is None:
        return
    if spec["precision"] == "fp16" and not any(d.startswith("cuda") for d in serving):
        raise JobError("fp16 runs on GPUs only, and no GPU is here or served by a worker: use bf16 "
                       "or fp32, or start a GPU worker (`python -m engine worker --device cuda:0`).")
    raise JobError(f"No worker can run {spec['device']} here: this machine has {', '.join(here)}"
                   f"{' and live workers on ' + ', '.join(sorted(set(serving) - set(here))) if set(serving) - set(here) else ''}. "
                   "Pick one of those, or start `python -m engine worker --device "
                   f"{spec['device']}` on the machine that has it.")


class JobCancelled(MatchupError):
    """The job was cancelled while it ran; nothing was stored."""


class _JobStore:
    """The store as a running job sees it: results are written together with the job's `done`
    state, and not at all once the job was cancelled."""

    def __init__(self, store: Store, job: str, worker: str, stop: threading.Event):
        self._store, self._job, self._stop = store, (job, worker), stop

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _check(self):
        if self._stop.is_set():
            raise JobCancelled("Cancelled while running; nothing was stored.")

    def put_eval(self, row: dict, job=None) -> None:
        self._check()
        self._store.put_eval(row, job=self._job)

    def put_benchmark(self, row: dict, job=None) -> None:
        self._check()
        self._store.put_benchmark(row, job=self._job)

    def put_probe(self, row: dict, job=None) -> None:
        self._check()
        self._store.put_probe(row, job=self._job)

    def put_zeroshot(self, row: dict, job=None) -> None:
        self._check()
        self._store.put_zeroshot(row, job=self._job)


class Worker:
    """Runs queued jobs until stopped (or, with once=True, until none is left for its device)."""

    def __init__(self, store: Store, device: str = "auto", embedded: bool = False):
        self.store, self.embedded = store, embedded
        self.device = self._resolve(device)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._job: str | None = None
        self._progress: tuple[float, dict] | None = None
        self._stop_job = threading.Event()
        self._stopped = threading.Event()

    @staticmethod
    def _resolve(device: str) -> str:
        if device == "auto":
            import torch
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        from engine.measure.profile import resolve_device
        resolve_device(device)  # a clear error when that device is not here
        return device

    def _beat_forever(self):
        while not self._stopped.wait(heartbeat_s()):
            try:
                progress, detail = self._progress or (None, None)
                if self.store.beat(self.id, self._job, progress, detail) and self._job:
                    self._stop_job.set()
            except MatchupError:
                pass  # the file is busy (an import): the next beat tries again

    def run(self, once: bool = False, poll_s: float = 1.0, stop: threading.Event | None = None) -> int:
        """Returns the number of jobs this worker ran."""
        stop = stop or threading.Event()
        self.store.register_worker(self.id, socket.gethostname(), os.getpid(), self.device, self.embedded)
        beater = threading.Thread(target=self._beat_forever, daemon=True)
        beater.start()
        ran = 0
        try:
            while not stop.is_set():
                self.store.requeue_stale(job_timeout_s(), MAX_ATTEMPTS)
                job = self.store.claim_job(self.id, self.device)
                if job is None:
                    if once:
                        break
                    stop.wait(poll_s)
                    continue
                self.run_job(job)
                ran += 1
        finally:
            self._stopped.set()
            beater.join(timeout=5)
            self.store.unregister_worker(self.id)
        return ran

    def _report(self, state: dict):
        done, total = state["done"], state["total"]
        self._progress = (done / total if total else 0.0,
                          {"done": done, "total": total, "images_per_sec": state.get("images_per_sec"),
                           "eta_s": state.get("eta_s")})

    def run_job(self, job: dict) -> None:
        spec, job_id = job["spec"], job["id"]
        self._job, self._progress = job_id, None
        self._stop_job.clear()
        store = _JobStore(self.store, job_id, self.id, self._stop_job)
        device = self.device
        try:
            if spec["kind"] == "eval":
                from engine.measure import evaluate
                [row] = evaluate.evaluate(store, [spec["checkpoint"]], _open_dataset(spec),
                                          _eval_settings(spec, device), progress=self._report,
                                          cancel=self._stop_job.is_set)
            elif spec["kind"] == "zeroshot":
                from engine.measure import zeroshot
                [row] = zeroshot.zeroshot(store, [spec["checkpoint"]], _zeroshot_folder(spec), spec.get("templates"),
                                          _eval_settings(spec, device), progress=self._report,
                                          cancel=self._stop_job.is_set)
            elif spec["kind"] == "probe":
                from engine.measure import probe
                data, val = _probe_folders(spec)
                settings = _probe_settings(spec, device)

                def progress(done, total):
                    if self._stop_job.is_set():
                        raise JobCancelled("Cancelled while running; nothing was stored.")
                    self._report({"done": done, "total": total})
                row, cached = probe.probe_one(store, spec["checkpoint"], data, settings, val, progress)
                row = {**row, "cached": cached}
            else:
                from engine.measure import profile
                self._progress = (0.0, {"stage": "measuring"})

                def stepped(state):
                    if self._stop_job.is_set():
                        raise JobCancelled("Cancelled while running; nothing was stored.")
                    self._report(state)
                row = profile.bench(store, _bench_spec(spec, device), progress=stepped)
            if row.get("cached"):  # answered from the store: nothing new was written
                self.store.finish_job(job_id, self.id, "done", result_key=row["cache_key"])
        except (JobCancelled, MatchupError) as e:
            from engine.measure.evaluate import EvalCancelled
            cancelled = isinstance(e, (JobCancelled, EvalCancelled))
            self.store.finish_job(job_id, self.id, "cancelled" if cancelled else "failed",
                                  None if cancelled else str(e))
        except Exception as e:  # noqa: BLE001 - a job's failure must not stop the worker
            where = traceback.extract_tb(e.__traceback__)[-1]
            self.store.finish_job(job_id, self.id, "failed",
                                  f"Unexpected {type(e).__name__}: {e} (at {Path(where.filename).name}:"
                                  f"{where.lineno}). Nothing was stored; report it with this message.")
        finally:
            self._job, self._progress = None, None


def live_workers(store: Store):
    return store.live_workers(max(job_timeout_s(), 3 * heartbeat_s()))


class EmbeddedWorker:
    """The app's own worker, so `streamlit run app.py` alone runs what its users queue. A thread
    that, while jobs are queued and no other worker is alive, runs `python -m engine worker
    --once` as a child process: the models load and run outside the app's process, so pages
    stay responsive and a crash takes down only that child."""

    MAX_STARTS, WINDOW_S = 5, 60.0  # a backstop: at most this many worker processes a minute

    def __init__(self, db: str | os.PathLike, poll_s: float = 2.0):
        self.db, self.poll_s = str(db), poll_s
        self.store = Store(db, lock_timeout_s=1)
        self.runs = 0
        self.device = Worker._resolve("auto")
        self._starts: list[float] = []
        self._thread = threading.Thread(target=self._loop, daemon=True, name="matchup-embedded-worker")
        self._stop = threading.Event()

    def start(self) -> "EmbeddedWorker":
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    def _loop(self):
        import subprocess
        import sys
        root = Path(__file__).resolve().parents[2]  # the checkout: engine/jobs/__init__.py
        while not self._stop.wait(self.poll_s):
            try:  # only jobs a worker on this device can take: never spin on the others
                if self.store.queued_count(runnable_on=self.device) == 0 or not live_workers(self.store).empty:
                    continue
            except MatchupError:
                continue  # busy file: look again next time
            now = time.monotonic()
            self._starts = [t for t in self._starts if now - t < self.WINDOW_S]
            if len(self._starts) >= self.MAX_STARTS:
                continue
            self._starts.append(now)
            subprocess.run([sys.executable, "-m", "engine", "worker", "--once", "--embedded",
                            "--db", self.db], cwd=root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.runs += 1
