"""`jobs` and `worker`: the queue the app's Run page writes to, and the process that runs it.
"""
from __future__ import annotations

import argparse
import os
import sys

from engine import options
from engine.cli.common import batch_size_arg, frame_records, print_json
from engine.store import Store


def cmd_jobs(args, store: Store) -> int:
    from engine.jobs import job_specs, submit
    if args.action == "add":
        base = {"kind": args.kind, "device": args.device, "precision": args.precision,
                "channels_last": args.channels_last}
        if args.kind == "eval":
            if not args.data:
                raise job_specs.JobError("`jobs add eval` needs --data DIR (the evaluation set).")
            base.update(data=args.data, labels=args.labels, variant=args.variant, limit=args.limit,
                        workers=args.workers,
                        batch_size=128 if args.batch_size == "auto" else args.batch_size)
        elif args.kind == "zeroshot":
            if not args.data:
                raise job_specs.JobError("`jobs add zeroshot` needs --data DIR (a folder with one sub-folder per class).")
            base.update(data=args.data, classnames=args.classnames, templates=args.templates, limit=args.limit,
                        workers=args.workers, batch_size=128 if args.batch_size == "auto" else args.batch_size)
        elif args.kind == "probe":
            if not args.data:
                raise job_specs.JobError("`jobs add probe` needs --data DIR (a folder with one sub-folder per class).")
            base.update(data=args.data, val=args.val, folds=args.folds, shots=args.shots, seed=args.seed,
                        workers=args.workers, batch_size=64 if args.batch_size == "auto" else args.batch_size)
        else:
            base.update(batch_size=args.batch_size, img_size=args.img_size, compile=args.compile)
        specs = [job_specs.normalize({**base, "checkpoint": m}) for m in args.models]  # all checked first
        from engine.jobs import access
        answers = [submit.enqueue(store, spec, requested_by=access.cli_user()) for spec in specs]
        rows = [{"checkpoint": a["spec"]["checkpoint"], "outcome": a["outcome"], "job": a["job"]}
                for a in answers]
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                print(f"{row['checkpoint']}: {row['outcome']}" + (f" (job {row['job']})" if row["job"] else
                                                                  " (already measured; see the Checkpoint page)"))
        return 0
    if args.action == "list":
        store.requeue_stale(submit.job_timeout_s(), submit.MAX_ATTEMPTS)
        frame = store.jobs_frame(limit=args.limit, cleared=args.cleared)
        if args.json:
            print_json(frame_records(frame))
            return 0
        if frame.empty:
            print("No jobs. Queue one with `python -m engine jobs add eval MODEL --data DIR`.")
            return 0
        frame["progress"] = (frame["progress"].fillna(0) * 100).round().astype(int).astype(str) + "%"
        print(frame[["id", "state", "progress", "label", "requested_by", "worker", "error"]].to_string(
            index=False, na_rep="-"))
        return 0
    if args.action == "retry":
        from engine.jobs import access
        answer = submit.retry(store, args.job, by=access.cli_user())
        if args.json:
            print_json({"retried": args.job, "outcome": answer["outcome"], "job": answer["job"]})
        else:
            print(f"{args.job}: " + {"queued": f"queued again as job {answer['job']}",
                                     "attached": f"the same job is already queued or running: {answer['job']}",
                                     "cached": "already measured since; see the Checkpoint page"}[answer["outcome"]])
        return 0
    if args.action == "clear":
        submit.clear(store, args.job, admin=True)  # the shell is trusted
        print(f"{args.job}: cleared from the list (still in the store: `jobs list --cleared`)")
        return 0
    state = submit.cancel(store, args.job, admin=True)  # the shell is trusted
    if state is None:
        raise job_specs.JobError(f"There is no job {args.job!r}; `python -m engine jobs list` shows their ids.")
    print({"cancelled": f"{args.job}: cancelled", "running": f"{args.job}: asked to stop; its worker stops "
           "at its next heartbeat and stores nothing"}.get(state, f"{args.job} is already {state}; nothing to cancel"))
    return 0


