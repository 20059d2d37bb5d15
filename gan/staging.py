"""Hidden staging folders: a tool's PNG outputs replace an earlier run's only once whole.

``staged`` gives a run hidden folders beside its ``masks/`` and ``overlays/``; what the run
writes there goes in place only when it ends without an error, so a run that fails or is
stopped leaves the earlier results as they were, not mixed with its own. Each output folder's
``WRITTEN`` record says which PNGs these tools wrote (a user's own masks there are refused,
never replaced). A run that resumes (predict) keeps its staging, with a ``PROGRESS``
journal of the photos done, when it is stopped, and its rerun takes it over; the journal of a
run that finished goes in place with its PNGs, for the next run to reuse the photos unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from synth.digests import SETTLED_NS, file_digest
from synth.distributions import ConfigError
from synth.io import (
    MASK_SUFFIXES,
    DataError,
    first_names,
    read_json,
    unwritable_folder,
    write_json_atomic,
)


def remove_other_pngs(folder: Path, names: set[str]) -> None:
    """Delete the PNGs in ``folder`` not among ``names``: an earlier run's into the same
    output folder, on other photos, would otherwise pass for this run's results."""
    stale = [p for p in folder.glob("*.png") if p.name not in names]
    for path in stale:
        path.unlink()
    if stale:
        print(f"{len(stale)} PNGs of an earlier run removed from {folder}")


#: In each PNG folder ``staged`` fills: the names it wrote there, so that a later run replaces
#: and removes those alone.
WRITTEN = ".written.json"


def foreign_images(folder: Path) -> list[str]:
    """The images in ``folder`` that no run of these tools wrote (``WRITTEN`` lists those):
    PNGs this run would replace or remove, and masks of other kinds (a user's ``a.bmp``),
    beside which its ``a.png`` made two masks of one stem. One of ours changed since it was
    written (a mask corrected by hand: it differs from its ``stamp`` in the record) is the
    user's now; a rerun replaced it without a word."""
    pngs = sorted(p.name for p in folder.glob("*") if p.suffix.lower() in MASK_SUFFIXES)
    record = written_record(folder) if pngs else {}
    ours, stamps = set(record.get("names", [])), record.get("stamps", {})
    changed = {n for n in pngs if n in stamps and changed_since(folder / n, stamps[n])}
    return [
        f"{name} (changed since written)" if name in changed else name
        for name in pngs
        if name not in ours or name in changed
    ]


def written_record(folder: Path) -> dict:
    """``WRITTEN`` of a folder: ``names``, each one's ``stamps`` and the tool it was ``by``
    (records before session 47 hold names alone); {} where missing or damaged, as nothing
    there is then known to be ours."""
    try:
        return read_json(folder / WRITTEN)
    except DataError:
        return {}


def stamp(path: Path) -> list:
    """A file's size, modification time and content digest, as written."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, file_digest(path)]


def settled_look(info: os.stat_result, before_ns: int) -> list | None:
    """A file's device, inode, size, modification and change times as ``info`` saw them,
    where it was last written over ``SETTLED_NS`` before ``before_ns`` (a time taken before
    the stat): any later write gives it another modification time, even on a coarse clock
    (2 s on FAT), so the same look is the same bytes, as git's index and
    ``synth.digests``' cache trust a file's stat. The change time, which no tool sets, also
    tells an edit whose modification time was put back (``touch -r``, ``cp -p`` over it).
    None for a file written a moment before, which a same-size edit could leave with its
    time."""
    if info.st_mtime_ns >= before_ns - SETTLED_NS:
        return None
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def look_now(path: Path) -> tuple[os.stat_result, list | None]:
    """``path``'s stat and its ``settled_look``, the clock read before the stat."""
    before, info = time.time_ns(), path.stat()
    return info, settled_look(info, before)


def changed_since(path: Path, written: list) -> bool:
    """Whether a file differs from its ``stamp`` at writing: the same size and time are the
    same file, read no further; a copy (``cp -r`` sets new times) is read and compared."""
    info = path.stat()
    if [info.st_size, info.st_mtime_ns] == written[:2]:
        return False
    if info.st_size != written[0] or len(written) < 3:
        return True
    return file_digest(path) != written[2]


def refuse_foreign_images(out_dir: Path, subs: Sequence[str]) -> None:
    """``out_dir=project`` beside a user's ``project/masks`` of hand-labelled masks replaced
    them with predictions and deleted the rest as "of an earlier run": refused before any
    work where a folder this run fills holds PNGs these tools did not write."""
    for sub in subs:
        if foreign := foreign_images(out_dir / sub):
            shown = first_names(foreign, 3)
            raise ConfigError(
                f"out_dir={out_dir}: {out_dir / sub} holds {len(foreign)} images these tools "
                f"did not write ({shown}), which this run would replace, remove or stand "
                "beside; choose another out_dir, or move them"
            )


