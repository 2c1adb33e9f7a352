"""One resolver: a run folder, a weights file or an export folder -> what it holds (config, weights, preprocessing).

Every command that reads a trained model goes through :func:`resolve`: ``part finetune --init``,
``part probe``, ``part evaluate``, ``part visualize``, ``part export`` and :func:`part.load`. Sources:

==============  ===========================================================================================
kind            what the path is
==============  ===========================================================================================
``run``         a run folder: ``config.yaml`` + ``weights.safetensors`` (finished) or its newest checkpoint
``published``   a folder of ``part export --relative-encoder`` (:mod:`part.engine.reference`): ``config.yaml``
                + ``model.safetensors`` (backbone) + ``relative_encoder.safetensors``
``export``      an export (timm's layout, :mod:`part.engine.export`): ``config.json`` + ``model.safetensors``;
                also a ``FILE.safetensors`` with ``FILE.json`` or ``config.json`` beside it
``weights``     a ``.safetensors`` file without an architecture JSON: objective weights (``backbone.*`` is the
                encoder), with the config of the run folder holding it when there is one
==============  ===========================================================================================

A source says what the weights are (:class:`Source`): the file, the run's :class:`~part.config.Config` (read
through :mod:`part.engine.migrations`) or the export's JSON, and the preprocessing its inputs went through
(:attr:`Source.preprocessing`). :func:`load_objective` rebuilds a run's whole objective,
:func:`source_backbone` the bare encoder of any source, :func:`load_backbone_weights` initialises an encoder
from one. Bad paths raise one-line ``ValueError`` s naming the path.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from ..config import Config
from ..data.kinds import data_kind, data_options
from . import checkpoint as ck
from .builders import build_backbone, build_objective, check_model_fits, data_defaults
from .migrations import read_run_folder_config
from .reference import BACKBONE_FILE, is_published, load_published

__all__ = ["Source", "resolve", "resolve_weights_path", "export_sidecar", "read_export_config", "run_preprocessing",
           "load_objective", "source_backbone", "split_backbone_state", "load_backbone_weights", "source_grid",
           "BACKBONE_PREFIX"]

BACKBONE_PREFIX = "backbone."
_STEP_FILE = re.compile(r"step_\d+\.json")
_LOOKED_FOR = ("looked for config.yaml, weights.safetensors, model.safetensors + config.json, export/ and "
               "checkpoints/step_*.safetensors")


@dataclass
class Source:
    """What a path holds. ``path``: as given; ``kind``: ``run``, ``published``, ``export`` or ``weights`` (module
    docstring); ``weights``: the ``.safetensors`` file to read; ``run``: the folder whose ``config.yaml``
    describes the weights (run and published folders, a weights file inside a run folder), else None;
    ``export`` / ``export_file``: an export's architecture JSON and its path, else None."""

    path: Path
    kind: str
    weights: Path
    run: Path | None = None
    export: dict | None = None
    export_file: Path | None = None

    @functools.cached_property
    def config(self) -> Config | None:
        """The run's config (:func:`part.engine.migrations.read_run_folder_config`), read when first asked."""
        return read_run_folder_config(self.run) if self.run is not None else None

    @property
    def preprocessing(self) -> dict:
        """What inputs went through before the encoder saw them: an export's ``preprocessing`` (signals:
        ``normalize``, ``mean``, ``std``, ``length_policy``, ...) or its ``pretrained_cfg`` (images: ``mean``,
        ``std``, ``input_size``, ``interpolation``, ``crop_pct``); a run's from its config
        (:func:`run_preprocessing`); empty when the source does not say."""
        if self.export is not None:
            if isinstance(self.export.get("preprocessing"), dict):
                return dict(self.export["preprocessing"])
            pc = self.export.get("pretrained_cfg") or {}
            return {k: pc[k] for k in ("mean", "std", "input_size", "interpolation", "crop_pct") if k in pc}
        return run_preprocessing(self.config) if self.config is not None else {}

    @property
    def where(self) -> Path:
        """The file that describes the weights: the export's JSON, the run's ``config.yaml``, or the weights."""
        if self.export_file is not None:
            return self.export_file
        return self.run / "config.yaml" if self.run is not None else self.weights


