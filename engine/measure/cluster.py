"""A Ray cluster as the engine uses it: joining one (an unreachable address or another Ray version
is one line, not a hang or a wall), what its nodes offer, and a check on every node that will run
work that it sees the data and the weights, so a node that cannot is named and left out before
anything is sent there.

Nodes never open the database; what they need is Matchup's Python environment (the engine package
travels with each job), the evaluation set at the same path, and the weights in their own Hub cache.
"""
from __future__ import annotations

import os
import re
import socket
import sys
import threading

from engine.errors import MatchupError
from engine.paths import ENGINE_DIR

CONNECT_TIMEOUT_S = 5.0
CHECK_TIMEOUT_S = 120.0
# Forwarded to every node: how to reach the Hub. Paths (Hub cache, decoded cache, cache key) are
# forwarded only to a Ray this process starts on its own machine; a node's own environment at
# `ray start` says where its caches are.
SETTINGS_ENV = ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT")
PATH_ENV = ("HF_HOME", "HF_HUB_CACHE", "MATCHUP_CACHE", "MATCHUP_CACHE_KEY")


class ClusterError(MatchupError):
    """The Ray cluster cannot run this; the message names the address or node and what to do."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("Running on a Ray cluster needs Ray here and on every node: `pip install ray` "
                           "(the same version everywhere), then try again.") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:ray://)?\[?([A-Za-z0-9_.:-]+?)\]?:(\d{1,5})", address.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ClusterError(f"{address!r} is not a Ray address: give the head's host:port, as `ray start --head` "
                           "prints it (e.g. 10.0.0.5:6379), or `local` for a Ray of this process's own.")
    return match.group(1), int(match.group(2))


def connect(address: str) -> None:
    """Join the cluster at `address` ("local": start a Ray of this process's own, never one already
    running on the machine nor $RAY_ADDRESS). Raises ClusterError in one line when nothing answers
    there or when its Ray or Python differs from this machine's."""
    ray = _import_ray()
    if ray.is_initialized():
        return
    local = address == "local"
    if not local:
        host, port = _host_port(address)
        try:  # Ray itself retries an unreachable address for minutes; a plain connect answers in seconds
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise ClusterError(f"Nothing answers at the Ray address {address} ({e.strerror or type(e).__name__}). "
                               "Start the head there with `ray start --head --port "
                               f"{port}`, or give the address `ray start --head` printed; check that this "
                               "machine can reach that port. Nothing was run and the queue is as it was.") from None
    names = SETTINGS_ENV + (PATH_ENV if local else ())
    env = {name: os.environ[name] for name in names if name in os.environ}
    runtime_env = {"env_vars": env, "py_modules": [str(ENGINE_DIR)]}
    try:
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False if local else None,
                 log_to_driver=False)
    except RuntimeError as e:
        if "Version mismatch" not in str(e):
            raise
        ray.shutdown()
        found = re.findall(r"Ray: (\S+)\s+Python: (\S+)", str(e))
        theirs, ours = (found + [("?", "?"), ("?", "?")])[:2]
        raise ClusterError(f"The Ray cluster at {address} runs Ray {theirs[0]} on Python {theirs[1]}; this machine "
                           f"has Ray {ours[0]} on Python {ours[1]}. Install the cluster's versions here (`pip install "
                           f"ray=={theirs[0]}` on Python {theirs[1]}), or start the cluster with this machine's. "
                           "Nothing was run and the queue is as it was.") from None


def nodes() -> list[dict]:
    """The cluster's live nodes: id, address, CPUs and GPUs."""
    ray = _import_ray()
    return [{"id": n["NodeID"], "ip": n.get("NodeManagerAddress", "?"),
             "cpus": float(n.get("Resources", {}).get("CPU", 0)), "gpus": float(n.get("Resources", {}).get("GPU", 0))}
            for n in ray.nodes() if n.get("Alive")]


def gpus_needed(device: str) -> int:
    """A job's device as GPUs on one node: cpu none, cuda one, cuda:N N (at least one)."""
    if not device.startswith("cuda"):
        return 0
    return max(1, int(device.split(":")[1])) if ":" in device else 1


def task_resources(device: str) -> dict:
    return {"num_cpus": 1, "num_gpus": gpus_needed(device)}


def able(device: str, all_nodes: list[dict] | None = None) -> list[dict]:
    """The nodes that can run a task on `device` at all."""
    gpus = gpus_needed(device)
    return [n for n in (nodes() if all_nodes is None else all_nodes) if n["cpus"] >= 1 and n["gpus"] >= gpus]


def check_device(device: str, address: str) -> list[dict]:
    """The nodes offering `device`; a ClusterError in one line when none does."""
    all_nodes = nodes()
    found = able(device, all_nodes)
    if not found:
        offered = ", ".join(f"{n['ip']} ({n['cpus']:g} CPU, {n['gpus']:g} GPU)" for n in all_nodes) or "no live node"
        want = f"{gpus_needed(device)} GPU(s) on one node" if gpus_needed(device) else "a CPU"
        raise ClusterError(f"No node of the Ray cluster at {address} offers {want} for {device} (its nodes: {offered}). "
                           "Start a node that has it (`ray start --address "
                           f"{address} --num-gpus N`), or ask for a device the cluster has. The queue is as it was.")
    return found


