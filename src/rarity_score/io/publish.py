"""Publishing a folder as a whole, and deleting only what the project itself wrote.

A results directory (or a report folder) is written into a hidden staging folder beside its
target and renamed into place when complete. Two rules keep the user's files safe:

The manifest
    A folder the package writes records every file it holds (relative path -> SHA-256 and size,
    see :func:`build_manifest`; a results directory keeps it in ``run.json["files"]``). An
    existing target is replaced only when every entry in it is listed there and still has the
    recorded content (:func:`foreign_entries` is empty): it is then verifiably exactly what an
    earlier run wrote. Anything else (a note, a figure, an edited table, a symbolic link the
    manifest does not list with its target, an empty folder, a folder whose ``run.json`` merely
    claims the format) is refused, never deleted. The previous folder is moved aside and
    removed file by file, each file (and link) checked again (:func:`remove_verified`);
    whatever fails the check stays.

The journal
    Every staging folder and every moved-aside old folder is recorded, before it is created,
    in the package's own state (``<cache dir>/journal/``, see
    :func:`rarity_score.defaults.cache_dir`) with the process that owns it (host, pid and the
    process's start time). A run killed while publishing (SIGKILL, power loss) leaves its
    entries behind; the next run (:func:`clean_stale`) removes the folders of entries whose owner
    is dead, and only those: a folder that merely looks like one (``.out.1234abcd.tmp``) is never
    touched. An old folder whose target is missing (the run died between the two renames) is
    renamed back into place instead of being deleted. Where the state folder cannot be written
    the run goes on without a journal (and cannot clean up after a kill).

A single new file that must never replace one (``rarity filter --list``) is published the same
way (:func:`publish_file`): written in a journaled staging folder, then linked to its name,
which fails if the name is taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rarity_score import defaults
from rarity_score.io.atomic import (
    StorageFullError,
    atomic_write_text,
    is_machine_failure,
    write_error,
)
from rarity_score.io.names import printable, shorten

__all__ = [
    "Manifest",
    "build_manifest",
    "clean_stale",
    "describe_foreign",
    "foreign_entries",
    "journal_dir",
    "publish_file",
    "publish_folder",
    "read_manifest",
    "record_files",
    "remove_empty_folders",
    "remove_verified",
    "replace_folder",
    "staging_folder",
]

logger = logging.getLogger(__name__)

#: Relative path (``/``-separated) -> ``{"sha256": hex digest, "size": bytes}`` for a file, or
#: ``{"link": target}`` for a symbolic link the package made (``build_manifest(links=True)``).
Manifest = Mapping[str, Mapping[str, Any]]

_CHUNK = 1 << 20


# ---------------------------------------------------------------------- the manifest


def _digest(path: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return {"sha256": sha.hexdigest(), "size": size}


def _walk(folder: Path, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str] | None]]:
    """``(relative path, entry)`` for everything under ``folder``, folders before their contents,
    links never followed. An unreadable folder yields ``(its path + "/", None)``."""
    try:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
    except OSError:
        yield prefix, None
        return
    for entry in listed:
        rel = f"{prefix}{entry.name}"
        yield rel, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), rel + "/")


def build_manifest(
    folder: str | os.PathLike[str], *, own: tuple[str, ...] = (), links: bool = False
) -> dict[str, Any]:
    """The manifest of every regular file under ``folder`` except the ``own`` ones (the file
    that stores the manifest itself); with ``links``, also of every symbolic link, by its
    target (a folder of links the package made: each is verified, like a file, before it is
    removed).

    >>> import os, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> os.symlink("/elsewhere/b.png", d / "b.png")
    >>> build_manifest(d)["a.txt"]["size"], sorted(build_manifest(d))
    (1, ['a.txt'])
    >>> build_manifest(d, links=True)["b.png"]
    {'link': '/elsewhere/b.png'}
    """
    root = Path(folder)
    out: dict[str, Any] = {}
    for rel, entry in _walk(root):
        if entry is None or rel in own:
            continue
        if entry.is_symlink():
            if links:
                out[rel] = {"link": os.readlink(entry.path)}
        elif entry.is_file(follow_symlinks=False):
            out[rel] = _digest(Path(entry.path))
    return out


def record_files(
    folder: str | os.PathLike[str],
    *,
    own: tuple[str, ...] = ("run.json",),
    part: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Write the list of the files of ``folder`` into its ``run.json["files"]``, last: what a
    later run may replace; return that list. With ``part``, only the entries it accepts are
    listed anew (a rebuilt report); the others stay as they were listed."""
    path = Path(folder) / "run.json"
    run = json.loads(path.read_text(encoding="utf-8"))
    written = build_manifest(folder, own=own)
    if part is None:
        files = written
    else:
        listed = read_manifest(run.get("files")) or {}
        files = {rel: entry for rel, entry in listed.items() if not part(rel)}
        files.update({rel: entry for rel, entry in written.items() if part(rel)})
    run["files"] = files
    atomic_write_text(path, json.dumps(run, indent=2, allow_nan=False) + "\n")
    return files