@contextmanager
def staged(
    out_dir: Path,
    subs: Sequence[str],
    by: str,
    owned: bool = False,
    resume: dict | None = None,
    records: Sequence[str] = (),
) -> Iterator[dict[str, Path]]:
    """Hidden staging folders for the PNG folders ``subs`` of ``out_dir``. What the block
    writes there replaces ``out_dir/<sub>``'s PNGs (those of other names go) only when it
    ends without an error, so a run that fails half-way, or is stopped, leaves an earlier
    run's results as they were, not mixed with its own. Staging left by a killed run (its
    process gone, or its pid now another process's: ``staging_in_use``) is cleared. PNGs
    there that these tools did not write are refused, unless the caller ``owned`` the folder
    (the pipeline's run folders); so are those another tool wrote (``by``: evaluate's
    overlays are not predict's, whose masks they stood beside).

    ``resume``: the settings key of a run that resumes (``prediction_key``): its staging,
    with its ``PROGRESS`` journal, is kept when the block ends in an error or a stop, and a
    later run with the same key (``same_settings``: its batch size may differ) takes over a
    stopped run's staging (its process gone: SIGKILL, a power cut) instead of clearing it;
    which photos in it still hold is for ``reuse_staged`` to say. A live run's staging is
    never touched: two runs at once each fill their own. Once its PNGs are in place, the
    journal goes beside them (``out_dir/<first sub>/.progress.jsonl``), saying which photo
    each is of, so that a later run with the same key reuses those that still hold
    (``reuse_finished``) instead of segmenting every photo again.

    ``records``: files of ``out_dir`` that say something of its PNGs (predict's list of the
    photos it skipped), which the block writes, where it has one, into the first staging
    folder under the same name; they go in place with the PNGs (``put_in_place``)."""
    check_out_dir(out_dir)
    if not owned:
        refuse_foreign_images(out_dir, subs)
    refuse_another_tools(out_dir, subs, by)
    adopted = stopped_run_to_resume(out_dir, subs, resume) if resume is not None else None
    for sub in subs:
        for left in out_dir.glob(f".{sub}.tmp-*"):
            if staging_owner(left) != adopted and not staging_in_use(left):
                say_discarded(left / PROGRESS, resume)
                shutil.rmtree(left, ignore_errors=True)
    staging = {sub: out_dir / f".{sub}.tmp-{os.getpid()}" for sub in subs}
    keep = False
    try:
        if adopted is not None and adopted != str(os.getpid()):
            take_over(out_dir, adopted, staging)
        for path in staging.values():
            path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path / OWNER, process_identity(os.getpid()))
        for name in records:  # a stopped run's, taken over: of its photos, not this run's
            (staging[subs[0]] / name).unlink(missing_ok=True)
        yield staging
        put_in_place(out_dir, staging, by, records, resume is not None)
    except BaseException:
        keep = resume is not None and bool(read_progress(progress_file(staging))[1])
        raise
    finally:
        if not keep:
            for path in staging.values():
                shutil.rmtree(path, ignore_errors=True)


def put_in_place(
    out_dir: Path, staging: dict[str, Path], by: str, records: Sequence[str], journal: bool
) -> None:
    """The staged PNGs into ``out_dir``'s folders, each folder's ``WRITTEN`` recorded before
    anything moves (a full disk then stops with nothing moved) and again after, with each
    file's stamp. The renames are not one step, so the ``records`` the run staged (predict's
    list of skipped photos) go in place between: first the PNGs of other names go (a photo
    gone, or skipped by this run), then this run's record replaces the earlier one in one
    rename (or, where it has none, the earlier one is removed), then this run's PNGs move in.
    A kill -9 anywhere leaves a record that names only photos without PNGs in place: the
    earlier run's before any PNG moved, this run's after. Written after the PNGs (until
    session 54), the earlier run's list stood beside the new PNGs; removed before them (until
    session 55), a kill left no list for a moment though photos were skipped. ``journal``:
    the resume's journal goes in place last, beside the PNGs it describes, for a later run to
    reuse them (``reuse_finished``)."""
    finals = {sub: out_dir / sub for sub in staging}
    names = {sub: sorted(p.name for p in path.glob("*.png")) for sub, path in staging.items()}
    known: dict[str, dict[str, list]] = {}  # the reused PNGs' stamps, still theirs
    for sub, final in finals.items():
        final.mkdir(exist_ok=True)
        earlier = [p.name for p in final.glob("*.png")]  # all ours: checked before the run
        stamped = written_record(final).get("stamps", {})
        known[sub] = same_files_stamps(staging[sub], final, names[sub], stamped)
        kept = {n: st for n, st in stamped.items() if n not in names[sub] or n in known[sub]}
        record = {"names": sorted({*names[sub], *earlier}), "stamps": kept, "by": by}
        write_json_atomic(final / WRITTEN, record)
    for sub, final in finals.items():
        remove_other_pngs(final, set(names[sub]))
    first = next(iter(staging.values()))
    for name in records:
        if (first / name).is_file():
            os.replace(first / name, out_dir / name)
        else:
            (out_dir / name).unlink(missing_ok=True)
    for sub, final in finals.items():
        for name in names[sub]:
            os.replace(staging[sub] / name, final / name)
        stamps = {name: known[sub].get(name) or stamp(final / name) for name in names[sub]}
        write_json_atomic(final / WRITTEN, {"names": names[sub], "stamps": stamps, "by": by})
    if journal and progress_file(staging).is_file():
        os.replace(progress_file(staging), progress_file(finals))


