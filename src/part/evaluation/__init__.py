"""Downstream evaluation (paper §4 "Supervised finetuning", App. 8.1): fine-tuning and the from-scratch
baseline, linear probe and kNN on frozen features, test-split and pretext metrics, backbone export.

Python API (the CLI mirrors it: ``part finetune | probe | evaluate | export``)::

    from part.evaluation import finetune, probe, evaluate, export_run
    finetune("configs/fmnist_finetune_cpu.yaml", init="runs/fmnist_tiny_cpu", out="runs/ft")
    probe("runs/fmnist_tiny_cpu", config="configs/fmnist_probe_cpu.yaml")
    evaluate("runs/ft")                      # -> runs/ft/results.json
    export_run("runs/ft", "hub/ft")   # timm hub folder: config.json, model.safetensors, README.md
"""

from ..engine.export import export_run
from .heldout import classification_report, evaluate, evaluate_classifier, evaluate_pretext
from .features import extract_features, load_backbone, load_backbone_weights
from .finetuning import FinetuneResult, finetune
from .knn import knn_predict, knn_scores
from .probing import ProbeResult, linear_probe, probe, train_logistic_regression

__all__ = [
    "finetune", "FinetuneResult", "probe", "ProbeResult", "evaluate", "export_run",
    "classification_report", "evaluate_classifier", "evaluate_pretext",
    "extract_features", "load_backbone", "load_backbone_weights",
    "knn_scores", "knn_predict", "linear_probe", "train_logistic_regression",
]
