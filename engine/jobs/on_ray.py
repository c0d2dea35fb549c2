"""The queue on a Ray cluster: `worker --ray ADDRESS` runs next to the database and dispatches each
claimed job as a Ray task on a node that has the device it asks for. The task measures with a store
that only records (nodes never open the database) and sends its progress to a small actor; the
dispatcher keeps the job's heartbeat with that progress, cancels the task when the job is
cancelled, and writes the result as the store's single writer, with the job's `done` state in one
transaction. A node lost mid-task costs that task a try (three in all, as for any worker); a
dispatcher killed leaves its jobs to the usual timeout, after which any worker runs them again.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid

from engine.errors import MatchupError
from engine.jobs.runner import JobCancelled, Worker, measure_job, progress_of, unexpected_failure
from engine.jobs.submit import MAX_ATTEMPTS
from engine.measure import cluster
from engine.store import Store

REPORT_EVERY_S = 0.5  # a task's progress reaches the dispatcher at most this often
WAIT_S = 0.25


class RecordingStore:
    """The store as a job on a Ray node sees it: nothing found, every result recorded for the
    dispatcher to write."""

    def __init__(self):
        self.writes: list[tuple[str, dict]] = []
        self._rows: dict[str, dict] = {}

    def _put(self, table: str, row: dict) -> None:
        self.writes.append((table, row))
        self._rows[row["cache_key"]] = row

    def _found(self, key: str) -> dict | None:
        return self._rows.get(key)

    def put_eval(self, row: dict, job=None) -> None:
        self._put("eval", row)

    def put_zeroshot(self, row: dict, job=None) -> None:
        self._put("zeroshot", row)

    def put_probe(self, row: dict, job=None) -> None:
        self._put("probe", row)

    def put_benchmark(self, row: dict, job=None) -> None:
        self._put("benchmark", row)

    eval_result = zeroshot_result = probe_result = benchmark = _found


class ProgressBoard:
    """A Ray actor: each running job's latest progress, as its task last reported it."""

    def __init__(self):
        self.latest: dict[str, dict] = {}

    def report(self, job: str, state: dict) -> None:
        self.latest[job] = state

    def take(self, job: str) -> dict | None:
        return self.latest.pop(job, None)


