"""How the objective is spread over the processes: ``train.strategy`` ``ddp`` (DistributedDataParallel: every
rank holds the whole model) or ``fsdp`` (FSDP2, ``torch.distributed.fsdp.fully_shard``: each transformer block
and the root are sharded over the ranks, as DINOv3 and torchtitan do), plus ``train.activation_checkpointing``.

Checkpoints are the same under both: full state dicts (weights and the optimiser's state keyed as a plain
``torch.optim`` state dict) written by rank 0, so a run folder has one shape and ``--resume`` moves between
strategies and world sizes. Under FSDP, gathering them (``torch.distributed.checkpoint.state_dict``) and
loading them (every rank reads the file, each keeps its shard) are collectives: every rank calls them.

On one process there is nothing to shard or replicate: both strategies train the plain module.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint

from ..config import TRAIN_STRATEGIES
from ..models.vit import Block
from . import checkpoint as ck
from .distributed import DistInfo

STRATEGIES = TRAIN_STRATEGIES  # the one list, checked at config load


def blocks_of(module: nn.Module) -> list[nn.Module]:
    """The transformer blocks of an objective (encoder and any decoder), in module order."""
    return [m for m in module.modules() if isinstance(m, Block)]


def checkpointed_blocks(module: nn.Module, every: int) -> list[nn.Module]:
    """Activation checkpointing of every ``every``-th block (1: all; selective per layer, as torchtitan's
    ``selective_ac_option``): its activations are recomputed in the backward pass instead of kept. The
    forward of those blocks is wrapped in place (non-reentrant ``torch.utils.checkpoint``, RNG replayed, so
    drop-path draws the same); parameter names are unchanged. Returns the wrapped blocks."""
    chosen = blocks_of(module)[every - 1::every] if every else []
    for block in chosen:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
    return chosen


class Strategy:
    """``wrap`` the objective, then: ``no_sync`` (gradient accumulation), ``model_state`` / ``optim_state``
    (full state dicts on rank 0), ``load`` (full state dicts into the wrapped objective) and ``full_module``
    (an unsharded objective with the trained weights, on rank 0, for the final weights and export)."""

    name = "ddp"

    def __init__(self, di: DistInfo):
        self.di = di

    def wrap(self, objective: nn.Module, dtype: torch.dtype | None) -> nn.Module:
        d = self.di.device
        return DDP(objective, device_ids=[d.index] if d.type == "cuda" else None) if self.di.enabled else objective

    def no_sync(self, model: nn.Module):
        return model.no_sync() if self.di.enabled else contextlib.nullcontext()

    def model_state(self, objective: nn.Module) -> dict | None:
        return objective.state_dict()

    def optim_state(self, objective: nn.Module, opt: torch.optim.Optimizer) -> dict | None:
        return opt.state_dict()

    def load(self, objective: nn.Module, opt: torch.optim.Optimizer, weights: dict, optim: dict, what: str) -> None:
        ck.load_state_dict_checked(objective, weights, what=what)
        opt.load_state_dict(optim)

    def full_module(self, objective: nn.Module) -> nn.Module | None:
        return objective


class FSDPStrategy(Strategy):
    """FSDP2 over the blocks and the root; bf16 parameters with fp32 gradient reduction when the run trains
    in bf16 (``train.amp``), fp32 otherwise. fp16 is refused (it needs a sharded grad scaler)."""

    name = "fsdp"

    def __init__(self, di: DistInfo, reshard: bool = True):
        super().__init__(di)
        self.reshard = reshard

    def wrap(self, objective: nn.Module, dtype: torch.dtype | None) -> nn.Module:
        if not self.di.enabled:
            return objective
        import torch.distributed as dist
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        with torch.no_grad():  # rank 0's initial weights everywhere (each rank seeded apart), as DDP does
            for tensor in list(objective.parameters()) + list(objective.buffers()):
                dist.broadcast(tensor.data, src=0)
        # an unsharded twin on rank 0 only, in CPU memory, for the final weights and the export (fully_shard
        # changes the module in place); copied on the CPU so the GPU never holds two copies
        self._template = None
        if self.di.is_main:
            device = self.di.device
            self._template = copy.deepcopy(objective.to("cpu"))
            objective.to(device)
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
        for block in blocks_of(objective):
            fully_shard(block, mp_policy=policy, reshard_after_forward=self.reshard)
        fully_shard(objective, mp_policy=policy, reshard_after_forward=False)  # backward needs the root first
        return objective

    def no_sync(self, model: nn.Module):
        if not self.di.enabled:
            return contextlib.nullcontext()
        return _gradient_sync_off(model)

    def _options(self, **kw):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)

    def model_state(self, objective: nn.Module) -> dict | None:
        if not self.di.enabled:
            return objective.state_dict()
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = get_model_state_dict(objective, options=self._options())
        return state if self.di.is_main else None

    def optim_state(self, objective: nn.Module, opt: torch.optim.Optimizer) -> dict | None:
        if not self.di.enabled:
            return opt.state_dict()
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        named = get_optimizer_state_dict(objective, opt, options=self._options())
        return plain_optim_state(named) if self.di.is_main else None

    def load(self, objective: nn.Module, opt: torch.optim.Optimizer, weights: dict, optim: dict, what: str) -> None:
        if not self.di.enabled:
            return super().load(objective, opt, weights, optim, what)
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                              set_optimizer_state_dict)

        check_full_state(objective, weights, what)
        opts = StateDictOptions(full_state_dict=True)  # every rank holds the file's full tensors
        set_model_state_dict(objective, weights, options=opts)
        set_optimizer_state_dict(objective, opt, named_optim_state(optim, opt, objective), options=opts)

    def full_module(self, objective: nn.Module) -> nn.Module | None:
        if not self.di.enabled:
            return objective
        state = self.model_state(objective)
        if not self.di.is_main:
            return None
        self._template.load_state_dict(state)
        return self._template


@contextlib.contextmanager
def _gradient_sync_off(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def build_strategy(name: str, di: DistInfo, fsdp_reshard: bool = True) -> Strategy:
    """``train.strategy`` ``name`` on this process; ``fsdp_reshard`` (``train.fsdp_reshard``): each block's
    parameters are resharded after its forward and gathered again for its backward (least memory, as ZeRO-3);
    false keeps them gathered from forward to backward (one all-gather less per block and step, more memory)."""
    if name not in STRATEGIES:
        raise ValueError(f"train.strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "fsdp" and not di.enabled and di.is_main:
        print("note: train.strategy=fsdp on one process trains the plain module (nothing to shard)", file=sys.stderr)
    return FSDPStrategy(di, fsdp_reshard) if name == "fsdp" else Strategy(di)


def _param_names(opt: torch.optim.Optimizer, objective: nn.Module) -> list[str]:
    """The parameter names in the order a plain optimiser state dict numbers them (group by group)."""
    names = {id(p): n for n, p in objective.named_parameters()}
    return [names[id(p)] for g in opt.param_groups for p in g["params"]]


def plain_optim_state(named: dict) -> dict:
    """A full optimiser state keyed by parameter names (``get_optimizer_state_dict``) as ``opt.state_dict()``
    of an unsharded run keys it (parameters numbered in group order), so checkpoints are one format."""
    order = [n for g in named["param_groups"] for n in g["params"]]
    index = {n: i for i, n in enumerate(order)}
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[n] for n in g["params"]]}
              for g in named["param_groups"]]
    return {"state": {index[n]: s for n, s in named["state"].items()}, "param_groups": groups}


def named_optim_state(plain: dict, opt: torch.optim.Optimizer, objective: nn.Module) -> dict:
    """The inverse of :func:`plain_optim_state` for this optimiser's parameters."""
    names = _param_names(opt, objective)
    if len(names) != sum(len(g["params"]) for g in plain["param_groups"]):
        raise ValueError("the checkpoint's optimiser state has another number of parameters than this model")
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[i] for i in g["params"]]}
              for g in plain["param_groups"]]
    return {"state": {names[int(i)]: s for i, s in plain["state"].items()}, "param_groups": groups}


def check_full_state(objective: nn.Module, weights: dict, what: str) -> None:
    """The checks of :func:`part.engine.checkpoint.load_state_dict_checked` (key sets, full shapes) for a
    sharded module."""
    own = {k: tuple(v.shape) for k, v in objective.state_dict().items()}
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {own[k]}" for k, v in weights.items()
           if k in own and tuple(v.shape) != own[k]]
    if bad:
        raise ValueError(f"{what} do not fit this model (different size?): " + "; ".join(bad[:5]))
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(f"{what}: missing keys {missing[:10]}; unexpected keys {unexpected[:10]}")


__all__ = ["STRATEGIES", "Strategy", "FSDPStrategy", "build_strategy", "blocks_of", "checkpointed_blocks",
           "plain_optim_state", "named_optim_state", "check_full_state"]
