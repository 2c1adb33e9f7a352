"""Export a backbone in timm's Hugging Face Hub layout: ``model.safetensors`` + ``config.json`` + ``README.md``.

The folder is what ``timm.create_model("local-dir:FOLDER", pretrained=True)`` and a Hub repo made from it
(``hf-hub:user/repo``) read:

* ``config.json``: ``architecture`` (a timm model name that is registered: the timm ViT with the same width,
  depth and heads, e.g. ``vit_tiny_patch16_224``, else ``vit_base_patch16_224`` as a base), ``model_args``
  (keyword arguments of ``timm.models.vision_transformer.VisionTransformer`` that override the base: image
  and patch size, channels, dims, ``pos_embed``, ``dynamic_img_size``, ...), ``num_classes``,
  ``num_features``, ``global_pool`` and ``pretrained_cfg`` (``input_size``, ``mean``/``std`` = the dataset
  statistics ``part`` normalised with, ``crop_pct`` 1.0 and ``interpolation`` bilinear = ``part``'s eval
  transform, ``first_conv``, ``classifier``); plus ``part_config`` (this package's own architecture
  arguments) and ``part`` (where the weights come from);
* ``model.safetensors``: the backbone's state dict with timm's parameter names;
* ``README.md``: a model card (method, data, steps, metrics, how to load).

A PART-pretrained backbone has no position embeddings (``pos_embed="none"``, paper §4); a fine-tuned one has
learnable ones and the classifier ``head``. 1D (EEG) backbones have no timm equivalent: their
``architecture`` is ``part_vit1d`` and only ``part`` reloads them.

The run folder's ``export/`` (written when training finishes) and ``part export`` / :func:`export_run` write
the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from ..data.kinds import data_kind
from ..io import read_json, write_json
from ..objectives.registry import resolve_objective_config
from .checkpoint import load_weights, save_weights
from .folders import EXPORT_FILES, check_folder, replace_folder, settle
from .info import format_value, scalar_values
from .resolve import run_preprocessing

# registered timm ViTs by (embed_dim, depth, num_heads, patch_size); the first match on the dims alone is
# used when the patch size differs (model_args carry the real one)
TIMM_VITS = {
    (192, 12, 3, 16): "vit_tiny_patch16_224",
    (384, 12, 6, 16): "vit_small_patch16_224",
    (384, 12, 6, 32): "vit_small_patch32_224",
    (384, 12, 6, 8): "vit_small_patch8_224",
    (768, 12, 12, 16): "vit_base_patch16_224",
    (768, 12, 12, 32): "vit_base_patch32_224",
    (768, 12, 12, 8): "vit_base_patch8_224",
    (1024, 24, 16, 16): "vit_large_patch16_224",
    (1024, 24, 16, 32): "vit_large_patch32_224",
}
TIMM_BASE_ARCH = "vit_base_patch16_224"  # any other dims: a registered name whose dims model_args override
EVAL_INTERPOLATION = "bilinear"  # part.data.transforms.Resize (antialiased bilinear)
EVAL_CROP_PCT = 1.0  # build_transforms(eval_crop_ratio=1.0): resize to the model size, no crop margin
PAPER = "How PARTs assemble into wholes: Learning the relative composition of images"


def timm_architecture(args: dict) -> str:
    """A timm model name registered for ViTs with the dims of ``args`` (``model_args``), else the base."""
    dims = (args["embed_dim"], args["depth"], args["num_heads"])
    if dims + (args["patch_size"],) in TIMM_VITS:
        return TIMM_VITS[dims + (args["patch_size"],)]
    for key, name in TIMM_VITS.items():
        if key[:3] == dims:
            return name
    return TIMM_BASE_ARCH


def timm_model_args(backbone: nn.Module) -> dict:
    """Keyword arguments of ``timm.models.vision_transformer.VisionTransformer`` that rebuild ``backbone``."""
    c = backbone.config
    img = c.img_size if isinstance(c.img_size, int) else list(c.img_size)
    return {
        "img_size": img, "patch_size": c.patch_size, "in_chans": c.in_chans, "num_classes": c.num_classes,
        "global_pool": c.global_pool, "embed_dim": c.embed_dim, "depth": c.depth, "num_heads": c.num_heads,
        "mlp_ratio": c.mlp_ratio, "qkv_bias": c.qkv_bias, "class_token": c.class_token,
        "pos_embed": "learn" if backbone.pos_embed is not None else "none", "no_embed_class": False,
        "fc_norm": False, "dynamic_img_size": bool(getattr(c, "dynamic_img_size", False)),
    }


def timm_config(backbone: nn.Module, mean=None, std=None, label_names=None) -> dict:
    """The ``config.json`` of an export (see the module docstring); ``mean``/``std`` per input channel."""
    config: dict = {}
    if hasattr(backbone.config, "signal_len"):  # 1D backbones: no timm equivalent, keep our own args
        config.update({"architecture": "part_vit1d", "num_classes": backbone.config.num_classes,
                       "num_features": backbone.embed_dim, "global_pool": backbone.config.global_pool})
    else:
        args = timm_model_args(backbone)
        if mean is not None and len(mean) != args["in_chans"]:
            raise ValueError(f"export: mean has {len(mean)} values but the model has in_chans={args['in_chans']}")
        h, w = backbone.img_size
        config.update({
            "architecture": timm_architecture(args), "num_classes": args["num_classes"],
            "num_features": backbone.embed_dim, "global_pool": args["global_pool"], "model_args": args,
            "pretrained_cfg": {
                "tag": "part", "custom_load": False, "input_size": [args["in_chans"], h, w],
                "fixed_input_size": not args["dynamic_img_size"], "interpolation": EVAL_INTERPOLATION,
                "crop_pct": EVAL_CROP_PCT, "crop_mode": "center",
                "mean": [float(v) for v in mean] if mean is not None else None,
                "std": [float(v) for v in std] if std is not None else None,
                "num_classes": args["num_classes"], "pool_size": None, "first_conv": "patch_embed.proj",
                "classifier": "head", "paper_name": PAPER,
            },
        })
    if label_names and len(label_names) == config["num_classes"]:
        config["label_names"] = [str(n) for n in label_names]
    config["part_config"] = backbone.config.to_dict()
    return config


def export_backbone(backbone: nn.Module, out_dir: str | Path, mean=None, std=None, info: dict | None = None,
                    label_names=None, preprocessing: dict | None = None) -> Path:
    """Write ``model.safetensors`` (timm names), ``config.json`` and ``README.md`` into ``out_dir``.

    ``mean``/``std``: the normalisation the backbone was trained with (one value per channel); ``info``: where
    the weights come from (``method``, ``data``, ``steps``, ``metrics``, ...; see :func:`run_info`), kept
    under ``config["part"]`` and shown in the model card. ``preprocessing``: what inputs went through before
    the backbone (a signal run's normalisation, statistics and length policy), as ``config["preprocessing"]``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(backbone.state_dict(), out / "model.safetensors", {"format": "pt"})
    config = timm_config(backbone, mean, std, label_names)
    if info:
        config["part"] = info
    if preprocessing is not None:
        config["preprocessing"] = dict(preprocessing)
    write_json(out / "config.json", config)
    (out / "README.md").write_text(model_card(config, info or {}))
    return out


def load_exported(out_dir: str | Path) -> tuple[dict, dict]:
    """``(state_dict, config)`` of an export folder."""
    out = Path(out_dir)
    if not (out / "model.safetensors").is_file():
        raise ValueError(f"no exported weights in {out} (model.safetensors missing)")
    return load_weights(out / "model.safetensors"), json.loads((out / "config.json").read_text())


# --------------------------------------------------------------------------------------------------
# run folders
# --------------------------------------------------------------------------------------------------
def run_info(run: Path, cfg, metrics: dict | None = None) -> dict:
    """Where the weights of ``run`` come from, for ``config.json["part"]`` and the model card: method,
    data, steps, training metrics (``metrics`` or ``summary.json``), test results and probe accuracies."""
    from .builders import data_defaults

    d = data_defaults(cfg)
    final = metrics if metrics is not None else read_json(run / "summary.json").get("final", {})
    info = {
        "run": run.name, "method": cfg.objective.name,
        "head": resolve_objective_config(cfg.objective).head if cfg.objective.name.startswith("part") else None,
        "data": {"kind": d.kind, "name": shared_name(d.root), "split": d.split, "image_size": d.image_size,
                 "channels": d.channels, "mean": d.mean, "std": d.std},
        "steps": final.get("step"), "epochs": final.get("epoch"), "batch_size": cfg.train.batch_size,
        "train_metrics": scalar_values(final, None) if final else {},
    }
    init = read_json(run / "init.json")
    if init:
        info["init"] = shared_name(init.get("source")) or "none (from scratch)"
    res = read_json(run / "results.json")
    if res:
        info["test_metrics"] = scalar_values(res, ("top1", "top5", "kappa", "macro_f1", "balanced_accuracy",
                                              "err_x", "err_y", "err_euclid", "loss", "num_samples"))
    probe = read_json(run / "probe.json")
    if probe:
        info["probe"] = {m: scalar_values(probe.get(m, {}), ("top1", "top5", "kappa")) for m in ("linear", "knn")}
    return {k: v for k, v in info.items() if v is not None}


def shared_name(path) -> str | None:
    """How an export names a local path (a dataset root, an ``--init`` source): its last component only
    (``/home/me/data/cifar-100-python`` -> ``cifar-100-python``), so a folder made to be published carries
    no absolute path, user name or directory layout of the machine it was made on. None stays None."""
    if path is None:
        return None
    parts = [p for p in Path(str(path)).parts if p not in ("/", "\\", "..", ".")]
    return parts[-1] if parts else str(path)


def _label_names(run: Path, cfg) -> list | None:
    res = read_json(run / "results.json")
    return res.get("class_names") if isinstance(res.get("class_names"), list) else None


def write_run_export(run: str | Path, cfg, objective: nn.Module, out: str | Path | None = None,
                     metrics: dict | None = None, extra=None) -> Path:
    """Export ``objective.backbone`` of the run in ``run`` (config ``cfg``) to ``out`` (default
    ``<run>/export``), with the run's data statistics and model card. Replaces ``out`` atomically."""
    from .builders import data_defaults

    run = Path(run)
    out = Path(out) if out is not None else run / "export"
    d = data_defaults(cfg)
    one_d = hasattr(objective.backbone.config, "signal_len")

    def build(folder: Path) -> None:
        export_backbone(objective.backbone, folder, mean=None if one_d else d.mean, std=None if one_d else d.std,
                        info=run_info(run, cfg, metrics), label_names=_label_names(run, cfg),
                        preprocessing=run_preprocessing(cfg) if data_kind(d.kind).preprocessing else None)
        if extra is not None:  # more files of the same folder (part export --relative-encoder)
            extra(folder)

    # built beside out, then swapped in by a journaled replace (part.engine.folders): a crash at any point
    # leaves the earlier export or the new one; only a new or empty folder or an export part made is replaced
    return replace_folder(out, "export", build)


def export_run(run: str | Path, out: str | Path | None = None, extra=None) -> Path:
    """Export the backbone of a run folder (any objective) to the folder ``out`` (default ``<run>/export``)
    in timm's Hub layout (``config.json``, ``model.safetensors``, ``README.md``; see the module docstring).

    ``out`` must be a new or empty folder, or an earlier export made by ``part`` (which is replaced, journaled,
    keeping files of the user's such as ``.git``; :mod:`part.engine.folders`). Inside the run folder the
    write holds the run's lock, so it fails at once while the run is training. Returns ``out``.
    Load it with ``timm.create_model("local-dir:OUT", pretrained=True)`` or :func:`part.load`.
    ``extra(folder)`` writes more files into the new export before it is swapped in (one atomic folder).
    """
    from .runfolder import settle_run, writes_into
    from .runs import load_run

    out = Path(out) if out is not None else Path(run) / "export"
    if out.suffix in (".safetensors", ".json", ".pt", ".pth", ".bin"):
        raise ValueError(f"--out names the export folder (config.json, model.safetensors, README.md), got the "
                         f"file name {out}")
    if out.is_file():
        raise ValueError(f"--out {out} is a file; name a folder")
    if not Path(run).is_file():
        settle_run(run)  # an interrupted replace of the run (or of its export) is finished or undone first
    settle(out, "export")
    check_folder(out, "export")  # before any work: a folder part did not make is refused
    objective, cfg = load_run(run)
    with writes_into(run, out):  # a write inside the run folder: one writer at a time (part.engine.runfolder)
        return write_run_export(run, cfg, objective, out, extra=extra)


# --------------------------------------------------------------------------------------------------
# model card
# --------------------------------------------------------------------------------------------------
def model_card(config: dict, info: dict) -> str:
    """``README.md`` of an export: front matter for the Hub, method, data, training, metrics, how to load."""
    arch, args = config["architecture"], config.get("model_args", {})
    timm_ok = arch != "part_vit1d"
    name = info.get("run", "part-model")
    lines = ["---", "tags:", "- image-classification" if config["num_classes"] else "- image-feature-extraction",
             "- timm", "- part", "- self-supervised", f"library_name: {'timm' if timm_ok else 'part'}", "---",
             f"# Model card for {name}", ""]
    method = info.get("method", "part")
    what = ("a classifier fine-tuned from a PART-pretrained backbone" if method == "supervised"
            else f"a ViT backbone pretrained with the `{method}` objective")
    lines += [f"This is {what}, exported by `part` (PART: PAirwise Relative "
              f"Translations; paper: *{PAPER}*). PART pretrains without position embeddings by predicting the "
              "relative translations between randomly sampled off-grid patches (paper §4).", ""]
    lines += ["## Model details", f"- **Architecture:** `{arch}`" + (
        f" with `model_args` overriding its dims: embed_dim {args['embed_dim']}, depth {args['depth']}, "
        f"heads {args['num_heads']}, patch {args['patch_size']}, image {args['img_size']}, "
        f"{args['in_chans']} channel(s), position embeddings `{args['pos_embed']}`, "
        f"dynamic_img_size {args['dynamic_img_size']}" if timm_ok else " (1D ViT; loads with `part` only)")]
    lines.append(f"- **Features:** {config['num_features']}, pooled by `{config.get('global_pool')}`; "
                 f"classes: {config['num_classes']}")
    lines.append(f"- **Method:** `{method}`" + (f" (relative encoder `{info['head']}`, dropped at export)"
                                                 if info.get("head") else ""))
    if info.get("init"):
        lines.append(f"- **Initialised from:** {info['init']}")
    data = info.get("data", {})
    if data:
        lines.append(f"- **Data:** `{data.get('kind')}` ({data.get('name') or 'default location'}), split "
                     f"`{data.get('split')}`, image size {data.get('image_size')}, {data.get('channels')} "
                     f"channel(s), normalised with mean {data.get('mean')} and std {data.get('std')}")
    if info.get("steps") is not None:
        lines.append(f"- **Training:** {info['steps']} steps ({format_value(info.get('epochs'))} epochs), global batch "
                     f"{info.get('batch_size')}")
    metric_rows = [(f"train/{k}", v) for k, v in info.get("train_metrics", {}).items()
                   if k not in ("step", "epoch", "lr", "img_per_s", "data_wait")]
    metric_rows += [(f"test/{k}", v) for k, v in info.get("test_metrics", {}).items()]
    for m, vals in info.get("probe", {}).items():
        metric_rows += [(f"probe {m}/{k}", v) for k, v in vals.items()]
    if metric_rows:
        lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {format_value(v)} |" for k, v in metric_rows]
    lines += ["", "## How to load", ""]
    if timm_ok:
        pc = config["pretrained_cfg"]
        lines += [
            "With timm (this folder, or a Hugging Face Hub repo made from it as `hf-hub:USER/REPO`):", "",
            "```python", "import timm", "",
            'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True).eval()',
            "data_config = timm.data.resolve_data_config(model=model)  # the preprocessing part evaluated with",
            "transform = timm.data.create_transform(**data_config, is_training=False)",
            "features = model.forward_head(model.forward_features(x), pre_logits=True)",
            "```", "",
            "or by name with the arguments of `config.json`:", "",
            "```python", "import json, timm", 'cfg = json.load(open("config.json"))',
            'model = timm.create_model(cfg["architecture"], checkpoint_path="model.safetensors", **cfg["model_args"])',
            "```", "",
            f"Inputs: {pc['input_size'][0]} x {pc['input_size'][1]} x {pc['input_size'][2]}, resized "
            f"({pc['interpolation']}, crop_pct {pc['crop_pct']}) and normalised with mean {pc['mean']}, std "
            f"{pc['std']}." + (" Other image sizes work: learnt position embeddings are resampled bicubically "
                               "(`dynamic_img_size`)." if args.get("dynamic_img_size") else ""), ""]
    scores = ["scores = model.logits(x)             # (B, num_classes) class scores"] if config["num_classes"] else []
    lines += ["With part (this folder alone; features, class scores, probe, fine-tuning):", "", "```python",
              "import part", "", 'model = part.load("PATH/TO/THIS/FOLDER")',
              "x = model.normalize(raw)             # the recorded preprocessing (mean / std)",
              f"features = model.features(x)        # (B, {config['num_features']}), pooled by "
              f"`{config.get('global_pool')}` as recorded", *scores, "```", "",
              "```bash", "part probe --run PATH/TO/THIS/FOLDER --config DATA.yaml",
              "part finetune --config FINETUNE.yaml --init PATH/TO/THIS/FOLDER", "```", ""]
    return "\n".join(lines)


__all__ = ["TIMM_VITS", "TIMM_BASE_ARCH", "EXPORT_FILES", "timm_architecture", "timm_model_args", "timm_config",
           "export_backbone", "load_exported", "run_info", "shared_name", "write_run_export", "export_run", "model_card"]
