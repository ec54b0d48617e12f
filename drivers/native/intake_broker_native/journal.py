"""Each run's documents in the data folder, so that the run index can be rebuilt from it.

The SQL index holds every document a reader needs, but the index is a single file (or a
database) that can be lost or damaged. So every document that is not an event is also
appended, as it is accepted, to ``<data>/<run folder>/documents.jsonl``: one JSON line per
document, with its insertion ordinal::

    {"kind": "start", "ord": 0, "doc": {...}}
    {"kind": "descriptor", "ord": 1, "path": "<run>/<descriptor>", "layout": {...}, "doc": {...}}
    {"kind": "segment", "ord": 2, "descriptor": "<uid>", "row_start": 0}
    {"kind": "resource", "ord": 3, "doc": {...}}
    {"kind": "stop", "ord": 9, "doc": {...}}

``segment`` lines record where a run of consecutively inserted events of one descriptor
begins (the events themselves are in the descriptor's zarr group). Together with the zarr
groups this is everything :func:`intake_broker_native.reindex` needs.

On a local data folder each line is appended with one ``os.write`` (``O_APPEND``); on an
object store (no appends) a run's file is uploaded whole at each flush and at its stop.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from .columns import ColumnStore
from .errors import StorageError

#: The file of a run's documents, inside the run's folder of the data URL.
JOURNAL = "documents.jsonl"


def line(kind: str, ord_: int, doc_json: str | None = None, **extra: Any) -> str:
    """One journal line; ``doc_json`` is the document's exact JSON text (not re-encoded)."""
    head = json.dumps({"kind": kind, "ord": ord_, **extra}, separators=(",", ":"))
    if doc_json is None:
        return head + "\n"
    return f'{head[:-1]},"doc":{doc_json}}}\n'


class Journal:
    """Appends documents to the journals of the runs a store writes."""

    def __init__(self, columns: ColumnStore, *, fsync: bool = False):
        self.columns = columns
        self.fsync = fsync
        self._remote: dict[str, list[str]] = {}  # run folder -> lines (object stores)
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def append(self, run_folder: str, text: str) -> None:
        """Add a line to a run's journal (handed to the kernel before this returns)."""
        if not self.columns.local:
            with self._lock:
                self._remote.setdefault(run_folder, []).append(text)
                self._dirty.add(run_folder)
            return
        path = self.columns.path(run_folder, JOURNAL)
        data = text.encode()
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise StorageError(
                f"cannot append to the run journal {path!r}: {err.strerror or err}"
            ) from err

    def upload(self, run_folder: str | None = None) -> None:
        """Object stores: write the journals that changed (one run's, or all)."""
        with self._lock:
            folders = [run_folder] if run_folder is not None else list(self._dirty)
            for folder in folders:
                if folder in self._dirty:
                    lines = self._remote.get(folder, [])
                    self._load_stored(folder, lines)
                    self.columns.fs.pipe_file(
                        self.columns.path(folder, JOURNAL), "".join(lines).encode()
                    )
                    self._dirty.discard(folder)

    def _load_stored(self, folder: str, lines: list[str]) -> None:
        """Before the first upload of a run this store did not start: keep what is stored."""
        if getattr(self, "_merged", None) is None:
            self._merged: set[str] = set()
        if folder in self._merged:
            return
        self._merged.add(folder)
        try:
            stored = self.columns.fs.cat_file(self.columns.path(folder, JOURNAL)).decode()
        except FileNotFoundError:
            return
        known = set(lines)
        lines[:0] = [x for x in stored.splitlines(keepends=True) if x not in known]

    def forget(self, run_folder: str) -> None:
        """The run has ended (its journal uploaded): drop what is kept of it."""
        with self._lock:
            if run_folder not in self._dirty:
                self._remote.pop(run_folder, None)
