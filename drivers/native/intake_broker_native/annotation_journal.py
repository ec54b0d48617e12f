"""Annotations in the data folder, so that ``reindex`` keeps them.

The SQL index holds the annotations a reader and a search need, but :func:`reindex` rebuilds
the index from the data folder, which held only documents and events: annotations (which live
in no document) would be lost. So every change of an annotation is also written, as its
history entry, to ``<data>/_annotations/<annotation id>-<version>.json`` (one small file per
change, never changed afterwards; the folder starts with ``_``, so it is never a run folder).
:func:`replay` puts the annotations (each at its newest version) and their history back into a
rebuilt index.

One file per change, named by the annotation and the version the change makes, needs no
appends (an object store has none) and no lock of its own: the file is written inside the
write transaction of the change (SQLite's write lock, PostgreSQL's advisory lock on the
annotation), after the change is decided and before it is committed, so:

* a change acknowledged (``change_annotation`` returned) has its file: it survives a reindex;
* a change whose commit failed or whose writer died before committing may leave a file of a
  version the index does not hold; the next change of that annotation makes the same version
  and replaces the file, and if none does, a reindex restores the change (a change that was
  never acknowledged may survive, as a document may). Nothing acknowledged is lost.

Local files are written to a temporary name and renamed (a reader never sees half a file);
``durability="fsync"`` also fsyncs the file and the folder, like the run journals.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from .columns import ColumnStore

#: The folder of annotation changes inside the data folder.
FOLDER = "_annotations"


def file_name(entry: Mapping[str, Any]) -> str:
    """The file of a history entry: its annotation and the version it made."""
    return f"{entry['annotation']}-{int(entry['version']):010d}.json"


class AnnotationJournal:
    """Writes the history entry of each annotation change into the data folder."""

    def __init__(self, columns: ColumnStore, *, fsync: bool = False):
        self.columns = columns
        self.fsync = fsync

    def write(self, entry: Mapping[str, Any]) -> None:
        """Keep one history entry (in the kernel, or on disk with fsync, when this returns)."""
        text = json.dumps(entry, separators=(",", ":")).encode()
        if not self.columns.local:
            self.columns.fs.pipe_file(self.columns.path(FOLDER, file_name(entry)), text)
            return
        folder = os.path.join(self.columns.root, FOLDER)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(text)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, os.path.join(folder, file_name(entry)))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        if self.fsync:
            dirfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)


def entries(columns: ColumnStore, problems: list[str]) -> Iterator[dict]:
    """Every history entry kept in the data folder (unreadable files reported in
    ``problems`` and skipped)."""
    fs = columns.fs
    folder = columns.path(FOLDER)
    try:
        paths = sorted(fs.glob(f"{folder}/*.json"))
    except FileNotFoundError:
        return
    for path in paths:
        try:
            entry = json.loads(fs.cat_file(path))
            if not isinstance(entry, dict) or not isinstance(entry.get("after"), dict):
                raise ValueError("not a history entry")
        except (OSError, ValueError) as err:
            problems.append(f"annotation change {path!r} skipped: {err}")
            continue
        yield entry


def replay(store: Any, problems: list[str]) -> int:
    """Put the annotations kept in ``store``'s data folder (each at its newest version) and
    their history into its index, for the runs it holds; returns how many changes were
    restored."""
    by_run: dict[str, dict[str, list[dict]]] = {}
    for entry in entries(store.columns, problems):
        run_uid = str(entry["after"].get("run_uid"))
        by_run.setdefault(run_uid, {}).setdefault(str(entry["annotation"]), []).append(entry)
    restored = 0
    for run_uid, kept_by_id in sorted(by_run.items()):
        changes = [e for kept in kept_by_id.values() for e in kept]
        try:
            store._annotated_run(run_uid)
        except Exception:
            problems.append(
                f"run {run_uid!r} is not in the data folder: its {len(changes)} annotation "
                f"change(s) are kept in {FOLDER}/ but not indexed"
            )
            continue
        newest = [
            max(kept, key=lambda e: int(e["version"]))["after"] for kept in kept_by_id.values()
        ]
        changes.sort(key=lambda e: (float(e["time"]), int(e["version"]), str(e["annotation"])))
        store._restore_annotations(newest, changes)
        restored += len(changes)
    return restored
