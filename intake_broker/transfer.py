"""Copying runs from any store into any other, resumably, checking event counts.

Only the :class:`~intake_broker.store.DocumentStore` contract is used: ``source.runs()``,
``source.documents(uid)`` and ``event_chunks`` (metadata, no values) on both sides, and
``dest.put``. A run the destination already holds, complete and with the same number of events
in every stream, is skipped; any other run is replayed whole, which is safe to repeat because
re-inserting an identical document is a no-op in every store: an interrupted import simply
runs again and continues where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from intake_broker.errors import CopyMismatch, ReadOnlyStore, RunNotFound
from intake_broker.queries import Query, as_query
from intake_broker.store.abilities import flush
from intake_broker.store.contract import DocumentStore
from intake_broker.store.documents import normalize

_PAGE = 500


@dataclass
class CopyReport:
    """What :func:`copy_runs` did."""

    #: runs written (new, or completed where an earlier copy stopped)
    copied: list[str] = field(default_factory=list)
    #: runs the destination already held, complete, with the same event counts
    skipped: list[str] = field(default_factory=list)
    #: copied runs that have no stop document in the source (still acquiring, or died)
    incomplete: list[str] = field(default_factory=list)
    #: documents put into the destination (event and datum pages count once)
    documents: int = 0
    #: events put into the destination
    events: int = 0

    def __str__(self) -> str:
        from intake_broker.console import plural

        return (
            f"{plural(len(self.copied), 'run')} copied ({len(self.incomplete)} of them "
            f"incomplete), {len(self.skipped)} already there; "
            f"{plural(self.documents, 'document')}, {plural(self.events, 'event')}"
        )


def stream_counts(store: DocumentStore, run_uid: str) -> dict[str, int]:
    """Events per stream of a run, from the store's chunk metadata (no values are read)."""
    counts: Counter[str] = Counter()
    for descriptor in store.descriptors(run_uid):
        rows = sum(c.rows for c in store.event_chunks(descriptor["uid"]))
        counts[str(descriptor.get("name", "primary"))] += rows
    return dict(counts)


def _progress(total: int, enabled: bool | None):
    from intake_broker.progress import progress_bar

    return progress_bar(total=total, unit="run", desc="copying runs", enabled=enabled, leave=True)


def copy_runs(
    source: DocumentStore,
    dest: DocumentStore,
    *,
    query: Query | Mapping | None = None,
    progress: bool | None = None,
    validate: bool = False,
) -> CopyReport:
    """Copy every run of ``source`` (matching ``query``) into ``dest``, oldest first.

    Parameters
    ----------
    source, dest : DocumentStore
        Any stores; ``dest`` must be writable.
    query : Query or dict, optional
        Only the runs matching it.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    validate : bool
        Check every document against event-model's schemas on the way (the source's
        documents were checked when they were stored; off by default for speed).

    Returns
    -------
    CopyReport

    Raises
    ------
    CopyMismatch
        When, after copying a run, a stream of the destination holds a different number of
        events than the source's (naming the run, the stream and both counts).
    DocumentConflict
        When the destination holds a different document with the uid of one being copied.
    """
    if not getattr(dest, "writable", False):
        raise ReadOnlyStore(f"cannot copy runs into {dest!r}: it is read-only")
    query = as_query(query)
    report = CopyReport()
    with _progress(source.count(query), progress) as bar:
        skip = 0
        while True:
            page = source.runs(query, sort=(("time", 1),), skip=skip, limit=_PAGE)
            for record in page:
                _copy_one(source, dest, record, report, validate)
                bar.update(1)
                bar.set_postfix(
                    copied=len(report.copied), skipped=len(report.skipped), refresh=False
                )
            if len(page) < _PAGE:
                break
            skip += _PAGE
    return report


def _copy_one(source, dest, record, report: CopyReport, validate: bool) -> None:
    uid = record.uid
    expected = stream_counts(source, uid)
    try:
        held = dest.run(uid)
    except RunNotFound:
        held = None
    if (
        held is not None
        and held.complete
        and record.complete
        and stream_counts(dest, uid) == expected
    ):
        report.skipped.append(uid)
        return
    for kind, doc in source.documents(uid):
        kind, doc = normalize(kind, doc, check=validate)
        dest.put(kind, doc)
        report.documents += 1
        if kind == "event_page":
            report.events += len(doc["uid"])
    flush(dest)  # stores that buffer events write them now, so counts can be checked
    got = stream_counts(dest, uid)
    if got != expected:
        differ = sorted(k for k in set(got) | set(expected) if got.get(k, 0) != expected.get(k, 0))
        details = ", ".join(
            f"{k!r}: source {expected.get(k, 0)}, destination {got.get(k, 0)}" for k in differ
        )
        raise CopyMismatch(
            f"run {uid!r} was copied but its event counts differ ({details}); "
            "the destination may hold events the source lacks, or lost some"
        )
    report.copied.append(uid)
    if not record.complete:
        report.incomplete.append(uid)
