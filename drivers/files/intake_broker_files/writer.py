"""Getting the documents of one run into its file.

On a local disk each document is appended and handed to the operating system (one
``os.write`` through the flushed file object) before ``insert`` returns, so a writer killed at
any moment (``kill -9``) loses no acknowledged document and leaves a readable (incomplete)
file; with ``fsync=True`` each document is also flushed to disk (survives a power loss, at the
cost of a disk flush per document). Filesystems that cannot append (object stores such as S3)
get the whole file written at once: when the stop document arrives, and on ``flush()``.
A document that arrives after the stop was written rewrites the file (stop stays last).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from intake_broker.store.memory import RunDocuments

from .formats import FileFormat


def ordered_documents(docs: RunDocuments) -> Iterator[tuple[str, dict]]:
    """A run's documents in stored order with the stop document last."""
    yield from (item for item in docs.ordered if item[0] != "stop")
    if docs.stop is not None:
        yield "stop", docs.stop


def can_append(fs: Any) -> bool:
    """Whether run files on ``fs`` are appended to (local disks) rather than rewritten."""
    return isinstance(fs, LocalFileSystem)


class RunWriter:
    """A run this store is writing: its documents in memory and the state of its file.

    Parameters
    ----------
    docs : RunDocuments
        The run's documents (the integrity rules live there).
    fs, path :
        Where the run's file is.
    fmt : FileFormat
        How documents are encoded.
    key : tuple, optional
        The index key of the file as it is on disk, for a run reopened from its file.
    fsync : bool
        Also ``fsync`` each appended document (and a rewritten file) before returning.
    """

    def __init__(
        self,
        docs: RunDocuments,
        fs: Any,
        path: str,
        fmt: FileFormat,
        key: tuple | None = None,
        *,
        fsync: bool = False,
    ):
        self.docs = docs
        self.fs = fs
        self.path = path
        self.fmt = fmt
        self.key = key
        self.appendable = can_append(fs)
        self.stop_on_disk = key is not None and docs.stop is not None
        self.dirty = False  # documents in memory that the file lacks (non-appendable fs)
        self.written = False  # the file changed since this writer was made
        self.fsync = fsync
        self._handle: IO[bytes] | None = None

    @property
    def uid(self) -> str:
        return self.docs.start["uid"]

    @property
    def settled(self) -> bool:
        """The run is complete and its file holds every document."""
        return self.docs.stop is not None and not self.dirty

    def create(self, data: bytes) -> None:
        """Start a new file with the encoded start document ``data``."""
        if self.appendable:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._handle = open(self.path, "xb")  # noqa: SIM115 -- kept open while acquiring
            self._append(data)
            if self.fsync:  # the new file's name too
                _fsync_folder(os.path.dirname(self.path) or ".")
            self.written = True
        else:
            self.dirty = True

    def write(self, kind: str, data: bytes) -> None:
        """Add one accepted document (``data`` is its encoding) to the file."""
        if self.stop_on_disk:  # keep the stop document last
            self.rewrite()
        elif self.appendable:
            if self._handle is None:
                self._handle = open(self.path, "ab")  # noqa: SIM115
            self._append(data)
            self.written = True
            if kind == "stop":
                self._close_handle()
                self.stop_on_disk = True
        else:
            self.dirty = True
            if kind == "stop":
                self.rewrite()

    def rewrite(self) -> None:
        """Write the whole file from the documents in memory (atomically where possible)."""
        data = b"".join(self.fmt.encode(k, d) for k, d in ordered_documents(self.docs))
        if self.appendable:
            self._close_handle()
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            temporary = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
            with open(temporary, "wb") as file:
                file.write(data)
                if self.fsync:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, self.path)
            if self.fsync:
                _fsync_folder(os.path.dirname(self.path) or ".")
        else:
            self.fs.pipe_file(self.path, data)
        self.dirty = False
        self.written = True
        self.stop_on_disk = self.docs.stop is not None

    def _append(self, data: bytes) -> None:
        """Append one encoded document: handed to the kernel (and with ``fsync`` to the disk)
        when this returns."""
        assert self._handle is not None
        self._handle.write(data)
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())

    def flush(self) -> None:
        """Make the file hold every document accepted so far."""
        if self._handle is not None:
            self._handle.flush()
        elif self.dirty:
            self.rewrite()

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        """Flush, and close the open file if any."""
        self.flush()
        self._close_handle()


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a file created or renamed in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
