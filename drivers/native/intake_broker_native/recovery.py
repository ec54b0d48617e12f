"""Recovering the run index: refusing a lost one, and rebuilding it from the data folder.

The data folder holds everything a run is made of: each run's folder has its
``documents.jsonl`` journal (every document that is not an event, see :mod:`.journal`) and a
zarr group per descriptor (the events); the ``_wal`` folder holds the event logs of writers
(see :mod:`.wal`); the ``_annotations`` folder every change of an annotation (see
:mod:`.annotation_journal`). So a lost or damaged index is rebuilt from it::

    from intake_broker_native import reindex
    print(reindex("/data/runs"))          # <folder>/index.sqlite from <folder>/data
    reindex("/data/runs/data", index="postgresql://broker@db/csx")

or from the command line, ``python -m intake_broker_native.recovery --data /data/runs``
(``intake-broker reindex --data DIR``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fsspec.core import url_to_fs

from intake_broker.console import plural
from intake_broker.errors import BrokerError

from . import annotation_journal
from .errors import CorruptChunk, IndexMissing, IndexUnavailable
from .journal import JOURNAL
from .schema import shown, sqlite_path

#: The event-log folder inside a local data folder (never a run folder: those start with a
#: letter or digit).
WAL_FOLDER = "_wal"


def wal_folder(index: str, data: str, local: bool, given: str | os.PathLike | None) -> str:
    """Where a store keeps its event logs (see :class:`~intake_broker_native.NativeStore`)."""
    if given is not None:
        return os.path.abspath(os.fspath(given))
    if local:
        _, root = url_to_fs(data)
        return os.path.join(root, WAL_FOLDER)
    url = sa.make_url(index)
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is not None:
        return os.path.splitext(os.path.abspath(path))[0] + "-wal"
    import platformdirs

    key = hashlib.sha1(f"{shown(index)} {data}".encode()).hexdigest()[:16]
    return os.path.join(platformdirs.user_state_dir("intake-broker-native"), "wal", key)


def runs_in(data: str, storage_options: dict | None = None) -> str | None:
    """A file showing that the data URL holds runs (a journal, a zarr group or an event log),
    or None."""
    try:
        fs, root = url_to_fs(data, **(storage_options or {}))
        root = root.rstrip("/")
        if not fs.isdir(root):
            return None
        for pattern in (f"*/{JOURNAL}", "*/*/zarr.json", f"{WAL_FOLDER}/*.wal"):
            found = fs.glob(f"{root}/{pattern}", maxdepth=None)
            if found:
                return found[0]
    except (OSError, ValueError):
        return None
    return None


def refuse_lost_index(
    index: str, data: Any, storage_options: dict, engine: sa.Engine | None = None
) -> None:
    """Raise :class:`IndexMissing` when a new (or empty) index would be made for a data
    folder that holds runs. Called before the engine exists (a SQLite file not there yet:
    checked before SQLite creates it) and after (a database without the tables)."""
    try:
        url = sa.make_url(index)
    except Exception:
        return  # create_engine reports it
    if url.get_backend_name() == "sqlite":
        if engine is not None:
            return
        path = sqlite_path(url)
        if path is None or (os.path.exists(path) and os.path.getsize(path) > 0):
            return
        where = f"the SQLite run index {path!r} does not exist"
        if data is None:  # the default data folder, or NativeStore.in_folder's
            candidates = [
                os.path.splitext(os.path.abspath(path))[0] + "-data",
                os.path.join(os.path.dirname(os.path.abspath(path)), "data"),
            ]
            data = next((c for c in candidates if runs_in(c) is not None), candidates[0])
    else:
        if engine is None or data is None:
            return
        try:
            if sa.inspect(engine).has_table("schema_version"):
                return
        except sa.exc.DBAPIError:
            return  # ensure_schema reports it
        where = f"the run index {shown(url)} holds no tables"
    data = os.fspath(data)
    evidence = runs_in(data, storage_options)
    if evidence is not None:
        raise IndexMissing(
            f"{where}, but its data folder {data!r} holds runs (e.g. {evidence!r}): the "
            "index was lost or the wrong index was given. Rebuild it from the data folder: "
            f"`intake-broker reindex --data {data} --index {shown(url)}` "
            f"(intake_broker_native.reindex({data!r}, {shown(url)!r})), or give the right "
            "index; no empty store was made"
        )


@dataclass
class ReindexReport:
    """What :func:`reindex` did."""

    index: str
    data: str
    runs: int = 0
    incomplete: int = 0
    descriptors: int = 0
    events: int = 0
    documents: int = 0
    recovered: int = 0  # events replayed from the logs of writers that died
    annotation_changes: int = 0  # restored from <data>/_annotations
    moved_aside: str | None = None
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        events = f"{self.events:,} {'event' if self.events == 1 else 'events'}"
        text = (
            f"rebuilt the run index {self.index} from {self.data}: {plural(self.runs, 'run')} "
            f"({self.incomplete} incomplete), {plural(self.descriptors, 'descriptor')}, "
            f"{events}, {plural(self.documents, 'other document')}"
        )
        if self.recovered:
            text += f", {plural(self.recovered, 'event')} recovered from write-ahead logs"
        if self.annotation_changes:
            text += f", {plural(self.annotation_changes, 'annotation change')}"
        if self.moved_aside:
            text += f"; the old index was moved to {self.moved_aside}"
        if self.problems:
            text += f"; {plural(len(self.problems), 'problem')}:\n  " + "\n  ".join(self.problems)
        return text


class _NoJournal:
    """The journal while rebuilding: the documents come from it, nothing is appended."""

    local = True

    def append(self, *_: Any) -> None:
        pass

    def upload(self, *_: Any) -> None:
        pass

    def forget(self, *_: Any) -> None:
        pass


def _layouts(folder: str) -> tuple[str | None, str]:
    """``(index, data)`` for a folder: ``<folder>/index.sqlite`` and ``<folder>/data`` when
    it has a ``data`` folder (``NativeStore.in_folder``); for a data folder ``.../data``
    the ``index.sqlite`` beside it; for ``X-data``, ``X.sqlite`` (the default data folder
    of a SQLite index); else no index (it must be given)."""
    folder = os.path.abspath(folder)
    if os.path.isdir(os.path.join(folder, "data")):
        return f"sqlite:///{folder}/index.sqlite", os.path.join(folder, "data")
    if os.path.basename(folder) == "data":
        return f"sqlite:///{os.path.dirname(folder)}/index.sqlite", folder
    if folder.endswith("-data"):
        return f"sqlite:///{folder[: -len('-data')]}.sqlite", folder
    return None, folder


def _move_aside(index: str) -> str | None:
    url = sa.make_url(index)
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is None or not os.path.exists(path):
        return None
    aside = f"{path}.before-reindex-{time.strftime('%Y%m%d-%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside


def reindex(
    data: str | os.PathLike,
    index: str | None = None,
    *,
    storage_options: dict | None = None,
    wal: str | os.PathLike | None = None,
    progress: bool | None = False,
) -> ReindexReport:
    """Rebuild a native store's run index from its data folder.

    Parameters
    ----------
    data : str or path
        The data folder (or fsspec URL), or a store folder made by
        ``NativeStore.in_folder`` (holding ``data/``; the index is then its
        ``index.sqlite``).
    index : str, optional
        The index to build (``sqlite:///...`` or ``postgresql://...``; a PostgreSQL database
        must hold no run index yet). Default: the folder's ``index.sqlite``. An existing
        SQLite file (damaged, or stale) is moved aside first, never deleted.
    progress : bool, optional
        Draw a progress bar of the runs on stderr (throttled, see :mod:`intake_broker.progress`);
        None: only when stderr is a terminal (what ``intake-broker reindex`` does). Default: no.

    Returns
    -------
    ReindexReport
        Runs, descriptors, events and documents indexed, and every problem met (a journal
        line that is not JSON, a damaged last chunk, ...): skipped, never fatal.
    """
    from intake_broker.progress import progress_bar

    from .store import NativeStore

    data = os.fspath(data)
    if "://" not in data:
        default_index, data = _layouts(data)
        index = index or default_index
    if index is None:
        raise IndexUnavailable(
            f"which index should be rebuilt from {data!r}? Give index= (--index): "
            "'sqlite:///path/index.sqlite' or 'postgresql://user@host/db'"
        )
    if runs_in(data, storage_options) is None:
        raise IndexMissing(
            f"{data!r} holds no runs (no <run>/{JOURNAL}, zarr group or event log): "
            "nothing to rebuild an index from; give the data folder of a native store"
        )
    moved = _move_aside(index)
    store = NativeStore(index, data, storage_options=storage_options, wal=wal, _rebuilding=True)
    report = ReindexReport(shown(index), store.data, moved_aside=moved)
    try:
        store._ingest.journal = _NoJournal()  # type: ignore[assignment]
        fs, root = store.columns.fs, store.columns.root
        journals = sorted(fs.glob(f"{root}/*/{JOURNAL}"))
        bar = progress_bar(
            journals, total=len(journals), unit="run", desc="reindex", enabled=progress
        )
        for path in bar:
            try:
                _rebuild_run(store, fs, path, report)
            except (BrokerError, ValueError, KeyError, OSError, sa.exc.SQLAlchemyError) as err:
                report.problems.append(f"run journal {path!r} skipped: {err}")
        report.recovered = store._ingest.replay()
        report.events += report.recovered
        report.annotation_changes = annotation_journal.replay(store, report.problems)
    finally:
        store.close()
    for problem in report.problems:
        warnings.warn(problem, stacklevel=2)
    return report


def _read_journal(fs: Any, path: str, report: ReindexReport) -> list[dict]:
    """The journal's lines, each with ``_at``: its byte offset and length in the file."""
    lines = []
    offset = 0
    for number, raw in enumerate(fs.cat_file(path).splitlines(keepends=True), 1):
        at, offset = [offset, len(raw)], offset + len(raw)
        text = raw.decode("utf-8", "replace")
        if not text.strip():
            continue
        try:
            item = json.loads(text)
            if not isinstance(item, dict) or "kind" not in item:
                raise ValueError("not a journal line")
        except ValueError:
            report.problems.append(
                f"{path}:{number} is not a journal line (a torn write?): skipped"
            )
            continue
        item["_at"] = at
        lines.append(item)
    return lines