def remove_empty_folders(folder: str | os.PathLike[str]) -> None:
    """Remove the empty folders under ``folder`` (deepest first): a manifest lists files only,
    so a folder the package left empty would later count as someone else's."""
    dirs = [
        Path(e.path)
        for _, e in _walk(Path(folder))
        if e is not None and e.is_dir(follow_symlinks=False)
    ]
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()


def read_manifest(value: Any) -> dict[str, dict[str, Any]] | None:
    """``value`` (e.g. ``run.json["files"]``) as a manifest, or None when it is not a valid one."""
    if not isinstance(value, dict):
        return None
    out: dict[str, dict[str, Any]] = {}
    for rel, digest in value.items():
        if not isinstance(rel, str) or not isinstance(digest, dict):
            return None
        if "link" in digest:
            target = digest["link"]
            if not isinstance(target, str) or not target or "\0" in target:
                return None
            out[rel] = {"link": target}
            continue
        sha, size = digest.get("sha256"), digest.get("size")
        if not isinstance(sha, str) or len(sha) != 64 or isinstance(size, bool):
            return None
        if not isinstance(size, int) or size < 0:
            return None
        out[rel] = {"sha256": sha, "size": size}
    return out


def _matches(path: Path, entry: os.DirEntry[str] | None, recorded: Mapping[str, Any]) -> bool:
    """Whether ``path`` is still what ``recorded`` says: a regular file of that size and digest,
    or a symbolic link to that target (checked right before anything is removed)."""
    try:
        info = entry.stat(follow_symlinks=False) if entry is not None else path.lstat()
    except OSError:
        return False
    if "link" in recorded:
        try:
            return stat.S_ISLNK(info.st_mode) and os.readlink(path) == recorded["link"]
        except OSError:
            return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != recorded.get("size"):
        return False
    try:
        return _digest(path)["sha256"] == recorded.get("sha256")
    except OSError:
        return False


def foreign_entries(
    folder: str | os.PathLike[str],
    manifest: Manifest,
    *,
    own: tuple[str, ...] = (),
    limit: int | None = None,
) -> list[str]:
    """What under ``folder`` the package did not write, or changed since: relative paths of files
    not in ``manifest`` or whose content differs, links (but those it lists, to their recorded
    target), other special files, and folders (``name/``) holding no listed file. ``own`` files
    (e.g. ``run.json``) are checked elsewhere. Stops after ``limit`` entries."""
    root = Path(folder)
    listed_dirs = {rel.rsplit("/", 1)[0] + "/" for rel in manifest if "/" in rel}
    for rel in list(listed_dirs):  # every ancestor of a listed file is a listed folder
        parts = rel.rstrip("/").split("/")
        listed_dirs.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    out: list[str] = []
    skip: str | None = None
    for rel, entry in _walk(root):
        if limit is not None and len(out) >= limit:
            break
        if skip is not None and rel.startswith(skip):
            continue
        if entry is None:  # an unreadable folder: nothing in it can be verified
            out.append(rel or "./")
            continue
        if entry.is_dir(follow_symlinks=False):
            if rel + "/" not in listed_dirs:
                out.append(rel + "/")
                skip = rel + "/"
            continue
        if rel in own:
            continue
        recorded = manifest.get(rel)
        if recorded is None or not _matches(Path(entry.path), entry, recorded):
            out.append(rel)
    return out


