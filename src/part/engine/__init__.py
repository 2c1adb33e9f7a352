"""The engine: training loop, AMP, DDP (torchrun), checkpoints, exact resume, logging, export."""

from .builders import build_backbone, build_dataset, build_objective, data_defaults
from .datainfo import complete_config, write_data_record
from .checkpoint import list_checkpoints, load_checkpoint, load_state_dict_checked, load_weights, save_weights
from .export import export_backbone, export_run, load_exported, timm_model_args, write_run_export
from .pretrained import LoadedModel, load
from .resolve import Source  # the function resolve() lives in part.engine.resolve (a module is never hidden)
from .runs import load_run
from .runfolder import RunFolderError, RunLock, check_writer, writes_into
from .signals import TrainingStopped
from .trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "build_backbone", "build_dataset", "build_objective", "data_defaults", "complete_config", "write_data_record",
    "list_checkpoints", "load_checkpoint", "load_state_dict_checked", "load_weights", "save_weights",
    "export_backbone", "export_run", "load_exported", "timm_model_args", "write_run_export", "load_run",
    "load", "LoadedModel", "Source",
    "RunFolderError", "RunLock", "check_writer", "writes_into", "TrainingStopped", "TrainingDiverged", "TrainResult", "train",
]
