"""``part submit | shards | info``: argparse registration, thin over the Python API (``part.submit``,
``part.write_shards``, ``part.info``).

``part.cli`` calls :func:`register` on its subparsers; each handler returns the line that the CLI prints
(errors are ``ValueError`` s, printed as one line with exit code 2).
"""

from __future__ import annotations

from ..cliargs import add_config_args


def register(subparsers) -> None:
    """Add the ``submit``, ``shards`` and ``info`` subcommands."""
    p = subparsers.add_parser("submit", help="pretrain as a SLURM job: torchrun on each node, requeued with "
                                             "--resume auto (needs submitit: pip install 'part[slurm]')")
    add_config_args(p)
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node = torchrun processes per node (default 8)")
    p.add_argument("--time", default="1440", help="time limit: minutes or [days-]h:mm:ss (default 1440)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--qos", help="SLURM quality of service")
    p.add_argument("--cpus-per-task", type=int, help="CPUs of the one task per node (loader workers of all its GPUs)")
    p.add_argument("--mem-gb", type=float, help="memory per node in GB")
    p.add_argument("--signal-delay", type=int, default=120, metavar="SECONDS",
                   help="SLURM signals the job this long before the kill; training stops with a checkpoint and "
                        "the job is requeued (default 120)")
    p.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="shell line run before the job, e.g. 'source .venv/bin/activate' (repeatable)")
    p.add_argument("--slurm-dir", help="folder for the config snapshot, script and logs (default <out>.slurm)")
    p.add_argument("--max-timeouts", type=int, default=10, help="requeues after the time limit (default 10)")
    p.add_argument("--dry-run", action="store_true", help="write the config snapshot and the sbatch script; submit nothing")
    p.set_defaults(func=_submit)

    p = subparsers.add_parser("shards", help="write WebDataset tar shards (data.kind: wds) from an image folder or "
                                             "an npz file (needs webdataset: pip install 'part[wds]')")
    p.add_argument("--from", dest="source", required=True, help="<folder>/<class>/<image> tree, or an .npz file")
    p.add_argument("--out", required=True, help="folder for <split>-000000.tar ... and _info.json")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--split", default="train", help="split name of these shards (default train)")
    p.add_argument("--signals", action="store_true", help="the npz holds (N, C, T) signals, written as .npy members")
    p.add_argument("--seed", type=int, default=0, help="write the samples in a permutation from this seed (default 0)")
    p.add_argument("--in-order", action="store_true", help="keep the source's order instead (class-sorted for folders)")
    p.set_defaults(func=_shards)

    p = subparsers.add_parser("info", help="a run's config, steps, last metrics, checkpoints and export in one screen")
    p.add_argument("run", help="run folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_info)


def _info(args) -> str:
    import json

    from .info import format_info, info

    ri = info(args.run)
    print(json.dumps(ri.to_dict(), indent=2) if args.json else format_info(ri))
    return f"read {ri.run}"


def _submit(args) -> str:
    from .slurm import submit

    if not args.config:
        raise ValueError("part submit needs --config")
    res = submit(args.config, out=args.out, overrides=args.overrides, nodes=args.nodes,
                 gpus_per_node=args.gpus_per_node, time_min=args.time, partition=args.partition,
                 account=args.account, qos=args.qos, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                 signal_delay_s=args.signal_delay, setup=args.setup, folder=args.slurm_dir,
                 max_timeouts=args.max_timeouts, dry_run=args.dry_run)
    print("node 0 runs: " + " ".join(res.command))
    if res.job_id is None:
        return f"wrote {res.script} (dry run, nothing submitted); the run would go to {res.run_dir}"
    return f"submitted SLURM job {res.job_id} ({res.script}); the run goes to {res.run_dir}"


def _shards(args) -> str:
    from ..data.wds import write_shards

    res = write_shards(args.source, args.out, shard_size=args.shard_size, split=args.split, signals=args.signals,
                       seed=None if args.in_order else args.seed)
    return (f"wrote {res.num_samples} samples in {len(res.shards)} shards to {res.out} ({res.split}-*.tar, "
            f"_info.json); train on them with data.kind: wds, data.root: {res.out}")


__all__ = ["register"]
