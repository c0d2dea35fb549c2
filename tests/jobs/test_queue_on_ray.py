"""The queue on a real multi-node Ray cluster of the tests' own (Ray's `Cluster`: a head with no CPU
for tasks, three worker nodes of one CPU each and a fourth whose Hub cache lacks the weights):
queued jobs run as Ray tasks, the dispatcher the store's only writer; a node killed mid-task, the
dispatcher killed and restarted, a job cancelled; and the bad inputs, each one line with the queue
left as it was."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from engine.jobs import runner, submit
from engine.store import Store
from tests.conftest import ROOT, make_image_folder
from tests.measure.test_sweep_ray import ray_task_pids

ray = pytest.importorskip("ray")
CHECKPOINTS = ["test_vit.r160_in1k", "test_convnext.r160_in1k", "test_resnet.r160_in1k"]


@pytest.fixture(scope="module")
def lab(hub_cache, tmp_path_factory):
    """The cluster, its nodes and an evaluation set; the module's environment as every node sees it."""
    from ray.cluster_utils import Cluster
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ADDRESS", "127.0.0.1:9")  # never a cluster already running on the machine
        env.setenv("HF_HUB_CACHE", str(hub_cache))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("MATCHUP_CACHE", str(tmp_path_factory.mktemp("node-cache")))
        env.setenv("MATCHUP_CACHE_KEY", str(tmp_path_factory.mktemp("node-key") / "cache.key"))
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        good = [cluster.add_node(num_cpus=1) for _ in range(3)]
        empty = tmp_path_factory.mktemp("empty-hub")
        weightless = cluster.add_node(num_cpus=1, env_vars={"HF_HUB_CACHE": str(empty)})
        cluster.wait_for_nodes()
        data = tmp_path_factory.mktemp("lab-val")
        make_image_folder(data, per_class=20, size=(300, 220))
        slow = {}
        for use in ("kill", "cancel", "restart"):  # a set each, so no test finds another's decoded pixels
            slow[use] = tmp_path_factory.mktemp(f"lab-slow-{use}")  # evaluations that run for seconds
            make_image_folder(slow[use], per_class=60, size=(320, 240))
        yield {"cluster": cluster, "good": good, "weightless": weightless, "data": data, "slow": slow}
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def queue(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("MATCHUP_HEARTBEAT_S", "0.2")
    monkeypatch.setenv("MATCHUP_JOB_TIMEOUT", "3")
    monkeypatch.delenv("MATCHUP_READONLY", raising=False)
    return Store(tmp_path / "lab.duckdb", lock_timeout_s=30)


def _queue(store, checkpoints, data, **extra) -> list[str]:
    return [submit.enqueue(store, {"kind": "eval", "checkpoint": c, "data": str(data), "batch_size": 2, "workers": 0,
                                   **extra})["job"] for c in checkpoints]


def _rows(store: Store) -> dict:
    frame = store.table_frame("evals")
    return {r["checkpoint"]: (r["cache_key"], r["top1"], r["n_images"], json.loads(r["details"])["predictions"])
            for r in frame.to_dict("records")}


def _task_pids() -> list[int]:
    return ray_task_pids("run_job_on_node")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _cli(store, *args, env=None, **popen):
    return subprocess.Popen([sys.executable, "-m", "engine", "--db", str(store.path), *args], cwd=ROOT,
                            env=env or dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            **popen)


def test_bad_addresses_and_devices_are_one_line_and_the_queue_stays(queue, lab):
    [job] = _queue(queue, CHECKPOINTS[:1], lab["data"])
    cases = [(["--ray", "127.0.0.1:9"], "Nothing answers at the Ray address 127.0.0.1:9"),
             (["--ray", "no-port-here"], "is not a Ray address"),
             (["--ray", lab["cluster"].address, "--device", "cuda"], "offers 1 GPU(s) on one node for cuda")]
    for args, message in cases:
        process = _cli(queue, "worker", *args, "--once")
        out, err = process.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert process.returncode == 2 and len(lines) == 1 and message in lines[0], err[-2000:]
        assert "Traceback" not in err
    # another Ray version on the driver's machine: Ray's own check, said in one line
    skewed = ("import ray, sys; ray.__version__ = '2.0.0'; from engine.cli.main import main; "
              f"sys.exit(main(['--db', {str(queue.path)!r}, 'worker', '--ray', {lab['cluster'].address!r}, '--once']))")
    process = subprocess.run([sys.executable, "-c", skewed], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr[-2000:]
    assert f"runs Ray {ray.__version__}" in process.stderr and "this machine has Ray 2.0.0" in process.stderr
    row = queue.job(job)
    assert row["state"] == "queued" and row["attempts"] == 0 and queue.count("evals") == 0
    # a node whose versions differ from the head's is named with both (its check, called here)
    from engine.measure import cluster
    head = {**cluster.versions(), "Ray": "2.0.0", "timm": "0.9.0"}
    assert cluster.node_check([], [], head)["missing"] == [f"Ray {ray.__version__} where the head has 2.0.0",
                                                          f"timm {cluster.versions()['timm']} where the head has 0.9.0"]


def test_queued_jobs_run_across_nodes_and_a_node_killed_mid_task_loses_nothing(queue, lab, tmp_path):
    """Rows equal a plain local worker's, row for row; the Run page's progress arrives; the node
    without the weights is named and left out; a busy node killed costs only a retry."""
    from engine.jobs.on_ray import RayDispatcher
    specs = [(CHECKPOINTS[0], lab["data"], {}), (CHECKPOINTS[1], lab["data"], {}),
             (CHECKPOINTS[2], lab["slow"]["kill"], {"batch_size": 1})]  # long enough to watch its progress
    ids = [_queue(queue, [c], data, **extra)[0] for c, data, extra in specs]
    ids.append(submit.enqueue(queue, {"kind": "bench", "checkpoint": "test_resnet.r160_in1k", "batch_size": 2})["job"])
    said = []
    dispatcher = RayDispatcher(queue, lab["cluster"].address, say=said.append)
    assert dispatcher.describe() == "4 slot(s) for cpu"  # every node with a CPU: the check decides per job
    seen, removed, stop = [], [], threading.Event()

    def watch_and_kill():
        watcher = Store(queue.path, lock_timeout_s=30)
        while not stop.is_set():
            frame = watcher.jobs_frame()
            seen.extend((r.id, r.progress, r.detail) for r in frame.itertuples() if r.state == "running")
            if not removed:
                for pid in _task_pids():
                    try:
                        node = next((n for n in lab["good"] if n.all_processes["raylet"][0].process.pid == _parent(pid)),
                                    None)
                    except OSError:
                        continue
                    if node is not None:
                        time.sleep(1.0)  # into its images
                        lab["cluster"].remove_node(node, allow_graceful=False)  # kill -9 of the node's processes
                        removed.append(node)
                        break
            time.sleep(0.1)
    watcher = threading.Thread(target=watch_and_kill)
    watcher.start()
    try:
        ran = dispatcher.run(once=True)
    finally:
        stop.set()
        watcher.join()
    assert ran == 4 and removed, "no task was seen running on a worker node"
    jobs = {r["id"]: r for r in queue.jobs_frame().to_dict("records")}
    assert [jobs[i]["state"] for i in ids] == ["done"] * 4, "\n".join(str(jobs[i]["error"]) for i in ids)
    assert [jobs[i]["attempts"] for i in ids] == [1] * 4  # the lost node cost a Ray retry, not a queue attempt
    partial = [json.loads(d) for i, p, d in seen if i == ids[2] and p and 0 < p < 1]
    assert partial and partial[-1]["total"] == 240 and partial[-1]["images_per_sec"] > 0  # 4 classes of 60
    weightless = lab["weightless"].node_id[:8]
    left_out = [line for line in said if f"({weightless}) is left out" in line]
    assert left_out and all("no weights of" in line and "Hub cache (offline)" in line for line in left_out), (weightless, said)
    assert not any(line == f"job {i}: ran on node {weightless}" for i in ids[:3] for line in said)
    assert {line.split("ran on node ")[1] for line in said if "ran on node" in line} - {weightless}, said

    plain = Store(tmp_path / "plain.duckdb", lock_timeout_s=30)
    for c, data, extra in specs:
        _queue(plain, [c], data, **extra)
    runner.Worker(plain, device="cpu").run(once=True)
    assert _rows(queue) == _rows(plain) and queue.count("evals") == 3  # none lost, none twice
    assert queue.count("benchmarks") == 1


def test_a_cancelled_job_stops_its_ray_task_and_stores_nothing(queue, lab):
    from engine.jobs.on_ray import RayDispatcher
    [job] = _queue(queue, CHECKPOINTS[:1], lab["slow"]["cancel"], batch_size=1)
    dispatcher = RayDispatcher(queue, lab["cluster"].address, say=lambda line: None, slots=1)
    thread = threading.Thread(target=dispatcher.run, kwargs={"once": True})
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _task_pids():  # its Ray task has started on a node
        time.sleep(0.05)
    assert submit.cancel(queue, job, admin=True) == "running"
    thread.join(timeout=60)
    assert not thread.is_alive() and queue.job(job)["state"] == "cancelled" and queue.count("evals") == 0
    deadline = time.monotonic() + 30
    while _task_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _task_pids()  # the Ray task was cancelled, not left to run


def test_a_dispatcher_killed_and_restarted_finishes_the_queue_once(queue, lab):
    ids = _queue(queue, CHECKPOINTS[1:2], lab["slow"]["restart"], batch_size=1)
    first = _cli(queue, "worker", "--ray", lab["cluster"].address, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(0 < (queue.job(i)["progress"] or 0) < 1 for i in ids):
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)
    assert [queue.job(i)["state"] for i in ids] == ["running"]  # in flight when its dispatcher died
    second = _cli(queue, "worker", "--ray", lab["cluster"].address)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not all(queue.job(i)["state"] == "done" for i in ids):
        time.sleep(0.2)
    second.send_signal(signal.SIGINT)
    second.communicate(timeout=60)
    rows = [queue.job(i) for i in ids]
    assert [(r["state"], r["attempts"]) for r in rows] == [("done", 2)]  # back in the queue by the timeout rule
    assert queue.count("evals") == 1


def test_a_set_no_node_sees_fails_its_job_naming_each_node_and_the_embedded_worker_uses_the_cluster(
        queue, lab, tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    make_image_folder(gone, per_class=2, size=(64, 64))
    [job] = _queue(queue, CHECKPOINTS[:1], gone)
    gone.rename(tmp_path / "moved")  # queued, then the set was moved away: no node sees it
    [ok] = _queue(queue, CHECKPOINTS[:1], lab["data"], limit=8)
    monkeypatch.setenv("MATCHUP_RAY_ADDRESS", lab["cluster"].address)
    embedded = runner.EmbeddedWorker(queue.path, poll_s=0.2).start()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and {queue.job(i)["state"] for i in (job, ok)} - {"done", "failed"}:
            time.sleep(0.2)
    finally:
        embedded.stop()
    failed, done = queue.job(job), queue.job(ok)
    assert failed["state"] == "failed" and "\n" not in failed["error"], failed["error"]
    alive = [n for n in [*lab["good"], lab["weightless"]] if n in lab["cluster"].worker_nodes]  # one was killed
    for node in alive:
        assert f"({node.node_id[:8]}) is left out: no folder {gone}" in failed["error"]
    assert done["state"] == "done" and ":ray/cpu#" in done["worker"]  # run by the embedded worker's dispatcher
    assert queue.count("evals") == 1
