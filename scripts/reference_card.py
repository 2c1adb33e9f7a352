"""The reference PART model's numbers, written from the JSON files `make reference` produces (issue 24 item 6).

Reads the reference's `part probe` JSON and its `part visualize {reconstruct,uncertainty,symmetry}` JSONs (and
the demo model's, when given), then writes:

* a section of the published model card (``<model>/README.md``, between two HTML comments, replaced on rerun):
  how the model was made and its probe / kNN and capability numbers;
* ``docs/reference_model.md``: the same numbers beside the demo model's, with the commands that made them.

Nothing is typed by hand: every number comes from the JSON files named on the command line.

    python scripts/reference_card.py --model assets/reference/fmnist_part --probe runs/reference/probe.json \\
        --numbers runs/reference/numbers [--demo-probe runs/reference/demo/probe.json \\
        --demo-numbers runs/reference/demo/numbers] --doc docs/reference_model.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- part reference: begin -->", "<!-- part reference: end -->"
KINDS = ("reconstruct", "uncertainty", "symmetry")
# (kind, summary key, label, format): the rows of the capability table
ROWS = (
    ("reconstruct", "error_px_informative", "reconstruction error, informative patches, one reference (px)", "{:.2f}"),
    ("reconstruct", "lsq_error_px_informative", "reconstruction error, informative patches, least squares (px)",
     "{:.2f}"),
    ("reconstruct", "error_px", "reconstruction error, all patches, one reference (px)", "{:.2f}"),
    ("reconstruct", "lsq_error_px", "reconstruction error, all patches, least squares (px)", "{:.2f}"),
    ("symmetry", "neg_symmetry_x_informative", "negative symmetry corr(P_ij, -P_ji), x, informative pairs", "{:.3f}"),
    ("symmetry", "neg_symmetry_y_informative", "negative symmetry corr(P_ij, -P_ji), y, informative pairs", "{:.3f}"),
    ("symmetry", "corr_gt_x_informative", "corr(predicted, true) translation, x, informative pairs", "{:.3f}"),
    ("symmetry", "corr_gt_y_informative", "corr(predicted, true) translation, y, informative pairs", "{:.3f}"),
    ("uncertainty", "mean_median_dist_px", "uncertainty: spread of the per-reference estimates (px)", "{:.2f}"),
    ("uncertainty", "consensus_error_px", "uncertainty: error of the median estimate (px)", "{:.2f}"),
)


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"reference_card: cannot read {path}: {e}") from None


def numbers(probe: Path, folder: Path) -> dict:
    """``{"probe": {...}, "reconstruct": {...}, ...}``: the probe JSON and each kind's JSON of ``folder``."""
    out = {"probe": _read(probe)}
    for kind in KINDS:
        out[kind] = _read(Path(folder) / kind / f"{kind}.json")
    return out


def _cell(nums: dict | None, kind: str, key: str, fmt: str) -> str:
    if nums is None:
        return "—"
    value = nums[kind]["summary"].get(key)
    return "—" if value is None else fmt.format(value)


def tables(ref: dict, demo: dict | None) -> str:
    """Markdown: the probe table and the capability table, the demo model's column when given."""
    cols = ["reference"] + (["demo"] if demo is not None else [])
    models = [ref] + ([demo] if demo is not None else [])
    head = "| | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    pr = ref["probe"]
    lines = [f"Frozen features (`part probe`: {pr['classifier']} logistic regression, {pr['epochs']} epochs, and "
             f"kNN k={pr['knn'].get('k')}, on the {pr['pool']}-pooled patch tokens; fitted on the "
             f"{pr['num_train']} train images, scored on the {pr['num_test']} test images):", "", head.rstrip("\n")]
    for name, key in (("linear probe top-1 (%)", "linear"), ("kNN top-1 (%)", "knn")):
        lines.append(f"| {name} | " + " | ".join(f"{100 * m['probe'][key]['top1']:.2f}" for m in models) + " |")
    r = ref["reconstruct"]
    lines += ["", f"Capabilities (`part visualize`, {r['num_images']} test images, seed {r['seed']}, "
                  f"{r['num_patches']} off-grid patches each; informative = patch pixel std above "
                  f"{r['settings'].get('informative_std')}, {100 * r['summary']['informative_fraction']:.0f} % "
                  "of the reference's patches):", "", head.rstrip("\n")]
    for kind, key, label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(m, kind, key, fmt) for m in models) + " |")
    return "\n".join(lines) + "\n"


def card_section(ref: dict, made: str) -> str:
    return f"{BEGIN}\n## The reference model of `part`\n\n{made}\n\n{tables(ref, None)}{END}\n"


def write_card(model: Path, ref: dict, made: str) -> Path:
    """Put the section into ``<model>/README.md`` (replacing an earlier one)."""
    card = Path(model) / "README.md"
    text = card.read_text() if card.is_file() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + text[text.index(END) + len(END):].lstrip("\n")
    card.write_text(text.rstrip("\n") + "\n\n" + card_section(ref, made))
    return card


def write_doc(doc: Path, ref: dict, demo: dict | None, made: str, commands: str) -> Path:
    text = ("# The reference PART model (`assets/reference/fmnist_part/`)\n\n"
            "Written by `make reference` (`scripts/reference_card.py`) from the JSON files of the commands below; "
            "the figures are in `docs/images/reference/`.\n\n" + made + "\n\n" + tables(ref, demo) +
            ("\nThe demo model is `make demo` (`configs/fmnist_tiny_cpu.yaml`: a few minutes of pretraining on a "
             "CPU), scored by the same commands.\n" if demo is not None else "") +
            "\n```bash\n" + commands.strip() + "\n```\n")
    Path(doc).parent.mkdir(parents=True, exist_ok=True)
    Path(doc).write_text(text)
    return Path(doc)


def made_by(model: Path) -> str:
    """One paragraph from the published folder's ``config.json`` (``part`` section): method, data, steps."""
    cfg = _read(Path(model) / "config.json")
    p = cfg.get("part", {})
    args = cfg.get("model_args", {})
    return (f"PART pretraining ({p.get('method', 'part')}, relative encoder `{p.get('head')}`, no position "
            f"embeddings) of a ViT of width {args.get('embed_dim')}, depth {args.get('depth')}, "
            f"{args.get('num_heads')} heads, patch {args.get('patch_size')} on {args.get('img_size')} x "
            f"{args.get('img_size')} {p.get('data', {}).get('kind', '')} images: {p.get('steps')} steps "
            f"({p.get('epochs')} epochs) of batch {p.get('batch_size')}. It is the protocol's PART seed 0 "
            "(`configs/results_fmnist.yaml`, cell `part-cross_attention_paper-p1024-s0`), published with "
            "`part export --relative-encoder`: timm reads the backbone; `part probe` and `part visualize` rebuild "
            "the whole PART model from this folder.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--probe", required=True, type=Path)
    ap.add_argument("--numbers", required=True, type=Path)
    ap.add_argument("--demo-probe", type=Path)
    ap.add_argument("--demo-numbers", type=Path)
    ap.add_argument("--doc", type=Path, default=Path("docs/reference_model.md"))
    ap.add_argument("--commands", default="make reference", help="the commands the page shows")
    a = ap.parse_args(argv)
    ref = numbers(a.probe, a.numbers)
    demo = numbers(a.demo_probe, a.demo_numbers) if a.demo_probe and a.demo_numbers else None
    made = made_by(a.model)
    card = write_card(a.model, ref, made)
    doc = write_doc(a.doc, ref, demo, made, a.commands)
    print(f"wrote the reference's numbers to {card} and {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
