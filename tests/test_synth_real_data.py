"""Real-folder reader: each bad input gets a one-line error naming the file (library and CLI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from _synth_fixtures import ROOT
from omegaconf import OmegaConf

from synth.io import CARD, DataError, ImageFolder, read_image, unread_entries


def make_data(root: Path) -> Path:
    """A tiny valid DeepCrack-like layout: train_img, test_img + test_lab."""
    rng = np.random.default_rng(0)
    for sub in ("train_img", "test_img", "test_lab"):
        (root / sub).mkdir(parents=True)
    for stem in ("a", "b"):
        img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "train_img" / f"{stem}.jpg"), img)
        cv2.imwrite(str(root / "test_img" / f"{stem}.jpg"), img)
        lab = np.zeros((24, 32), np.uint8)
        lab[10:13, :] = 255
        cv2.imwrite(str(root / "test_lab" / f"{stem}.png"), lab)
    return root


def missing_folder(root: Path) -> tuple[Path, str]:
    shutil.rmtree(root / "test_lab")
    return root / "test_lab", "mask folder not found"


def empty_folder(root: Path) -> tuple[Path, str]:
    for p in (root / "train_img").iterdir():
        p.unlink()
    return root / "train_img", "no images"


def corrupt_image(root: Path) -> tuple[Path, str]:
    bad = root / "test_img" / "b.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    return bad, "unreadable or corrupt image"


def bad_mask(root: Path, stem: str, lab: np.ndarray) -> Path:
    bad = root / "test_lab" / f"{stem}.png"
    cv2.imwrite(str(bad), lab)
    return bad


def size_mismatch(root: Path) -> tuple[Path, str]:
    return bad_mask(
        root, "a", np.zeros((10, 10), np.uint8)
    ), "10x10 (HxW) differs from its image's 24x32"


def bad_values(root: Path) -> tuple[Path, str]:
    lab = np.zeros((24, 32), np.uint8)
    lab[5, 5] = 7
    return bad_mask(root, "b", lab), "outside the class map"


def jpeg_mask(root: Path) -> tuple[Path, str]:
    lab = np.zeros((24, 32), np.uint8)
    lab[10:13, 3:29] = 255
    (root / "test_lab" / "a.png").unlink()
    bad = root / "test_lab" / "a.jpg"
    cv2.imwrite(str(bad), lab, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return bad, "JPEG blurs a mask's edges into other values: save masks as PNG"


def colour_mask(root: Path) -> tuple[Path, str]:
    lab = np.zeros((24, 32, 3), np.uint8)
    lab[10:13, :, 2] = 255  # red cracks on black
    return bad_mask(root, "a", lab), "a colour mask; store one grey channel"


def zero_one_mask(root: Path) -> tuple[Path, str]:
    lab = np.zeros((24, 32), np.uint8)
    lab[10:13, :] = 1
    message = "values [1] are outside the class map [0, 255]; a 0/1 mask? store crack as 255"
    return bad_mask(root, "b", lab), message


def sixteen_bit_mask(root: Path) -> tuple[Path, str]:
    lab = np.zeros((24, 32), np.uint16)
    lab[10:13, :] = 65535
    message = "values [65535] are outside the class map [0, 255]; a 16-bit mask: save it as 8-bit"
    return bad_mask(root, "b", lab), message


def turned_mask(root: Path) -> tuple[Path, str]:
    message = "mask size 32x24 (HxW) differs from its image's 24x32 (turned: a photo's EXIF"
    return bad_mask(root, "a", np.zeros((32, 24), np.uint8)), message


def two_images_one_stem(root: Path) -> tuple[Path, str]:
    shutil.copy(root / "test_img" / "a.jpg", root / "test_img" / "a.png")
    return root / "test_img", "a.jpg and a.png share the stem 'a'"


CASES = [
    missing_folder,
    empty_folder,
    corrupt_image,
    size_mismatch,
    bad_values,
    jpeg_mask,
    colour_mask,
    zero_one_mask,
    sixteen_bit_mask,
    turned_mask,
    two_images_one_stem,
]


def read_all(root: Path) -> None:
    ImageFolder(root / "train_img").validate()
    ImageFolder(root / "test_img", root / "test_lab").validate()


def test_valid_layout_reads(tmp_path: Path) -> None:
    read_all(make_data(tmp_path))


def test_one_check_finds_every_bad_file_of_a_folder(tmp_path: Path) -> None:
    root = make_data(tmp_path)
    for i in range(7):
        cv2.imwrite(str(root / "train_img" / f"c{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    for stem in ("a", "c1", "c3", "c4", "c5", "c6"):
        (root / "train_img" / f"{stem}.jpg").write_bytes(b"")
    with pytest.raises(DataError) as err:
        ImageFolder(root / "train_img").validate()
    first, rest = str(err.value).split(" (and 5 more bad files: ")
    assert first == f"{root / 'train_img' / 'a.jpg'}: unreadable or corrupt image"
    assert rest.count("unreadable") == 4 and "c5.jpg" in rest and rest.endswith("; ...)")
    assert "c6.jpg" not in rest and "c0.jpg" not in rest


def test_a_refusal_points_to_the_rest_only_where_some_files_pass(tmp_path: Path) -> None:
    """``rest_hint`` (predict's skip_bad_photos) ends the line where some photos are good: a
    folder of bad ones alone was pointed to an option that then refused it in turn."""
    root = make_data(tmp_path)
    (root / "train_img" / "a.jpg").write_bytes(b"")
    folder = ImageFolder(root / "train_img")
    with pytest.raises(DataError, match=r"a\.jpg: unreadable or corrupt image; skip them$"):
        folder.validate(rest_hint="skip them")
    (root / "train_img" / "b.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"\(and 1 more bad files: .*b\.jpg.*\)$"):
        folder.validate(rest_hint="skip them")


def test_a_photo_the_decoder_filled_in_is_refused_by_name(tmp_path: Path, capfd) -> None:
    """libjpeg decodes damaged data into grey smears and says so on stderr, naming no file:
    the check passed such a photo (76 % of a DeepCrack photo's pixels off by 40 grey levels)."""
    root = make_data(tmp_path)
    rng = np.random.default_rng(0)
    _, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (128, 160, 3), dtype=np.uint8))
    damaged = bytearray(jpeg.tobytes())
    for i in range(2000, len(damaged) - 2, 97):
        damaged[i] = 0
    (root / "train_img" / "c.jpg").write_bytes(damaged)
    assert read_image(root / "train_img" / "c.jpg").shape == (128, 160, 3)  # it decodes
    capfd.readouterr()
    with pytest.raises(DataError) as err:
        ImageFolder(root / "train_img").validate()
    assert str(err.value).startswith(f"{root / 'train_img' / 'c.jpg'}: damaged image data")
    assert "Corrupt JPEG data" in str(err.value) and not capfd.readouterr().err
    assert ImageFolder(root / "test_img", root / "test_lab").validate() == 2
    # each read, as predict and evaluate read a folder (they do not validate it first)
    folder = ImageFolder(root / "train_img")
    with pytest.raises(DataError, match=r"c\.jpg: damaged image data"):
        folder[[p.name for p in folder.images].index("c.jpg")]


