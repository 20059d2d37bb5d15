"""Dataset I/O shared by every stage: sharded synthetic datasets and folders of real images.

Sharded layout (chosen over WebDataset tars because every later stage needs random access by
index, the GAN translator writes a dataset of the same shape, and a person can open any sample
in an image viewer)::

    root/
      dataset_card.json                  config, versions, class map, statistics
      shard-00000/
        manifest.jsonl                   one JSON object per sample (index, stem, metadata)
        image/00000000.png               RGB
        semantic/00000000.png            uint8 class ids: 0 background, 1 crack, 255 ignore
        instance/00000000.png            uint16 crack instance ids (0 = none), optional

A shard is written to a temporary directory and renamed into place, so a shard directory that
exists is complete; a killed writer leaves only a ``*.tmp-*`` directory that the next run
deletes.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MANIFEST = "manifest.jsonl"
TEMP_INFIX = ".tmp-"  # <shard>.tmp-<pid>: a shard being written
CARD = "dataset_card.json"
#: Written by a render before its first shard; the card follows once every shard is written.
RENDER_SPEC = "render_spec.json"
IGNORE_INDEX = 255
CLASS_MAP = {0: "background", 1: "crack", IGNORE_INDEX: "ignore"}
#: Raw mask value -> class id for binary masks stored as 0/255 (DeepCrack and most tools).
BINARY_MASK_VALUES = {0: 0, 255: 1}


class DataError(ValueError):
    """Bad input data; the message always names the offending file or folder."""


@dataclass
class Sample:
    """One labeled image. ``image`` is RGB uint8 HxWx3; ``semantic`` holds class ids."""

    image: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- image files


def decode_file(path: str | Path, flags: int, kind: str) -> np.ndarray:
    """cv2.imdecode of a file read as bytes (so non-ASCII paths work), raising DataError that
    names the file and the ``kind`` of file where cv2.imread would return None silently."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {kind} file not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    decoded = cv2.imdecode(data, flags) if data.size else None
    if decoded is None:
        raise DataError(f"{path}: unreadable or corrupt {kind}")
    return decoded


#: Largest value of 12-bit data. Inspection cameras store it right-aligned in 16-bit PNG and
#: TIFF files, which cv2 would scale by 1/256 as if the full 16 bits were used: nearly black.
MAX_12_BIT = 4095


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, raising DataError (naming the file) when unreadable.

    A 16-bit file is scaled by its bit depth: 12 bits when no value exceeds 4095 (a scene
    that dark in true 16-bit data would be black to the eye either way), 16 bits otherwise."""
    image = decode_file(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, "image")
    if image.dtype == np.uint16:
        top = MAX_12_BIT if int(image.max()) <= MAX_12_BIT else 65535
        image = np.round(image * (255.0 / top)).astype(np.uint8)
    elif image.dtype != np.uint8:  # 32-bit float TIFF and the like: no agreed white level
        raise DataError(f"{path}: {image.dtype} pixels; expected 8- or 16-bit images")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(
    path: str | Path,
    value_map: dict[int, int] | None = None,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read a single-channel mask and map its raw values to class ids.

    ``value_map`` None means the file already stores class ids (our own shards). Values outside
    the map and a size different from ``shape`` (the image's HxW) raise DataError.
    """
    path = Path(path)
    mask = decode_file(path, cv2.IMREAD_UNCHANGED, "mask")
    if mask.ndim == 3:
        colour = mask[..., :3]
        if (colour != colour[..., :1]).any():  # a palette PNG is read as its colours
            raise DataError(
                f"{path}: a colour mask; store one grey channel, 0 background, 255 crack"
            )
        mask = colour[..., 0]
    if shape is not None and mask.shape[:2] != tuple(shape):
        turned = mask.shape[:2] == tuple(shape)[::-1]
        raise DataError(
            f"{path}: mask size {mask.shape[0]}x{mask.shape[1]} (HxW) differs from its image's "
            f"{shape[0]}x{shape[1]}"
            + (" (turned: a photo's EXIF orientation is applied when it is read)" if turned else "")
        )
    if value_map is None:
        return mask.astype(np.uint8, copy=False)
    lut = np.full(256 if mask.dtype == np.uint8 else 65536, -1, dtype=np.int32)
    for raw, cls in value_map.items():
        lut[int(raw)] = int(cls)
    mapped = lut[mask]
    if (mapped < 0).any():
        bad = sorted(set(np.unique(mask[mapped < 0]).tolist()))[:5]
        hint = "; a 0/1 mask? store crack as 255" if bad == [1] else ""
        if mask.dtype == np.uint16:  # 0/65535 from an image editor's 16-bit export
            hint = "; a 16-bit mask: save it as 8-bit, crack 255"
        if path.suffix.lower() in (".jpg", ".jpeg"):  # lossy: edges blur into in-between greys
            hint = "; JPEG blurs a mask's edges into other values: save masks as PNG"
        raise DataError(
            f"{path}: mask values {bad} are outside the class map {map_keys(value_map)}{hint}"
        )
    if value_map.get(1) == 0 and mask.max() == 1:
        # a render's anti-aliased mask (1 is a faint edge grey, background) stored as 0/1:
        # every crack pixel read as background, and a whole set trained on no crack at all
        raise DataError(
            f"{path}: mask values [0, 1]: a 0/1 mask? store crack as 255 (grey values under "
            "128, 1 among them, are an anti-aliased edge's background)"
        )
    return mapped.astype(np.uint8)


