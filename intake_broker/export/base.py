"""What every export format shares: the destination (a local folder or an fsspec URL), files
written under a temporary name and renamed when whole, checksums, the manifest, and reading a
stream block by block so memory is bounded by a block, not by the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from intake_broker.errors import BrokerError, ExportError, StreamNotFound

#: The name of the manifest an export writes at the top of its destination.
MANIFEST = "manifest.json"
#: Bytes of one block of rows read from a stream (the memory an export holds per stream).
BLOCK_BYTES = 64 * 2**20
#: Longest name kept from a stream or field name in a file name.
MAX_NAME = 100


def safe_name(name: str) -> str:
    """``name`` as one path component: letters, digits, ``_``, ``-`` and ``.`` only, no leading
    dot, at most :data:`MAX_NAME` characters (documents choose stream and field names)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))[:MAX_NAME].lstrip(".")
    return clean or "_"


# -- the manifest ---------------------------------------------------------------------------------


@dataclass
class FileRecord:
    """One file an export wrote: its path under the destination, size and SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass
class RunExport:
    """What was written for one run."""

    uid: str
    scan_id: Any = None
    plan_name: Any = None
    files: list[FileRecord] = field(default_factory=list)
    #: fields the format could not hold: ``{"stream", "field", "reason"}``
    skipped: list[dict] = field(default_factory=list)


@dataclass
class Manifest:
    """The record of an export: format, options, and per run the files with their checksums.

    Written as ``manifest.json`` at the top of the destination after every run, so an export
    that stops resumes where it stopped (a run is in the manifest only once every file of it
    was written whole).
    """

    format: str
    options: dict = field(default_factory=dict)
    runs: dict[str, RunExport] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    tool: str = "intake-broker"
    version: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def files(self) -> list[FileRecord]:
        """Every file of every run."""
        return [f for run in self.runs.values() for f in run.files]

    def to_json(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            tool = f"intake-broker {version('intake-broker')}"
        except PackageNotFoundError:
            tool = "intake-broker"
        out = asdict(self)
        out["tool"] = tool
        out["runs"] = {uid: asdict(run) for uid, run in self.runs.items()}
        return json.dumps(out, indent=1, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            raw = json.loads(text)
            runs = {
                uid: RunExport(**{**run, "files": [FileRecord(**f) for f in run.get("files", [])]})
                for uid, run in raw.get("runs", {}).items()
            }
            return cls(
                format=raw["format"],
                options=raw.get("options", {}),
                runs=runs,
                created=raw.get("created", time.time()),
                tool=raw.get("tool", "intake-broker"),
                version=raw.get("version", 1),
                extra=raw.get("extra", {}),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ExportError(
                f"{where} is not a manifest of intake-broker ({type(err).__name__}: {err}); "
                "export to an empty folder, or remove it"
            ) from None


# -- the destination ------------------------------------------------------------------------------


class Destination:
    """Where an export writes: a local folder or an fsspec URL (``s3://bucket/prefix``).

    Files are written through :meth:`writing`: a local file under a temporary name that takes
    its own name only when it was written whole (a rename on a local disk; an upload to a
    temporary key then a move on other filesystems).
    """

    def __init__(self, target: str | os.PathLike, storage_options: dict | None = None):
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        self.url = str(target)
        try:
            self.fs, root = url_to_fs(self.url, **(storage_options or {}))
        except (ValueError, ImportError) as err:
            raise ExportError(f"cannot open the destination {self.url!r}: {err}") from None
        self.root = str(root).rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as err:
            raise ExportError(
                f"cannot create the destination {self.url!r}: {err}; choose a folder you may write"
            ) from None
        if self.local and not os.access(self.root, os.W_OK | os.X_OK):
            raise ExportError(
                f"the destination {self.url!r} is not writable; choose a folder you may write"
            )

    def under(self, folder: str) -> Destination:
        """The same destination with its root at ``folder`` (a path under this root): what
        one format writes inside another's folder (the data of a publication package)."""
        import copy

        sub = copy.copy(self)
        sub.root = self.path(folder)
        sub.url = f"{self.url.rstrip('/')}/{folder}"
        sub.fs.makedirs(sub.root, exist_ok=True)
        return sub

    def path(self, rel: str) -> str:
        """The full path of ``rel`` on the destination's filesystem."""
        return f"{self.root}/{rel}" if self.root != "/" else f"/{rel}"

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def size(self, rel: str) -> int | None:
        try:
            info = self.fs.info(self.path(rel))
        except (FileNotFoundError, OSError):
            return None
        return int(info.get("size") or 0) if info.get("type") != "directory" else None

    def read_text(self, rel: str) -> str | None:
        try:
            with self.fs.open(self.path(rel), "rb") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None

    def write_text(self, rel: str, text: str) -> FileRecord:
        """Write a small text file whole (temporary name, then rename)."""
        with self.writing(rel) as (path, records):
            Path(path).write_text(text)
        return records[0]

    @contextmanager
    def writing(self, rel: str, directory: bool = False) -> Iterator[tuple[Path, list]]:
        """``(local_path, records)``: write the file (or, with ``directory``, the folder) of
        ``rel`` at ``local_path``; when the block ends without error it takes its name and
        ``records`` gets a :class:`FileRecord` per file. On any error the partial file is
        removed and an :class:`ExportError` says what happened."""
        records: list[FileRecord] = []
        final = self.path(rel)
        if self.local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(f"{final}.partial-{uuid.uuid4().hex[:8]}")
            scratch = None
        else:
            scratch = Path(tempfile.mkdtemp(prefix="intake-broker-export-"))
            tmp = scratch / Path(rel).name
        if directory:
            tmp.mkdir(parents=True)
        try:
            yield tmp, records
            records.extend(_checksums(tmp, rel, directory))
            self._commit(tmp, final, directory)
        except OSError as err:
            if isinstance(err, BrokerError):  # a refused or missing read (an asset outside the
                raise  # roots is a PermissionError too): not the destination's failure
            raise ExportError(_write_failure(self.url, rel, err)) from err
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _commit(self, tmp: Path, final: str, directory: bool) -> None:
        if self.local:
            if directory and os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
            return
        partial = f"{final}.partial-{uuid.uuid4().hex[:8]}"
        try:
            self.fs.put(str(tmp), partial, recursive=directory)
            if directory and self.fs.exists(final):
                self.fs.rm(final, recursive=True)
            self.fs.mv(partial, final, recursive=directory)
        except BaseException:
            try:
                if self.fs.exists(partial):
                    self.fs.rm(partial, recursive=directory)
            except OSError:
                pass
            raise


def _write_failure(url: str, rel: str, err: OSError) -> str:
    import errno

    why = {
        errno.ENOSPC: "the destination is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EROFS: "the filesystem is read-only",
    }.get(err.errno or 0, f"{type(err).__name__}: {err}")
    return (
        f"writing {rel!r} to {url!r} failed ({why}); nothing was left under that name and the "
        "manifest lists only the runs written whole: free room or choose another destination, "
        "then export again to resume"
    )


def _checksums(path: Path, rel: str, directory: bool) -> list[FileRecord]:
    if not directory:
        return [FileRecord(rel, path.stat().st_size, sha256(path))]
    out = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        sub = file.relative_to(path).as_posix()
        out.append(FileRecord(f"{rel}/{sub}", file.stat().st_size, sha256(file)))
    return out


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a local file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 2**20):
            digest.update(block)
    return digest.hexdigest()


