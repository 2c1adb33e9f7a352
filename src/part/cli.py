"""``part`` command line: thin over the Python API (``part pretrain`` = ``part.pretrain``)."""

from __future__ import annotations

import argparse
import sys


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--out", help="run folder (default runs/<config name>)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="part", description="PART: pairwise relative translations pretraining")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a backbone (PART or a baseline objective)")
    _add_config_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out exactly from its last checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--init", help="initialise weights of a NEW run from a run folder or .safetensors file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_pretrain)
    return parser


def _pretrain(args) -> str:
    from .api import pretrain

    if not args.config and not args.resume:
        raise ValueError("part pretrain needs --config (or --resume with --out)")
    if args.resume and not args.out:
        raise ValueError("--resume needs --out RUN_FOLDER")
    res = pretrain(args.config, out=args.out, overrides=args.overrides, resume=args.resume,
                   overwrite=args.overwrite, init=args.init, progress=not args.no_progress)
    if res.metrics:
        shown = {k: v for k, v in res.metrics.items() if k in ("loss", "err_x", "err_y", "err_euclid", "err_t")}
        print("final " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    return f"wrote run to {res.run_dir}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .engine.trainer import TrainingDiverged

    try:
        where = args.func(args)
    except TrainingDiverged as exc:
        print(f"part {args.command}: training diverged: {exc}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as exc:
        print(f"part {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if where:
        print(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
