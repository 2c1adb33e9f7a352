"""``part finetune | probe | evaluate | export``: argparse registration, thin over the Python API.

``part.cli`` calls :func:`register` on its subparsers; each handler returns the ``"wrote ... to PATH"`` line
that the CLI prints (errors are ``ValueError`` s, printed as one line with exit code 2).
"""

from __future__ import annotations

from ..cliargs import add_config_args, add_run_mode_args, check_run_mode
from .features import DEFAULT_POOL, EVAL_BATCH_SIZE, POOLS
from .knn import KNN_K, KNN_TEMPERATURE
from .probing import CLASSIFIERS, DEFAULT_CLASSIFIER, PROBE_EPOCHS, PROBE_WEIGHT_DECAY


def register(subparsers) -> None:
    """Add the ``finetune``, ``probe``, ``evaluate`` and ``export`` subcommands."""
    p = subparsers.add_parser("finetune", help="fine-tune a pretrained backbone (or train from scratch) and "
                                               "evaluate it on the test split (paper §4)")
    add_config_args(p, "run folder (default runs/<config name>)")
    p.add_argument("--init", help="pretrain run folder or .safetensors weights for the encoder, or 'none' to "
                                  "train from scratch (required unless --resume)")
    add_run_mode_args(p)
    p.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation")
    p.set_defaults(func=_finetune)

    p = subparsers.add_parser("probe", help="linear probe + kNN on frozen features of a backbone (or of a randomly "
                                            "initialised one: --random, the baseline of every probe number)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder (any objective), export folder or .safetensors weights")
    source.add_argument("--random", action="store_true",
                        help="probe the --config's model randomly initialised (seed train.seed); needs --config "
                             "and --out")
    add_config_args(p, "JSON file or folder for probe.json (default: <run>/probe.json)")
    p.add_argument("--pool", choices=list(POOLS), default=DEFAULT_POOL,
                   help="features: mean of patch tokens (avg, default), the [CLS] token, or the patch "
                        "tokens concatenated in grid order (flat: keeps where each patch is)")
    p.add_argument("--k", type=int, default=KNN_K, help=f"kNN neighbours (default {KNN_K})")
    p.add_argument("--temperature", type=float, default=KNN_TEMPERATURE,
                   help=f"kNN vote temperature (default {KNN_TEMPERATURE})")
    p.add_argument("--classifier", choices=list(CLASSIFIERS), default=DEFAULT_CLASSIFIER,
                   help="logistic regression solver")
    p.add_argument("--epochs", type=int, default=PROBE_EPOCHS,
                   help=f"L-BFGS iterations / AdamW epochs (default {PROBE_EPOCHS})")
    p.add_argument("--weight-decay", type=float, default=PROBE_WEIGHT_DECAY,
                   help=f"L2 penalty of the probe (default {PROBE_WEIGHT_DECAY:g})")
    p.add_argument("--max-train", type=int, help="use the first N training samples only")
    p.add_argument("--max-test", type=int, help="use the first N test samples only")
    p.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE, help="feature extraction batch size")
    p.add_argument("--device", help="cpu | cuda (default: the config's train.device)")
    p.set_defaults(func=_probe)

    p = subparsers.add_parser("evaluate", help="test-split metrics of a run (classification or pretext errors)")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--split", default="test", help="dataset split (default test)")
    p.add_argument("--out", help="results JSON (default <run>/results.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the run's config, e.g. --set data.root=/new/place")
    p.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE)
    p.add_argument("--max-samples", type=int, help="evaluate the first N samples only")
    p.add_argument("--device", help="cpu | cuda (default: the run's train.device)")
    p.add_argument("--seed", type=int, default=0, help="patch/pair sampling seed of pretext metrics")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("export", help="export a run's backbone as a timm / Hugging Face Hub folder "
                                             "(config.json, model.safetensors, README.md)")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--out", help="export folder (default <run>/export); loads with "
                                 "timm.create_model('local-dir:OUT', pretrained=True)")
    p.add_argument("--relative-encoder", action="store_true",
                   help="also write config.yaml and relative_encoder.safetensors (a PART pretraining): the folder then "
                        "rebuilds the whole PART model for part visualize / part probe, timm still reads the backbone")
    p.set_defaults(func=_export)


def _finetune(args) -> str:
    from .finetuning import finetune

    check_run_mode(args, "finetune")
    if not args.resume and not args.init:
        raise ValueError("part finetune needs --init RUN_OR_WEIGHTS (or --init none to train from scratch)")
    res = finetune(args.config, init=args.init, out=args.out, overrides=args.overrides, resume=args.resume,
                   overwrite=args.overwrite, progress=not args.no_progress, evaluate=not args.no_eval,
                   allow_data_change=args.allow_data_change)
    if res.results:
        return f"wrote run and test results (top1 {res.results['top1']:.4f}) to {res.run_dir}"
    return f"wrote run to {res.run_dir}"


def _probe(args) -> str:
    from .probing import probe

    if args.random and not args.config:
        raise ValueError("part probe --random needs --config (its model section is the encoder, its data the probe's)")
    if args.random and not args.out:
        raise ValueError("part probe --random needs --out (the JSON file or folder for probe.json)")
    res = probe(args.run, random=args.random, config=args.config, out=args.out, overrides=args.overrides, pool=args.pool, k=args.k,
                temperature=args.temperature, classifier=args.classifier, epochs=args.epochs,
                weight_decay=args.weight_decay, max_train=args.max_train, max_test=args.max_test,
                batch_size=args.batch_size, device=args.device)
    return f"wrote probe results to {res.path}"


def _evaluate(args) -> str:
    from .heldout import evaluate

    res = evaluate(args.run, split=args.split, out=args.out, overrides=args.overrides, batch_size=args.batch_size,
                   max_samples=args.max_samples, device=args.device, seed=args.seed)
    return f"wrote {res['task']} results to {res['path']}"


def _export(args) -> str:
    from ..engine.export import export_run

    if args.relative_encoder:
        from ..engine.publish import export_with_encoder

        if args.out is None:
            raise ValueError("--relative-encoder needs --out (a folder outside the run)")
        out = export_with_encoder(args.run, args.out)
        return (f"wrote export (config.json, model.safetensors, README.md, config.yaml, relative_encoder.safetensors) "
                f"to {out}")
    out = export_run(args.run, args.out)
    return f"wrote export (config.json, model.safetensors, README.md) to {out}"


__all__ = ["register"]
