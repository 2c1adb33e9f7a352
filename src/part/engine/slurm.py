"""``part submit`` / :func:`submit`: pretraining as a SLURM job, through ``submitit`` (``pip install part[slurm]``).

submitit writes the sbatch script, submits it, and owns preemption: the script asks SLURM for
``--signal=USR2@<signal_delay_s>`` (the signal delay), and when the signal comes, submitit calls
:meth:`TorchrunJob.checkpoint` on the first task and requeues the job (``scontrol requeue``). What is ours is
what runs inside: one task per node starts ``torchrun --nnodes N --nproc_per_node G ... -m part pretrain
--config <snapshot> --out <run> --resume auto``, so the first start trains from step 0 and every requeue
continues from the newest verified checkpoint.

On the signal, :meth:`TorchrunJob.checkpoint` sends SIGTERM to each training process (torchrun's children)
and waits for them to exit: the trainer finishes its step, all ranks agree to stop, rank 0 writes a verified
checkpoint, and they exit with 143 (``docs/reliability.md``). It does not signal torchrun itself: torchrun
would forward SIGTERM to each worker's whole process group, DataLoader workers included, and a loader whose
workers die fails the step before the checkpoint. The job's processes ignore USR2 (SLURM sends it to every
process of the job step), so only submitit reacts to it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..config import save_config
from ..io import atomic_write
from .runs import default_run_dir, resolve_config

SLURM_HINT = "pip install 'part[slurm]' (submitit)"


@dataclass
class Submission:
    """What :func:`submit` did: the run folder the job trains into, the folder of the job's files (config
    snapshot, sbatch script, submitit's pickles and logs), the script, the SLURM job id (None for a dry
    run) and node 0's torchrun command."""

    run_dir: Path
    folder: Path
    script: Path
    job_id: str | None
    command: list = field(default_factory=list)


class TorchrunJob:
    """The callable submitit runs, one task per node: torchrun of ``part pretrain --resume auto``.

    Picklable (submitit stores it between requeues); ``checkpoint`` is submitit's preemption hook."""

    def __init__(self, config: Path, run_dir: Path, nodes: int, gpus_per_node: int, master_port: int | None = None,
                 stop_timeout_s: float = 60.0):
        self.config, self.run_dir = Path(config), Path(run_dir)
        self.nodes, self.gpus_per_node = nodes, gpus_per_node
        self.master_port, self.stop_timeout_s = master_port, stop_timeout_s
        self._proc: subprocess.Popen | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_proc"] = None  # a running process does not travel to the requeued job
        return state

    def command(self, node_rank: int, master_addr: str, job_id: str = "0") -> list[str]:
        """The torchrun command line of node ``node_rank`` (static rendezvous at ``master_addr``)."""
        port = self.master_port or 20_000 + int(re.sub(r"\D", "", str(job_id)) or 0) % 20_000
        return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={self.nodes}",
                f"--nproc_per_node={self.gpus_per_node}", f"--node_rank={node_rank}",
                f"--master_addr={master_addr}", f"--master_port={port}",
                "-m", "part", "pretrain", "--config", str(self.config), "--out", str(self.run_dir),
                "--resume", "auto", "--no-progress"]

    def __call__(self) -> str:
        import submitit

        env = submitit.JobEnvironment()
        cmd = self.command(env.node, env.hostnames[0], env.job_id)
        print("part submit: running " + " ".join(cmd), flush=True)
        self._proc = subprocess.Popen(cmd, preexec_fn=_ignore_requeue_signal)
        while (rc := self._proc.poll()) is None:
            time.sleep(1.0)  # not proc.wait(): the preemption handler polls the same process
        if rc != 0:
            raise RuntimeError(f"part pretrain exited with code {rc} (run folder {self.run_dir}; see the log "
                               "above; a requeued job continues with --resume auto)")
        return str(self.run_dir)

    def checkpoint(self):
        """Preempted or out of time: stop training with a checkpoint, then let submitit requeue this job."""
        from submitit.helpers import DelayedSubmission

        proc = self._proc
        if proc is not None and proc.poll() is None:
            stop_training(proc, self.stop_timeout_s)
        return DelayedSubmission(self)


def _ignore_requeue_signal() -> None:
    """Run in the torchrun child before exec: ignore submitit's signal (inherited by all its descendants)."""
    signal.signal(_requeue_signal(), signal.SIG_IGN)