# -- reading runs block by block ------------------------------------------------------------------


def select_streams(run: Any, streams: Sequence[str] | None) -> list[str]:
    """The stream names to export: every stream of the run, or those asked for (all known)."""
    names = list(run)
    if streams is None:
        return names
    unknown = [s for s in streams if s not in names]
    if unknown and not any(s in names for s in streams):
        raise StreamNotFound(f"run {run.uid[:8]} has none of the streams {unknown}; it has {names}")
    return [s for s in streams if s in names]


def select_fields(stream: Any, fields: Sequence[str] | None) -> list[str]:
    """The data keys of ``stream`` to export: all, or those of ``fields`` it has."""
    keys = list(stream.layout.data_keys)
    return keys if fields is None else [k for k in keys if k in set(fields)]


def row_bytes(stream: Any, keys: Sequence[str]) -> int:
    from intake_broker.views.datakeys import field_dtype, field_shape

    total = 16  # time and seq_num
    for key in keys:
        dk = stream.layout.data_keys[key]
        dtype = field_dtype(dk)
        itemsize = dtype.itemsize if dtype.kind != "O" else 64
        total += itemsize * int(np.prod(field_shape(dk), dtype=np.int64))
    return total


def blocks(stream: Any, keys: Sequence[str], block_bytes: int = BLOCK_BYTES) -> Iterator[Any]:
    """The stream's ``keys`` as computed ``xarray.Dataset`` s of consecutive rows, each of
    about ``block_bytes`` (at least one row). What a block reads is the stored chunks it
    overlaps, so memory is bounded by a block plus a stored chunk."""
    total = len(stream.layout)
    if total == 0:
        return
    ds = stream(include=list(keys), seq_num=True).to_dask()
    rows = max(1, block_bytes // max(1, row_bytes(stream, keys)))
    for lo in range(0, total, rows):
        yield ds.isel(time=slice(lo, lo + rows)).compute()


class Exporter:
    """A format an export can write. Subclasses set :attr:`name` and write one run in
    :meth:`write_run`; options are keyword arguments, recorded in the manifest."""

    name: ClassVar[str] = ""
    #: The file's documents can be ingested back exactly.
    carries_documents: ClassVar[bool] = False
    #: Options this format takes, with their defaults.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            takes = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()) or "none"
            raise ExportError(
                f"the {self.name} format takes no option {', '.join(unknown)}; its options: {takes}"
            )
        self.options = {**self.defaults, **options}
        self.block_bytes = BLOCK_BYTES

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        raise NotImplementedError

    def finish(self, dest: Destination, manifest: Manifest) -> None:
        """Called once after the runs were written (or skipped as written before), with the
        manifest: a format that describes the whole export (a publication package) writes that
        description here. Nothing by default."""

    def new_record(self, run: Any) -> RunExport:
        start = run.metadata["start"]
        return RunExport(
            uid=run.uid, scan_id=start.get("scan_id"), plan_name=start.get("plan_name")
        )


def run_metadata(run: Any) -> dict[str, Any]:
    """The sidecar of formats that hold values only: start, stop and descriptors."""
    return {
        "start": run.metadata["start"],
        "stop": run.metadata["stop"],
        "descriptors": run.descriptors,
    }


def to_json(value: Any, **kwargs: Any) -> str:
    """JSON of documents (numpy values become plain numbers and lists)."""
    import event_model

    return json.dumps(value, cls=event_model.NumpyEncoder, **kwargs)