def run_preprocessing(cfg: Config) -> dict:
    """What a run's inputs go through before its encoder (written to an export as ``preprocessing`` for signals):
    ``signal_npz``: ``kind``, ``normalize``, ``mean``, ``std``, ``length_policy``, ``signal_len``, ``in_chans``;
    images and the other kinds: ``mean``, ``std``, ``image_size``, ``channels`` as training resolved them."""
    d = data_defaults(cfg)
    record = data_kind(d.kind).preprocessing  # the kinds whose users normalise raw arrays (part.data.kinds)
    if record is None:
        return {"mean": d.mean, "std": d.std, "image_size": d.image_size, "channels": d.channels}
    pre = record(data_options(d))  # data.options read by the kind's one reader (normalize: its vocabulary)
    return {"kind": d.kind, "normalize": pre["normalize"], "mean": d.mean, "std": d.std,
            "length_policy": pre["length_policy"], "signal_len": cfg.model.img_size,
            "in_chans": cfg.model.in_chans}


# --------------------------------------------------------------------------------------------------
# the resolver
# --------------------------------------------------------------------------------------------------
def resolve(source: str | Path, what: str = "source", checkpoint: str | None = None) -> Source:
    """The :class:`Source` at ``source`` (module docstring). ``checkpoint="last"``: a run folder's newest
    checkpoint even when it is finished. Raises ``ValueError`` naming ``what`` and the path: missing, a file
    that is not ``.safetensors``, a run folder without weights, a folder that is none of the kinds."""
    path = Path(source)
    if not path.exists():
        raise ValueError(f"{what} path not found: {path}")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(f"{what} {path}: expected a .safetensors file, a run folder or an export folder")
        return _weights_file(path, path)
    if (path / "config.yaml").is_file():
        return _run(path, what, checkpoint)
    if (path / BACKBONE_FILE).is_file():
        return _export_folder(path)
    if (path / "weights.safetensors").is_file():
        return _weights_file(path, path / "weights.safetensors")
    if (path / "export" / BACKBONE_FILE).is_file():
        return _export_folder(path / "export")
    ckpts = ck.list_checkpoints(path / "checkpoints")
    if ckpts:
        return _weights_file(path, ckpts[-1].with_suffix(".safetensors"))
    raise ValueError(f"{what} {path}: no weights found; not a run folder, an export folder or a weights file "
                     f"({_LOOKED_FOR})")


def resolve_weights_path(source: str | Path, what: str = "--init") -> Path:
    """The ``.safetensors`` file behind ``source`` (:func:`resolve`)."""
    return resolve(source, what).weights


def _run(path: Path, what: str, checkpoint: str | None) -> Source:
    weights = path / "weights.safetensors"
    if checkpoint != "last" and weights.is_file():
        return Source(path, "run", weights, path)
    if checkpoint is None and is_published(path):  # part export --relative-encoder
        return Source(path, "published", path / BACKBONE_FILE, path)
    ckpts = ck.list_checkpoints(path / "checkpoints")
    if ckpts:
        return Source(path, "run", ckpts[-1].with_suffix(".safetensors"), path)
    if checkpoint is None and (path / "export" / BACKBONE_FILE).is_file():
        return _export_folder(path / "export")
    raise ValueError(f"run folder {path} has no weights (no weights.safetensors and no checkpoints)")


def _export_folder(path: Path) -> Source:
    """An export folder; without its ``config.json`` the weights alone (the architecture must then be given)."""
    side = path / "config.json"
    if not side.is_file():
        return Source(path, "weights", path / BACKBONE_FILE)
    return Source(path, "export", path / BACKBONE_FILE, export=read_export_config(side), export_file=side)


