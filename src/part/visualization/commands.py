"""``part visualize``: argparse registration, thin over :func:`part.visualization.visualize`.

``part.cli`` calls :func:`register` on its subparsers; the handler returns the ``"wrote ... to PATH"`` line
that the CLI prints (errors are ``ValueError`` s, printed as one line with exit code 2).
"""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``visualize`` subcommand."""
    p = subparsers.add_parser("visualize", help="PART's capabilities as pictures + numbers (paper Fig. 4-6)")
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


def _visualize(args) -> str:
    from .api import visualize

    ref = int(args.reference) if str(args.reference).lstrip("-").isdigit() else args.reference
    out = visualize(
        args.kind, args.run, args.images, args.out, num_images=args.num_images, seed=args.seed,
        reference=ref, anchor=args.anchor, margin=args.margin, sampler=args.sampler,
        num_patches=args.num_patches, measure=args.measure, targets=args.targets,
        row_height=args.row_height, device=args.device,
        **({} if args.informative_std is None else {"informative_std": args.informative_std}),
    )
    from ..evaluation.metrics import format_table

    print(format_table([{"metric": k, "value": v} for k, v in out.summary.items()]))
    return f"wrote {len(out.figures)} figures and {out.json_path.name} to {out.json_path.parent}"


__all__ = ["register"]