def describe_foreign(foreign: list[str], shown: int = 3) -> str:
    """Up to ``shown`` entries of :func:`foreign_entries`, printable and short, for a message."""
    names = ", ".join(shorten(name, 60) for name in foreign[:shown])
    more = len(foreign) - shown
    return names + (f" and {more} more" if more > 0 else "")


def remove_verified(
    folder: str | os.PathLike[str], manifest: Manifest, *, own: tuple[str, ...] = ()
) -> list[str]:
    """Delete the files (and links) under ``folder`` that match ``manifest`` (checked again, one
    by one), then the ``own`` files and the folders left empty; return what stays (not ours)."""
    root = Path(folder)
    dirs: list[Path] = []
    for rel, entry in list(_walk(root)):
        if entry is None:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            dirs.append(path)
        elif rel in manifest and rel not in own and _matches(path, entry, manifest[rel]):
            path.unlink()
    left = foreign_entries(root, manifest, own=own)
    if not any(not name.endswith("/") for name in left):
        # Only our own files (and empty folders) remain: the record goes last, so that a run
        # killed half-way still knows what the rest of the folder is.
        for name in own:
            with contextlib.suppress(FileNotFoundError):
                (root / name).unlink()
    for directory in [*sorted(dirs, key=lambda p: len(p.parts), reverse=True), root]:
        with contextlib.suppress(OSError):
            directory.rmdir()  # only empty folders go
    if not root.exists():
        return []
    return [rel for rel, entry in _walk(root) if entry is not None] or ["./"]


# ---------------------------------------------------------------------- the journal


