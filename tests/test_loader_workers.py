"""DataLoader workers are at most one a CPU this process may use (``gan.data.loader_workers``):
``experiment=full``'s ``num_workers: 8`` on a 2-CPU machine, or a Slurm job given 4, made torch
warn at every loader and ran 8 workers on 2 CPUs. No loader here starts its workers but one,
whose worker runs OpenCV on one thread. torch's and OpenCV's threads in a tool are at most a
cgroup CPU quota (``gan.cli.cap_threads``), and a DDP rank's at most its share
(``gan.callbacks.RankThreads``)."""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _cli_fixtures import composed
from _gan_fixtures import make_real, make_synthetic
from _task_fixtures import make_folder, make_shards
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

import gan.data
import gan.evaluate
import synth.processes
from gan.adapt_data import UnpairedDataModule
from gan.callbacks import RankThreads
from gan.cli import QUOTA_THREADS, run_cli
from gan.data import loader_workers, open_samples, quiet_workers
from gan.evaluate import evaluate_folder, photo_loader
from gan.runner import build_trainer
from gan.task_data import SegmentationDataModule

LOWERED = "num_workers=8 lowered to 2: this machine gives the run 2 CPUs\n"


@pytest.fixture
def opencv_threads():
    """OpenCV's thread count, back as it was after the test."""
    threads = cv2.getNumThreads()
    yield
    cv2.setNumThreads(threads)


@pytest.fixture
def quota(monkeypatch, tmp_path: Path, opencv_threads):
    """Sets a cgroup v2 CPU quota of ``n`` CPUs on an 8-CPU affinity (``docker run --cpus=n``
    on an 8-core node), in a process whose torch runs 2 threads and 8 inter-op threads,
    whose OpenCV runs 8, and whose environment names no thread count; the counts are back as
    they were after the test. torch takes an inter-op count once a process: a fake stands in
    (``interop``: its count)."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    (tmp_path / "cgroup").write_text("0::/\n")
    monkeypatch.setattr(synth.processes, "PROC_SELF", tmp_path)
    monkeypatch.setattr(synth.processes, "CGROUP_ROOT", tmp_path)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", QUOTA_THREADS):
        monkeypatch.setenv(name, "")  # so that the test's changes are undone
        monkeypatch.delenv(name)
    interop = [8]
    monkeypatch.setattr(torch, "get_num_interop_threads", lambda: interop[0])
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: interop.__setitem__(0, n))
    cv2.setNumThreads(8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    write = lambda n: (tmp_path / "cpu.max").write_text(f"{n * 100000} 100000\n")  # noqa: E731
    yield types.SimpleNamespace(set=write, interop=interop)
    torch.set_num_threads(threads)


@pytest.fixture
def two_cpus(monkeypatch):
    """A process allowed 2 CPUs (its affinity, as Slurm or a cgroup cpuset sets it), that has
    said nothing yet about lowering workers."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(gan.data, "_LOWERED_SAID", set())
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)


def test_workers_are_at_most_one_a_cpu_said_once_a_run(two_cpus, capsys) -> None:
    """One line however many loaders (a pipeline builds a dozen: GAN, train, validation,
    scoring); 0 (the main process loads) and counts that fit are kept, unsaid."""
    assert [loader_workers(8) for _ in range(3)] == [2, 2, 2]
    assert loader_workers(2) == 2 and loader_workers(1) == 1 and loader_workers(0) == 0
    assert capsys.readouterr().err == LOWERED


def test_a_cpu_quota_lowers_workers_as_an_affinity_does(quota, monkeypatch, capsys) -> None:
    """``docker run --cpus=2`` on an 8-CPU node: the affinity shows 8, the quota says 2."""
    monkeypatch.setattr(gan.data, "_LOWERED_SAID", set())
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    quota.set(2)
    assert loader_workers(8) == 2
    assert capsys.readouterr().err == LOWERED


def test_other_ranks_lower_their_workers_without_a_word(two_cpus, capsys) -> None:
    """Under DDP each rank builds its loaders: rank zero alone says it."""
    rank_zero_only.rank = 1
    assert loader_workers(8) == 2
    assert capsys.readouterr().err == ""


def test_a_lowered_loader_no_longer_makes_torch_warn(two_cpus) -> None:
    """torch's own check (run as a loader starts its workers), on the count given."""
    with pytest.warns(UserWarning, match="will create 8 worker processes"):
        DataLoader(range(4), num_workers=8).check_worker_number_rationality()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(range(4), num_workers=loader_workers(8)).check_worker_number_rationality()


def test_gan_task_predict_and_evaluate_loaders_are_lowered(two_cpus, tmp_path: Path) -> None:
    """Every loader the tools build from a ``num_workers`` setting."""
    syn = make_synthetic(tmp_path / "syn", n=2, shard_size=2)
    real = make_real(tmp_path / "real", n=2)
    gan_data = UnpairedDataModule(str(syn), str(real), crop_size=32, num_workers=8)
    img, lab = make_folder(tmp_path / "photos", n=2)
    shards = make_shards(tmp_path / "task", n=4)
    task_data = SegmentationDataModule(
        str(shards), str(img), str(lab), crop_size=32, eval_size=None, num_workers=8
    )
    task_data.setup("fit")
    loaders = [gan_data.train_dataloader(), task_data.train_dataloader()]
    loaders += [task_data.val_dataloader(), photo_loader(open_samples(str(img)), None, 2, 8)]
    assert [(lo.num_workers, lo.persistent_workers) for lo in loaders[:2]] == [(2, True)] * 2
    assert [lo.num_workers for lo in loaders[2:]] == [2, 2]