def _packed_rows(
    store: Any, rel: str, layout: Any, line: dict | None, journal: str, report: ReindexReport
) -> tuple[int, Any, Any]:
    """``(rows, layout, seq_num)`` of a stream's packed record (its journal line, or its
    file on an object store); ``(0, None, None)`` when there is none or it is damaged."""
    from . import packed

    columns = store.columns
    if line is not None:
        try:
            rows = int(line["rows"])
        except (KeyError, TypeError, ValueError):
            return 0, None, None
        found = layout.packed_for(rows)
        found.packed_at = list(line["_at"])
    else:
        path = columns.path(packed.file_of(rel))
        try:
            raw = columns.fs.cat_file(path)
        except FileNotFoundError:
            return 0, None, None
        records, _ = packed.parse_records(raw)
        if not records:
            report.problems.append(f"{path} is damaged: the packed stream is skipped")
            return 0, None, None
        rows = records[0].rows
        found = layout.packed_for(rows)
    try:
        cols = columns.packed_columns(rel, found, rows, rel)
    except CorruptChunk as err:
        report.problems.append(f"{rel}: packed events skipped: {err}")
        return 0, None, None
    return rows, found, cols["seq_num"]


def _rebuild_run(store: Any, fs: Any, path: str, report: ReindexReport) -> None:
    from .ingest import node_name
    from .layout import Layout
    from .schema import descriptors, event_chunks, event_segments, write_transaction
    from .writer import _merge

    lines = _read_journal(fs, path, report)
    starts = [x for x in lines if x["kind"] == "start"]
    if not starts:
        report.problems.append(f"run journal {path!r} has no start document: skipped")
        return
    run_uid = starts[0]["doc"]["uid"]
    store.put("start", starts[0]["doc"])
    ingest = store._ingest
    writer = ingest.writers.get(run_uid) or ingest._load(run_uid)
    ingest.writers[run_uid] = writer
    segments: dict[str, dict[int, int]] = {}
    stop = None
    layouts: dict[str, Layout] = {}
    packed_lines: dict[str, dict] = {}
    for item in lines:
        kind = item["kind"]
        if kind in ("start",):
            continue
        if kind == "stop":
            stop = item["doc"]
            continue
        if kind == "segment":
            segments.setdefault(item["descriptor"], {}).setdefault(
                int(item["row_start"]), int(item["ord"])
            )
            continue
        if kind == "events":  # a packed stream (the last record of a descriptor counts)
            packed_lines[str(item.get("descriptor"))] = item
            continue
        writer.next_ord, writer.current = int(item["ord"]), None
        try:
            store.put(kind, item["doc"])
        except BrokerError as err:
            report.problems.append(f"{path}: a {kind} document skipped: {err}")
            continue
        if kind == "descriptor":
            report.descriptors += 1
            layouts[item["doc"]["uid"]] = Layout.from_json(json.dumps(item["layout"]))
        else:
            report.documents += 1
    folder = node_name(run_uid)
    for uid, layout in layouts.items():
        rel = f"{folder}/{node_name(uid)}"
        rows, chunk_rows, compressed = _valid_rows(store, rel, layout, report)
        packed_rows, packed_layout, packed_seq = _packed_rows(
            store, rel, layout, packed_lines.get(uid), path, report
        )
        seq = None
        if packed_rows and packed_rows >= rows:  # the zarr group is a copy, or older
            rows, layout, seq = packed_rows, packed_layout, packed_seq
        elif chunk_rows is not None:
            layout = Layout(chunk_rows, layout.fields, compressed)
        chunk_list, segment_rows = [], []
        if rows:
            if seq is None:
                seq = store.columns.read(rel, ["seq_num"], 0, rows, {"seq_num": rel})["seq_num"]
            chunk = None
            for idx in range((rows - 1) // layout.chunk_rows + 1):
                lo, hi = idx * layout.chunk_rows, min(rows, (idx + 1) * layout.chunk_rows)
                previous = None if chunk is None else chunk.seq_last
                chunk = _merge(None, previous, idx, lo, seq[lo:hi])
                chunk_list.append(chunk.as_dict(uid))
            starts_at = sorted((s, o) for s, o in segments.get(uid, {}).items() if s < rows)
            if not starts_at or starts_at[0][0] != 0:
                starts_at.insert(0, (0, writer.next_ord))
            for i, (start, ord_) in enumerate(starts_at):
                end = starts_at[i + 1][0] if i + 1 < len(starts_at) else rows
                segment_rows.append(
                    {"descriptor_uid": uid, "row_start": start, "row_stop": end, "ord": ord_}
                )
        with write_transaction(store.engine) as conn:
            conn.execute(
                descriptors.update().where(descriptors.c.uid == uid).values(layout=layout.to_json())
            )
            if chunk_list:
                conn.execute(event_chunks.insert(), chunk_list)
                conn.execute(event_segments.insert(), segment_rows)
        report.events += rows
    # the run is reloaded from the index when a log replays into it
    ingest.writers.pop(run_uid, None)
    for uid in layouts:
        ingest.owner.pop(uid, None)
    report.runs += 1
    if stop is not None:
        store.put("stop", stop)
        ingest.writers.pop(run_uid, None)
    else:
        report.incomplete += 1


def _valid_rows(
    store: Any, rel: str, layout: Any, report: ReindexReport
) -> tuple[int, int | None, bool]:
    """``(rows, chunk_rows, compress_strings)`` of a descriptor's zarr group: the rows every
    array holds whole and undamaged (a writer that died in a flush may have written some
    arrays and not others; each array is written in order, so the good rows are a prefix)."""
    from .columns import array_specs

    fs = store.columns.fs
    names = [spec.name for spec in array_specs(layout)]
    metas = []
    for name in names:
        try:
            metas.append(json.loads(fs.cat_file(store.columns.path(rel, name, "zarr.json"))))
        except FileNotFoundError:
            return 0, None, True
        except ValueError:
            report.problems.append(f"{rel}/{name}/zarr.json is damaged: the stream is skipped")
            return 0, None, True
    rows = min(int(m["shape"][0]) for m in metas)
    chunk_rows = int(metas[0]["chunk_grid"]["configuration"]["chunk_shape"][0])
    uid_meta = metas[names.index("uid")]
    compressed = any(c.get("name") == "zstd" for c in uid_meta.get("codecs", []))
    store.columns._meta.clear()
    while rows > 0:
        last = (rows - 1) // chunk_rows * chunk_rows
        try:
            store.columns.read(rel, names, last, rows, dict.fromkeys(names, rel))
            break
        except CorruptChunk as err:
            report.problems.append(f"{rel}: rows {last}..{rows} dropped: {err}")
            rows = last
    return rows, chunk_rows, compressed


def main(argv: Sequence[str] | None = None) -> int:
    """``intake-broker reindex [--data DIR] [--index URL]``: rebuild a native store's run
    index from its data folder; prints the report. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="intake-broker reindex",
        description="Rebuild the run index of a native store from its data folder.",
    )
    parser.add_argument(
        "--data",
        help="the store folder (holding data/) or the data folder itself (default: the "
        "default catalog's, $INTAKE_BROKER_DATA/runs or the user data dir's runs/)",
    )
    parser.add_argument(
        "--index", help="the index to build (default: index.sqlite of the store folder)"
    )
    shown_progress = parser.add_mutually_exclusive_group()
    shown_progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="always show a progress bar (default: only when stderr is a terminal)",
    )
    shown_progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )
    args = parser.parse_args(argv)
    if args.data is None:
        from intake_broker.catalogs.paths import data_dir

        args.data = str(data_dir() / "runs")
    try:
        report = reindex(args.data, args.index, progress=args.progress)
    except BrokerError as err:
        from intake_broker.console import error

        error(str(err), "intake-broker reindex")
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