def same_files_stamps(
    staging: Path, final: Path, names: Sequence[str], stamped: dict[str, list]
) -> dict[str, list]:
    """The ``WRITTEN`` stamps of the staged PNGs that are the very files in place (hard
    links of the PNGs a rerun reused: ``reuse_finished``), unchanged since stamped (size and
    time): they keep their stamps, where stamping every PNG again read them all."""
    known: dict[str, list] = {}
    for name in names:
        earlier = stamped.get(name)
        if not (isinstance(earlier, list) and len(earlier) == 3):
            continue
        try:
            same = os.path.samefile(staging / name, final / name)
            info = (final / name).stat()
        except OSError:
            continue
        if same and [info.st_size, info.st_mtime_ns] == earlier[:2]:
            known[name] = earlier
    return known


#: In a resuming run's first staging folder (``staged``'s ``resume``): the settings key on
#: its first line, then one JSON line per photo whose PNGs are staged (``progress_entry``),
#: appended a batch at a time; a line a kill cut short is skipped on reading. Moved into the
#: first output folder when the run's PNGs go in place: of those, then.
PROGRESS = ".progress.jsonl"


#: The one setting of a resuming run's key that a rerun may change and keep a stopped run's
#: photos: a run out of GPU memory on a large photo is rerun with a smaller batch, and with a
#: strict key lost every finished photo. Each journal line records the batch size it was made
#: at (``progress_entry``).
BATCH_SIZE = "batch_size"


def same_settings(made_with: dict | None, key: dict) -> bool:
    """Whether a journal's settings key is ``key`` but for the batch size: its photos are
    then this run's to keep (the model, sizes, device and code all as they were)."""
    if not isinstance(made_with, dict):
        return False
    return {k: v for k, v in made_with.items() if k != BATCH_SIZE} == {
        k: v for k, v in key.items() if k != BATCH_SIZE
    }


def progress_file(staging: dict[str, Path]) -> Path:
    return next(iter(staging.values())) / PROGRESS


def read_progress(path: Path) -> tuple[dict | None, dict[str, dict]]:
    """(settings key, entries by output file name) of a ``PROGRESS`` journal; (None, {})
    where missing. Lines that do not parse (the last one, where a kill cut it) are skipped,
    so their photos are segmented again."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None, {}
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not parsed or not isinstance(parsed[0], dict) or "key" not in parsed[0]:
        return None, {}
    entries = {e["name"]: e for e in parsed[1:] if isinstance(e, dict) and "name" in e}
    return parsed[0]["key"], entries


def write_progress(path: Path, key: dict, entries: Iterable[dict]) -> None:
    """A journal anew (temp + rename): the key, then the photos a rerun keeps."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    lines = [json.dumps({"key": key}), *(json.dumps(e) for e in entries)]
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.replace(tmp, path)


def append_progress(path: Path, entries: Sequence[dict]) -> None:
    """Photos whose PNGs are all written, one line each, after them: a kill between leaves
    PNGs without a line, segmented again. Nothing is synced: a power cut that keeps a line
    and loses its PNGs' data is caught by their digests (``still_holds``)."""
    with open(path, "a") as f:
        f.write("".join(f"{json.dumps(e)}\n" for e in entries))


def staging_in_use(folder: Path) -> bool:
    """Whether a staging folder's owning process (its name's pid) runs and is not this one:
    one of this process's own is left by an earlier call that failed or was stopped (a test,
    a notebook's Ctrl-C), taken over or cleared as a dead process's is. A process that got
    the pid later (after a reboot or a container's restart) is not its owner (``is_owner``),
    else a stopped run's staging read as a live run's for good: never resumed nor cleared."""
    owner = staging_owner(folder)
    return owner != str(os.getpid()) and process_alive(owner) and is_owner(int(owner), folder)


def staging_owner(folder: Path) -> str:
    """The pid in a staging folder's name (``.masks.tmp-<pid>``)."""
    return folder.name.rsplit("-", 1)[-1]