def run_job_on_node(spec: dict, device: str, job: str, board) -> dict:
    """One queued job on whichever node Ray chose: its writes and the node, for the dispatcher."""
    import ray
    store, last = RecordingStore(), [0.0]

    def report(state: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S or state.get("done") == state.get("total"):
            last[0] = now
            board.report.remote(job, dict(state))

    out = {"node": ray.get_runtime_context().get_node_id(), "writes": [], "row": None, "error": None}
    try:
        row = measure_job(store, spec, device, report, lambda: False)
        out.update(writes=store.writes, row={k: row.get(k) for k in ("cache_key", "cached")})
    except MatchupError as e:
        out["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - a job's fault comes back as its one line, not a dead task
        out["error"] = unexpected_failure(e)
    return out


def node_device(device: str) -> str:
    """The device a task uses on its node: Ray shows it only the GPUs it reserved."""
    return "cuda" if device.startswith("cuda") else device


class Slot(Worker):
    """One job at a time on the cluster, registered as a worker of its own (its id, its heartbeat)."""

    def __init__(self, store: Store, dispatcher: "RayDispatcher", device: str, number: int):
        super().__init__(store, device="cpu", embedded=dispatcher.embedded)
        self.device = device  # ray:cpu or ray:cuda:G
        self.id = f"{dispatcher.id}/{device[4:]}#{number}"
        self.dispatcher = dispatcher

    def run_job(self, job: dict) -> None:
        self._job, self._progress = job["id"], None
        self._stop_job.clear()
        try:
            self._dispatch(job)
        except JobCancelled:
            if not self.dispatcher.stopping.is_set():  # stopped, not cancelled: back by the timeout rule
                self.store.finish_job(job["id"], self.id, "cancelled")
        except MatchupError as e:
            self.store.finish_job(job["id"], self.id, "failed", str(e))
        except Exception as e:  # noqa: BLE001 - a job's failure must not stop the dispatcher
            self.store.finish_job(job["id"], self.id, "failed", unexpected_failure(e))
        finally:
            self._job, self._progress = None, None

    def _dispatch(self, job: dict) -> None:
        import ray
        spec, job_id, d = job["spec"], job["id"], self.dispatcher
        device = spec["device"] if spec["device"] != "auto" else ("cuda" if self.device.startswith("ray:cuda") else "cpu")
        candidates = cluster.check_device(device, d.address)
        folders = [spec[k] for k in ("data", "val") if spec.get(k) and not str(spec[k]).startswith("hfds/")]
        good, left_out = cluster.preflight(candidates, folders, [spec["checkpoint"]] if spec["kind"] != "bench" else [])
        for line in left_out:
            d.say(f"job {job_id}: {line}")
        if not good:
            raise cluster.ClusterError(f"No node of the Ray cluster at {d.address} can run this job: "
                                       f"{' '.join(left_out)} {cluster.missing_hint()}")
        task = d.task.options(**cluster.task_resources(device), **cluster.on_nodes(good, candidates))
        ref = task.remote(spec, node_device(device), job_id, d.board)
        while True:
            ready, _ = ray.wait([ref], timeout=WAIT_S)
            state = d.progress(job_id)
            if state is not None:
                self._progress = progress_of(state)
            if self._stop_job.is_set():
                ray.cancel(ref, force=True)
                raise JobCancelled("cancelled")
            if ready:
                break
        try:
            out = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - every try died (its node lost, its process killed)
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise cluster.ClusterError(f"Its Ray task failed on all {MAX_ATTEMPTS} tries ({type(e).__name__}: "
                                       f"{first}); nothing was stored. Retry it when the cluster is whole.") from None
        if out["error"]:
            raise MatchupError(out["error"])
        d.say(f"job {job_id}: ran on node {out['node'][:8]}")
        self._write(job_id, out)

    def _write(self, job_id: str, out: dict) -> None:
        """The task's rows, its main one with the job's `done` state in one transaction."""
        if self._stop_job.is_set():
            raise JobCancelled("cancelled")
        put = {"eval": self.store.put_eval, "zeroshot": self.store.put_zeroshot, "probe": self.store.put_probe,
               "benchmark": self.store.put_benchmark}
        key = out["row"]["cache_key"]
        main = [row for _, row in out["writes"] if row["cache_key"] == key]
        for table, row in out["writes"]:
            if row["cache_key"] != key:
                put[table](row)
        if main:
            table = next(t for t, row in out["writes"] if row["cache_key"] == key)
            put[table](main[-1], job=(job_id, self.id))
        else:
            self.store.finish_job(job_id, self.id, "done", result_key=key)


class RayDispatcher:
    """`python -m engine worker --ray ADDRESS`: slots claiming jobs for the devices the cluster
    offers, one job per slot; by default one slot per node that can run the device."""

    def __init__(self, store: Store, address: str, device: str = "auto", slots: int | None = None,
                 embedded: bool = False, say=None):
        self.store, self.address, self.embedded = store, address, embedded
        self.stopping = threading.Event()
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}:ray"
        cluster.connect(address)
        import ray
        devices = self._devices(device)
        self.task = ray.remote(max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False)(run_job_on_node)
        self.board = self._board(ray)
        self.slots = [Slot(store, self, worker_device, i + 1)
                      for worker_device, count in devices for i in range(slots or count)]

    def _devices(self, device: str) -> list[tuple[str, int]]:
        """(worker device, slots) for each kind of job served; a ClusterError when none is offered."""
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise cluster.ClusterError(f"--device {device}: on a Ray cluster a worker serves cpu, cuda or auto.")
        if device.startswith("cuda"):
            found = cluster.check_device(device, self.address)
            return [(f"ray:cuda:{int(max(n['gpus'] for n in found))}", int(sum(n["gpus"] for n in found)))]
        cpu = cluster.check_device("cpu", self.address)
        served = [("ray:cpu", len(cpu))]
        gpu = cluster.able("cuda") if device == "auto" else []
        if gpu:
            served.insert(0, (f"ray:cuda:{int(max(n['gpus'] for n in gpu))}", int(sum(n["gpus"] for n in gpu))))
        return served

    def _board(self, ray):
        """The progress board, on the node this process joined through (it outlives worker nodes)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        here = ray.get_runtime_context().get_node_id()
        actor = ray.remote(num_cpus=0, max_restarts=-1)(ProgressBoard)
        return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()

    def progress(self, job: str) -> dict | None:
        import ray
        try:
            return ray.get(self.board.take.remote(job), timeout=5)
        except Exception:  # noqa: BLE001 - progress is a courtesy: the job goes on without it
            return None

    def run(self, once: bool = False, poll_s: float = 1.0, stop: threading.Event | None = None) -> int:
        """Every slot until stopped (or, once, until nothing is left for it); the jobs run."""
        stop = stop or threading.Event()
        counts = [0] * len(self.slots)

        def serve(i: int) -> None:
            counts[i] = self.slots[i].run(once=once, poll_s=poll_s, stop=stop)
        threads = [threading.Thread(target=serve, args=(i,), daemon=True, name=f"matchup-slot-{i}")
                   for i in range(len(self.slots))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            stop.set()
            self.stopping.set()
            for slot in self.slots:
                slot._stop_job.set()
            for thread in threads:
                thread.join(timeout=10)
            raise
        return sum(counts)

    def describe(self) -> str:
        kinds = {}
        for slot in self.slots:
            kinds[slot.device[4:]] = kinds.get(slot.device[4:], 0) + 1
        return ", ".join(f"{n} slot(s) for {k}" for k, n in kinds.items())
