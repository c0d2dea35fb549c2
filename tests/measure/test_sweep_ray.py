"""Sweeps fanned out on a local Ray (2 CPUs): the same rows as the plain sweep, the driver the only
writer of the store, and a task whose worker is killed mid-run retried."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.measure import datasets, sweep
from engine.measure.evaluate import EvalSettings
from engine.store import Store
from tests.conftest import ROOT, make_image_folder
from tests.measure.test_sweep import CHECKPOINTS, images, offline, sweep_hub  # noqa: F401 (fixtures)

ray = pytest.importorskip("ray")
FAST = EvalSettings(batch_size=8, workers=0)


@pytest.fixture
def local_ray(offline, monkeypatch):  # noqa: F811
    """A Ray of the test's own: a cluster the machine names in $RAY_ADDRESS (here a closed port)
    must never be joined by `--ray` without an address."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    yield
    ray.shutdown()


def _without_evals(source, path) -> Store:
    """A copy of the catalog database with no evaluation: where a run of its own goes."""
    shutil.copy(source, path)
    store = Store(path)
    with store.transaction() as con:
        con.execute("DELETE FROM evals")
    return store


def _rows(store: Store) -> dict:
    frame = store.table_frame("evals")
    return {r["checkpoint"]: (r["cache_key"], r["top1"], r["n_images"], json.loads(r["details"])["predictions"])
            for r in frame.to_dict("records")}


def test_a_ray_sweep_gives_the_same_rows_as_the_plain_sweep(local_ray, images, catalog_store, tmp_path):  # noqa: F811
    chosen = ["test_vit.r160_in1k", "test_convnext.r160_in1k", "test_resnet.r160_in1k",
              "mobilenetv3_small_050.lamb_in1k", "resnet50.a1_in1k"]  # the last is not in the Hub cache
    dataset = datasets.open_dataset(images)
    the_plan = sweep.plan(catalog_store, chosen, dataset, FAST)
    report = sweep.run(catalog_store, the_plan, dataset, FAST, show_progress=False, ray_address="local")
    by = {r["checkpoint"]: r for r in report.results}
    assert by["resnet50.a1_in1k"]["status"] == "failed" and "not in the local Hub cache" in by["resnet50.a1_in1k"]["error"]
    assert all(by[c]["status"] == "done" for c in chosen[:4])
    plain = _without_evals(catalog_store.path, tmp_path / "plain.duckdb")
    sweep.run(plain, sweep.plan(plain, chosen, dataset, FAST), dataset, FAST, show_progress=False)
    assert _rows(catalog_store) == _rows(plain)


def ray_task_pids(task: str = "evaluate_on_worker") -> list[int]:
    """The processes running a Ray task of that function now: Ray names a worker process after
    the task it runs."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f"ray::{task}".encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_ray_task_killed_mid_run_is_retried(offline, catalog_store, tmp_path):  # noqa: F811
    root = tmp_path / "val"
    make_image_folder(root, per_class=25, size=(300, 220))
    chosen = ["test_vit.r160_in1k", "test_resnet.r160_in1k"]
    command = [sys.executable, "-m", "engine", "--db", str(catalog_store.path), "sweep", "--data", str(root),
               "--checkpoints", ",".join(chosen), "--batch-size", "2", "--workers", "0", "--ray", "--json"]
    process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and killed is None:
        pids = ray_task_pids()
        if pids:
            time.sleep(1.0)  # let it get into the images
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.1)
    out, err = process.communicate(timeout=300)
    assert killed is not None, "no Ray task was seen running"
    assert process.returncode == 0, err
    assert out.strip().startswith("{"), (out[:2000], err[-3000:])
    result = json.loads(out)
    assert [r["status"] for r in result["results"]] == ["done", "done"]
    evals = Store(catalog_store.path).table_frame("evals")
    assert sorted(evals["checkpoint"]) == sorted(chosen) and (evals["n_images"] == 100).all()


@pytest.fixture
def three_nodes(offline, monkeypatch):  # noqa: F811
    """A real multi-node Ray cluster on this machine (Ray's own Cluster): a head with no CPU for
    tasks and three worker nodes of one CPU each, of the test's own."""
    from ray.cluster_utils import Cluster
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_a_sweep_on_three_nodes_keeps_groups_together_and_survives_a_node_killed(three_nodes, catalog_store, tmp_path):
    """Rows equal a single-machine run's, row for row; a group's later checkpoints run on the node
    that decoded it; a worker node killed mid-run costs only its tasks, retried elsewhere."""
    import threading
    cluster, workers = three_nodes
    root = tmp_path / "val"
    make_image_folder(root, per_class=10, size=(300, 220))
    chosen = ["test_vit.r160_in1k", "test_convnext.r160_in1k", "test_efficientnet.r160_in1k", "test_resnet.r160_in1k"]
    dataset = datasets.open_dataset(root)
    settings = EvalSettings(batch_size=4, workers=0)
    report = sweep.run(catalog_store, sweep.plan(catalog_store, chosen, dataset, settings), dataset, settings,
                       show_progress=False, ray_address=cluster.address)
    by = {r["checkpoint"]: r for r in report.results}
    assert all(by[c]["status"] == "done" for c in chosen)
    assert len({by[c]["node"] for c in chosen[:3]}) == 1  # one pixel group: one node
    plain = _without_evals(catalog_store.path, tmp_path / "plain.duckdb")
    sweep.run(plain, sweep.plan(plain, chosen, dataset, settings), dataset, settings, show_progress=False)
    assert _rows(catalog_store) == _rows(plain)

    killed = _without_evals(plain.path, tmp_path / "killed.duckdb")
    stop, removed = threading.Event(), []

    def raylet_of(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])  # a task's worker is its raylet's child

    def kill_a_busy_node():
        while not stop.is_set():
            for pid in ray_task_pids():
                for node in workers:
                    try:
                        busy = raylet_of(pid) == node.all_processes["raylet"][0].process.pid
                    except (OSError, KeyError, IndexError):
                        busy = False
                    if busy:
                        time.sleep(1.0)   # into its images
                        cluster.remove_node(node, allow_graceful=False)  # kill -9 of that node's processes
                        removed.append(node)
                        return
            time.sleep(0.1)
    killer = threading.Thread(target=kill_a_busy_node)
    killer.start()
    report = sweep.run(killed, sweep.plan(killed, chosen, dataset, settings), dataset, settings,
                       show_progress=False, ray_address=cluster.address)
    stop.set()
    killer.join()
    assert removed, "no task was seen running on a worker node"  # killed while a task of the sweep ran there
    assert [r["status"] for r in report.results] == ["done"] * 4
    assert _rows(killed) == _rows(plain) and killed.count("evals") == 4  # none lost, none twice

