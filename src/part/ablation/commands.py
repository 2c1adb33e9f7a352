"""``part ablate``: argparse registration, thin over :func:`part.ablation.ablate` (one to one).

``part.cli`` calls :func:`register` on its subparsers; the handler returns the ``"wrote ... to PATH"`` line
that the CLI prints (errors are ``ValueError`` s, printed as one line with exit code 2).

    part ablate --config configs/ablate_fmnist_cpu.yaml [--out DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse

from .run import ablate


def register(subparsers) -> None:
    """Add the ``ablate`` subcommand."""
    p = subparsers.add_parser(
        "ablate", help="run a grid of objective x head x #pairs x seed (pretrain -> probe / fine-tune) and "
                       "write results.csv, table.md (mean ± std over seeds) and plots (paper Tab. 2-7, Fig. 8)")
    p.add_argument("--config", required=True, help="ablation YAML (see configs/ablate_*.yaml)")
    p.add_argument("--out", help="ablation folder (default runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an ablation config value, e.g. --set pretrain.train.max_steps=50, "
                        "--set grid.seeds=[0] or --set grid.0.num_pairs=[64] (a number indexes a list; repeatable)")
    p.add_argument("--no-resume", action="store_true",
                   help="delete the cells in --out and rerun all of them (default: skip finished cells, "
                        "resume half-finished runs)")
    p.add_argument("--dry-run", action="store_true", help="list the cells of the grid and exit")
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="run only every N-th cell from the K-th (0-based), e.g. two processes with --shard 0/2 "
                        "and --shard 1/2 and their own --out; their stage summaries meet in summaries:")
    p.add_argument("--fractions", type=_fractions, metavar="F[,F]",
                   help="run only the fine-tunes at these label fractions this time (e.g. 0.01,0.1: a priority "
                        "pass; the others stay missing for a later call)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: write the results page (page:) from the committed stage summaries (summaries:)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (they show only when stderr is a terminal; PART_PROGRESS=1 forces them)")
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # the default since 0.2
    p.set_defaults(func=_ablate)


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise argparse.ArgumentTypeError(f"--shard must be K/N with 0 <= K < N (e.g. 0/2), got {text!r}")
    return shard


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"--fractions must be label fractions in (0, 1] separated by commas "
                                         f"(e.g. 0.01,0.1), got {text!r}")
    return values


def _ablate(args) -> str:
    res = ablate(args.config, out=args.out, resume=not args.no_resume, overrides=args.overrides,
                 progress=args.progress, dry_run=args.dry_run, report_only=args.report_only, shard=args.shard,
                 fractions=args.fractions)
    if args.report_only:
        return f"wrote the results page {res.page} from the stage summaries"
    if args.dry_run:
        return f"planned {len(res.cells)} cells (nothing run; would write to {res.out})"
    page = f"; results page {res.page}" if res.page is not None else ""
    return (f"wrote results.csv ({len(res.rows)} cells: {len(res.ran)} run, {len(res.skipped)} skipped), table.md "
            f"and {len(res.plots)} plots to {res.out}{page}")


__all__ = ["register"]