def _weights_file(path: Path, weights: Path) -> Source:
    side = export_sidecar(weights)
    if side is not None:
        return Source(path, "export", weights, export=read_export_config(side), export_file=side)
    return Source(path, "weights", weights, _run_folder(weights))


def _run_folder(weights: Path) -> Path | None:
    """The run folder holding a weights file (``weights.safetensors`` or ``checkpoints/step_*``), or None."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder
    return None


def export_sidecar(path: Path) -> Path | None:
    """The architecture JSON of an exported weights file: ``FILE.json`` or ``config.json`` beside it (a
    checkpoint's ``step_*.json`` manifest is not one: an architecture JSON names ``part_config``)."""
    for cand in (path.with_suffix(".json"), path.parent / "config.json"):
        if cand.is_file():
            if cand.name != "config.json" and _STEP_FILE.fullmatch(cand.name):
                continue
            return cand
    return None


def read_export_config(side: Path) -> dict:
    """The JSON mapping of an export's ``config.json`` / ``FILE.json``; ``ValueError`` naming the file when it
    cannot be read or is not a JSON object."""
    try:
        config = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{side}: not a readable JSON file ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{side}: must hold a JSON object, got {type(config).__name__}")
    return config


# --------------------------------------------------------------------------------------------------
# models out of a source
# --------------------------------------------------------------------------------------------------
def load_objective(src: Source) -> nn.Module:
    """The whole objective of a run (eval mode): built from its config, filled with its weights (a published
    folder: backbone + relative encoder). ``ValueError`` for an export or a weights file without a run."""
    if src.kind == "published":
        return load_published(src.path, build_objective(src.config)).eval()
    if src.config is None or src.kind == "export":
        raise ValueError(f"{src.path}: an export holds the encoder alone; its objective is rebuilt from a run "
                         "folder or a folder of part export --relative-encoder")
    check_model_fits(src.config.model, src.weights, f"{src.where} (model) against {src.weights}")
    objective = build_objective(src.config)
    ck.load_state_dict_checked(objective, ck.load_weights(src.weights), what=str(src.weights))
    return objective.eval()


def source_backbone(src: Source, config: Config | None = None) -> nn.Module:
    """A fresh encoder with the architecture of ``src``: the export's ``part_config`` (checked against the weights'
    shapes first), else ``config.model``, else the run's ``model`` section. ``ValueError`` when nothing says."""
    if src.export is not None:
        return _backbone_from_part_config(src.export, str(src.export_file), src.weights)
    cfg = config if config is not None else src.config
    if cfg is None:
        raise ValueError(f"{src.weights}: no architecture JSON beside it (FILE.json or config.json); pass a config "
                         "whose model section describes this backbone")
    return build_backbone(cfg.model)


def _backbone_from_part_config(config: dict, where: str, weights: Path | None = None) -> nn.Module:
    """The backbone an export's ``part_config`` describes. Its keys and types are checked first, and, with
    ``weights``, its shapes against that file's safetensors header, so an edited config cannot make this
    build a model of any size before a check (:mod:`part.models.shapes`)."""
    from ..models.shapes import architecture_args, check_against_shapes

    part_cfg = config.get("part_config")
    if not isinstance(part_cfg, dict):
        raise ValueError(f"{where}: no 'part_config' with the architecture arguments")
    one_d = config.get("architecture") == "part_vit1d" or "signal_len" in part_cfg
    args = architecture_args(part_cfg, where, one_d)
    if weights is not None:
        shapes = ck.weight_shapes(weights)
        prefix = BACKBONE_PREFIX if any(k.startswith(BACKBONE_PREFIX) for k in shapes) else ""
        check_against_shapes(args, shapes, f"{where} against {weights}", prefix, one_d)
    if one_d:
        from ..models.vit1d import ViT1DConfig, VisionTransformer1D

        return VisionTransformer1D(ViT1DConfig(**args))
    from ..models.vit import ViTConfig, VisionTransformer

    return VisionTransformer(ViTConfig(**args))


def split_backbone_state(state: dict) -> tuple[dict, list[str]]:
    """Objective or export weights -> ``(backbone state with timm names, dropped keys)``.

    Objective weights have the encoder under ``backbone.``; every other key (e.g. PART's relative encoder
    ``head.*``) is dropped. Weights without any ``backbone.`` key are taken as a bare backbone (export).
    """
    if any(k.startswith(BACKBONE_PREFIX) for k in state):
        keep = {k[len(BACKBONE_PREFIX):]: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
        return keep, sorted(k for k in state if not k.startswith(BACKBONE_PREFIX))
    return dict(state), []


def load_backbone_weights(backbone: nn.Module, source: str | Path | Source, what: str = "--init") -> dict:
    """Initialise ``backbone`` from a run folder / weights file / export (paper §4 "Supervised finetuning").

    Loaded: every encoder tensor (patch embedding, CLS token, blocks, final norm). Kept as the model has
    them (freshly initialised): the classifier ``head.*`` always, and ``pos_embed`` when the source has
    none (PART pretrains without position embeddings, so fine-tuning adds random learnable ones) or when
    the model does not use one. Dropped: the objective's other parts (PART's relative encoder ``head.*``).

    Raises ``ValueError``: path missing; tensors of another size (the sizes are named); encoder keys the
    source lacks or has in excess (listed) — e.g. a backbone of another depth.

    Learnt position embeddings of another patch grid (the source was fine-tuned at another image size) are
    resampled to this backbone's grid (:func:`part.models.pos_embed.resample_abs_pos_embed`: bicubic, CLS
    position kept), as timm does when it loads weights at another ``img_size``.

    Returns a report: ``source`` (file), ``loaded`` (keys), ``fresh`` (keys kept as initialised),
    ``dropped`` (source keys not used), ``resampled`` (keys resized to this grid).
    """
    src = source if isinstance(source, Source) else resolve(source, what)
    path = src.weights
    state, dropped = split_backbone_state(ck.load_weights(path))
    own = backbone.state_dict()
    fresh = [k for k in own if k.startswith("head.")]
    dropped += [k for k in state if k.startswith("head.")]  # a source classifier (fine-tuned / export)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    resampled = []
    if "pos_embed" in own and "pos_embed" not in state:
        fresh.append("pos_embed")
    elif "pos_embed" in state and "pos_embed" not in own:
        dropped.append("pos_embed")
        state.pop("pos_embed")
    elif "pos_embed" in state and state["pos_embed"].shape != own["pos_embed"].shape and hasattr(backbone, "grid_size"):
        # fine-tuning / evaluating at another image size or patch grid: resample (bicubic, timm semantics)
        from ..models.pos_embed import resample_abs_pos_embed

        prefix = backbone.num_prefix_tokens
        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], backbone.grid_size,
                                                    source_grid(src, state["pos_embed"].shape[1] - prefix), prefix)
        resampled.append("pos_embed")
    full = dict(state)
    full.update({k: own[k] for k in fresh})  # the strict check below then lists real gaps only
    ck.load_state_dict_checked(backbone, full, strict=True, what=f"{what} {path}")
    return {"source": str(path), "loaded": sorted(state), "fresh": sorted(fresh), "dropped": sorted(dropped),
            "resampled": resampled}


def source_grid(src: Source, num_tokens: int) -> tuple[int, int] | None:
    """The patch grid ``(rows, cols)`` that the position embeddings of ``src`` were learnt on: from the export's
    ``model_args`` or the run's ``model`` section; None (square, as timm assumes) when neither says, or when
    theirs does not have ``num_tokens`` positions."""
    if src.export is not None:
        args = src.export.get("model_args") or {}
        size, patch = args.get("img_size"), args.get("patch_size")
    elif src.config is not None:
        size, patch = src.config.model.img_size, src.config.model.patch_size
    else:
        return None
    if size is None or not patch:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    grid = (int(h) // int(patch), int(w) // int(patch))
    return grid if grid[0] * grid[1] == num_tokens else None
