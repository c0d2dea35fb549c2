"""The job queue end to end: real workers, real tiny checkpoints from a temporary Hub cache
(offline), real DuckDB; processes are started and killed as a lab machine would see them."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from engine.errors import MatchupError
from engine.jobs import job_specs, runner, submit
from engine.store import QueryError, Store
from tests.conftest import ROOT, make_image_folder, run_cli


@pytest.fixture
def queue_env(monkeypatch, offline_hub):
    monkeypatch.setenv("MATCHUP_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("MATCHUP_JOB_TIMEOUT", "2")
    monkeypatch.delenv("MATCHUP_READONLY", raising=False)
    return offline_hub


@pytest.fixture(scope="session")
def slow_folder(tmp_path_factory):
    """Enough images that a batch-1 evaluation runs for seconds (progress can be watched)."""
    root = tmp_path_factory.mktemp("slow-val")
    make_image_folder(root, per_class=60, size=(320, 240))
    return root


def eval_spec(checkpoint, data, **extra):
    return {"kind": "eval", "checkpoint": checkpoint, "data": str(data), "batch_size": 4,
            "workers": 0, **extra}


def test_enqueue_queues_attaches_then_answers_from_the_store(store, queue_env, image_folder):
    first = submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder))
    again = submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder))
    assert first["outcome"] == "queued" and again["outcome"] == "attached"
    assert again["job"] == first["job"]
    other = submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder, limit=4))
    assert other["outcome"] == "queued" and other["job"] != first["job"]  # a different request
    assert runner.Worker(store, device="cpu").run(once=True) == 2
    done = store.job(first["job"])
    assert done["state"] == "done" and done["progress"] == 1.0 and done["result_key"]
    row = store.eval_result(done["result_key"])
    assert row["checkpoint"] == "test_vit.r160_in1k" and row["n_images"] == 12
    cached = submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder))
    assert cached["outcome"] == "cached" and cached["job"] is None
    assert cached["result"]["cache_key"] == done["result_key"]
    assert len(store.jobs_frame()) == 2  # answering from the store queued nothing


def test_worker_runs_three_jobs_with_progress_seen_through_the_db(store, queue_env, slow_folder):
    ids = [submit.enqueue(store, eval_spec(c, slow_folder, batch_size=1))["job"]
           for c in ("test_vit.r160_in1k", "test_convnext.r160_in1k")]
    ids.append(submit.enqueue(store, {"kind": "bench", "checkpoint": "test_resnet.r160_in1k",
                                    "batch_size": 2})["job"])
    worker = threading.Thread(target=runner.Worker(store, device="cpu").run, kwargs={"once": True})
    worker.start()
    watcher = Store(store.path, lock_timeout_s=30)
    seen = []
    while worker.is_alive():
        frame = watcher.jobs_frame()
        seen += [(r.id, r.state, r.progress, r.detail) for r in frame.itertuples() if r.state == "running"]
        time.sleep(0.05)
    worker.join()
    states = {r.id: r.state for r in store.jobs_frame().itertuples()}
    assert [states[i] for i in ids] == ["done", "done", "done"]
    partial = [(i, p, d) for i, state, p, d in seen if i in ids[:2] and p and 0 < p < 1]
    assert partial, "no eval progress between 0 and 1 was ever visible in the jobs table"
    import json
    detail = json.loads(partial[-1][2])
    assert detail["total"] == 240 and 0 < detail["done"] < 240 and detail["images_per_sec"] > 0
    assert store.count("evals") == 2 and store.count("benchmarks") == 1


def test_a_killed_worker_job_is_requeued_and_finished_by_another(store, queue_env, slow_folder):
    job = submit.enqueue(store, eval_spec("test_convnext.r160_in1k", slow_folder, batch_size=1))["job"]
    # beats every 0.3 s: each is a write that holds the file for a moment, and this test's own
    # polling must get in between them
    env = {**os.environ, "MATCHUP_DB": str(store.path), "MATCHUP_HEARTBEAT_S": "0.3"}
    victim = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--device", "cpu"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = Store(store.path, lock_timeout_s=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = watcher.job(job)
        if row["state"] == "running" and 0 < (row["progress"] or 0) < 0.8:
            break
        assert row["state"] in ("queued", "running"), row
        time.sleep(0.02)
    else:
        victim.kill()
        pytest.fail("the worker never reported progress")
    victim.send_signal(signal.SIGKILL)  # kill -9: no clean-up runs
    victim.wait()
    assert watcher.job(job)["state"] == "running"
    assert store.count("evals") == 0  # nothing partial was stored
    time.sleep(2.2)  # past MATCHUP_JOB_TIMEOUT: the job is stale
    assert runner.Worker(store, device="cpu").run(once=True) == 1
    finished = store.job(job)
    assert finished["state"] == "done" and finished["attempts"] == 2
    assert store.count("evals") == 1 and store.eval_result(finished["result_key"])["n_images"] == 240


def test_a_job_whose_worker_keeps_dying_fails_with_a_message(store, queue_env, image_folder):
    job = submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder))["job"]
    for attempt in range(submit.MAX_ATTEMPTS):
        store.register_worker(f"ghost{attempt}", "host", 1, "cpu", False)
        assert store.claim_job(f"ghost{attempt}", "cpu")["id"] == job
        time.sleep(2.1)
        store.requeue_stale(submit.job_timeout_s(), submit.MAX_ATTEMPTS)
    failed = store.job(job)
    assert failed["state"] == "failed" and "stopped (crash or kill) 3 times" in failed["error"]


def test_two_users_enqueueing_the_same_job_at_once_make_one_job(store, queue_env, image_folder):
    spec = eval_spec("test_resnet.r160_in1k", image_folder)
    job_specs.normalize(spec)  # warm timm's registry so the threads start together
    barrier, answers = threading.Barrier(6), []

    def ask():
        barrier.wait()
        answers.append(submit.enqueue(Store(store.path, lock_timeout_s=30), spec))
    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["job"] for a in answers}) == 1
    assert sorted(a["outcome"] for a in answers) == ["attached"] * 5 + ["queued"]
    # and two processes (two shells) at once
    command = [sys.executable, "-m", "engine", "jobs", "add", "eval", "test_vit.r160_in1k", "--data",
               str(image_folder), "--db", str(store.path), "--json"]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    frame = store.jobs_frame()
    assert len(frame[frame["label"].str.contains("test_vit")]) == 1
    assert len(frame) == 2


def test_cancel_a_queued_job_and_stop_a_running_one(store, queue_env, slow_folder):
    queued = submit.enqueue(store, eval_spec("test_vit.r160_in1k", slow_folder, limit=8))["job"]
    assert store.cancel_job(queued) == "cancelled"
    assert store.job(queued)["state"] == "cancelled"
    running = submit.enqueue(store, eval_spec("test_convnext.r160_in1k", slow_folder, batch_size=1))["job"]
    worker = threading.Thread(target=runner.Worker(store, device="cpu").run, kwargs={"once": True})
    worker.start()
    while store.job(running)["state"] != "running" or not store.job(running)["progress"]:
        time.sleep(0.02)
    assert store.cancel_job(running) == "running"
    worker.join(timeout=60)
    assert store.job(running)["state"] == "cancelled"
    assert store.count("evals") == 0
    assert store.cancel_job("nosuchjob") is None


def test_a_failing_job_keeps_its_error_for_the_ui(store, queue_env, image_folder):
    job = submit.enqueue(store, eval_spec("resnet18.a1_in1k", image_folder))["job"]  # not in the cache
    runner.Worker(store, device="cpu").run(once=True)
    failed = store.job(job)
    assert failed["state"] == "failed"
    assert "resnet18.a1_in1k" in failed["error"] and "offline" in failed["error"].lower()
    assert store.count("evals") == 0


@pytest.mark.parametrize("bad, message", [
    ({"checkpoint": "no_such_net.x_in1k"}, "not a pretrained checkpoint"),
    ({"checkpoint": "../../etc/passwd"}, "not a timm checkpoint id"),
    ({"checkpoint": "resnet50;rm -rf"}, "not a timm checkpoint id"),
    ({"kind": "train"}, "Unknown job kind"),
    ({"device": "tpu"}, "Unknown device"),
    ({"precision": "fp16", "device": "cpu"}, "fp16 is not supported on the CPU"),
    ({"batch_size": 0}, "--batch-size must be a whole number"),
])
def test_bad_requests_are_refused_before_anything_is_queued(store, queue_env, image_folder, bad, message):
    with pytest.raises(MatchupError, match=message):
        submit.enqueue(store, {**eval_spec("test_vit.r160_in1k", image_folder), **bad})
    assert store.count("jobs") == 0


def test_evaluation_sets_outside_the_roots_are_refused(store, queue_env, image_folder, tmp_path):
    roots = [tmp_path / "sets"]
    (tmp_path / "sets").mkdir()
    inside = tmp_path / "sets" / "val"
    inside.symlink_to(image_folder)  # a set a root links to is still outside: its real path counts
    for path in (image_folder, tmp_path / "sets" / ".." / "elsewhere", inside, "/etc"):
        with pytest.raises(job_specs.JobError, match="outside the evaluation-set folders"):
            submit.enqueue(store, eval_spec("test_vit.r160_in1k", path), roots=roots)
    assert store.count("jobs") == 0
    copy = tmp_path / "sets" / "copy"
    make_image_folder(copy, per_class=1)
    assert submit.enqueue(store, eval_spec("test_vit.r160_in1k", copy), roots=roots)["outcome"] == "queued"


def test_read_only_mode_refuses_enqueue(store, queue_env, image_folder, monkeypatch):
    monkeypatch.setenv("MATCHUP_READONLY", "1")
    with pytest.raises(job_specs.JobError, match="read-only"):
        submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder))
    result = run_cli("jobs", "add", "eval", "test_vit.r160_in1k", "--data", str(image_folder), db=store.path)
    assert result.returncode == 2 and "read-only" in result.stderr
    assert store.count("jobs") == 0


def test_jobs_cli_add_list_cancel(store, queue_env, image_folder):
    added = run_cli("jobs", "add", "eval", "test_vit.r160_in1k", "test_resnet.r160_in1k", "--data",
                    str(image_folder), "--json", db=store.path)
    assert added.returncode == 0, added.stderr
    import json
    rows = json.loads(added.stdout)
    assert [r["outcome"] for r in rows] == ["queued", "queued"]
    listed = json.loads(run_cli("jobs", "list", "--json", db=store.path).stdout)
    assert {r["id"] for r in listed} == {r["job"] for r in rows}
    cancelled = run_cli("jobs", "cancel", rows[0]["job"], db=store.path)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    missing = run_cli("jobs", "cancel", "nope", db=store.path)
    assert missing.returncode == 2 and "no job 'nope'" in missing.stderr
    worker = run_cli("worker", "--once", "--device", "cpu", db=store.path, timeout=300)
    assert worker.returncode == 0 and "ran 1 job" in worker.stderr
    states = {r["id"]: r["state"] for r in json.loads(run_cli("jobs", "list", "--json", db=store.path).stdout)}
    assert states == {rows[0]["job"]: "cancelled", rows[1]["job"]: "done"}


def test_read_only_query_runs_one_select_with_limits(catalog_store):
    frame = catalog_store.read_only_query("SELECT checkpoint FROM checkpoints ORDER BY checkpoint", limit=7)
    assert len(frame) == 7
    for sql, message in [("DELETE FROM checkpoints", "Only SELECT"),
                         ("SELECT 1; DROP TABLE jobs", "Only SELECT"),
                         ("SELECT 1; SELECT 2", "exactly one SELECT"),
                         ("SELECT * FROM read_csv('/etc/hostname')", "disabled by configuration"),
                         ("SELEC 1", "does not parse")]:
        with pytest.raises(QueryError, match=message):
            catalog_store.read_only_query(sql)
    with pytest.raises(QueryError, match="ran past 1 s"):
        catalog_store.read_only_query("SELECT count(*) FROM range(100000000000) a, range(100) b", timeout_s=1)
    assert catalog_store.count("checkpoints") > 1000


@pytest.mark.parametrize("sql", ["SELECT checkpoint FROM checkpoints;", "SELECT checkpoint FROM checkpoints -- mine",
                                 "SELECT checkpoint FROM checkpoints; -- mine\n", "-- first\nSELECT checkpoint FROM checkpoints"])
def test_sql_as_people_type_it_runs(catalog_store, sql):
    frame = catalog_store.read_only_query(sql, limit=5)
    assert list(frame.columns) == ["checkpoint"] and len(frame) == 5
    assert frame.attrs["cut"].startswith("rows")


def test_a_wide_select_is_cut_by_bytes_and_memory_stays_bounded(catalog_store):
    """~10 GB of strings asked for: the child streams and stops at the byte cap, this process
    receives at most that; a result that cannot even be built under the memory cap is refused."""
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    frame = catalog_store.read_only_query("SELECT repeat('x', 100000) AS s FROM range(100000)",
                                          max_bytes=8 * 2**20)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert 0 < len(frame) < 100 and frame.attrs["cut"].startswith("bytes")
    assert frame["s"].str.len().sum() <= 8 * 2**20
    assert grown < 200 * 2**20  # a generous margin over the 8 MiB let through
    with pytest.raises(QueryError, match="needs more memory than this box allows"):
        catalog_store.read_only_query("SELECT repeat('x', 1000000) AS s FROM range(10000)",
                                      max_memory=1 * 2**30)
    full = catalog_store.read_only_query("SELECT checkpoint FROM checkpoints", limit=100_000)
    assert full.attrs["cut"] is None and len(full) == catalog_store.count("checkpoints")


# -- jobs no worker here can run -----------------------------------------------------------------------
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_device_no_worker_here_can_serve_is_refused_at_the_door(store, queue_env, image_folder):
    with pytest.raises(job_specs.JobError, match="No worker can run cuda:5 here: this machine has cpu"):
        submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder, device="cuda:5"))
    with pytest.raises(job_specs.JobError, match="fp16 runs on GPUs only"):
        submit.enqueue(store, eval_spec("test_vit.r160_in1k", image_folder, device="auto", precision="fp16"))
    assert store.count("jobs") == 0
    done = run_cli("jobs", "add", "eval", "test_vit.r160_in1k", "--data", str(image_folder), "--device", "cuda:5",
                   db=store.path)
    assert done.returncode == 2 and "No worker can run cuda:5" in done.stderr and "Traceback" not in done.stderr


def _queue_directly(store, device, precision, image_folder):
    """A job queued while a worker that could run it was alive (it since stopped)."""
    spec = job_specs.normalize(eval_spec("test_vit.r160_in1k", image_folder, device=device, precision=precision))
    key, _ = job_specs.request_key(spec)
    return store.enqueue_job(f"job-{device}-{precision}".replace(":", ""), "eval", spec, key, job_specs.label(spec), device)[0]


def test_a_cpu_worker_never_claims_what_it_cannot_run_and_the_page_says_what_it_waits_for(
        store, queue_env, image_folder):
    _queue_directly(store, "auto", "fp16", image_folder)
    _queue_directly(store, "cuda:5", "fp32", image_folder)
    store.register_worker("w", "host", 1, "cpu", False)
    assert store.claim_job("w", "cpu") is None
    assert store.queued_count() == 2 and store.queued_count(runnable_on="cpu") == 0
    frame = store.jobs_frame()
    reasons = {row.device: submit.waiting_for(row.device, row.precision, ["cpu"]) for row in frame.itertuples()}
    assert reasons == {"auto": "waiting for a worker with a GPU (fp16 runs on GPUs only)",
                       "cuda:5": "waiting for a worker with cuda:5"}
    assert submit.waiting_for("auto", "fp16", ["cpu", "cuda:0"]) is None


def test_a_ray_dispatchers_slots_claim_only_what_one_node_can_run(store, queue_env, image_folder):
    """`ray:cuda:2` (at most two GPUs on one node) takes cuda, cuda:1 and cuda:2 (two GPUs' worth),
    never cuda:3 nor a CPU job; `ray:cpu` takes cpu and auto, never fp16."""
    jobs = {(d, p): _queue_directly(store, d, p, image_folder)
            for d, p in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda:2", "fp32"), ("cuda:3", "fp32"), ("auto", "fp16"))}
    store.register_worker("gpu-slot", "host", 1, "ray:cuda:2", False)
    store.register_worker("cpu-slot", "host", 1, "ray:cpu", False)
    claimed = []
    while (job := store.claim_job("gpu-slot", "ray:cuda:2")) is not None:
        claimed.append(job["id"])
    assert sorted(claimed) == sorted([jobs["cuda", "fp32"], jobs["cuda:2", "fp32"], jobs["auto", "fp16"]])
    assert store.claim_job("cpu-slot", "ray:cpu")["id"] == jobs["cpu", "fp32"]
    assert store.claim_job("cpu-slot", "ray:cpu") is None and store.queued_count() == 1  # cuda:3 waits
    assert submit.waiting_for("cuda:3", "fp32", ["ray:cuda:2", "ray:cpu"]) == "waiting for a worker with cuda:3"
    assert submit.can_run("ray:cuda:2", "cuda:1", "fp16") and not submit.can_run("ray:cpu", "cpu", "fp16")


def test_the_embedded_worker_does_not_spin_on_jobs_it_cannot_take(store, queue_env, image_folder):
    _queue_directly(store, "cuda:5", "fp32", image_folder)
    _queue_directly(store, "auto", "fp16", image_folder)
    worker = runner.EmbeddedWorker(store.path, poll_s=0.05).start()
    time.sleep(10)  # a spinning worker would have started (and finished) a process or two by now
    worker.stop()
    assert worker.runs == 0 and store.queued_count() == 2


def test_the_embedded_worker_starts_a_bounded_number_of_processes(store, queue_env, monkeypatch):
    """Even when the queue looks runnable and every start finds nothing (a stale view), at most
    MAX_STARTS worker processes start per window."""
    monkeypatch.setattr(runner.EmbeddedWorker, "MAX_STARTS", 2)
    monkeypatch.setattr(runner.EmbeddedWorker, "WINDOW_S", 60.0)
    monkeypatch.setattr(Store, "queued_count", lambda self, runnable_on=None: 1)
    worker = runner.EmbeddedWorker(store.path, poll_s=0.05).start()
    deadline = time.monotonic() + 40
    while worker.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # time for a third start, if it were allowed
    worker.stop()
    assert worker.runs == 2
