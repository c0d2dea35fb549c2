"""Asking for a job: `enqueue` answers from the store when the result is already there, attaches to
an identical job that is queued or running, else queues a new one (limits and who asked recorded);
`cancel`; which live worker can run it.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from engine import options
from engine.jobs.job_specs import (JobError, available_devices, bench_spec, eval_settings, label, normalize, probe_settings,
                                   request_key)
from engine.store import Store

MAX_ATTEMPTS = 3


def heartbeat_s() -> float:
    return options.env("MATCHUP_HEARTBEAT_S", 2.0)


def job_timeout_s() -> float:
    """How long a running job's worker may stay silent before the job is re-queued."""
    return options.env("MATCHUP_JOB_TIMEOUT", 60.0)


def read_only() -> bool:
    return os.environ.get("MATCHUP_READONLY", "").strip().lower() in ("1", "true", "yes", "on")


def _cached(store: Store, spec: dict, dataset) -> dict | None:
    """A stored result for this request on this machine (eval: the weights already cached)."""
    if spec["device"] not in ("cpu",):
        return None  # what device a worker will use is not known here
    if spec["kind"] == "eval":
        from engine.measure import evaluate
        settings = eval_settings(spec, "cpu")
        return evaluate.lookup(store, spec["checkpoint"], dataset.limit(settings.limit), settings)
    if spec["kind"] == "zeroshot":
        from engine.measure import zeroshot
        return zeroshot.lookup(store, spec["checkpoint"], dataset, spec.get("templates"), eval_settings(spec, "cpu"))
    if spec["kind"] == "probe":
        from engine.measure import probe
        data, val = dataset  # the folders request_key read
        return probe.lookup(store, spec["checkpoint"], data, probe_settings(spec, "cpu"), val)
    from engine.measure import profile
    key, _ = profile.bench_key(bench_spec(spec, "cpu"))
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


def retry(store: Store, job: str, by: str | None = None) -> dict:
    """Queue a failed job's spec again as a new job (asked for by `by`), as `enqueue` answers it;
    the failed job stays as it was."""
    row = store.job(job)
    if row is None:
        raise JobError(f"There is no job {job!r}; `python -m engine jobs list` shows their ids.")
    if row["state"] != "failed":
        raise JobError(f"Job {job} is {row['state']}; only a failed job can be retried.")
    return enqueue(store, row["spec"], requested_by=by)


def clear(store: Store, job: str, by: str | None = None, admin: bool = False) -> str:
    """Hide a failed or cancelled job from the queue's list as `by` (an admin: any job); the row
    stays in the store."""
    state = store.clear_job(job, None if admin else by)
    if state is None:
        raise JobError(f"There is no job {job!r}; `python -m engine jobs list` shows their ids.")
    if state == "not yours":
        raise JobError(f"Job {job} was asked for by someone else; only they or an admin (MATCHUP_ADMINS) can "
                       "clear it.")
    if state not in ("failed", "cancelled"):
        raise JobError(f"Job {job} is {state}; only a failed or cancelled job can be cleared.")
    return state


def can_run(worker_device: str, device: str, precision: str) -> bool:
    """Whether a worker on `worker_device` takes a job asking for `device` at `precision`."""
    from engine.store.queue import served_devices
    served = served_devices(worker_device)
    return (device == "auto" or device in served) and not (served[0] == "cpu" and precision == "fp16")


def waiting_for(job_device: str, precision: str, worker_devices: list[str]) -> str | None:
    """Why a queued job is not picked up (no live worker here can run it), or None."""
    if any(can_run(d, job_device, precision) for d in worker_devices):
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


def live_workers(store: Store):
    return store.live_workers(max(job_timeout_s(), 3 * heartbeat_s()))
