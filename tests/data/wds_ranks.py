"""Run under torchrun (gloo): each rank reads one epoch of a wds stream through the trainer's loader and
rank 0 writes every rank's labels (the sample ids) to argv[2]."""

import json
import sys

import torch.distributed as dist

from part.config import load_config
from part.engine.builders import build_dataset
from part.engine.distributed import init_distributed
from part.engine.loader import ResumableSampler, epoch_loader, training_items

cfg = load_config(sys.argv[1])
di = init_distributed("cpu")
dataset = build_dataset(cfg, train=True)
per_rank = cfg.train.batch_size // di.world_size
sampler = ResumableSampler(len(dataset), per_rank, cfg.train.seed, True, di.rank, di.world_size)
items = training_items(dataset, cfg.train.seed)
it = iter(epoch_loader(items, sampler, 0, 0, per_rank, cfg.data.num_workers, False, cfg.train.seed))
labels = [next(it)[1].tolist() for _ in range(sampler.batches_per_epoch)]
gathered = [None] * di.world_size
dist.all_gather_object(gathered, labels)
if di.rank == 0:
    with open(sys.argv[2], "w") as f:
        json.dump(gathered, f)
dist.barrier()
dist.destroy_process_group()
