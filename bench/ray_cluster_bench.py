"""Ray's per-task overhead on a multi-node cluster against a plain local run: a sweep, and the job queue (issue 37).

    python bench/ray_cluster_bench.py [--images 200] [--nodes 3] [--rounds 2]

A real multi-node Ray cluster on this machine (Ray's own `ray.cluster_utils.Cluster`: a head with
no CPU for tasks, N worker nodes of one CPU each) runs a sweep of the same tiny checkpoints that a
plain local sweep runs, on generated 500x375 JPEGs, each into a new database with a cold decoded
cache. Reported: seconds of each, the ratio cluster / local, and the cluster's overhead per task
((cluster - local / nodes) / tasks: what the fan-out costs beyond dividing the work). The same for
the queue: one eval job per checkpoint, run by a local `worker` against `worker --ray` (whose jobs
each begin with a check task on every node); the dispatcher's first, cold run (worker processes
starting on every node) is reported apart. On one 2-core machine the nodes share the cores, so
the ratio measures overhead, not speed-up.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHECKPOINTS = ("test_vit.r160_in1k", "test_convnext.r160_in1k", "test_efficientnet.r160_in1k",
               "test_nfnet.r160_in1k", "test_resnet.r160_in1k", "test_vit2.r160_in1k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster
    from bench.generated import offline_set
    tmp, dataset = offline_set("matchup-ray-bench-", CHECKPOINTS, args.images)
    from engine.catalog import refresh
    from engine.measure import evaluate, sweep
    from engine.store import Store
    catalog_db = tmp / "catalog.duckdb"
    refresh.refresh(Store(catalog_db), load_published=False)
    settings = evaluate.EvalSettings(batch_size=16, workers=0)
    counter = iter(range(1000))

    def fresh() -> Store:
        path = tmp / f"run-{next(counter)}.duckdb"
        shutil.copy(catalog_db, path)
        shutil.rmtree(tmp / "cache", ignore_errors=True)  # a cold decoded cache for every run
        return Store(path)

    def timed(address: str | None) -> float:
        store = fresh()
        started = time.perf_counter()
        report = sweep.run(store, sweep.plan(store, list(CHECKPOINTS), dataset, settings), dataset, settings,
                           show_progress=False, ray_address=address)
        seconds = time.perf_counter() - started
        assert all(r["status"] == "done" for r in report.results), report.results
        return seconds

    from engine.jobs import runner, submit
    from engine.jobs.on_ray import RayDispatcher

    def queued(address: str | None) -> float:
        store = fresh()
        for checkpoint in CHECKPOINTS:
            submit.enqueue(store, {"kind": "eval", "checkpoint": checkpoint, "data": dataset.opened_with["path"],
                                   "batch_size": 16, "workers": 0})
        started = time.perf_counter()
        if address is None:
            runner.Worker(store, device="cpu").run(once=True)
        else:
            RayDispatcher(store, address, say=lambda line: None).run(once=True)
        seconds = time.perf_counter() - started
        states = store.jobs_frame()["state"].tolist()
        assert states == ["done"] * len(CHECKPOINTS), states
        return seconds

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(args.nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    os.environ.pop("RAY_ADDRESS", None)
    try:
        timed(cluster.address)  # the job's first task ships the engine package: not counted
        cold_queue = queued(cluster.address)  # the first queue run starts the nodes' worker processes: apart
        local, on_cluster, local_jobs, cluster_jobs = [], [], [], []
        for _ in range(args.rounds):
            local.append(timed(None))
            on_cluster.append(timed(cluster.address))
            local_jobs.append(queued(None))
            cluster_jobs.append(queued(cluster.address))
    finally:
        ray.shutdown()
        cluster.shutdown()
    local_s, cluster_s = statistics.median(local), statistics.median(on_cluster)
    tasks = len(CHECKPOINTS)
    print(f"{tasks} tiny checkpoints, {len(dataset)} images, {args.nodes} one-CPU nodes, medians of {args.rounds}")
    print(f"  local sweep:   {local_s:6.2f} s")
    print(f"  cluster sweep: {cluster_s:6.2f} s  ({cluster_s / local_s:.2f}x the local run)")
    print(f"  overhead per task beyond dividing the work: {(cluster_s - local_s / args.nodes) / tasks:.2f} s")
    local_q, cluster_q = statistics.median(local_jobs), statistics.median(cluster_jobs)
    print(f"  local worker, {tasks} queued jobs:   {local_q:6.2f} s")
    print(f"  worker --ray, {tasks} queued jobs:   {cluster_q:6.2f} s  ({cluster_q / local_q:.2f}x the local worker; "
          f"its first, cold run {cold_queue:.2f} s)")
    print(f"  overhead per job beyond dividing the work: {(cluster_q - local_q / args.nodes) / tasks:.2f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