def test_hidden_files_and_folders_are_not_photos_and_masks_match_in_any_case(
    tmp_path: Path,
) -> None:
    root = make_data(tmp_path)
    (root / "train_img" / "._a.jpg").write_bytes(b"macOS resource fork")
    (root / "train_img" / "batch2.jpg").mkdir()
    (root / "test_lab" / "a.png").rename(root / "test_lab" / "a.PNG")
    (root / "test_lab" / "b.png").rename(root / "test_lab" / "b.bmp")
    read_all(root)
    assert [p.name for p in ImageFolder(root / "train_img").images] == ["a.jpg", "b.jpg"]
    masks = ImageFolder(root / "test_img", root / "test_lab").masks
    assert [m.name for m in masks] == ["a.PNG", "b.bmp"]
    # a second mask of one stem was passed over for the first kind in a fixed order, without
    # a word (predict's b.png beside a user's b.bmp: the model scored against itself)
    cv2.imwrite(str(root / "test_lab" / "b.jpeg"), np.zeros((24, 32), np.uint8))
    with pytest.raises(DataError, match=r"test_lab: b.bmp and b.jpeg share the stem 'b'"):
        ImageFolder(root / "test_img", root / "test_lab")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_imagefolder_error_names_the_file(
    tmp_path: Path, case: Callable[[Path], tuple[Path, str]]
) -> None:
    bad, message = case(make_data(tmp_path))
    with pytest.raises(DataError) as err:
        read_all(tmp_path)
    assert str(bad) in str(err.value) and message in str(err.value)