def _requeue_signal() -> signal.Signals:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux ``/proc``): torchrun's training processes."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def stop_training(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """SIGTERM to each training process under torchrun ``proc`` (to torchrun itself when it has none yet),
    then wait up to ``timeout_s`` for torchrun to exit; its exit code, or None if it is still running."""
    targets = child_pids(proc.pid) or [proc.pid]
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    return proc.poll()


def parse_time(value: str | int) -> int:
    """SLURM time as minutes: ``90``, ``"90"``, ``"1:30:00"`` (h:mm:ss), ``"2-00:00:00"`` (days-h:mm:ss)."""
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})", text)
    if text.isdigit():
        minutes = int(text)
    elif m:
        d, h, mi, s = (int(g or 0) for g in m.groups())
        minutes = d * 1440 + h * 60 + mi + (1 if s else 0)
    else:
        minutes = 0
    if minutes < 1:
        raise ValueError(f"--time must be minutes (e.g. 90) or [days-]hours:minutes:seconds (e.g. 1:30:00), "
                         f"at least one minute; got {value!r}")
    return minutes


def submit(
    config: str | Path | dict | None = None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    nodes: int = 1,
    gpus_per_node: int = 8,
    time_min: int | str = 60 * 24,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    cpus_per_task: int | None = None,
    mem_gb: float | None = None,
    signal_delay_s: int = 120,
    setup: Iterable[str] = (),
    folder: str | Path | None = None,
    max_timeouts: int = 10,
    master_port: int | None = None,
    dry_run: bool = False,
) -> Submission:
    """Write and submit a SLURM job that pretrains ``config`` into ``out`` on ``nodes`` x ``gpus_per_node``
    GPUs (``torchrun`` on each node, ``--resume auto`` so a requeued job continues).

    Args:
        config, out, overrides: as :func:`part.pretrain`; the resolved config is saved to ``folder`` and the
            job reads that snapshot.
        nodes, gpus_per_node: the job's size; ``train.batch_size`` (the global batch) must divide evenly.
        time_min: the time limit (minutes, or ``"h:mm:ss"``); partition, account, qos, cpus_per_task, mem_gb:
            passed to sbatch when given.
        signal_delay_s: SLURM signals the job this many seconds before the kill (preemption or time limit);
            the training stops with a checkpoint inside it and the job is requeued.
        setup: shell lines run before the job (``module load ...``, ``source .venv/bin/activate``).
        folder: where the snapshot, script and logs go (default ``<out>.slurm``).
        max_timeouts: requeues after hitting the time limit (submitit's count; preemptions do not count).
        dry_run: write the snapshot and the script (``folder/dry_run.sbatch``) without submitting.
    """
    try:
        import submitit  # noqa: F401
        from submitit.slurm import slurm as submitit_slurm
    except ImportError:
        raise ValueError(f"part submit needs submitit: {SLURM_HINT}") from None
    minutes = parse_time(time_min)
    for name, value, low in (("nodes", nodes, 1), ("gpus_per_node", gpus_per_node, 1), ("max_timeouts", max_timeouts, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
    if not isinstance(signal_delay_s, int) or not 10 <= signal_delay_s < minutes * 60:
        raise ValueError(f"--signal-delay must be seconds in [10, the time limit {minutes * 60}), got {signal_delay_s!r}")
    cfg = resolve_config(config, overrides)
    world = nodes * gpus_per_node
    if cfg.train.batch_size % world:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} must be divisible by the {world} processes "
                         f"({nodes} nodes x {gpus_per_node} GPUs)")
    run = Path(out if out is not None else default_run_dir(config)).absolute()
    folder = Path(folder).absolute() if folder is not None else run.with_name(run.name + ".slurm")
    if not dry_run and shutil.which("sbatch") is None:
        raise ValueError("sbatch not found: part submit runs where SLURM's sbatch is (a login node); "
                         "--dry-run writes the script without submitting")
    folder.mkdir(parents=True, exist_ok=True)
    snapshot = folder / "config.yaml"
    atomic_write(snapshot, lambda tmp: save_config(cfg, tmp))
    job = TorchrunJob(snapshot, run, nodes, gpus_per_node, master_port, stop_timeout_s=max(5, signal_delay_s - 20))
    params = dict(job_name=f"part-{run.name}", time=minutes, nodes=nodes, ntasks_per_node=1,
                  gpus_per_node=gpus_per_node, signal_delay_s=signal_delay_s, setup=list(setup), partition=partition,
                  account=account, qos=qos, cpus_per_task=cpus_per_task,
                  mem=None if mem_gb is None else f"{int(mem_gb)}GB")
    params = {k: v for k, v in params.items() if v is not None}
    node0 = job.command(0, "$MASTER_ADDR", "$SLURM_JOB_ID")
    if dry_run:  # submitit's own sbatch text, as it would submit it
        text = submitit_slurm._make_sbatch_string(
            command=f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(folder))}",
            folder=folder, **params)
        script = folder / "dry_run.sbatch"
        atomic_write(script, lambda tmp: Path(tmp).write_text(text))
        return Submission(run, folder, script, None, node0)
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_timeouts)
        executor.update_parameters(**params)
        sjob = executor.submit(job)
    except (RuntimeError, subprocess.CalledProcessError, submitit.core.utils.FailedSubmissionError) as exc:
        raise ValueError(f"submitting to SLURM failed: {' '.join(str(exc).split())}") from None
    return Submission(run, folder, Path(sjob.paths.submission_file), str(sjob.job_id), node0)


__all__ = ["Submission", "TorchrunJob", "submit", "stop_training", "child_pids", "parse_time", "SLURM_HINT"]