def cmd_worker(args, store: Store) -> int:
    from engine.jobs import runner
    if args.ray is not None:
        from engine.jobs import on_ray
        address = args.ray or os.environ.get("MATCHUP_RAY_ADDRESS", "").strip() or "local"
        dispatcher = on_ray.RayDispatcher(store, address, device=args.device, slots=args.slots, embedded=args.embedded)
        print(f"worker {dispatcher.id} on the Ray cluster at {address}: {dispatcher.describe()}"
              + (" (until the queue is empty)" if args.once else ""), file=sys.stderr)
        ran = dispatcher.run(once=args.once, poll_s=args.poll)
        print(f"worker {dispatcher.id}: ran {ran} job(s)", file=sys.stderr)
        return 0
    if args.slots is not None:
        raise options.OptionError("--slots is for --ray: a worker on this machine runs one job at a time.")
    worker = runner.Worker(store, device=args.device, embedded=args.embedded)
    print(f"worker {worker.id} on {worker.device}" + (" (until the queue is empty)" if args.once else ""),
          file=sys.stderr)
    ran = worker.run(once=args.once, poll_s=args.poll)
    print(f"worker {worker.id}: ran {ran} job(s)", file=sys.stderr)
    return 0


def add_parsers(commands, common) -> None:
    """`jobs` and its actions, and `worker`."""
    jb = commands.add_parser("jobs", parents=[common], help="queue evaluations and benchmarks for workers")
    jb_actions = jb.add_subparsers(dest="action", required=True)
    p = jb_actions.add_parser("add", parents=[common], help="queue one job per model (same options as eval/bench)")
    p.add_argument("kind", choices=("eval", "bench", "probe", "zeroshot"))
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--data", help="eval: evaluation set (folder or hfds/NAME:SPLIT); probe, zeroshot: class folder")
    p.add_argument("--classnames", metavar="FILE", help="zeroshot: one `folder<TAB>name` line per class folder (or names in folder order)")
    p.add_argument("--templates", metavar="NAME|FILE", help="zeroshot: a template set or file")
    p.add_argument("--val", help="probe: a validation folder with the same classes")
    p.add_argument("--folds", type=options.arg("folds"), default=5, help="probe: stratified folds")
    p.add_argument("--shots", type=options.arg("shots"), help="probe: K training images per class")
    p.add_argument("--seed", type=options.arg("seed"), default=0, help="probe: the folds' and shots' seed")
    p.add_argument("--labels")
    p.add_argument("--variant", default="imagenet")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or auto (any worker)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--batch-size", type=batch_size_arg, default="auto")
    p.add_argument("--workers", type=options.arg("workers"))
    p.add_argument("--limit", type=options.arg("limit"))
    p.add_argument("--img-size", type=options.arg("img_size"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", action="store_true")
    p = jb_actions.add_parser("list", parents=[common], help="jobs, newest first")
    p.add_argument("--limit", type=options.arg("jobs_limit"), default=50)
    p.add_argument("--cleared", action="store_true", help="also the failed and cancelled jobs cleared from the list")
    p.add_argument("--json", action="store_true")
    p = jb_actions.add_parser("cancel", parents=[common], help="cancel a queued job or stop a running one")
    p.add_argument("job")
    p = jb_actions.add_parser("retry", parents=[common], help="queue a failed job's spec again, as a new job")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p = jb_actions.add_parser("clear", parents=[common],
                              help="hide a failed or cancelled job from the list (the row stays in the store)")
    p.add_argument("job")

    wk = commands.add_parser("worker", parents=[common], help="run queued jobs")
    wk.add_argument("--device", default="auto", help="cpu or cuda:N (default: cuda:0 if present, else cpu)")
    wk.add_argument("--once", action="store_true", help="exit when no job is left for this device")
    wk.add_argument("--poll", type=options.arg("poll"), default=1.0, help="seconds between looks at an empty queue")
    wk.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                    help="run each job as a task on the Ray cluster at ADDRESS (head host:port; default "
                         "$MATCHUP_RAY_ADDRESS, else a Ray of its own); this process stays the store's only writer")
    wk.add_argument("--slots", type=options.arg("slots"),
                    help="with --ray: jobs at once per device kind (default: one per node that has the device)")
    wk.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
