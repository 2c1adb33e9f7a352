"""Run under torchrun (2 processes, gloo): DDP gradients of one step on this rank's shard -> file.

Usage: torchrun --nproc_per_node=2 tests/engine/ddp_grads.py CONFIG.yaml OUT.pt
"""

import sys

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from part.config import load_config
from part.engine import build_dataset, build_objective
from part.engine.distributed import cleanup_distributed, init_distributed
from part.engine.loader import ResumableSampler, SeededItems


def grads_for_rank(cfg_path, rank, world):
    cfg = load_config(cfg_path)
    torch.manual_seed(0)
    objective = build_objective(cfg)
    items = SeededItems(build_dataset(cfg, train=True), seed=cfg.train.seed)
    per = cfg.train.batch_size // world
    sampler = ResumableSampler(len(items), per, cfg.train.seed, True, rank, world)
    idx = list(iter(sampler))[:per]
    x = torch.stack([items[i][0] for i in idx])
    return objective, x


def main():
    cfg_path, out = sys.argv[1], sys.argv[2]
    di = init_distributed("cpu")
    objective, x = grads_for_rank(cfg_path, di.rank, di.world_size)
    model = DDP(objective)
    model(x).loss.backward()
    if di.rank == 0:
        torch.save({k: p.grad for k, p in objective.named_parameters() if p.grad is not None}, out)
    cleanup_distributed()


if __name__ == "__main__":
    main()
