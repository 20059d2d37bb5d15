"""A 2-job Hydra multirun through the submitit local launcher renders one dataset together."""

from __future__ import annotations

from pathlib import Path

from _cli_fixtures import run_tool

from synth.io import is_shard_complete, read_card


def test_render_sweep_two_submitit_local_jobs(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    proc = run_tool(
        "render",
        "-m",
        "hydra/launcher=local_jobs",
        f"paths.root_dir={tmp_path}",
        f"out_dir={out}",
        "synth.size=32",
        "num_samples=4",
        "shard_size=2",
        "workers=1",
        "progress=false",
        "shard_start=0,1",
        "shard_count=1",
        "hydra.launcher.timeout_min=5",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the launcher config extends the plugin's schema: Hydra's deprecation warning (three per
    # sweep) came from a file that shadowed it
    assert "deprecated" not in proc.stderr
    assert is_shard_complete(out, 0) and is_shard_complete(out, 1)
    assert read_card(out).get("num_samples") == 4  # the last job to finish wrote the card
    jobs = list((tmp_path / "logs" / "hydra").rglob(".submitit/*/*_result.pkl"))
    assert len(jobs) == 2, list((tmp_path / "logs").rglob("*"))
    assert not list(out.glob("*.tmp-*"))


def test_a_sweep_names_each_failed_job_in_one_line(tmp_path: Path) -> None:
    """A job a tool refused was submitit's ``UncompletedJobError`` traceback in the launching
    process, with the first failed job's error stream inside it and nothing of the others."""
    from synth.toy import write_toy_real_folder

    good = write_toy_real_folder(tmp_path / "good", n=2, h=128, w=128)  # the GAN crop
    missing = [tmp_path / "none0", tmp_path / "none2"]
    proc = run_tool(
        "check_data",
        "-m",
        "hydra/launcher=local_jobs",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.data_dir={missing[0]},{good},{missing[1]}",
        timeout=300,
    )
    assert proc.returncode == 1
    said = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
    assert said[-1] == "2 of 3 jobs failed" and len(said) == 3, proc.stderr[-3000:]
    for line, (n, folder) in zip(said, [(0, missing[0]), (2, missing[1])]):
        assert line.startswith(
            f"job #{n} (paths.log_dir={tmp_path / 'logs'} paths.data_dir={folder}): "
            f"error: {folder / 'train_img'}: image folder not found (log: "
        ), line
        assert Path(line[line.index("(log: ") + 6 : -1]).is_file()