def versions() -> dict:
    """What must match between the head and a node for their numbers to be the same measurement
    (read from the installed packages: no torch import for a check)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"
    return {"Python": ".".join(map(str, sys.version_info[:3])), "Ray": installed("ray"), "torch": installed("torch"),
            "timm": installed("timm")}


def weight_files(checkpoints: list[str]) -> list[tuple[str, str, list[str]]]:
    """(checkpoint, Hub repo, file names it may be in) of each checkpoint, resolved here so that a
    node's check needs no model code (a checkpoint not resolved here fails in its own task)."""
    from engine.catalog import hub
    from engine.measure import zeroshot
    found = []
    for checkpoint in checkpoints:
        try:
            if checkpoint.startswith("open_clip:"):
                spec = zeroshot.spec_of(checkpoint)
                found.append((checkpoint, spec.repo_id, list(spec.candidates)))
            else:
                cfg = hub.pretrained_cfg(checkpoint)
                if cfg.hf_hub_id:
                    found.append((checkpoint, cfg.hf_hub_id, list(hub._candidates(cfg))))
        except MatchupError:
            continue
    return found


def node_check(folders: list[str], weights: list[tuple[str, str, list[str]]], head: dict) -> dict:
    """Runs on one node: what it lacks of the folders, the weights (`weight_files`) and the head's
    versions; light (no torch), so a check costs a fraction of a second."""
    import ray
    missing = []
    for folder in folders:
        if not os.path.isdir(folder):
            missing.append(f"no folder {folder}")
        elif not os.access(folder, os.R_OK | os.X_OK):
            missing.append(f"cannot read {folder}")
    here = versions()
    for name, version in head.items():
        if here.get(name) != version:
            missing.append(f"{name} {here.get(name)} where the head has {version}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    weightless = []
    if offline:  # online, a node fetches what its Hub cache lacks
        from huggingface_hub import try_to_load_from_cache

        from engine.catalog import hub
        for checkpoint, repo, filenames in weights:
            if not any(isinstance(try_to_load_from_cache(repo, name, cache_dir=hub.cache_dir()), str)
                       for name in filenames):
                weightless.append(checkpoint)
    return {"node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
            "missing": missing, "weightless": weightless}


_one_check_at_a_time = threading.Lock()  # one check process per node, reused, not one per job at once


def preflight(candidates: list[dict], folders: list[str], checkpoints: list[str]) -> tuple[list[str], list[str]]:
    """One small task on each candidate node (no CPU reserved, so a busy node answers too):
    (the ids of the nodes that have everything, one line for each node left out)."""
    with _one_check_at_a_time:
        return _preflight(candidates, folders, checkpoints)


def _preflight(candidates: list[dict], folders: list[str], checkpoints: list[str]) -> tuple[list[str], list[str]]:
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    check = ray.remote(num_cpus=0, max_retries=0)(node_check)
    head = versions()
    weights = weight_files(checkpoints)
    refs = {check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["id"], soft=False)).remote(
        folders, weights, head): n for n in candidates}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
    answers = {}
    for ref in ready:
        try:
            answers[refs[ref]["id"]] = ray.get(ref)
        except ray.exceptions.TaskUnschedulableError:
            answers[refs[ref]["id"]] = {"missing": ["it is no longer in the cluster"], "weightless": []}
        except Exception as e:  # noqa: BLE001 - a node that died or cannot run Matchup is left out
            first = (str(e).strip().splitlines() or [""])[0][:160]
            answers[refs[ref]["id"]] = {"missing": [f"its check failed ({type(e).__name__}: {first})"], "weightless": []}
    # weights no node has are that checkpoint's failure (said where it runs), not a node's
    lacking = set(checkpoints)
    for answer in answers.values():
        lacking &= set(answer["weightless"])
    good, lines = [], []
    for ref in ready:
        node = refs[ref]
        answer = answers[node["id"]]
        missing = answer["missing"] + [f"no weights of {c} in its Hub cache (offline)"
                                       for c in answer["weightless"] if c not in lacking]
        if missing:
            lines.append(f"node {node['ip']} ({node['id'][:8]}) is left out: {'; '.join(missing)}.")
        else:
            good.append(node["id"])
    for ref in late:
        ray.cancel(ref, force=True)
        node = refs[ref]
        lines.append(f"node {node['ip']} ({node['id'][:8]}) is left out: it did not answer its check within "
                     f"{CHECK_TIMEOUT_S:g} s.")
    return good, sorted(lines)


def on_nodes(good: list[str], candidates: list[dict]) -> dict:
    """Task options keeping work on the nodes that passed the check; none when all did, so Ray
    may place a retry anywhere."""
    if set(good) >= {n["id"] for n in candidates}:
        return {}
    from ray.util.scheduling_strategies import In, NodeLabelSchedulingStrategy
    return {"scheduling_strategy": NodeLabelSchedulingStrategy(hard={"ray.io/node-id": In(*good)})}


def missing_hint() -> str:
    return ("Give each node the evaluation set at the same path and the weights in its Hub cache "
            "(or network), with the head's Python, Ray, torch and timm.")
