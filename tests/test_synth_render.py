"""Sharded rendering: determinism across worker counts, resume after a kill, disjoint jobs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _synth_fixtures import ROOT, tiny_config, tree_digest

from synth.distributions import ConfigError
from synth.io import CARD, DataError, ShardedDataset, is_shard_complete, shard_name
from synth.render import checked_scene_config, render_dataset, versions
from synth.scene import SIMULATOR_VERSION, render_crack_scene


def render(
    out: Path, workers: int = 1, n: int = 12, shard: int = 4, cfg: dict | None = None, **kw: object
) -> dict:
    kw.setdefault("seed", 7)
    return render_dataset(
        cfg or tiny_config(), out, n, shard, workers=workers, progress=False, **kw
    )


def test_bit_identical_whatever_the_worker_count(tmp_path: Path) -> None:
    a = render(tmp_path / "a", workers=1)
    render(tmp_path / "b", workers=2)
    assert a["complete"] and a["rendered_samples"] == 12
    da, db = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert len(da) > 12 * 3 and da == db


def test_sample_rerendered_alone_equals_the_dataset_copy(tmp_path: Path) -> None:
    render(tmp_path, n=8)
    ds = ShardedDataset(tmp_path, load_instance=True)
    for i in (0, 5):
        alone = render_crack_scene(tiny_config(), 7, i)
        stored = ds[i]
        assert np.array_equal(alone.image, stored.image)
        assert np.array_equal(alone.semantic, stored.semantic)
        assert np.array_equal(alone.instance, stored.instance)
        assert stored.meta["index"] == i and stored.meta["seed"] == 7


def test_card_written_when_complete(tmp_path: Path) -> None:
    render(tmp_path)
    card = json.loads((tmp_path / CARD).read_text())
    stats = card["statistics"]
    assert card["seed"] == 7 and card["num_samples"] == 12 and card["config"]["size"] == 64
    assert {"python", "numpy", "cv2", "sim2real"} <= set(card["versions"])
    assert card["class_map"]["1"] == "crack"
    assert [r["samples"] for r in stats["per_shard"]] == [4, 4, 4]
    assert 0 <= stats["crack_free_fraction"] <= 1 and stats["crack_share_mean"] > 0


def test_a_complete_dataset_is_left_untouched(tmp_path: Path, monkeypatch) -> None:
    """A finished dataset may be shared read-only: rerunning must write nothing to it."""
    render(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    def no_writes(*args: object) -> None:
        raise PermissionError("read-only dataset")

    monkeypatch.setattr("synth.render.write_card", no_writes)
    monkeypatch.setattr("synth.render.write_json_atomic", no_writes)
    summary = render(tmp_path)
    assert summary["complete"] and summary["rendered_shards"] == 0
    assert before == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}


def test_a_job_cleans_only_its_own_shards_temp_dirs(tmp_path: Path) -> None:
    """A sweep job that starts late must not delete a running job's half-written shard."""
    running = tmp_path / f"{shard_name(2)}.tmp-4242"  # another job's shard, being written
    leftover = tmp_path / f"{shard_name(0)}.tmp-4243"  # this job's shard, a killed writer's
    for partial in (running, leftover):
        (partial / "image").mkdir(parents=True)
    summary = render(tmp_path, shard_count=2)
    assert summary["rendered_shards"] == 2
    assert running.is_dir() and not leftover.exists()
    assert is_shard_complete(tmp_path, 0) and not is_shard_complete(tmp_path, 2)


def test_versions_name_extra_packages_and_mark_missing_ones() -> None:
    found = versions("numpy", "no-such-package-xyz")
    assert found["numpy"] == np.__version__ and found["no-such-package-xyz"] == "unknown"
    assert set(versions()) == {"python", "numpy", "cv2", "sim2real"}


def test_resume_renders_only_missing_shards(tmp_path: Path) -> None:
    render(tmp_path)
    clean = tree_digest(tmp_path)
    # Simulate a killed run: shard 1 never renamed into place, a half-written temp dir left.
    shutil.rmtree(tmp_path / shard_name(1))
    (tmp_path / CARD).unlink()
    partial = tmp_path / f"{shard_name(1)}.tmp-99999"
    (partial / "image").mkdir(parents=True)
    (partial / "image" / "junk.png").write_bytes(b"half")
    before = {s: (tmp_path / shard_name(s)).stat().st_mtime_ns for s in (0, 2)}
    summary = render(tmp_path)
    assert summary["rendered_shards"] == 1 and summary["skipped_shards"] == 2
    assert not list(tmp_path.glob("*.tmp-*"))
    assert before == {s: (tmp_path / shard_name(s)).stat().st_mtime_ns for s in (0, 2)}
    assert tree_digest(tmp_path) == clean


