"""``part submit``: the sbatch script submitit writes for a config, the job it pickles, and the preemption
path (SIGTERM to the training processes, not to torchrun) -- no SLURM needed: a fake sbatch on PATH."""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from part.cli import main

from .conftest import tiny_config

submitit = pytest.importorskip("submitit")

from part.engine.slurm import TorchrunJob, child_pids, parse_time, stop_training, submit  # noqa: E402


@pytest.fixture
def cfg_file(tmp_path, npz_data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(tiny_config(npz_data, batch_size=16)))
    return p


def test_dry_run_writes_submitits_script_for_the_config(tmp_path, cfg_file, capsys):
    rc = main(["submit", "--config", str(cfg_file), "--out", str(tmp_path / "runs" / "big"), "--set", "train.max_steps=9",
               "--nodes", "2", "--gpus-per-node", "4", "--time", "1:30:00", "--partition", "gpu", "--account", "lab",
               "--signal-delay", "180", "--setup", "source .venv/bin/activate", "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    folder = tmp_path / "runs" / "big.slurm"
    script = (folder / "dry_run.sbatch").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --time=90", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --signal=USR2@180", "#SBATCH --job-name=part-big", "source .venv/bin/activate"):
        assert line in script.splitlines(), (line, script)
    assert "srun" in script and "submitit.core._submit" in script
    snap = yaml.safe_load((folder / "config.yaml").read_text())  # the resolved config, overrides applied
    assert snap["train"]["max_steps"] == 9 and snap["train"]["batch_size"] == 16
    assert "--nnodes=2 --nproc_per_node=4" in out and "--resume auto" in out
    assert f"--config {folder / 'config.yaml'}" in out and "dry run" in out
    assert not (tmp_path / "runs" / "big").exists()  # the job makes the run folder, not submit


def _fake_slurm(tmp_path, monkeypatch, job_id="4242"):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sbatch\necho 'Submitted batch job {job_id}'\n")
    (bin_ / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")


def test_submit_hands_submitit_a_torchrun_job(tmp_path, cfg_file, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch)
    res = submit(cfg_file, out=tmp_path / "run", nodes=2, gpus_per_node=8, time_min=60, partition="p")
    assert res.job_id == "4242" and res.run_dir == (tmp_path / "run").absolute()
    assert "#SBATCH --signal=USR2@120" in (tmp_path / "submitted.sbatch").read_text()
    delayed = pickle.loads((res.folder / "4242_submitted.pkl").read_bytes())
    job = delayed.function
    assert isinstance(job, TorchrunJob) and job.nodes == 2 and job.gpus_per_node == 8
    cmd = job.command(1, "node-a", "4242")
    assert cmd[cmd.index("--config") + 1] == str(res.folder / "config.yaml")
    assert cmd[cmd.index("--out") + 1] == str(res.run_dir) and cmd[cmd.index("--resume") + 1] == "auto"
    assert "--node_rank=1" in cmd and "--master_addr=node-a" in cmd
    assert "--master_port=24242" in cmd  # from the job id: two jobs on one node do not share a port


def test_the_job_ignores_the_requeue_signal_and_reports_failure(tmp_path, monkeypatch):
    """SLURM signals every process of the step; only submitit's handler may act on USR2."""
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NODEID", "0")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "localhost")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    job = TorchrunJob(tmp_path / "c.yaml", tmp_path / "run", 1, 1)
    code = "import os, signal; os.kill(os.getpid(), signal.SIGUSR2); raise SystemExit({})"
    monkeypatch.setattr(job, "command", lambda *a: [sys.executable, "-c", code.format(0)])
    assert job() == str(tmp_path / "run")  # USR2 ignored: exit 0
    monkeypatch.setattr(job, "command", lambda *a: [sys.executable, "-c", code.format(3)])
    with pytest.raises(RuntimeError, match="exited with code 3"):
        job()


_FAKE_WORKER = """
import signal, sys, time
from pathlib import Path
def stop(*a):
    Path(sys.argv[1]).joinpath("worker-got-term").touch()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
Path(sys.argv[1]).joinpath("worker-ready").touch()
time.sleep(60)
"""

_FAKE_TORCHRUN = """
import signal, subprocess, sys
from pathlib import Path
out = Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *a: (out.joinpath("torchrun-got-term").touch(), sys.exit(1)))
sys.exit(subprocess.Popen([sys.executable, str(out / "worker.py"), str(out)]).wait())
"""


def test_checkpoint_stops_the_training_processes_not_torchrun(tmp_path):
    (tmp_path / "worker.py").write_text(_FAKE_WORKER)
    proc = subprocess.Popen([sys.executable, "-c", _FAKE_TORCHRUN, str(tmp_path)])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "worker-ready").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(child_pids(proc.pid)) == 1
        job = TorchrunJob(tmp_path / "c.yaml", tmp_path / "run", 1, 1, stop_timeout_s=20)
        job._proc = proc
        delayed = job.checkpoint()
        assert proc.poll() == 143  # the worker's checkpoint-and-exit code, passed up by "torchrun"
        assert (tmp_path / "worker-got-term").exists() and not (tmp_path / "torchrun-got-term").exists()
        again = pickle.loads(pickle.dumps(delayed.function))  # what submitit requeues
        assert again._proc is None and again.run_dir == job.run_dir
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_training_without_children_signals_torchrun_itself(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_training(proc, 10) == -signal.SIGTERM


@pytest.mark.parametrize("value,minutes", [(90, 90), ("90", 90), ("1:30:00", 90), ("0:00:30", 1),
                                           ("2-00:00:00", 2880)])
def test_time_formats(value, minutes):
    assert parse_time(value) == minutes


@pytest.mark.bad_input
@pytest.mark.parametrize("args,expected", [
    (["--nodes", "2", "--gpus-per-node", "3"], "train.batch_size=16 must be divisible by the 6 processes"),
    (["--nodes", "0"], "--nodes must be an integer >= 1"),
    (["--time", "soon"], "--time must be minutes"),
    (["--time", "10", "--signal-delay", "900"], "--signal-delay must be seconds in [10, the time limit 600)"),
    (["--set", "train.batch_size=0"], "train.batch_size must be a positive integer"),
    ([], "sbatch not found"),
])
def test_bad_submit_inputs_are_one_line(tmp_path, cfg_file, capsys, args, expected):
    extra = [] if expected.startswith("sbatch") else ["--dry-run"]
    rc = main(["submit", "--config", str(cfg_file), "--out", str(tmp_path / "r"), "--gpus-per-node", "2", *args, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.bad_input
def test_submit_without_submitit_is_one_line(tmp_path, cfg_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    rc = main(["submit", "--config", str(cfg_file), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'part[slurm]'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skip(reason="hangs intermittently (2026-12-06, also on main before issue 25's merge): a DataLoader worker "
                         "of the requeued torchrun job deadlocks inside fork; until that is fixed the suite must not "
                         "block on it (the requeue is bounded below so it fails instead of hanging once re-enabled)")
def test_preempted_job_checkpoints_and_the_requeued_job_finishes(tmp_path, npz_data, monkeypatch):
    """The real thing on CPU: torchrun with 2 gloo ranks and a loader worker each; submitit's preemption hook
    stops it with a checkpoint (exit 143), and the requeued job (the same callable) continues to the end."""
    import socket
    import threading

    raw = tiny_config(npz_data, max_steps=150, ckpt_every=1000, log_every=1, batch_size=8)
    raw["data"]["num_workers"] = 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"SLURM_JOB_ID": "9", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost",
                 "SUBMITIT_EXECUTOR": "slurm", "OMP_NUM_THREADS": "1",
                 "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}.items():
        monkeypatch.setenv(k, v)
    run = tmp_path / "run"
    job = TorchrunJob(cfg, run, nodes=1, gpus_per_node=2, master_port=port, stop_timeout_s=60)
    failure = []
    thread = threading.Thread(target=lambda: failure.append(pytest.raises(RuntimeError, job)))
    thread.start()
    deadline = time.monotonic() + 180
    metrics = run / "metrics.jsonl"
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    job.checkpoint()
    thread.join(60)
    # the ranks exit with 143 after the checkpoint; torchrun reports that as its own failure (exit 1)
    assert failure and "exited with code" in str(failure[0].value)
    from part.engine import checkpoint as ck

    stopped = ck.checkpoint_step(ck.verified_checkpoints(run / "checkpoints")[-1])
    assert 3 <= stopped < 150
    requeued = []  # the requeued job: --resume auto continues to the end (bounded: a hang fails, not blocks)
    t2 = threading.Thread(target=lambda: requeued.append(job()), daemon=True)
    t2.start()
    t2.join(300)
    assert requeued == [str(run)], "the requeued job did not finish within 300 s"
    assert (run / "summary.json").is_file()
    steps = [yaml.safe_load(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, 151))