def test_scoring_a_folder_lowers_its_workers(two_cpus, tmp_path: Path, monkeypatch) -> None:
    """evaluate_folder builds its loader itself (tools/evaluate.py, the pipeline's scoring)."""
    built = []

    def loader(*args, **kwargs):
        built.append(kwargs["num_workers"])
        raise StopIteration  # the loader is all this test needs

    monkeypatch.setattr(gan.evaluate, "DataLoader", loader)
    img, lab = make_folder(tmp_path / "photos", n=2)
    with pytest.raises(StopIteration):
        evaluate_folder(None, img, lab, tmp_path / "scores", eval_size=None, num_workers=8)
    assert built == [2]


def test_a_tool_under_a_cpu_quota_runs_torch_on_its_cpus(quota) -> None:
    """torch counts the affinity's 8; the quota's 1 is what the tool and its ranks get."""
    quota.set(1)
    assert run_cli(torch.get_num_threads) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_torch_threads_are_never_raised_to_the_quota(quota) -> None:
    quota.set(4)
    assert run_cli(torch.get_num_threads) == 2
    assert "OMP_NUM_THREADS" not in os.environ


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_a_thread_count_the_user_set_is_kept_under_a_quota(quota, monkeypatch, name) -> None:
    quota.set(1)
    monkeypatch.setenv(name, "2")
    assert run_cli(torch.get_num_threads) == 2


def test_a_tool_without_torch_under_a_quota_tells_torch_through_the_environment(
    quota, monkeypatch
) -> None:
    """check_data and render never load torch (four seconds of their start): the quota's
    count goes to OMP_NUM_THREADS, which torch reads as it loads in them or their workers."""
    quota.set(1)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if never imported
    run_cli(lambda: None)
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_a_tool_without_torch_and_no_quota_leaves_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # so that a change is undone
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setitem(sys.modules, "torch", None)
    run_cli(lambda: None)
    assert "OMP_NUM_THREADS" not in os.environ


class OpenCVBlur(torch.utils.data.Dataset):
    """One item: a blur of a large image, which OpenCV runs on its thread pool."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> float:
        return float(cv2.GaussianBlur(np.ones((1024, 1024), np.float32), (0, 0), 3).mean())


def test_a_loader_worker_starts_after_opencv_ran_threads_in_the_tool(opencv_threads) -> None:
    """A forked worker must not reconfigure OpenCV's pool: ``cv2.setNumThreads(1)`` in
    ``quiet_worker`` (session 55, for a tidier thread count) waited forever on the pool the
    tool's process had started (the main job hung at its first task batch). The worker
    still runs OpenCV's parallel operations."""
    cv2.setNumThreads(2)
    OpenCVBlur()[0]  # the tool's own pool is running
    loader = DataLoader(
        OpenCVBlur(), batch_size=None, num_workers=1, worker_init_fn=quiet_workers(), timeout=20
    )
    assert list(loader) == [pytest.approx(1.0)]


@pytest.mark.parametrize("user_set", [False, True])
def test_a_tool_under_a_cpu_quota_runs_opencv_and_inter_op_threads_on_its_cpus(
    quota, monkeypatch, user_set
) -> None:
    """Both counted 8, the affinity; no variable sets them, so one the user set for torch's
    own threads leaves them capped."""
    quota.set(1)
    if user_set:
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert run_cli(cv2.getNumThreads) == 1
    assert quota.interop == [1]


def test_opencv_and_inter_op_threads_are_never_raised_to_the_quota(quota) -> None:
    quota.set(4)
    cv2.setNumThreads(2)
    quota.interop[0] = 2
    assert run_cli(cv2.getNumThreads) == 2
    assert quota.interop == [2]


def test_inter_op_threads_too_late_to_set_are_left_as_they_are(quota, monkeypatch) -> None:
    """torch refuses a second count, or one after inter-op work started: the tool runs on."""

    def refuse(n: int) -> None:
        raise RuntimeError("Error: cannot set number of interop threads after parallel work")

    monkeypatch.setattr(torch, "set_num_interop_threads", refuse)
    quota.set(1)
    assert run_cli(lambda: "ran") == "ran"
    assert quota.interop == [8]


def ddp_trainer():
    """``trainer=ddp_cpu``'s trainer as the tools build it (2 ranks on this node), unlaunched."""
    return build_trainer(composed("train_gan", ["trainer=ddp_cpu"]), with_loggers=False)


def test_ddp_ranks_share_the_quota_out(quota) -> None:
    """The tool set ``OMP_NUM_THREADS`` to the whole quota, which Lightning passes on to each
    rank: 2 ranks under ``--cpus=2`` would run 2 threads each."""
    quota.set(2)
    torch.set_num_threads(4)
    run_cli(lambda: None)
    assert os.environ["OMP_NUM_THREADS"] == "2"
    trainer = ddp_trainer()
    [ranks] = [c for c in trainer.callbacks if isinstance(c, RankThreads)]
    ranks.setup(trainer, None, "fit")
    assert torch.get_num_threads() == 1


def test_ddp_ranks_keep_a_thread_count_the_user_set(quota, monkeypatch) -> None:
    quota.set(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    run_cli(lambda: None)
    RankThreads().setup(ddp_trainer(), None, "fit")
    assert torch.get_num_threads() == 2
