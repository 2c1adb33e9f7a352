"""``part`` command line: thin over the Python API (``part pretrain`` = ``part.pretrain``).

``pretrain`` is registered here (its function is :func:`part.api.pretrain`); every other command is registered
by its package's ``commands.py``: :mod:`part.engine.commands` (``submit``, ``shards``, ``info``),
:mod:`part.evaluation.commands` (``finetune``, ``probe``, ``evaluate``, ``export``),
:mod:`part.ablation.commands` (``ablate``), :mod:`part.visualization.commands` (``visualize``).
"""

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

    from .ablation.commands import register as register_ablate
    from .engine.commands import register as register_engine
    from .evaluation.commands import register as register_evaluation
    from .visualization.commands import register as register_visualize

    register_engine(sub)  # submit, shards, info
    register_evaluation(sub)  # finetune, probe, evaluate, export
    register_ablate(sub)  # ablate
    register_visualize(sub)  # visualize

    parser.subcommands = dict(sub.choices)
    for p in parser.subcommands.values():
        p.set_defaults(func=_rank0_prints(p.get_default("func")))
    return parser


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