#: In each staging folder, written as it is made or taken over: its owner's
#: ``process_identity``, which a process that later got the same pid does not match.
OWNER = ".owner.json"

#: Seconds by which a process must have started after a staging folder last changed to be
#: known as not its owner, where the folder holds no ``OWNER`` (clocks and /proc's rounding).
STARTED_AFTER_S = 1.0


def process_identity(pid: int) -> dict:
    """A process's pid, start time (clock ticks after boot: /proc/<pid>/stat's field 22)
    and the boot's id: a pid alone is reused, these with it are not. Where /proc does not
    say (another system, a process hidden from this one), the pid alone."""
    identity: dict = {"pid": pid}
    if (start := start_ticks(pid)) is not None:
        identity["start"] = start
    try:
        identity["boot"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    return identity


def start_ticks(pid: int) -> int | None:
    """When a process started, in clock ticks after boot; None where /proc does not say.
    Fields are counted after the command's closing parenthesis, which a name may hold."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def is_owner(pid: int, folder: Path) -> bool:
    """Whether the live process ``pid`` made (or took over) a staging folder: its recorded
    identity matches, in what both it and /proc now say. A folder without a record of this
    pid (made before owners were recorded, or being made or renamed this moment) is its
    unless the process started after the folder last changed."""
    try:
        recorded = read_json(folder / OWNER)
    except DataError:
        recorded = {}
    if isinstance(recorded, dict) and recorded.get("pid") == pid:
        now = process_identity(pid)
        return all(recorded[k] == now[k] for k in ("start", "boot") if k in recorded and k in now)
    return started_before_change(pid, folder)


def started_before_change(pid: int, path: Path) -> bool:
    """Whether the process ``pid`` may have written ``path``: it started before the path last
    changed (or /proc or the path cannot say). A process that got the pid of a killed writer
    later, after a reboot or a container's restart, started after it."""
    started = started_at(pid)
    try:
        changed = path.stat().st_ctime
    except OSError:
        return True
    return started is None or started < changed + STARTED_AFTER_S


def started_at(pid: int) -> float | None:
    """A process's start as a wall-clock time (the uptime now less its ticks since); None
    where /proc does not say."""
    start = start_ticks(pid)
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    if start is None:
        return None
    return time.time() - uptime + start / os.sysconf("SC_CLK_TCK")


def stopped_run_to_resume(out_dir: Path, subs: Sequence[str], key: dict) -> str | None:
    """The pid of the stopped run (process gone) whose staging was made with ``key``'s
    settings (``same_settings``: any batch size) and holds the most finished photos; None
    where there is none. A live run's is never taken: it is still writing there."""
    found = []
    for first in out_dir.glob(f".{subs[0]}.tmp-*"):
        if staging_in_use(first):
            continue
        made_with, entries = read_progress(first / PROGRESS)
        if same_settings(made_with, key) and entries:
            found.append((len(entries), staging_owner(first)))
    return max(found)[1] if found else None


def take_over(out_dir: Path, owner: str, staging: dict[str, Path]) -> None:
    """A stopped run's staging folders renamed to this run's, the journal's first: two runs
    started together that both chose it cannot each take a part (a rename succeeds once);
    the one that lost takes nothing, and what a lost rename leaves out is segmented again."""
    for sub, path in staging.items():
        try:
            os.rename(out_dir / f".{sub}.tmp-{owner}", path)
        except OSError:
            return


def say_discarded(journal: Path, key: dict | None) -> None:
    """A stopped run's photos cleared because this run's model, settings or code differ."""
    made_with, entries = read_progress(journal)
    if key is not None and not same_settings(made_with, key) and (done := len(entries)):
        print(
            f"note: {done} photos a stopped run segmented with another model, other "
            "settings or another version of this code are discarded; they are segmented again"
        )


def refuse_another_tools(out_dir: Path, subs: Sequence[str], by: str) -> None:
    """evaluate into predict's folder replaced 32 of its 40 overlays with its own (three rows
    each) beside predict's 40 masks, saying so only after; refused before any work."""
    for sub in subs:
        other = written_record(out_dir / sub).get("by")  # none yet, or from before session 47
        if other and other != by:
            raise ConfigError(
                f"out_dir={out_dir}: {out_dir / sub} holds {other}'s results, which {by} "
                "would replace with its own beside the rest; choose another out_dir"
            )


def check_out_dir(out_dir: Path) -> None:
    """An output folder given as a file's path, or below one: one line naming it (the error
    named the hidden staging folder that could not be made inside it)."""
    if why := unwritable_folder(out_dir):
        raise ConfigError(f"out_dir={out_dir}: {why}")


def process_alive(pid: str) -> bool:
    """Whether a process of this id runs (a staging folder's owner; not a number: no)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True
