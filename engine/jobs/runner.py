"""Running jobs: a worker claims the oldest job its device can run, heartbeats with progress, stops
when cancelled, and writes the result and the job's `done` state in one transaction. A job whose
worker stops heartbeating (crash, kill -9) goes back to the queue after `job_timeout_s()`. The
app's embedded worker is one such process, restarted within limits.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable

from engine.errors import MatchupError
from engine.jobs.job_specs import bench_spec, eval_settings, open_dataset, probe_folders, probe_settings, zeroshot_folder
from engine.jobs.submit import MAX_ATTEMPTS, heartbeat_s, job_timeout_s, live_workers
from engine.paths import REPO_ROOT
from engine.store import Store


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
        self._progress = progress_of(state)

    def run_job(self, job: dict) -> None:
        spec, job_id = job["spec"], job["id"]
        self._job, self._progress = job_id, None
        self._stop_job.clear()
        store = _JobStore(self.store, job_id, self.id, self._stop_job)
        try:
            row = measure_job(store, spec, self.device, self._report, self._stop_job.is_set)
            if row.get("cached"):  # answered from the store: nothing new was written
                self.store.finish_job(job_id, self.id, "done", result_key=row["cache_key"])
        except (JobCancelled, MatchupError) as e:
            from engine.measure.evaluate import EvalCancelled
            cancelled = isinstance(e, (JobCancelled, EvalCancelled))
            self.store.finish_job(job_id, self.id, "cancelled" if cancelled else "failed",
                                  None if cancelled else str(e))
        except Exception as e:  # noqa: BLE001 - a job's failure must not stop the worker
            self.store.finish_job(job_id, self.id, "failed", unexpected_failure(e))
        finally:
            self._job, self._progress = None, None


def unexpected_failure(e: Exception) -> str:
    """A job's unexpected fault as the one line its row keeps."""
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return (f"Unexpected {type(e).__name__}: {e}{at}. Nothing was stored; report it with this message.")


def measure_job(store, spec: dict, device: str, report: Callable[[dict], None], cancelled: Callable[[], bool]) -> dict:
    """One job's measurement against `store` (the database's, or a recording one on a Ray node):
    the row it stored, or the stored row it found (`cached`). `report` hears progress states
    ({"done", "total", ...}); once `cancelled()` is true the work stops with JobCancelled."""
    def checked(state):
        if cancelled():
            raise JobCancelled("Cancelled while running; nothing was stored.")
        report(state)

    if spec["kind"] == "eval":
        from engine.measure import evaluate
        [row] = evaluate.evaluate(store, [spec["checkpoint"]], open_dataset(spec), eval_settings(spec, device),
                                  progress=report, cancel=cancelled)
    elif spec["kind"] == "zeroshot":
        from engine.measure import zeroshot
        [row] = zeroshot.zeroshot(store, [spec["checkpoint"]], zeroshot_folder(spec), spec.get("templates"),
                                  eval_settings(spec, device), progress=report, cancel=cancelled)
    elif spec["kind"] == "probe":
        from engine.measure import probe
        data, val = probe_folders(spec)
        row, cached = probe.probe_one(store, spec["checkpoint"], data, probe_settings(spec, device), val,
                                      lambda done, total: checked({"done": done, "total": total}))
        row = {**row, "cached": cached}
    else:
        from engine.measure import profile
        report({"stage": "measuring"})
        row = profile.bench(store, bench_spec(spec, device), progress=checked)
    return row


def progress_of(state: dict) -> tuple[float, dict]:
    """A progress state as the job's heartbeat keeps it: (share done, what the Run page shows)."""
    if "done" not in state:
        return 0.0, dict(state)  # a stage without a count (a benchmark measuring)
    done, total = state["done"], state["total"]
    return (done / total if total else 0.0,
            {"done": done, "total": total, "images_per_sec": state.get("images_per_sec"), "eta_s": state.get("eta_s")})


class EmbeddedWorker:
    """The app's own worker, so `streamlit run app.py` alone runs what its users queue. A thread
    that, while jobs are queued and no other worker is alive, runs `python -m engine worker
    --once` (with `--ray $MATCHUP_RAY_ADDRESS` when that is set) as a child process: the models load and run outside the app's process, so pages
    stay responsive and a crash takes down only that child."""

    MAX_STARTS, WINDOW_S = 5, 60.0  # a backstop: at most this many worker processes a minute

    def __init__(self, db: str | os.PathLike, poll_s: float = 2.0):
        self.db, self.poll_s = str(db), poll_s
        self.store = Store(db, lock_timeout_s=1)
        self.runs = 0
        self.device = Worker._resolve("auto")
        self.ray_address = os.environ.get("MATCHUP_RAY_ADDRESS", "").strip() or None  # the lab's cluster
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
        root = REPO_ROOT  # `python -m engine` runs from the checkout
        while not self._stop.wait(self.poll_s):
            try:  # only jobs a worker on this device (the cluster: any) can take: never spin on the others
                runnable_on = None if self.ray_address else self.device
                if self.store.queued_count(runnable_on=runnable_on) == 0 or not live_workers(self.store).empty:
                    continue
            except MatchupError:
                continue  # busy file: look again next time
            now = time.monotonic()
            self._starts = [t for t in self._starts if now - t < self.WINDOW_S]
            if len(self._starts) >= self.MAX_STARTS:
                continue
            self._starts.append(now)
            on_ray = ["--ray", self.ray_address] if self.ray_address else []
            subprocess.run([sys.executable, "-m", "engine", "worker", "--once", "--embedded", *on_ray,
                            "--db", self.db], cwd=root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.runs += 1
