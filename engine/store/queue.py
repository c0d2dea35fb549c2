"""The job queue: jobs and the workers that run them."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pandas as pd

from engine.store.connection import _now


def served_devices(worker_device: str) -> list[str]:
    """The job devices (besides auto) a worker on `worker_device` takes: its own and its family
    (cuda:0 takes cuda); a Ray dispatcher `ray:cpu`, or `ray:cuda:G` (G GPUs on its largest node),
    takes cpu, or cuda and cuda:N for N up to G (N GPUs' worth on one node)."""
    if worker_device.startswith("ray:"):
        device = worker_device[4:]
        if device == "cpu":
            return ["cpu"]
        most = int(device.split(":")[1]) if ":" in device else 1
        return ["cuda", *(f"cuda:{n}" for n in range(most + 1))]
    family = "cuda" if worker_device.startswith("cuda") else worker_device
    return [worker_device, family]


class QueueFull(Exception):
    """A user's queued and running jobs are at the limit; `held` says how many."""

    def __init__(self, held: int):
        super().__init__(f"{held} jobs held")
        self.held = held

class JobQueue:
    def enqueue_job(self, job_id: str, kind: str, spec: dict, key: str, label: str,
                    device: str, requested_by: str | None = None, limit: int | None = None) -> tuple[str, bool]:
        """Queue a job unless an identical one (same key) is queued or running: then that
        job's id comes back, attached (True). With `limit`, a user who already has that many
        jobs queued or running gets QueueFull (checked in the same transaction)."""
        with self._queue_lock(), self.transaction() as con:
            active = con.execute("SELECT id FROM jobs WHERE cache_key = ? AND state IN ('queued', 'running')"
                                 " ORDER BY created_at LIMIT 1", [key]).fetchall()
            if active:
                return active[0][0], True
            if limit is not None and requested_by is not None:
                held = con.execute("SELECT count(*) FROM jobs WHERE requested_by = ? AND state IN ('queued', 'running')",
                                   [requested_by]).fetchall()[0][0]
                if held >= limit:
                    raise QueueFull(held)
            con.execute("""INSERT INTO jobs (id, kind, spec, cache_key, state, progress, label, device,
                                             attempts, cancel_requested, created_at, requested_by)
                           VALUES (?, ?, ?, ?, 'queued', 0.0, ?, ?, 0, false, ?, ?)""",
                        [job_id, kind, json.dumps(spec, sort_keys=True), key, label, device, _now(), requested_by])
            return job_id, False

    @staticmethod
    def _runnable_on(device: str) -> tuple[str, list]:
        """The SQL condition for a queued job a worker on `device` can run: its device asked for
        (or auto), and no fp16 on a CPU."""
        served = served_devices(device)
        family = "cpu" if served[0] == "cpu" else "cuda"
        condition = (f"state = 'queued' AND device IN ('auto', {', '.join('?' for _ in served)}) AND NOT "
                     "(? = 'cpu' AND coalesce(json_extract_string(spec, '$.precision'), 'fp32') = 'fp16')")
        return condition, [*served, family]

    def claim_job(self, worker: str, device: str) -> dict | None:
        """The oldest queued job this worker's device can run, now running under this worker."""
        condition, values = self._runnable_on(device)
        with self._queue_lock(), self.transaction() as con:
            rows = con.execute(f"SELECT id FROM jobs WHERE {condition} ORDER BY created_at, id LIMIT 1",
                               values).fetchall()
            if not rows:
                return None
            now = _now()
            con.execute("""UPDATE jobs SET state = 'running', worker = ?, started_at = ?, heartbeat = ?,
                               attempts = attempts + 1, progress = 0.0, detail = NULL
                           WHERE id = ?""", [worker, now, now, rows[0][0]])
            con.execute("UPDATE workers SET job = ?, heartbeat = ? WHERE id = ?", [rows[0][0], now, worker])
        return self.job(rows[0][0])

    def beat(self, worker: str, job: str | None = None, progress: float | None = None,
             detail: dict | None = None) -> bool:
        """A worker's heartbeat, with its job's progress; True when that job should stop
        (cancel requested, or the job is no longer this worker's)."""
        now = _now()
        with self._queue_lock(), self.transaction() as con:
            con.execute("UPDATE workers SET heartbeat = ?, job = ? WHERE id = ?", [now, job, worker])
            if job is None:
                return False
            con.execute("""UPDATE jobs SET heartbeat = ?, progress = coalesce(?, progress),
                               detail = coalesce(?, detail)
                           WHERE id = ? AND worker = ? AND state = 'running'""",
                        [now, progress, json.dumps(detail) if detail is not None else None, job, worker])
            rows = con.execute("SELECT cancel_requested, state, worker FROM jobs WHERE id = ?", [job]).fetchall()
        return not rows or bool(rows[0][0]) or rows[0][1] != "running" or rows[0][2] != worker

    def finish_job(self, job: str, worker: str, state: str, error: str | None = None,
                   result_key: str | None = None) -> None:
        """The end of a run that stored no new result (failed, cancelled, or answered from the
        store); a job another worker has taken over is left to that worker."""
        with self._queue_lock(), self.transaction() as con:
            con.execute("""UPDATE jobs SET state = ?, error = ?, result_key = coalesce(?, result_key),
                               finished_at = ?, progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END
                           WHERE id = ? AND worker = ? AND state = 'running'""",
                        [state, error, result_key, _now(), state, job, worker])

    def cancel_job(self, job: str, by: str | None = None) -> str | None:
        """A queued job is cancelled at once; a running one is asked to stop. The job's state
        comes back (None: no such job). With `by`, only a job that user asked for is touched
        ("not yours" otherwise); without it (the shell, an admin), any job."""
        with self._queue_lock(), self.transaction() as con:
            state = self._state_for(con, job, by)
            if state == "queued":
                con.execute("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ?", [_now(), job])
                return "cancelled"
            if state == "running":
                con.execute("UPDATE jobs SET cancel_requested = true WHERE id = ?", [job])
            return state

    @staticmethod
    def _state_for(con, job: str, by: str | None) -> str | None:
        """The job's state, None for no such job, "not yours" when `by` did not ask for it."""
        rows = con.execute("SELECT state, requested_by FROM jobs WHERE id = ?", [job]).fetchall()
        if not rows:
            return None
        return "not yours" if by is not None and rows[0][1] != by else rows[0][0]

    def clear_job(self, job: str, by: str | None = None) -> str | None:
        """Hide a failed or cancelled job from the queue's list; the row stays in the store. The
        job's state comes back (None: no such job; "not yours" as in cancel_job); a job in any
        other state is left as it is."""
        with self._queue_lock(), self.transaction() as con:
            state = self._state_for(con, job, by)
            if state in ("failed", "cancelled"):
                con.execute("UPDATE jobs SET cleared_at = ? WHERE id = ?", [_now(), job])
            return state

    def record_sign_out(self, identity: str) -> float:
        """An identity signed out now (epoch seconds): every session signed in before it stops acting."""
        now = time.time()
        with self.transaction() as con:
            con.execute("""INSERT INTO sign_outs VALUES (?, ?)
                           ON CONFLICT (identity) DO UPDATE SET signed_out_at = excluded.signed_out_at""",
                        [identity, now])
        return now

    def last_sign_out(self, identity: str) -> float | None:
        with self.connect() as con:
            row = con.execute("SELECT signed_out_at FROM sign_outs WHERE identity = ?", [identity]).fetchone()
        return row[0] if row else None

    def requeue_stale(self, timeout_s: float, max_attempts: int) -> list[str]:
        """Running jobs whose worker stopped heartbeating go back to the queue (or fail, after
        max_attempts tries); workers that stopped are forgotten."""
        cutoff = _now().timestamp() - timeout_s
        cutoff = datetime.fromtimestamp(cutoff, timezone.utc).replace(tzinfo=None)
        with self._queue_lock(), self.transaction() as con:
            stale = con.execute("SELECT id, attempts FROM jobs WHERE state = 'running' AND heartbeat < ?",
                                [cutoff]).fetchall()
            for job, attempts in stale:
                if attempts >= max_attempts:
                    con.execute("""UPDATE jobs SET state = 'failed', finished_at = ?, error = ?
                                   WHERE id = ?""",
                                [_now(), f"Its worker stopped (crash or kill) {attempts} times; not "
                                 "retried again. Check the worker's log, then queue it again.", job])
                else:
                    con.execute("""UPDATE jobs SET state = 'queued', worker = NULL, progress = 0.0,
                                       detail = NULL WHERE id = ?""", [job])
            con.execute("DELETE FROM workers WHERE heartbeat < ?", [cutoff])
        return [job for job, _ in stale]

    def job(self, job: str) -> dict | None:
        with self.connect() as con:
            cursor = con.execute("SELECT * FROM jobs WHERE id = ?", [job])
            rows = cursor.fetchall()
            if not rows:
                return None
            row = dict(zip([d[0] for d in cursor.description], rows[0]))
        for key in ("spec", "detail"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def jobs_frame(self, limit: int = 200, cleared: bool = False) -> pd.DataFrame:
        """Newest jobs first, for `jobs list` and the Run page; cleared ones only when asked."""
        with self.connect() as con:
            return con.execute("""SELECT j.id, j.kind, j.label, j.device,
                                         json_extract_string(j.spec, '$.precision') AS precision,
                                         j.state, j.progress, j.detail,
                                         j.error, j.worker, j.attempts, j.cancel_requested, j.result_key,
                                         j.requested_by,
                                         e.top1 AS result_top1, e.n_images AS result_images,
                                         b.throughput AS result_throughput, p.accuracy AS result_probe_accuracy,
                                         p.n_images AS result_probe_images, z.top1 AS result_zeroshot_top1,
                                         z.n_images AS result_zeroshot_images, z.n_classes AS result_zeroshot_classes,
                                         j.created_at, j.started_at, j.finished_at
                                  FROM jobs j
                                  LEFT JOIN evals e ON j.kind = 'eval' AND e.cache_key = j.result_key
                                  LEFT JOIN benchmarks b ON j.kind = 'bench' AND b.cache_key = j.result_key
                                  LEFT JOIN probes p ON j.kind = 'probe' AND p.cache_key = j.result_key
                                  LEFT JOIN zeroshots z ON j.kind = 'zeroshot' AND z.cache_key = j.result_key
                                  WHERE ? OR j.cleared_at IS NULL
                                  ORDER BY j.created_at DESC, j.id LIMIT ?""", [cleared, limit]).df()

    def register_worker(self, worker: str, host: str, pid: int, device: str, embedded: bool) -> None:
        now = _now()
        with self._queue_lock(), self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                        [worker, host, pid, device, embedded, now, now])

    def unregister_worker(self, worker: str) -> None:
        with self._queue_lock(), self.transaction() as con:
            con.execute("DELETE FROM workers WHERE id = ?", [worker])

    def live_workers(self, timeout_s: float) -> pd.DataFrame:
        cutoff = datetime.fromtimestamp(_now().timestamp() - timeout_s, timezone.utc).replace(tzinfo=None)
        with self.connect() as con:
            return con.execute("SELECT * FROM workers WHERE heartbeat >= ? ORDER BY started_at",
                               [cutoff]).df()

    def queued_count(self, runnable_on: str | None = None) -> int:
        """Queued jobs, or only those a worker on `runnable_on` can run."""
        condition, values = self._runnable_on(runnable_on) if runnable_on else ("state = 'queued'", [])
        with self.connect() as con:
            return con.execute(f"SELECT count(*) FROM jobs WHERE {condition}", values).fetchall()[0][0]