def check_data(data_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """tools/check_data.py on ``data_dir``; make_data's 24x32 photos against 16 px GAN crops
    unless ``overrides`` set the crop."""
    if not any(o.startswith("gan_data.crop_size=") for o in overrides):
        overrides = (*overrides, "gan_data.crop_size=16")
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "check_data.py"),
            f"paths.data_dir={data_dir}",
            f"paths.log_dir={data_dir}/logs",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_check_data_cli_accepts_valid_data(tmp_path: Path) -> None:
    result = check_data(make_data(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout
    notes = [line for line in result.stdout.splitlines() if "note:" in line]
    assert notes == [f"note: no {tmp_path}/train_lab: the oracle row (real labels, the upper "
                     "bound) cannot run; no other row needs labels"]  # fmt: skip
    # The oracle's labels are decoded too: a corrupt one failed the main job at its last row.
    (tmp_path / "train_lab").mkdir()
    for stem in ("a", "b"):
        shutil.copy(tmp_path / "test_lab" / f"{stem}.png", tmp_path / "train_lab")
    result = check_data(tmp_path)
    assert (
        result.returncode == 0 and f"ok: {tmp_path}/train_img: 2 images with masks" in result.stdout
    )
    (tmp_path / "train_lab" / "b.png").write_bytes(b"\x89PNG cut short")
    result = check_data(tmp_path)
    assert result.returncode == 1 and f"{tmp_path}/train_lab/b.png" in result.stderr
    # An unlabeled folder given without its masks key (a traceback), and no folder at all
    # (it passed, having checked nothing).
    result = check_data(tmp_path, f"folders=[{{images:'{tmp_path}/train_img'}}]")
    assert result.returncode == 0 and f"ok: {tmp_path}/train_img: " in result.stdout
    result = check_data(tmp_path, "folders=[]")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: folders=[]: expected one folder or more")


def test_check_data_takes_a_folder_of_photos_alone(tmp_path: Path) -> None:
    """A user with unlabeled photos alone: the check failed on the missing test folders, the
    pipeline's first step in the README. It says there is nothing to score and how to run;
    one of the two test folders missing is still an error."""
    root = make_data(tmp_path / "data")
    shutil.rmtree(root / "test_img")
    shutil.move(root / "test_lab", tmp_path / "test_lab")
    result = check_data(root)
    assert result.returncode == 0, result.stderr
    assert f"note: no {root}/test_img: nothing to score; " in result.stdout
    assert "experiment=label_free" in result.stdout
    shutil.move(tmp_path / "test_lab", root / "test_lab")
    result = check_data(root)
    assert result.returncode == 1 and "test_img: image folder not found" in result.stderr


def test_check_data_refuses_a_photo_smaller_than_the_gans_crop_as_the_pipeline_does(
    tmp_path: Path,
) -> None:
    """A 40x30 thumbnail among the photos: check_data said "ok", then the pipeline refused
    it. The same line, and the same setting that changes the crop."""
    root = make_data(tmp_path)
    result = check_data(root, "gan_data.crop_size=128")  # 24x32 photos: the default crop
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"error: {root}/train_img/a.jpg: 24x32 px (HxW), smaller than the 128 px a side the "
        "GAN's crops take (gan_data.crop_size) (and 1 more bad files: "
    )
    assert "test_img" not in result.stderr  # segmented at their own size: no crop
    assert check_data(root, "gan_data.crop_size=16").returncode == 0
    conf = ROOT / "conf"  # its default crop is the main job's GAN's
    crop = OmegaConf.load(conf / "pipeline.yaml").gan_data.crop_size
    assert OmegaConf.load(conf / "check_data.yaml").gan_data.crop_size == crop


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("gan_data.crop_size=abc", "error: gan_data.crop_size='abc': expected a whole number >= 1"),
        (
            "folders=[{images:/photos,min_side:x}]",
            "error: folders: min_side='x' of /photos: expected a whole number of px >= 0 (or null)",
        ),
    ],
    ids=["crop_size", "min_side"],
)
def test_check_data_refuses_a_crop_that_is_no_number_in_one_line(
    tmp_path: Path, capsys, setting: str, said: str
) -> None:
    """Each was a traceback once the first photo had been read (``'<' not supported``)."""
    from _cli_fixtures import tool_exit_code

    code = tool_exit_code("check_data", f"paths.data_dir={make_data(tmp_path)}", setting)
    assert (code, capsys.readouterr().err.strip()) == (1, said)