def map_keys(value_map: dict[int, int]) -> str:
    """A value map's raw values as an error says them: a render's 0-255 as a range, where
    the list of 256 numbers buried the hint after it (a 16-bit mask's, in every file's line)."""
    keys = sorted(int(k) for k in value_map)
    if len(keys) > 5 and keys == list(range(keys[0], keys[-1] + 1)):
        return f"[{keys[0]}-{keys[-1]}]"
    return str(keys)


def write_png(path: Path, array: np.ndarray, rgb: bool = False, level: int = 1) -> None:
    """Write a PNG (RGB arrays converted to OpenCV's BGR); low compression keeps writes fast."""
    if rgb:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    # The fixed "up" filter is ~1.6x faster than libpng's adaptive choice for the same size.
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    if rgb:
        # Photos are noisy: LZ77 matching finds little, Huffman-only coding is 1.35x faster
        # per image for files ~35 % larger (still lossless). Masks keep full deflate.
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    ok, buf = cv2.imencode(".png", array, params)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    buf.tofile(str(path))


# --------------------------------------------------------------------------- real folders


def file_names(folder: str | Path) -> list[str]:
    """A folder's file names, sorted, less hidden ones (macOS's ``._a.jpg``, ``.DS_Store``, an
    editor's swap file) and folders: what every real-folder reader and digest counts."""
    return visible_entries(folder)[0]


def image_names(folder: str | Path) -> list[str]:
    """A folder's visible file names of an image type (IMAGE_SUFFIXES, any letter case),
    sorted: the photos or masks its readers take."""
    return [n for n in file_names(folder) if Path(n).suffix.lower() in IMAGE_SUFFIXES]


def visible_entries(folder: str | Path) -> tuple[list[str], list[str]]:
    """A folder's visible file names and subfolder names, each sorted, from one scan.
    scandir's file types spare a stat per file, and plain strings pathlib's parsing."""
    files, folders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith("."):
                if entry.is_file():
                    files.append(entry.name)
                elif entry.is_dir():
                    folders.append(entry.name)
    return sorted(files), sorted(folders)


