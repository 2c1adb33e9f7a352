"""``part`` command line: thin over the Python API (``part pretrain`` = ``part.pretrain``)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import sys

from .cliargs import add_config_args, add_run_mode_args, check_run_mode


class _PartParser(argparse.ArgumentParser):
    """The top-level parser: an unknown flag after a subcommand is reported with that subcommand's usage
    (argparse alone hands it back to the top level, whose usage does not list the subcommand's flags)."""

    subcommands: dict = {}

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        ns, extras = self.parse_known_args(argv, namespace)
        if extras:
            cmd = getattr(ns, "command", None)
            before = argv[:argv.index(cmd)] if cmd in argv else argv  # flags given before the subcommand
            sub = self if any(e in before for e in extras) else self.subcommands.get(cmd, self)
            sub.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


def _rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 otherwise."""
    return int(os.environ.get("RANK", "0") or 0)


def _rank0_prints(func):
    """Run a command handler on every rank, but let only rank 0 print (its tables and its final line)."""

    @functools.wraps(func)
    def run(args):
        if _rank() == 0:
            return func(args)
        with contextlib.redirect_stdout(io.StringIO()):
            func(args)
        return None

    return run


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _PartParser(prog="part", description="PART: pairwise relative translations pretraining")
    parser.add_argument("--version", action="version", version=f"part {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a backbone (PART or a baseline objective)")
    add_config_args(p)
    add_run_mode_args(p)
    p.add_argument("--init", help="initialise weights of a NEW run from a run folder or .safetensors file")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("submit", help="pretrain as a SLURM job: torchrun on each node, requeued with --resume auto "
                                      "(needs submitit: pip install 'part[slurm]')")
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

    p = sub.add_parser("shards", help="write WebDataset tar shards (data.kind: wds) from an image folder or an npz "
                                      "file (needs webdataset: pip install 'part[wds]')")
    p.add_argument("--from", dest="source", required=True, help="<folder>/<class>/<image> tree, or an .npz file")
    p.add_argument("--out", required=True, help="folder for <split>-000000.tar ... and _info.json")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--split", default="train", help="split name of these shards (default train)")
    p.add_argument("--signals", action="store_true", help="the npz holds (N, C, T) signals, written as .npy members")
    p.add_argument("--seed", type=int, default=0, help="write the samples in a permutation from this seed (default 0)")
    p.add_argument("--in-order", action="store_true", help="keep the source's order instead (class-sorted for folders)")
    p.set_defaults(func=_shards)

    from .evaluation.commands import register as register_evaluation

    register_evaluation(sub)  # finetune, probe, evaluate, export

    from .ablation.commands import register as register_ablate

    register_ablate(sub)  # ablate

    p = sub.add_parser("visualize", help="PART's capabilities as pictures + numbers (paper Fig. 4-6)")
    p.add_argument("kind", choices=["reconstruct", "uncertainty", "symmetry"])
    p.add_argument("--run", required=True, help="a pretraining run folder")
    p.add_argument("--images", required=True, help="image file, folder of images, IDX or .npz file")
    p.add_argument("--out", required=True, help="folder for the PNGs and the JSON of numbers")
    p.add_argument("--num-images", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="random",
                   help="reconstruction reference: random, informative (random among informative patches), center "
                        "or a patch index")
    p.add_argument("--anchor", default="mean", choices=["mean", "reference"], help="least-squares gauge")
    p.add_argument("--margin", type=int, default=0, help="canvas padding in pixels")
    p.add_argument("--sampler", choices=["offgrid", "grid"], help="override the run's sampler")
    p.add_argument("--num-patches", type=int, help="N patches for the sampler")
    p.add_argument("--measure", default="median_dist", choices=["median_dist", "trace_cov"])
    p.add_argument("--targets", type=int, nargs="+", help="patch indices whose prediction clouds to draw")
    p.add_argument("--row-height", type=float, help="bin patches into rows of this height when ordering (symmetry)")
    p.add_argument("--informative-std", type=float,
                   help="patches with pixel std above this (normalised input) count as informative; the others "
                        "(blank background) are reported apart (reconstruct, symmetry; default "
                        "part.visualization.reconstruct.INFORMATIVE_STD)")
    p.add_argument("--device", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=_visualize)

    p = sub.add_parser("info", help="a run's config, steps, last metrics, checkpoints and export in one screen")
    p.add_argument("run", help="run folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_info)

    parser.subcommands = dict(sub.choices)
    for p in parser.subcommands.values():
        p.set_defaults(func=_rank0_prints(p.get_default("func")))
    return parser


def _info(args) -> str:
    import json

    from .engine.info import format_info, info

    ri = info(args.run)
    print(json.dumps(ri.to_dict(), indent=2) if args.json else format_info(ri))
    return f"read {ri.run}"


def _visualize(args) -> str:
    from .visualization import visualize

    ref = int(args.reference) if str(args.reference).lstrip("-").isdigit() else args.reference
    out = visualize(
        args.kind, args.run, args.images, args.out, num_images=args.num_images, seed=args.seed,
        reference=ref, anchor=args.anchor, margin=args.margin, sampler=args.sampler,
        num_patches=args.num_patches, measure=args.measure, targets=args.targets,
        row_height=args.row_height, device=args.device,
        **({} if args.informative_std is None else {"informative_std": args.informative_std}),
    )
    from .evaluation.metrics import format_table

    print(format_table([{"metric": k, "value": v} for k, v in out.summary.items()]))
    return f"wrote {len(out.figures)} figures and {out.json_path.name} to {out.json_path.parent}"


def _pretrain(args) -> str:
    from .api import pretrain

    check_run_mode(args, "pretrain")
    res = pretrain(args.config, out=args.out, overrides=args.overrides, resume=args.resume,
                   overwrite=args.overwrite, init=args.init, progress=not args.no_progress,
                   allow_data_change=args.allow_data_change)
    if res.metrics:
        shown = {k: v for k, v in res.metrics.items() if k in ("loss", "err_x", "err_y", "err_euclid", "err_t")}
        print("final " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    return f"wrote run to {res.run_dir}"


def _submit(args) -> str:
    from .engine.slurm import submit

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
    from .data.wds import write_shards

    res = write_shards(args.source, args.out, shard_size=args.shard_size, split=args.split, signals=args.signals,
                       seed=None if args.in_order else args.seed)
    return (f"wrote {res.num_samples} samples in {len(res.shards)} shards to {res.out} ({res.split}-*.tar, "
            f"_info.json); train on them with data.kind: wds, data.root: {res.out}")


def _one_line(exc: BaseException) -> str:
    """An error as one line: a message that spans lines is joined (no traceback reaches a user)."""
    if isinstance(exc, OSError) and not str(exc).startswith("cannot ") and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes (docs/reliability.md): 0 done; 2 bad input (config, data, file, run
    folder), nothing changed; 3 training diverged; 130/143 stopped by SIGINT/SIGTERM after a checkpoint
    (resumable); 1 internal error (a bug: please report it)."""
    args = build_parser().parse_args(argv)
    from .engine.signals import TrainingStopped
    from .engine.trainer import TrainingDiverged

    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone reports shared outcomes
    try:
        where = args.func(args)
    except TrainingStopped as exc:
        if rank0:
            print(f"part {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrainingDiverged as exc:
        if rank0:
            print(f"part {args.command}: training diverged: {_one_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:
        print(f"part {args.command}: aborted ({_one_line(exc) if str(exc) else 'interrupted'}); "
              "no checkpoint was written for the current interval", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"part {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, and the traceback on request
        if os.environ.get("PART_DEBUG"):
            raise
        print(f"part {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} (set PART_DEBUG=1 "
              "for the traceback; please report it)", file=sys.stderr)
        return 1
    if where:
        print(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