def test_check_data_says_what_it_skipped(tmp_path: Path) -> None:
    """Photos saved as WebP or sorted into a subfolder, a mask whose photo is gone: valid
    data, but a user should hear that they are not read."""
    root = make_data(tmp_path)
    for name in ("w.webp", "h.jpe"):
        (root / "train_img" / name).write_bytes(b"x")
    (root / "train_img" / "more").mkdir()
    (root / "train_img" / "moved.jpg").symlink_to(tmp_path / "elsewhere.jpg")  # skipped silently
    shutil.copy(root / "test_lab" / "a.png", root / "test_lab" / "gone.png")
    result = check_data(root)
    assert result.returncode == 0, result.stderr
    notes = [line.strip() for line in result.stdout.splitlines() if "note:" in line]
    assert notes == [
        f"note: no {root}/train_lab: the oracle row (real labels, the upper bound) cannot run; "
        "no other row needs labels",
        "note: 2 files of other kinds (photos: .jpg .jpeg .png .bmp .tif .tiff), not read: "
        "h.jpe, w.webp",
        "note: 1 subfolder, not read: more",
        "note: 1 link to nothing, not read: moved.jpg",
        "note: 1 mask with no photo of its stem: gone.png",
    ]


def test_check_data_cli_says_each_bad_folder_in_one_line(tmp_path: Path) -> None:
    """Every case of CASES in one run (the tool checks every folder it is given, one tool
    start instead of one per case): one ``error:`` line each, naming the file and problem."""
    folders, said = [], {}
    for case in CASES:
        root = make_data(tmp_path / case.__name__)
        said[case.__name__] = case(root)
        folders.append(f"{{images:'{root}/train_img',masks:null}}")
        folders.append(f"{{images:'{root}/test_img',masks:'{root}/test_lab'}}")
    result = check_data(tmp_path, f"folders=[{','.join(folders)}]")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(CASES), result.stderr
    for name, (bad, message) in said.items():
        (line,) = [line for line in lines if f"{tmp_path / name}/" in line]
        assert line.startswith("error: ") and str(bad) in line and message in line, line