def first_names(names: Sequence[str], shown: int) -> str:
    """The first ``shown`` of ``names``, comma-separated, then ``...`` where there are more."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def unread_entries(
    image_dir: str | Path, mask_dir: str | Path | None = None, ours: Sequence[str | Path] = ()
) -> list[str]:
    """What a real folder pair holds that no reader will use, one phrase each: files of
    other kinds (``a.webp``), subfolders, masks with no photo. None is an error, but a user
    who exported photos as WebP or sorted them into subfolders should hear it was skipped.
    ``ours``: the tool's own output folders, not listed where they lie in ``image_dir``
    (predict's ``masks`` and ``overlays`` were, as photos skipped)."""
    image_dir = Path(image_dir)
    names, subfolders = visible_entries(image_dir)
    mine = [Path(path).resolve() for path in ours]
    subfolders = [
        name
        for name in subfolders
        if not any(path.is_relative_to((image_dir / name).resolve()) for path in mine)
    ]
    other = [n for n in names if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    stems = {Path(n).stem for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES}
    orphans = (
        masks_without_photo(mask_files(Path(mask_dir)), stems)
        if mask_dir is not None and Path(mask_dir).is_dir()
        else []
    )
    kinds = f"(photos: {' '.join(IMAGE_SUFFIXES)}), not read"
    found = [  # (names, said of one, said of several)
        (other, f"file of another kind {kinds}", f"files of other kinds {kinds}"),
        (
            subfolders,
            "subfolder, not read",
            "subfolders, not read (photos are not looked for there)",
        ),
        (orphans, "mask with no photo of its stem", "masks with no photo of their stem"),
        (broken_links(image_dir), "link to nothing, not read", "links to nothing, not read"),
    ]
    return [
        f"{len(names)} {many if len(names) > 1 else one}: {first_names(names, 5)}"
        for names, one, many in found
        if names
    ]


def broken_links(folder: Path) -> list[str]:
    """Visible symbolic links whose target is gone (a photo moved after it was linked): no
    reader sees them, and they were skipped without a word."""
    with os.scandir(folder) as entries:
        return sorted(
            e.name
            for e in entries
            if not e.name.startswith(".") and e.is_symlink() and not os.path.exists(e.path)
        )


def missing_folder(path: str | Path, what: str) -> DataError:
    """The error for a folder that is not there: a file given where a folder was meant, or a
    relative path, read from the current folder (not the checkout), said as such."""
    path = Path(path)
    if path.is_file():
        return DataError(f"{path}: a file where the {what} should be")
    for parent in path.parents:  # a data_dir that is a file: train_img/ inside it is not found
        if parent.is_file():
            return DataError(f"{parent}: a file where a folder should be (looking for {path})")
    where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    said = f"{path}: {what} not found{where}"
    if path.parts[:1] == ("~",):  # quoted past the shell and Hydra: a folder named ~
        said += f"; ~ is not expanded: write {path.expanduser()}"
    if path.name in ("train_img", "test_img") and path.parent.is_dir():
        # a user's folder of photos given as paths.data_dir: its photos are not in train_img/
        photos = image_names(path.parent)
        if photos:
            said += (
                f"; {path.parent} holds {len(photos)} photo{'s' * (len(photos) > 1)} itself "
                f"({first_names(photos, 3)}): they go in {path}/ (paths.data_dir is the folder "
                "above it)"
            )
    return DataError(said)


def no_images(folder: Path) -> str:
    """Why a folder gave no images: a sharded dataset's card or shard folders with no complete
    shard (a copy that left the shards behind, a render stopped in its first shard) are said
    as such, where "no images" sent the user looking for photos."""
    shards = list(folder.glob("shard-?????"))
    complete = [shard for shard in shards if (shard / MANIFEST).is_file()]
    if complete:  # read by a tool that takes photos: "no complete shard" was said of it
        return (
            f"{folder}: a sharded dataset ({len(complete)} complete shard"
            f"{'s' * (len(complete) != 1)}), not a folder of "
            "photos; its images are in its shard-*/image folders (evaluate takes it whole)"
        )
    if shards or (folder / CARD).is_file():
        what = f"{len(shards)} shard folder(s)" if shards else "a dataset card"
        return (
            f"{folder}: a sharded dataset folder ({what}) with no complete shard "
            f"(shard-*/{MANIFEST}): render it again, or copy its shards"
        )
    said = f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in folder"
    others, subfolders = visible_entries(folder)
    if others:  # photos exported as HEIC or WebP: they are there, of a kind not read
        one = len(others) == 1
        kind = "file of another kind" if one else "files of other kinds"
        said += (
            f"; its {len(others)} {kind} ({first_names(others, 3)}) "
            f"{'is' if one else 'are'} not read: convert {'it' if one else 'them'} to one of these"
        )
    if subfolders:  # photos sorted into subfolders: the way out, where the note came too late
        shown = first_names(subfolders, 3)
        said += f"; photos in its {len(subfolders)} subfolder(s) ({shown}) are not looked for"
    return said


def refuse_shared_stems(folder: Path, files: list[Path], why: str) -> None:
    """Two files of one stem (``a.jpg`` and ``a.png``): DataError naming every such stem."""
    by_stem: dict[str, list[str]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path.name)
    shared = [names for names in by_stem.values() if len(names) > 1]
    if shared:  # every such stem at once: one run per pair to find them all before
        first, rest = shared[0], shared[1:]
        more = "; ".join(" and ".join(names) for names in rest[:4]) + ("; ..." * (len(rest) > 4))
        raise DataError(
            f"{folder}: {' and '.join(first)} share the stem {Path(first[0]).stem!r}"
            + (f" (and {len(rest)} more shared stems: {more})" if rest else "")
            + f"; {why}"
        )


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted; a missing or empty folder raises DataError, and so
    do two images of one stem (``a.jpg``, ``a.png``), since masks, predictions and scores
    are named by stem. Hidden files (macOS's ``._a.jpg``) and folders are not images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise missing_folder(folder, "image folder")
    files = [folder / n for n in image_names(folder)]
    if not files:
        raise DataError(no_images(folder))
    refuse_shared_stems(
        folder, files, "masks, predictions and scores are named by stem: rename one"
    )
    return files


#: Mask file types (any letter case).
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def masks_without_photo(masks: dict[str, Path], stems: set[str]) -> list[str]:
    """The names of ``mask_files``' masks whose stem no photo has, sorted."""
    return sorted(path.name for stem, path in masks.items() if stem not in stems)


def mask_files(mask_dir: Path) -> dict[str, Path]:
    """stem -> mask file of a mask folder, read once (not one lookup per image). Two masks
    of one stem are refused: the PNG was taken over the other without a word, and predict's
    PNG beside a user's BMP labels scored the model against its own output (F1 1.0)."""
    files = [mask_dir / n for n in file_names(mask_dir)]
    files = [p for p in files if p.suffix.lower() in MASK_SUFFIXES]
    refuse_shared_stems(mask_dir, files, "a photo's mask is found by its stem: keep one")
    return {p.stem: p for p in files}


#: libjpeg's words for data it decoded past: OpenCV returns the image (filled in where the
#: data was bad) and the words go to the process's stderr, naming no file.
JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file")


@contextmanager
def decoder_complaints() -> Iterator[Callable[[], str]]:
    """What C decoders write to stderr (file descriptor 2) inside the block, for a check that
    a photo decoded whole. Reads are short and single-threaded here; nothing else is lost,
    since the words are handed back."""
    said = b""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: said.decode(errors="replace")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said = tmp.read()


def check_decoded_whole(path: Path, said: str) -> None:
    """Refuse a photo its decoder had to fill in (bytes damaged in a copy or a download): it
    decodes, with grey smears where the data was bad, and trained or scored as it is."""
    lines = [line for line in said.splitlines() if line.strip()]
    damage = [line for line in lines if line.startswith(JPEG_DAMAGE)]
    if damage:
        raise DataError(f"{path}: damaged image data, filled in by the decoder ({damage[0]})")
    for line in lines:  # anything else a decoder said (a libpng warning), now with its file
        print(f"{path}: {line}", file=sys.stderr, flush=True)


@dataclass
class ImageFolder:
    """A folder of real images with optional same-stem masks in a second folder.

    The DeepCrack layout (``train_img/11125-1.jpg`` + ``train_lab/11125-1.png``) is one case;
    any folder pair that shares file stems works.
    """

    image_dir: str | Path
    mask_dir: str | Path | None = None
    value_map: dict[int, int] | None = field(default_factory=lambda: dict(BINARY_MASK_VALUES))
    #: False: a photo with no mask is one of ``validate``'s bad files, listed with the rest,
    #: instead of an error before any file is read (a check reports all it finds at once).
    require_masks: bool = True

    def __post_init__(self) -> None:
        self.image_dir = Path(self.image_dir)
        self.images = list_images(self.image_dir)
        self.masks: list[Path | None] = [None] * len(self.images)
        if self.mask_dir is not None:
            self.mask_dir = Path(self.mask_dir)
            if not self.mask_dir.is_dir():
                raise missing_folder(self.mask_dir, "mask folder")
            masks = mask_files(self.mask_dir)
            self.masks = [masks.get(p.stem) for p in self.images]
            missing = [p.name for p, m in zip(self.images, self.masks) if m is None]
            if missing and self.require_masks:
                stems = {p.stem for p in self.images}
                orphans = masks_without_photo(masks, stems)
                shown = first_names(missing, 3)
                said = f"{self.mask_dir}: no mask for {len(missing)} image(s) ({shown})"
                if orphans:  # masks named otherwise (p0_mask.png): the way out, named
                    said += (
                        f"; {len(orphans)} mask(s) match no photo's stem (e.g. {orphans[0]}): "
                        "a mask is named as its photo, another extension allowed"
                    )
                raise DataError(said)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_masks(self) -> bool:
        return self.mask_dir is not None

    def __getitem__(self, i: int) -> Sample:
        """Each read checks the photo decoded whole, not only ``validate``'s: predict and
        evaluate, which read a folder once, segmented and scored a damaged JPEG's grey fill
        with no word but libjpeg's, which names no file."""
        with decoder_complaints() as said:
            image = read_image(self.images[i])
        check_decoded_whole(self.images[i], said())
        semantic = np.zeros(image.shape[:2], np.uint8)
        if self.masks[i] is not None:
            semantic = read_mask(self.masks[i], self.value_map, image.shape[:2])
        return Sample(image, semantic, meta={"stem": self.images[i].stem})

    def validate(
        self,
        progress: bool = False,
        listed: int = 4,
        min_side: int = 0,
        needed_by: str = "",
        rest_hint: str = "",
        trusted: Collection[str] = (),
    ) -> int:
        """Decode every file once so bad input fails before training; returns the count.
        The error names the first bad file and, on the same line, ``listed`` more and how
        many there are in all, so one run finds them all. ``min_side``: a photo with a
        shorter side is one of them (what ``needed_by`` needs, said). ``rest_hint`` ends the
        line where some files pass (predict's way to the others' masks: a folder of one
        photo, or of bad ones alone, was told of it, and that rerun was refused in turn).
        ``trusted``: names of photos not read, known good (``read_all``)."""
        found = self.read_all(progress, min_side, needed_by, trusted)
        try:
            refuse_bad_files([line for _, line in found], listed)
        except DataError as err:
            if not rest_hint or len({i for i, _ in found}) == len(self):
                raise
            raise DataError(f"{err}; {rest_hint}") from None
        return len(self)

    def without_bad(
        self,
        progress: bool = False,
        min_side: int = 0,
        needed_by: str = "",
        trusted: Collection[str] = (),
    ) -> tuple[ImageFolder, dict[str, str]]:
        """``validate``'s check that keeps the rest: the folder of the photos that pass
        (``subset``) and each bad file's name with why, for a run that segments what it can
        (predict's ``skip_bad_photos``: 3 truncated JPEGs among 10,000 held up the 9,997).
        A folder with no good photo is refused as ``validate`` refuses it."""
        found = self.read_all(progress, min_side, needed_by, trusted)
        bad = {i for i, _ in found}
        if len(bad) == len(self):
            try:
                refuse_bad_files([line for _, line in found])
            except DataError as err:
                raise DataError(
                    f"{self.image_dir}: none of its {len(self)} photos can be segmented: {err}"
                ) from None
        why: dict[str, list[str]] = {}
        for i, line in found:
            why.setdefault(self.images[i].name, []).append(line.removeprefix(f"{self.images[i]}: "))
        kept = self.subset([i for i in range(len(self)) if i not in bad])
        return kept, {name: "; ".join(lines) for name, lines in why.items()}

    def read_all(
        self,
        progress: bool = False,
        min_side: int = 0,
        needed_by: str = "",
        trusted: Collection[str] = (),
    ) -> list[tuple[int, str]]:
        """``problems`` of the whole folder, under a bar when ``progress``, but for the
        photos named in ``trusted``: those a run with the same checks decoded whole and found
        unchanged since (predict's rerun: ``trusted_photos``), where the decode was most of
        a rerun's time (0.47 s of 0.55 s on 300 DeepCrack photos)."""
        from rich.progress import Progress

        trusted = set(trusted)
        todo = [i for i, photo in enumerate(self.images) if photo.name not in trusted]
        with Progress(disable=not progress) as bar:
            indices = bar.track(todo, description=f"reading {self.image_dir.name}")
            return self.problems(indices, min_side, needed_by)

    def bad_files(
        self, indices: Iterable[int], min_side: int = 0, needed_by: str = ""
    ) -> list[str]:
        """What is wrong with the pairs at ``indices``, a line each, in their order (every
        file decoded): ``validate``'s findings for a part of the folder, so that worker
        processes can read the parts of a large folder at once."""
        return [line for _, line in self.problems(indices, min_side, needed_by)]

    def problems(
        self, indices: Iterable[int], min_side: int = 0, needed_by: str = ""
    ) -> list[tuple[int, str]]:
        """``bad_files``' lines, each with its pair's index (a pair can have two)."""
        bad: list[tuple[int, str]] = []
        for i in indices:
            if self.has_masks and self.masks[i] is None:
                bad.append((i, f"{self.images[i]}: no mask of its stem in {self.mask_dir}"))
            try:
                h, w = self[i].image.shape[:2]
            except DataError as err:
                bad.append((i, str(err)))
                continue
            if min(h, w) < min_side:
                bad.append(
                    (
                        i,
                        f"{self.images[i]}: {h}x{w} px (HxW), smaller than the {min_side} px "
                        f"a side {needed_by}",
                    )
                )
        return bad

    def subset(self, indices: Sequence[int]) -> ImageFolder:
        """The pairs at ``indices`` alone, in their order, without listing the folders again:
        the good photos ``without_bad`` keeps, and what one worker process is sent (the
        whole folder's names, pickled for each of a 100,000-file import's 200 shards, were
        gigabytes)."""
        part = copy.copy(self)
        part.images = [self.images[i] for i in indices]
        part.masks = [self.masks[i] for i in indices]
        return part


def refuse_bad_files(bad: list[str], listed: int = 4) -> None:
    """One line for every bad file found: the first, then ``listed`` more and the count."""
    if len(bad) > 1:
        rest = "; ".join(bad[1 : listed + 1]) + ("; ..." if len(bad) > listed + 1 else "")
        raise DataError(f"{bad[0]} (and {len(bad) - 1} more bad files: {rest})")
    if bad:
        raise DataError(bad[0])


# --------------------------------------------------------------------------- shards


def stem_of(index: int) -> str:
    return f"{index:08d}"


#: Shard folders are ``shard-00000`` to ``shard-99999``: every reader lists ``shard-?????``.
MAX_SHARDS = 100_000


def shard_name(shard_id: int) -> str:
    return f"shard-{shard_id:05d}"


def shard_range(shard_id: int, shard_size: int, num_samples: int) -> range:
    """Global sample indices held by a shard: shards partition [0, num_samples)."""
    start = shard_id * shard_size
    return range(start, min(start + shard_size, num_samples))


def num_shards(num_samples: int, shard_size: int) -> int:
    return -(-num_samples // shard_size)


def is_shard_complete(root: str | Path, shard_id: int) -> bool:
    return (Path(root) / shard_name(shard_id) / MANIFEST).is_file()


def clean_partial_shards(root: str | Path, shard_ids: Iterable[int] | None = None) -> list[Path]:
    """Delete temporary shard directories left by a killed writer, and shard directories
    without their manifest; returns what was removed.

    With ``shard_ids``, only those shards' temp directories go: jobs of one sweep own disjoint
    blocks of shards, and a job starting late must not delete the half-written shard of a
    job that is still running (it did, under load, in the two-job submitit test).
    """
    root = Path(root)
    found = root.glob(f"shard-*{TEMP_INFIX}*") if root.is_dir() else []
    removed = [p for p in found if p.is_dir()]
    # a shard folder without its manifest is no writer's (they rename a whole one into
    # place): a copy cut short (cp -r, rsync) or a manifest deleted by hand. Left there, the
    # shard was rewritten, the rewrite thrown away as "a concurrent writer's", and the card
    # failed on the missing manifest with a traceback.
    shards = root.glob("shard-?????") if root.is_dir() else []
    removed += [p for p in shards if p.is_dir() and not (p / MANIFEST).is_file()]
    if shard_ids is not None:
        owned = {shard_name(i) for i in shard_ids}
        removed = [p for p in removed if p.name.split(TEMP_INFIX)[0] in owned]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def write_dir_atomic(final: Path, fill: Callable[[Path], None]) -> Path:
    """``fill`` a temp sibling of ``final`` (``<name>.tmp-<pid>``), then rename it into place.

    A reader sees a shard complete or not at all; a killed writer leaves only the temp
    directory, which ``clean_partial_shards`` recognises by the same name.
    """
    tmp = final.with_name(f"{final.name}{TEMP_INFIX}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fill(tmp)
    except BaseException:  # out of disk, a bad sample, Ctrl-C: leave no partial shard behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # a concurrent writer of the same shard won: identical by determinism
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def write_shard(root: str | Path, shard_id: int, samples: Iterable[Sample]) -> Path:
    """Write samples as one shard, atomically."""
    return write_dir_atomic(
        Path(root) / shard_name(shard_id), lambda tmp: _write_shard_files(tmp, samples)
    )


def _write_shard_files(tmp: Path, samples: Iterable[Sample]) -> None:
    """Every sample's PNGs, then the manifest last (its presence marks the shard complete)."""
    for sub in ("image", "semantic", "instance"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    lines = []
    for sample in samples:
        stem = sample.meta.get("stem") or stem_of(int(sample.meta["index"]))
        write_png(tmp / "image" / f"{stem}.png", sample.image, rgb=True)
        write_png(tmp / "semantic" / f"{stem}.png", sample.semantic)
        if sample.instance is not None:
            write_png(tmp / "instance" / f"{stem}.png", sample.instance.astype(np.uint16))
        lines.append(json.dumps({**sample.meta, "stem": stem}, sort_keys=True))
    (tmp / MANIFEST).write_text("".join(line + "\n" for line in lines))


def read_manifests(root: str | Path) -> list[tuple[Path, dict]]:
    """(shard directory, record) for every sample of every complete shard, in index order."""
    root = Path(root)
    if not root.is_dir():
        raise missing_folder(root, "dataset folder")
    shards = sorted(p for p in root.glob("shard-?????") if (p / MANIFEST).is_file())
    if not shards:
        said = f"{root}: no complete shards (shard-*/{MANIFEST}) in dataset folder"
        if photos := image_names(root):  # a user's renders named where their import goes
            said += (
                f"; it holds {len(photos)} image(s) ({first_names(photos, 2)}): a folder of "
                "renders becomes a sharded set with tools/import_renders.py image_dir=<it> "
                "mask_dir=<their masks>"
            )
        raise DataError(said)
    records = []
    for shard in shards:
        for n, line in enumerate((shard / MANIFEST).read_text().splitlines()):
            try:
                records.append((shard, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{shard / MANIFEST}:{n + 1}: corrupt manifest line") from err
    return records


def say_if_unfinished(dataset: ShardedDataset) -> None:
    """A sharded set has its card once whole: without it, a render or translation stopped or
    still running, whose complete shards were read as if they were the set, without a word;
    and a stopped translation's card says so (``in_progress``), which was not read."""
    reason = unfinished_reason(dataset)
    if reason is None and not (dataset.root / CARD).is_file():
        reason = f"no {CARD}: its render or translation is unfinished"
    if reason:
        print(
            f"note: {dataset.root}: unfinished set, {reason}; "
            f"the {len(dataset)} samples of its complete shards are read"
        )


def unfinished_reason(dataset: ShardedDataset) -> str | None:
    """Why a sharded set is known to be unfinished, or None (whole, or written by other code
    with no record to say): a stopped render, translation or pseudo-labelling leaves complete
    shards that read as a smaller set, and a model trained on them says nothing of it."""
    root = dataset.root
    card = read_card(root)
    if not card:
        ran = (root / RENDER_SPEC).is_file()
        return f"a render stopped or still running ({RENDER_SPEC}, no {CARD})" if ran else None
    if card.get("translation", {}).get("in_progress"):
        return "a translation stopped or still running (its card says in_progress)"
    labels = card.get("pseudo_labels")
    if labels is not None and "crack_share" not in card:
        return "a pseudo-labelling stopped or still running (no crack_share in its card)"
    expected = card.get("num_samples") or (labels or {}).get("num_images")
    if isinstance(expected, int) and expected != len(dataset):
        return f"{len(dataset)} of its {expected} samples are in complete shards"
    return None


def refuse_unfinished(dataset: ShardedDataset, use: str) -> None:
    reason = unfinished_reason(dataset)
    if reason:
        raise DataError(
            f"{dataset.root}: unfinished set, {reason}; rerun the command that made it to "
            f"finish it before {use}"
        )


class ShardedDataset(Sequence[Sample]):
    """Random access to the samples of a sharded dataset (synthetic or translated)."""

    def __init__(self, root: str | Path, load_instance: bool = False) -> None:
        self.root = Path(root)
        self.records = read_manifests(self.root)
        self.load_instance = load_instance

    def __len__(self) -> int:
        return len(self.records)

    def paths(self, i: int) -> dict[str, Path]:
        shard, rec = self.records[i]
        return {
            sub: shard / sub / f"{rec['stem']}.png" for sub in ("image", "semantic", "instance")
        }

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        paths = self.paths(i)
        image = read_image(paths["image"])
        semantic = read_mask(paths["semantic"], None, image.shape[:2])
        instance = None
        if self.load_instance and paths["instance"].is_file():
            instance = cv2.imread(str(paths["instance"]), cv2.IMREAD_UNCHANGED)
        return Sample(image, semantic, instance, dict(self.records[i][1]))

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


def unwritable_folder(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be made or written in (None where it can): said before any work,
    since an output folder that is a file otherwise fails only once the first thing is saved
    there, after the stages before it have run."""
    folder = Path(folder)
    found = next(p for p in (folder, *folder.parents) if p.exists())
    if not found.is_dir():
        return "a file, not a folder" + ("" if found == folder else f" ({found} is)")
    if not os.access(found, os.W_OK | os.X_OK):
        return f"{found} may not be written in"
    return None


def read_card(root: str | Path) -> dict:
    path = Path(root) / CARD
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def write_json_atomic(path: str | Path, obj: object) -> None:
    """Write JSON through a temp file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    except BaseException:  # e.g. out of disk: no stray temp file, the old file stays intact
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> dict:
    """A JSON file written by this project (cards, metrics); errors name the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable JSON ({err})") from err