KILL_SCRIPT = """
import sys
from _synth_fixtures import tiny_config
from synth.render import render_dataset
render_dataset(tiny_config(), sys.argv[1], 600, 10, seed=7, workers=1, progress=False)
"""


def test_kill_9_mid_render_then_resume_matches_clean_render(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], env=env)
    deadline = time.monotonic() + 60
    while not is_shard_complete(out, 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert is_shard_complete(out, 3), "renderer never got going"
    assert not is_shard_complete(out, 59), "render finished before the kill; test is moot"
    summary = render_dataset(tiny_config(), out, 600, 10, seed=7, workers=2, progress=False)
    assert summary["complete"] and summary["skipped_shards"] >= 4
    assert not list(out.glob("*.tmp-*"))
    render_dataset(tiny_config(), tmp_path / "clean", 600, 10, seed=7, workers=2, progress=False)
    assert tree_digest(out) == tree_digest(tmp_path / "clean")


A_TOOL_THAT_RENDERS = """
import sys
print("main script run", flush=True)  # in a tool: torch and Lightning load here
from _synth_fixtures import tiny_config
from synth.render import render_dataset
if __name__ == "__main__":
    render_dataset(tiny_config(), sys.argv[1], 8, 2, seed=7, workers=2, progress=False)
"""


def test_render_workers_do_not_run_the_tools_script(tmp_path: Path) -> None:
    """Spawned workers re-imported the main script, and with it everything a tool imports
    (0.8 GB a worker): tools/render.py workers=2 took longer than workers=1."""
    script = tmp_path / "tool.py"
    script.write_text(A_TOOL_THAT_RENDERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("main script run") == 1
    render(tmp_path / "alone", n=8, shard=2)
    assert tree_digest(tmp_path / "out") == tree_digest(tmp_path / "alone")


def test_shard_blocks_are_disjoint_and_cover_the_dataset(tmp_path: Path) -> None:
    a = render(tmp_path, n=20, shard_start=0, shard_count=2)
    assert not a["complete"] and not (tmp_path / CARD).exists()
    assert sorted(p.name for p in tmp_path.glob("shard-?????")) == [shard_name(0), shard_name(1)]
    b = render(tmp_path, n=20, shard_start=2, shard_count=10)
    assert a["selected_shards"] == [0, 2] and b["selected_shards"] == [2, 5]
    assert b["rendered_shards"] == 3 and b["complete"]
    indices = [s.meta["index"] for s in ShardedDataset(tmp_path)]
    assert indices == list(range(20))


def test_resuming_with_another_config_is_refused(tmp_path: Path) -> None:
    render(tmp_path, n=4)
    with pytest.raises(
        DataError, match=r"render_spec.json: .* other settings \(synth\.p_no_crack\)"
    ):
        render_dataset(tiny_config(p_no_crack=0.5), tmp_path, 4, 4, seed=7, progress=False)
    with pytest.raises(DataError, match=r"other settings \(num_samples\)"):
        render(tmp_path, n=8)
    many = tiny_config(p_no_crack=0.5, ignore_band=1)
    many["crack"].update(depth=0.5, taper=0.1, step=2.0)
    with pytest.raises(DataError, match=r"other settings \(synth\.crack\.depth, .* and 1 more\)"):
        render_dataset(many, tmp_path, 4, 4, seed=7, progress=False)
    # A render that failed on a setting before its first shard (a drawn value no renderer
    # takes) left only its spec: the corrected rerun was refused as "rendered with other
    # settings", though nothing was. It takes the folder.
    for path in tmp_path.iterdir():
        if path.name != "render_spec.json":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert render(tmp_path, n=8)["rendered_samples"] == 8


def test_a_render_by_another_simulator_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec held the settings alone: a render resumed after an upgrade that changed the
    scenes mixed the two simulators' scenes under one card."""
    render(tmp_path / "a", n=8, shard=4, shard_count=1)
    new = SIMULATOR_VERSION + 1
    monkeypatch.setattr("synth.render.SIMULATOR_VERSION", new)
    with pytest.raises(
        DataError,
        match=rf"rendered by simulator version {new - 1}, and this is version {new}, whose scenes",
    ):
        render(tmp_path / "a", n=8, shard=4)
    assert not (tmp_path / "a" / shard_name(1)).exists()
    summary = render(tmp_path / "b", n=8, shard=4)
    assert json.loads((tmp_path / "b" / CARD).read_text())["simulator_version"] == new
    spec = json.loads((tmp_path / "b" / "render_spec.json").read_text())
    assert spec["simulator_version"] == new
    assert summary["complete"]


def test_a_spec_from_before_versions_were_recorded_reads_as_version_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders rendered before the version was recorded resume (their scenes are version 1's),
    and are refused by any later version."""
    monkeypatch.setattr("synth.render.SIMULATOR_VERSION", 1)
    render(tmp_path, n=8, shard=4, shard_count=1)
    spec_path = tmp_path / "render_spec.json"
    spec = json.loads(spec_path.read_text())
    del spec["simulator_version"]
    spec_path.write_text(json.dumps(spec))
    assert render(tmp_path, n=8, shard=4)["rendered_shards"] == 1
    monkeypatch.setattr("synth.render.SIMULATOR_VERSION", 2)
    with pytest.raises(DataError, match=r"rendered by simulator version 1, and this is vers"):
        render(tmp_path, n=8, shard=4)


@pytest.mark.parametrize(
    ("section", "knob", "value", "message"),
    [
        (
            "crack",
            "halo_sigma",
            0,
            r"^synth\.crack\.halo_sigma=0: its draws must be > 0 and <= 32$",
        ),
        ("crack", "step", {"uniform": [0, 2]}, r"crack\.step=.*: its draws must be from 0\.01 to"),
        ("crack", "width", {"normal": [3, 3]}, r"crack\.width=.*: its draws must be > 0"),
        ("camera", "jpeg_quality", 150, r"jpeg_quality=150: its draws must be from 1 to 100"),
        ("surface", "p_stain", 1.5, r"p_stain=1\.5: its draws must be from 0 to 1"),
        ("surface", "aggregate_radius", {"uniform": [0.05, 2]}, r"aggregate_radius=.*: .* >= 1$"),
        ("crack", "width_variation", -0.1, r"width_variation=-0\.1: its draws must be from 0 to"),
        (
            "surface",
            "speckle_density",
            -0.01,
            r"speckle_density=-0\.01: its draws must be from 0 t",
        ),
        ("surface", "mottle_coverage", 1.5, r"mottle_coverage=1\.5: its draws must be from 0 to 1"),
        # Measured ends (synth/render.py KNOB_BOUNDS): past them a scene took seconds to
        # minutes, gigabytes, failed in OpenCV or drew a blank image; each value here renders
        # fast at 64 px, so it is the bound that refuses it.
        ("crack", "num_branches", 101, r"num_branches=101: its draws must be from 0 to 100$"),
        ("crack", "step", {"uniform": [0.001, 2]}, r"step=.*: its draws must be from 0\.01 to"),
        ("crack", "length", 1001, r"length=1001: its draws must be > 0 and <= 1000$"),
        ("crack", "width_variation", 11, r"width_variation=11: .* from 0 to 10$"),
        ("crack", "branch_width_ratio", 1e40, r"branch_width_ratio=1e\+40: .* from 0 to 1000$"),
        ("surface", "speckle_density", 6, r"speckle_density=6: its draws must be from 0 to 5$"),
        ("surface", "mottle_cells", 2049, r"mottle_cells=2049: its draws must be from 0 to 2048$"),
        ("surface", "aggregate_fill", 11, r"aggregate_fill=11: its draws must be from 0 to 10$"),
        ("surface", "pore_radius", 1e6, r"pore_radius=1000000\.0: .* > 0 and <= 100000$"),
        ("camera", "blur_sigma", 33, r"blur_sigma=33: its draws must be > 0 and <= 32$"),
        ("camera", "perspective", 0.5, r"perspective=0\.5: its draws must be from 0 to 0\.33$"),
    ],
)
def test_a_knob_drawn_where_the_renderer_fails_or_draws_otherwise_is_refused(
    tmp_path: Path, section: str, knob: str, value: object, message: str
) -> None:
    """A zero blur or halo sigma failed inside OpenCV mid-render (a traceback, shards already
    written), a zero step divided by zero, a negative normal draw of a width failed on its
    sample; a share of 1.5 or a JPEG quality of 150 rendered as something else, silently."""
    cfg = tiny_config()
    cfg[section][knob] = value
    with pytest.raises(ConfigError, match=message):
        render_dataset(cfg, tmp_path / "out", 4, 4, seed=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_crack_knobs_whose_ends_together_walk_millions_of_steps_are_refused(
    tmp_path: Path,
) -> None:
    """Each knob within its own bounds, a long crack in fine steps walked 200 million steps of a
    2048 px scene: 21 s, then a MemoryError at 4 GB, shards of the render already written."""
    cfg = tiny_config()
    cfg["crack"].update(length=1000, step={"uniform": [0.02, 2]}, num_cracks=2, num_branches=0)
    with pytest.raises(
        ConfigError,
        match=r"^synth\.crack: a scene may walk 6,400,000 crack "
        r"steps, more than 4,000,000 \(num_cracks up to 2 x length up to 1000 x "
        r"size 64 / step from 0\.02, x 1 with the branches\)",
    ):
        render_dataset(cfg, tmp_path / "out", 4, 4, seed=0, progress=False)
    assert not (tmp_path / "out").exists()
    cfg["crack"]["step"] = {"uniform": [0.04, 2]}  # 3.2 million: taken
    assert render_dataset(cfg, tmp_path / "ok", 1, 1, seed=0, progress=False)["complete"]


def test_pores_whose_count_and_size_together_cover_too_much_are_refused() -> None:
    """Pores are drawn one at a time over their area: each knob within its bounds, 100,000
    pores of radius 1000 ran past 60 s a 2048 px scene, 20,000 as wide as it 40 s."""
    cfg = tiny_config(size=2048)  # checked, not rendered
    cfg["surface"].update(pore_count=100_000, pore_radius=1000)
    with pytest.raises(
        ConfigError,
        match=r"^synth\.surface: a scene's pores may cover 314,159,265,359 px, more than "
        r"10,000,000,000 \(pore_count up to 100000 x pi x pore_radius up to 1000 squared, each "
        r"at most size 2048 squared\): .* draw fewer or smaller pores$",
    ):
        checked_scene_config(cfg)
    cfg["surface"].update(pore_count={"randint": [0, 100_000]}, pore_radius={"uniform": [1, 200]})
    with pytest.raises(ConfigError, match=r"pore_count up to 100000 x pi x pore_radius up to 200"):
        checked_scene_config(cfg)
    cfg["surface"]["pore_radius"] = 4  # 100,000 pores the default's size: 2 s, taken
    checked_scene_config(cfg)
    cfg["surface"].update(pore_count=2000, pore_radius=1e5)  # 2,000 over the scene: 2 s
    checked_scene_config(cfg)


def test_branches_walked_in_another_draw_of_step_count_in_the_crack_walk() -> None:
    """A branch's length is measured in one draw of ``step`` and walked in another: with step
    drawn from 0.01 or 100 the fine steps alone passed the count (397,000) and one 256 px scene
    took 73 s and 18 GB (0.01 or 1e5: a MemoryError asking 1.8 TiB). Without branches, or at
    one step, the range adds nothing."""
    cfg = tiny_config(size=2048)  # checked, not rendered
    cfg["crack"].update(step={"choice": [0.5, 100]}, num_cracks=3, length=2.2)
    cfg["crack"].update(num_branches=3, branch_length=0.45)
    with pytest.raises(
        ConfigError,
        match=r"x 271 with the branches, each walked in up to 200 times its length's steps\): "
        r".* lengthen the steps, or narrow step's range$",
    ):
        checked_scene_config(cfg)
    cfg["crack"]["num_branches"] = 0
    checked_scene_config(cfg)
    cfg["crack"].update(num_branches=3, step=0.5)
    checked_scene_config(cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crack": {"widht": 4}}, r"^synth\.crack\.widht: not a simulator knob \(did you mean "),
        ({"sise": 64}, r"^synth\.sise: not a simulator knob \(did you mean synth\.size\?\)$"),
        ({"crack": {"width": None}}, r"^synth\.crack\.width: missing from the simulator config"),
        ({"crack": {"depth": "abc"}}, r"^synth\.crack\.depth='abc': its draws must be numbers$"),
        ({"crack": {"p_filled": True}}, r"^synth\.crack\.p_filled=True: its draws must be numb"),
        ({"crack": {"num_cracks": {"uniform": [1, 3]}}}, r"num_cracks=.*: .* whole numbers"),
        ({"camera": {"jpeg_quality": 80.5}}, r"jpeg_quality=80\.5: its draws must be whole"),
        ({"surface": {"tint": {"choice": ["grey", "purple"]}, "p_paint": 0}}, r"tint=.*: .*'grey'"),
        ({"camera": 3}, r"^synth\.camera=3: expected a section of knobs$"),
        ({"p_no_crack": {"uniform": [0.1, 0.2]}}, r"^synth\.p_no_crack=.*: one number for the "),
        ({"ignore_band": {"randint": [0, 2]}}, r"^synth\.ignore_band=.*: one number for the "),
    ],
)
def test_a_knob_misnamed_left_out_or_of_another_type_is_refused_before_any_work(
    tmp_path: Path, change: dict, message: str
) -> None:
    """A typo (``+synth.crack.widht=4``) was ignored without a word; a knob left out (the
    README's ``~synth.crack.width`` then a misspelt ``+``) or a word where a number goes
    (``synth.crack.depth=abc``) failed mid-render, a worker's traceback after shards were
    written; a tint drawn now and then failed at its first draw; a float count was
    truncated and ``p_filled=true`` escaped the share's bounds."""
    cfg = tiny_config()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            for knob, knob_value in value.items():
                if knob_value is None:
                    del cfg[key][knob]
                else:
                    cfg[key][knob] = knob_value
        else:
            cfg[key] = value
    with pytest.raises(ConfigError, match=message):
        render_dataset(cfg, tmp_path / "out", 40, 4, seed=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_knob_list_is_the_default_configs_and_every_knob_the_renderer_reads() -> None:
    """``SCENE_KNOBS`` decides which names are typos: it must match conf/synth/default.yaml
    and hold every knob a scene draws (all distractors on, so each is read)."""
    from synth.render import SCENE_KNOBS

    cfg = tiny_config(size=32, p_no_crack=0.0)
    listed = {f"{s}.{n}" if s else n for s, names in SCENE_KNOBS.items() for n in names}
    written = {f"{s}.{n}" for s in ("surface", "crack", "camera") for n in cfg[s]}
    assert listed == written | {n for n in cfg if not isinstance(cfg[n], dict)}
    for section in ("surface", "crack", "camera"):
        for name in cfg[section]:
            if name.startswith("p_"):
                cfg[section][name] = 1.0
    cfg["crack"]["p_filled"] = 0.0  # a filled crack reads other knobs than a dark one
    read = set()
    for index in range(4):
        read |= set(render_crack_scene(cfg, 0, index).meta["params"])
    assert read and read <= listed


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"shard_start": 3}, r"shard_start=3: past the last shard \(2\) of 12 samples in shards"),
        ({"shard_count": 0}, r"shard_count=0: selects no shard"),
        ({"cfg": tiny_config(size="big")}, r"synth\.size='big': expected a whole number"),
        ({"shard_count": "abc"}, r"^shard_count='abc': expected a whole number >= 0$"),
        ({"cfg": tiny_config(size=100000)}, r"^synth\.size=100000: at most 2048 px a side"),
        ({"cfg": tiny_config(p_no_crack=1.5)}, r"^synth\.p_no_crack=1\.5: its draws must be fr"),
        ({"shard_count": 1.5}, r"^shard_count=1\.5: expected a whole number >= 0$"),
        ({"seed": None}, r"^seed=None: expected a whole number >= 0$"),
        ({"n": 0}, r"^num_samples=0: expected a whole number >= 1$"),
        ({"workers": -1}, r"^workers=-1: expected a whole number >= 0$"),
        (  # shard-100000 was written, and no reader lists it (``shard-?????``)
            {"n": 100_001, "shard": 1, "shard_start": 100_000},
            r"^num_samples=100001, shard_size=1: 100001 shards, at most 100000 \(folders shard-",
        ),
    ],
)
def test_a_render_that_would_do_nothing_or_fail_leaves_no_folder(
    tmp_path: Path, setting: dict, message: str
) -> None:
    """Refused before the folder and its spec exist: a spec written by a failing run made the
    corrected rerun look like another config's."""
    with pytest.raises(ConfigError, match=message):
        render(tmp_path / "out", **setting)
    assert not (tmp_path / "out").exists()


def test_the_render_tools_stdout_is_its_json_summary(tmp_path: Path) -> None:
    """The progress bar went to stdout ahead of the summary: ``render.py > out.json`` held
    a bar and then the JSON."""
    from _cli_fixtures import run_tool

    out = tmp_path / "scenes"
    render = ["num_samples=4", "shard_size=2", "synth.size=32", f"out_dir={out}", "workers=1"]
    render.append(f"paths.log_dir={tmp_path / 'logs'}")  # Hydra's run folder, not the checkout's
    proc = run_tool("render", *render)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["rendered_samples"] == 4
    assert "rendering" in proc.stderr  # the bar, where a terminal still shows it
    bar = next(line for line in proc.stderr.splitlines() if "rendering" in line)
    assert len(re.findall("━+", bar)) == 1 and "4/4" in bar  # one bar (two were drawn)

    # resumed with one of two shards gone: the bar counts the whole set, not what is left
    shutil.rmtree(out / shard_name(1))
    proc = run_tool("render", *render)
    assert json.loads(proc.stdout)["rendered_samples"] == 2
    assert "4/4" in next(line for line in proc.stderr.splitlines() if "rendering" in line)


def test_shards_of_unknown_making_or_a_damaged_spec_are_refused(tmp_path: Path) -> None:
    """A folder whose spec is gone had its shards adopted as this render's, and the card then
    recorded this render's seed over scenes of another; a damaged spec was a traceback."""
    render(tmp_path / "a", n=8, shard=2)
    (tmp_path / "a" / "render_spec.json").unlink()
    (tmp_path / "a" / CARD).unlink()
    with pytest.raises(DataError, match=r"holds shards but no render_spec\.json"):
        render(tmp_path / "a", n=8, shard=2, seed=1)
    assert not (tmp_path / "a" / CARD).exists()
    render(tmp_path / "b", n=8, shard=2)
    (tmp_path / "b" / "render_spec.json").write_text('{"hash": ')
    with pytest.raises(DataError, match=r"render_spec\.json: unreadable JSON"):
        render(tmp_path / "b", n=8, shard=2)


@pytest.mark.parametrize("out_dir", ["", " ", None])
def test_a_render_into_no_named_folder_is_refused(out_dir) -> None:
    """``out_dir=''`` rendered into the folder the command ran in (the checkout's root)."""
    with pytest.raises(ConfigError, match=r"^out_dir=.*: name the folder to render into$"):
        render_dataset(tiny_config(), out_dir, 4, 2, seed=7, progress=False)


@pytest.mark.parametrize(
    ("sig", "group", "said"),
    [
        (signal.SIGINT, True, "interrupted by Ctrl-C"),
        (signal.SIGTERM, False, "stopped by SIGTERM"),
        (signal.SIGTERM, True, "stopped by SIGTERM"),
    ],
    ids=["ctrl-c", "kill", "scancel"],
)
def test_a_stop_mid_render_is_one_message_and_the_rerun_finishes(
    tmp_path: Path, sig: signal.Signals, group: bool, said: str
) -> None:
    """A terminal's Ctrl-C reaches the render workers too, and so does Slurm's SIGTERM; a
    ``kill`` reaches the tool alone. SIGTERM used to end Python at once, without a word.
    Whichever the stop, the shards in flight finish, those not begun are cancelled, the tool
    says how to resume (no traceback per worker) and exits 128 + the signal."""
    from _cli_fixtures import run_tool, signal_when

    out = tmp_path / "synthetic"
    overrides = [
        f"paths.root_dir={tmp_path}",
        f"out_dir={out}",
        "num_samples=600",
        "shard_size=10",
        "workers=2",
        "progress=false",
        "synth.size=64",
    ]
    log = tmp_path / "stopped.log"
    ready = lambda: is_shard_complete(out, 3)  # noqa: E731
    code = signal_when("render", overrides, ready, sig, log, group=group)
    stderr = log.read_text()
    assert code == 128 + sig, stderr[-3000:]
    assert not is_shard_complete(out, 59), "render finished before the stop; test is moot"
    assert stderr.count(said) == 1 and "rerun the same command" in stderr
    assert not list(out.glob("*.tmp-*")), "a worker died mid-shard instead of finishing it"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    proc = run_tool("render", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(is_shard_complete(out, s) for s in range(60))


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    from _cli_fixtures import run_tool

    taken = tmp_path / "synthetic"
    taken.write_text("not a folder")
    proc = run_tool("render", f"paths.root_dir={tmp_path}", f"out_dir={taken}", "num_samples=2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: {taken}: File exists"


def test_a_second_ctrl_c_drops_the_shards_in_flight_and_exits(tmp_path: Path) -> None:
    """The first Ctrl-C waits for the shards in flight; a second one means now. It used to
    break the executor's shutdown: the tool printed its message, then hung at exit."""
    from _cli_fixtures import run_tool, signal_when

    out = tmp_path / "synthetic"
    overrides = [
        f"paths.root_dir={tmp_path}",
        f"out_dir={out}",
        "num_samples=3000",
        "shard_size=1000",  # seconds a shard: the second Ctrl-C lands while one is in flight
        "workers=2",
        "progress=false",
        "synth.size=64",
    ]
    log = tmp_path / "stopped.log"
    ready = lambda: is_shard_complete(out, 0)  # noqa: E731
    code = signal_when("render", overrides, ready, signal.SIGINT, log, again_after=0.3)
    stderr = log.read_text()
    assert code == 130, stderr[-3000:]
    assert not is_shard_complete(out, 2), "shard 2 finished: the second Ctrl-C came too late"
    assert "(stop again, Ctrl-C or SIGTERM, to drop them)" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    proc = run_tool("render", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(is_shard_complete(out, s) for s in range(3)) and not list(out.glob("*.tmp-*"))


@pytest.mark.usefixtures("python_signal_defaults")  # a background run ignores Ctrl-C
def test_a_second_stop_ends_the_pool_before_the_render_returns(tmp_path: Path, monkeypatch) -> None:
    """A second stop while the shards in flight finish: the pool's manager thread had been
    left running (Python 3.11's ``Thread.join`` marks a thread it was interrupted waiting
    for as ended), to die at exit on the pipes the render had closed: a traceback after the
    tool's last line, once in a few stops."""
    import threading
    from concurrent.futures.process import _ExecutorManagerThread

    thread_errors: list = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    out = tmp_path / "synthetic"

    def stop_twice() -> None:
        deadline = time.monotonic() + 120
        while not is_shard_complete(out, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=stop_twice, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        render(out, workers=2, n=3000, shard=1000)  # seconds a shard
    managers = [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)]
    assert not managers, "the pool's manager thread outlived the render"
    time.sleep(0.5)
    assert not thread_errors
    assert not is_shard_complete(out, 2), "shard 2 finished: the second stop came too late"


def test_render_workers_end_with_their_killed_main_process(tmp_path: Path) -> None:
    """``kill -9`` or the OOM killer on the main process alone: its pool workers waited for
    work forever (and ignore SIGTERM, so a plain ``pkill`` left them too)."""
    from _cli_fixtures import ROOT, tool_cmd, tool_env

    out = tmp_path / "synthetic"
    overrides = [f"paths.root_dir={tmp_path}", f"out_dir={out}", "num_samples=2000"]
    cmd = tool_cmd("render", *overrides, "shard_size=10", "workers=2", "synth.size=64")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not is_shard_complete(out, 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.kill()  # the main process alone; its workers share its process group
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # raises once no process of the group is left
            except ProcessLookupError:
                return
            time.sleep(0.1)
        pytest.fail("render workers outlived their main process by 30 s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_render_workers_are_at_most_one_a_cpu_and_one_a_shard(monkeypatch, capsys) -> None:
    """``workers=1000`` started a process each (numpy and OpenCV in every one)."""
    from synth.render import usable_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert usable_workers(1000, 50) == 3
    assert capsys.readouterr().err == "workers=1000: 3 CPUs here, rendering with 3\n"
    assert usable_workers(8, 2) == 2 and usable_workers(2, 50) == 2 and usable_workers(0, 5) == 1
    assert capsys.readouterr().err == ""  # fewer shards than CPUs, or as asked: nothing said