def test_check_data_reports_every_bad_folder_and_a_missing_mask_beside_bad_files(
    tmp_path: Path,
) -> None:
    """The check stopped at the first bad folder, and a photo with no mask failed its folder
    before any file was read: mending one problem a run showed the next."""
    root = make_data(tmp_path)
    (root / "train_img" / "a.jpg").write_bytes(b"not a jpeg")
    (root / "test_lab" / "a.png").unlink()
    (root / "test_img" / "b.jpg").write_bytes(b"not a jpeg either")
    result = check_data(root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    train, test = result.stderr.strip().splitlines()
    assert train == f"error: {root / 'train_img' / 'a.jpg'}: unreadable or corrupt image"
    assert test.startswith(f"error: {root / 'test_img' / 'a.jpg'}: no mask of its stem in ")
    assert f"{root / 'test_img' / 'b.jpg'}: unreadable or corrupt image" in test
    assert "(and 1 more bad files: " in test and "ok:" not in result.stdout
    with pytest.raises(DataError, match="no mask for 1 image"):  # training fails at once
        ImageFolder(root / "test_img", root / "test_lab")


def test_masks_named_otherwise_than_their_photos_are_named_with_the_rule(tmp_path: Path) -> None:
    """``p0_mask.png``: "no mask for 2 image(s), e.g. a.jpg" named neither the masks the
    folder held nor the rule they break."""
    root = make_data(tmp_path)
    for mask in sorted((root / "test_lab").glob("*.png")):
        mask.rename(mask.with_name(f"{mask.stem}_mask.png"))
    with pytest.raises(DataError) as err:
        ImageFolder(root / "test_img", root / "test_lab")
    assert str(err.value) == (
        f"{root / 'test_lab'}: no mask for 2 image(s) (a.jpg, b.jpg); 2 mask(s) match no "
        "photo's stem (e.g. a_mask.png): a mask is named as its photo, another extension allowed"
    )


def test_12_and_16_bit_photos_read_as_bright_as_the_8_bit_file(tmp_path: Path) -> None:
    """12-bit camera data right-aligned in a 16-bit PNG read 1/16 as bright (values 0..15)."""
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint32)
    cv2.imwrite(str(tmp_path / "p8.png"), photo.astype(np.uint8))
    cv2.imwrite(str(tmp_path / "p12.png"), (photo * 4095 // 255).astype(np.uint16))
    cv2.imwrite(str(tmp_path / "p16.png"), (photo * 257).astype(np.uint16))
    cv2.imwrite(str(tmp_path / "grey12.png"), (photo[..., 0] * 4095 // 255).astype(np.uint16))
    eight = read_image(tmp_path / "p8.png")
    assert np.array_equal(read_image(tmp_path / "p12.png"), eight)
    assert np.array_equal(read_image(tmp_path / "p16.png"), eight)
    grey = read_image(tmp_path / "grey12.png")
    assert np.array_equal(grey[..., 0], eight[..., 2]) and np.array_equal(
        grey[..., 1], grey[..., 0]
    )
    cv2.imwrite(str(tmp_path / "float.tiff"), photo.astype(np.float32) / 255)
    with pytest.raises(DataError, match=r"float\.tiff: float32 pixels; expected 8- or 16-bit"):
        read_image(tmp_path / "float.tiff")


def test_a_folder_that_is_a_file_or_relative_is_said_so(tmp_path: Path, monkeypatch) -> None:
    """A relative path is read from the current folder, not the checkout: the message says
    which; and a photo given as ``input_dir`` is not "not found"."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"a\.jpg: a file where the image folder should be$"):
        ImageFolder(tmp_path / "a.jpg")
    # SIM2REAL_DATA_DIR=a file: its train_img/ was "not found", as if the folder were
    with pytest.raises(DataError, match=r"a\.jpg: a file where a folder should be \(looking"):
        ImageFolder(tmp_path / "a.jpg" / "train_img")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError, match=rf"^photos: image folder not found \(relative to {tmp_path}\)$"
    ):
        ImageFolder("photos")


def test_a_folder_under_a_quoted_tilde_is_said_with_the_home_folder(tmp_path, monkeypatch) -> None:
    """``'paths.data_dir="~/photos"'`` (quoted past the shell and Hydra) was "~/photos: not
    found (relative to ...)", a folder named ``~`` there, with no word of why."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        ImageFolder("~/no-such-photos")
    home = Path.home() / "no-such-photos"
    assert str(err.value).endswith(f"; ~ is not expanded: write {home}")


def test_photos_in_the_data_folder_itself_are_said_where_they_go(tmp_path: Path) -> None:
    """A user's photo folder given as paths.data_dir, the photos in it and not in its
    train_img/: "train_img: image folder not found", of a folder full of photos."""
    for name in ("IMG_1.JPG", "IMG_2.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "train_img")
    assert str(err.value) == (
        f"{tmp_path / 'train_img'}: image folder not found; {tmp_path} holds 2 photos itself "
        f"(IMG_1.JPG, IMG_2.jpg): they go in {tmp_path / 'train_img'}/ (paths.data_dir is the "
        "folder above it)"
    )
    with pytest.raises(DataError, match=r"test_lab: mask folder not found$"):  # no hint
        ImageFolder(tmp_path, tmp_path / "test_lab")


@pytest.mark.parametrize(
    ("left", "said"),
    [({CARD}, "(a dataset card)"), ({"shard-00000/image"}, "(1 shard folder(s))")],
)
def test_a_sharded_set_with_no_complete_shard_is_said_as_such(
    tmp_path: Path, left: set, said: str
) -> None:
    """A set copied without its shards (the card alone), or a render stopped in its first
    shard, was "no images (.jpg, ...) in folder", as if photos were missing."""
    for name in left:
        (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        if name == CARD:
            (tmp_path / "set" / name).write_text("{}")
        else:
            (tmp_path / "set" / name).mkdir()
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "set")
    assert str(err.value) == (
        f"{tmp_path / 'set'}: a sharded dataset folder {said} with no complete shard "
        "(shard-*/manifest.jsonl): render it again, or copy its shards"
    )


def test_a_whole_sharded_set_given_for_photos_says_where_its_images_are(tmp_path: Path) -> None:
    """predict's input_dir (or recalibrate_bn_on) at a rendered set was told "no complete
    shard: render it again" of complete shards."""
    (tmp_path / "set" / "shard-00000" / "image").mkdir(parents=True)
    (tmp_path / "set" / "shard-00000" / "manifest.jsonl").write_text("")
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "set")
    assert str(err.value) == (
        f"{tmp_path / 'set'}: a sharded dataset (1 complete shard), not a folder of photos; "
        "its images are in its shard-*/image folders (evaluate takes it whole)"
    )


def test_a_folder_whose_photos_are_in_subfolders_says_they_are_not_looked_for(
    tmp_path: Path,
) -> None:
    """Said as "no images" alone; the note naming the subfolders came only after a run."""
    for sub in ("day1", "day2"):
        (tmp_path / "photos" / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "photos" / sub / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "photos")
    assert str(err.value).endswith(
        "in folder; photos in its 2 subfolder(s) (day1, day2) are not looked for"
    )


def test_a_folder_of_photos_of_another_kind_names_them_and_the_kinds_read(
    tmp_path: Path,
) -> None:
    """An iPhone's HEIC export was "no images (.jpg, ...) in folder", of a folder of photos."""
    (tmp_path / "photos").mkdir()
    for name in ("IMG_0001.HEIC", "IMG_0002.HEIC", "a.webp", "b.webp"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "photos")
    assert str(err.value).endswith(
        "in folder; its 4 files of other kinds (IMG_0001.HEIC, IMG_0002.HEIC, a.webp, ...) are "
        "not read: convert them to one of these"
    )
    for name in ("IMG_0002.HEIC", "a.webp", "b.webp"):
        (tmp_path / "photos" / name).unlink()
    with pytest.raises(DataError, match=r"1 file of another kind \(IMG_0001\.HEIC\) is not read"):
        ImageFolder(tmp_path / "photos")


def test_every_stem_two_photos_share_is_named_in_one_line(tmp_path: Path) -> None:
    """The first pair alone was named: a folder with several needed one run per pair."""
    for name in ("a.jpg", "a.png", "b.jpg", "b.bmp", "c.jpg"):
        (tmp_path / "photos").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "photos" / name), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path / "photos")
    assert str(err.value) == (
        f"{tmp_path / 'photos'}: a.jpg and a.png share the stem 'a' (and 1 more shared stems: "
        "b.bmp and b.jpg); masks, predictions and scores are named by stem: rename one"
    )


def test_a_tools_own_output_folders_in_its_photo_folder_are_not_said_as_skipped(
    tmp_path: Path,
) -> None:
    """predict with out_dir at (or inside) its input folder noted its own masks/ and
    overlays/ on every rerun as "subfolders, not read (photos are not looked for there)"."""
    root = make_data(tmp_path)
    photos = root / "test_img"
    for sub in ("masks", "overlays", "results/masks", "batch2"):
        (photos / sub).mkdir(parents=True)
    ours = [photos / "masks", photos / "overlays", photos / "results" / "masks"]
    assert unread_entries(photos, ours=ours) == ["1 subfolder, not read: batch2"]
    assert unread_entries(photos) == [
        "4 subfolders, not read (photos are not looked for there): batch2, masks, overlays, results"
    ]
