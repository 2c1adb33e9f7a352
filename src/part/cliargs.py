"""Argument groups shared by the ``part`` subcommands (so ``pretrain`` and ``finetune`` read alike)."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser, out_help: str = "run folder: new, empty, or a run part made (default runs/<config name>)") -> None:
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--out", help=out_help)


def _resume_value(text: str):
    if text != "auto":
        raise argparse.ArgumentTypeError(f"--resume takes no value or 'auto', got {text!r}")
    return "auto"


def add_run_mode_args(p: argparse.ArgumentParser) -> None:
    """``--resume [auto]`` | ``--overwrite``, and ``--no-progress``."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", nargs="?", const=True, default=False, type=_resume_value, metavar="auto",
                   help="continue the run in --out exactly from its newest verified checkpoint; "
                        "'--resume auto': continue if --out holds a run, else start it (for requeued jobs)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out: after its inputs are validated the new run trains beside it "
                        "and takes its place at its first verified checkpoint (journaled; docs/reliability.md)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue on data other than the run trained on (refused otherwise); "
                        "the change is recorded with its step in RUN/data_changes.jsonl")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_run_mode(args, command: str) -> None:
    """The combinations of --config/--resume/--out/--init that make sense, as one-line errors."""
    if not args.config and args.resume is not True:
        raise ValueError(f"part {command} needs --config (or --resume with --out)")
    if getattr(args, "allow_data_change", False) and not args.resume:
        raise ValueError("--allow-data-change only applies to --resume (a new run records its data anyway)")
    if args.resume and not args.out:
        raise ValueError("--resume needs --out RUN_FOLDER")
    if args.resume is True and getattr(args, "init", None):
        raise ValueError("--resume continues a run from its own checkpoint; --init is only for a new run "
                         "(drop one of them)")


__all__ = ["add_config_args", "add_run_mode_args", "check_run_mode"]