def journal_dir() -> Path:
    """Where staging and old folders are recorded with their owner: ``<cache dir>/journal``."""
    return defaults.cache_dir() / "journal"


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux; None elsewhere): tells a reused pid apart."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(record: Mapping[str, Any]) -> bool:
    if record.get("host") != socket.gethostname() or os.name != "posix":
        return True  # cannot tell: leave it
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists (another user's process)
        pass
    started = record.get("started")
    now = _process_start(pid)
    return started is None or now is None or now == started


def _record(path: Path, kind: str, **extra: Any) -> Path | None:
    """Journal ``path`` (before it is created); return the entry's file, None without a journal."""
    directory = journal_dir()
    entry = directory / f"{kind}-{secrets.token_hex(8)}.json"
    record = {
        "path": os.fsdecode(os.path.abspath(path)),
        "kind": kind,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
        **extra,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(entry, json.dumps(record, ensure_ascii=True) + "\n")
    except (OSError, ValueError) as error:
        logger.debug("no journal for %s (%s): a killed run would leave it behind", path, error)
        return None
    return entry


def _forget(entry: Path | None) -> None:
    if entry is not None:
        with contextlib.suppress(OSError):
            entry.unlink()


def clean_stale() -> list[Path]:
    """Remove the staging and old folders journaled by runs that died; return what was cleaned.

    Only journaled folders whose owner process is gone are touched; an old folder whose target
    is missing is put back in its place (the previous results survive the killed run).
    """
    directory = journal_dir()
    try:
        entries = sorted(directory.glob("*.json"))
    except OSError:
        return []
    cleaned: list[Path] = []
    for entry in entries:
        try:
            record = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            continue
        if _owner_alive(record):
            continue
        path = Path(record["path"])
        try:
            _clean_one(path, record)
        except OSError as error:
            logger.warning("could not clean up %s (%s)", printable(str(path)), error)
            continue
        cleaned.append(path)
        _forget(entry)
    return cleaned


#: The names :func:`staging_folder` and :func:`replace_folder` give their folders.
_STAGING_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp", re.DOTALL)
_OLD_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.old", re.DOTALL)


def _journaled_shape(path: Path, record: Mapping[str, Any]) -> bool:
    """Whether a journal entry describes a folder the package could have made: a journal may be
    shared or edited, so an entry naming any other folder (or an old folder away from its
    target) is ignored, never obeyed."""
    if record.get("kind") == "staging":
        return bool(_STAGING_NAME.fullmatch(path.name))
    target = record.get("target")
    if record.get("kind") != "old" or not isinstance(target, str):
        return False
    target_path = Path(target)
    return (
        bool(_OLD_NAME.fullmatch(path.name))
        and path.name.startswith(f".{target_path.name[:100]}.")
        and os.path.abspath(path.parent) == os.path.abspath(target_path.parent)
    )


def _clean_one(path: Path, record: Mapping[str, Any]) -> None:
    if path.is_symlink() or not path.is_dir():
        return  # gone already (or replaced by something that is not ours)
    if not _journaled_shape(path, record):
        logger.warning(
            "ignored a journal entry for %s: not a folder rarity-score makes", printable(str(path))
        )
        return
    if record.get("kind") == "staging":
        logger.info("removing %s, left by an interrupted run", printable(str(path)))
        shutil.rmtree(path)
        return
    target = record.get("target")
    if isinstance(target, str) and not os.path.lexists(target):
        logger.warning("putting back %s: an interrupted run had moved it aside", printable(target))
        os.rename(path, target)
        return
    manifest = read_manifest(record.get("files")) or {}
    own = tuple(str(name) for name in record.get("own") or ())
    left = remove_verified(path, manifest, own=own)
    if left:
        logger.warning(
            "kept %s (left by an interrupted run): it holds files rarity-score did not write (%s)",
            printable(str(path)),
            describe_foreign(left),
        )


# ---------------------------------------------------------------------- publishing


@contextlib.contextmanager
def staging_folder(
    parent: str | os.PathLike[str], name: str, *, shown: str | os.PathLike[str] | None = None
) -> Iterator[Path]:
    """A new, journaled, hidden folder ``.NAME.<random>.tmp`` in ``parent``, removed on exit
    unless it was renamed away (published). A failure to create it names ``shown`` (the
    target) rather than the temporary name."""
    parent = Path(parent)
    while True:
        path = parent / f".{name[:100]}.{secrets.token_hex(4)}.tmp"
        if not os.path.lexists(path):
            break
    entry = _record(path, "staging")
    try:
        os.mkdir(path)  # mode 0o777 filtered by the umask, like any new folder
    except BaseException as error:
        _forget(entry)
        if isinstance(error, OSError):
            raise write_error(shown if shown is not None else path, error) from error
        raise
    try:
        yield path
    finally:
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            _forget(entry)


def replace_folder(
    staging: str | os.PathLike[str],
    target: str | os.PathLike[str],
    manifest: Manifest | None,
    *,
    own: tuple[str, ...] = (),
    refuse: str = "cannot replace",
) -> None:
    """Rename ``staging`` to ``target``. An existing ``target`` is replaced only when it is
    empty or holds nothing but the files of ``manifest`` with their recorded content (checked
    once it is moved aside, when nothing can be added to it unseen); otherwise it is put back
    and ValueError says ``refuse`` + the foreign entries. The old folder is then removed file
    by file, each file checked again; whatever fails the check stays (and is logged)."""
    staging, target = Path(staging), Path(target)
    if target.is_symlink() or (os.path.lexists(target) and not target.is_dir()):
        raise ValueError(f"{refuse} {printable(str(target))}: it is not a folder")
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        target.rmdir()
        os.rename(staging, target)
        return
    if manifest is None:
        _check_replaceable(target, manifest, own, refuse)
    assert manifest is not None
    old = target.absolute().parent / f".{target.name[:100]}.{secrets.token_hex(4)}.old"
    entry = _record(
        old, "old", target=os.fsdecode(target.absolute()), files=dict(manifest), own=list(own)
    )
    try:
        os.rename(target, old)
    except BaseException:
        _forget(entry)
        raise
    try:
        # Checked again once moved aside: nothing can be added to it unseen any more.
        _check_replaceable(old, manifest, own, refuse, shown=target)
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        _forget(entry)
        raise
    left = remove_verified(old, manifest, own=own)
    _forget(entry)
    if left:
        logger.warning(
            "kept %s: files appeared in %s while it was replaced (%s)",
            printable(str(old)),
            printable(str(target)),
            describe_foreign(left),
        )


def _check_replaceable(
    folder: Path,
    manifest: Manifest | None,
    own: tuple[str, ...],
    refuse: str,
    shown: Path | None = None,
) -> None:
    if manifest is None:
        raise ValueError(
            f"{refuse} {printable(str(shown or folder))}: it keeps no record of the files it "
            "holds, so they cannot be told apart from yours; move it or give a new folder"
        )
    foreign = foreign_entries(folder, manifest, own=own)
    if foreign:
        raise ValueError(
            f"{refuse} {printable(str(shown or folder))}: it holds files rarity-score did not "
            f"write or that changed since ({describe_foreign(foreign)}); move them elsewhere "
            "or give a new folder"
        )


def publish_folder(
    target: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    manifest: Callable[[], Manifest | None],
    own: tuple[str, ...] = (),
    refuse: str = "cannot replace",
) -> None:
    """Publish a folder as a whole: ``write(staging)`` fills a journaled staging folder beside
    ``target``, which then replaces ``target`` (:func:`replace_folder`) with the files
    ``manifest()`` lists, asked for right before the swap (a folder can change while the run
    works). The results directory and the report's rebuild both publish through here.

    A write error names ``target``, never the staging folder (a full disk stays a
    :class:`~rarity_score.io.atomic.StorageFullError`). ``target`` may be ``"."``: the folder
    is renamed as a whole.
    """
    place = Path(os.path.abspath(target))
    with staging_folder(place.parent, place.name, shown=target) as staging:
        try:
            write(staging)
            remove_empty_folders(staging)  # a staging folder: all ours
            replace_folder(staging, place, manifest(), own=own, refuse=refuse)
        except OSError as error:
            raise _renamed(error, staging, Path(target)) from error


def publish_file(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to the new file ``target`` as a whole, never replacing a file there:
    written in a journaled staging folder beside it (a run killed meanwhile leaves nothing the
    next run does not clean), then hard-linked to its name, which fails with
    ``FileExistsError`` when the name is taken. Where the file system has no hard links, the
    name is checked and the file renamed to it. A write error names ``target``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> publish_file(d / "list.csv", b"a,b").read_bytes(), sorted(p.name for p in d.iterdir())
    (b'a,b', ['list.csv'])
    >>> publish_file(d / "list.csv", b"other")
    Traceback (most recent call last):
    ...
    FileExistsError: ... exists
    """
    place = Path(os.path.abspath(target))
    with staging_folder(place.parent, place.name, shown=target) as staging:
        written = staging / "file"
        try:
            with open(written, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(written, place)
            except FileExistsError:
                raise
            except OSError:  # no hard links here (FAT, some network shares): checked, renamed
                if os.path.lexists(place):
                    raise FileExistsError(f"{printable(os.fspath(target))} exists") from None
                os.rename(written, place)
        except FileExistsError as error:
            raise FileExistsError(f"{printable(os.fspath(target))} exists") from error
        except OSError as error:
            raise write_error(target, error) from error
    return Path(target)


def _renamed(error: OSError, staging: Path, target: Path) -> OSError:
    """``error`` with the staging folder's path replaced by the target's."""
    text = str(error).replace(os.fspath(staging), os.fspath(target))
    if os.fspath(target) not in text:
        return write_error(target, error)
    out = StorageFullError(text) if is_machine_failure(error) else OSError(text)
    out.errno = error.errno
    return out
