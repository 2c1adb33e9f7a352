"""part — PART (PAirwise Relative Translations) self-supervised pretraining.

Paper: "How PARTs assemble into wholes: Learning the relative composition of images".

    import part
    model = part.PARTModel(part.vit_tiny(img_size=32, patch_size=4), head="cross_attention_paper", num_pairs=2048)
    out = model(images)          # images (B, C, H, W)
    out.loss.backward()

    encoder = part.load("runs/my-model/export")   # a run folder, an export folder or a .safetensors file
    z = encoder.features(encoder.normalize(x))      # (B, d), pooled as the source records
"""

from . import sampling, targets
from .models import ViTConfig, VisionTransformer, build_head, vit_base, vit_custom, vit_small, vit_tiny
from .models.vit import vit
from .objectives import PARTModel, PARTOutput
from .api import pretrain
from .engine.export import export_run
from .engine.pretrained import LoadedModel, load  # the function part.load(); the module is part.engine.pretrained
from .engine.info import info
from .data.wds import write_shards  # part shards
from .engine.slurm import submit  # the function part.submit(); the module is part.engine.slurm
from .evaluation import evaluate, finetune, probe
from .visualization import visualize  # the function part.visualize(); the package is part.visualization
from .ablation import ablate  # the function part.ablate(); the package is part.ablation
from .config import Config, load_config

__version__ = "0.1.0"

__all__ = [
    "sampling", "targets", "ViTConfig", "VisionTransformer", "build_head",
    "vit", "vit_base", "vit_custom", "vit_small", "vit_tiny", "PARTModel", "PARTOutput",
    "load", "LoadedModel", "pretrain", "submit", "write_shards", "finetune", "probe", "evaluate", "export_run", "info", "visualize", "ablate", "Config", "load_config",
]
