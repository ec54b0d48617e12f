"""Test support: a small writer of databroker's *embedded* MongoDB layout.

:class:`EmbeddedWriter` writes documents the way suitcase-mongo's ``mongo_embedded.Serializer``
does (the writer databroker 1.2.5's own tests use for ``bluesky-mongo-embedded-catalog``, in
``databroker/tests/test_v2/test_mongo_embedded.py``; the layout is the one
``databroker/_drivers/mongo_embedded.py`` reads), with the same update operations, but
synchronously and for any number of runs at once, runs without a stop included. It exists so
that the read-only :class:`~intake_broker_mongo.EmbeddedMongoStore` can be tested on many runs
(the query suite) without suitcase's per-run threads; ``drivers/mongo/tests/test_embedded.py``
checks that it writes what suitcase-mongo writes.

Not a way to write production data: intake-broker writes the normalized layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
import event_model
from pymongo import UpdateOne
from pymongo.database import Database

#: suitcase-mongo's default ``page_size``: a page takes events until it holds this many bytes.
PAGE_SIZE = 5_000_000


class EmbeddedWriter:
    """Write documents into ``db`` in the embedded layout (``header``, ``event``, ``datum``).

    Call it as a RunEngine subscriber: ``writer(name, doc)``.
    """

    def __init__(self, db: Database, page_size: int = PAGE_SIZE):
        self.db = db
        self.page_size = page_size
        self._run_of: dict[str, str] = {}  # descriptor or resource uid -> run uid
        self._counts: dict[str, int] = {}  # descriptor or resource uid -> written so far
        self._current: str | None = None  # the newest run started (for resources without one)

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        doc = event_model.sanitize_doc(dict(doc))
        getattr(self, f"_{name}")(doc)

    # -- the header: suitcase's _insert_header / _set_header ----------------------------------

    def _push(self, run_uid: str, field: str, doc: Any) -> None:
        self.db.header.update_one({"run_id": run_uid}, {"$push": {field: doc}}, upsert=True)

    def _set(self, run_uid: str, fields: dict[str, Any]) -> None:
        self.db.header.update_one({"run_id": run_uid}, {"$set": fields})

    def _start(self, doc: dict) -> None:
        # suitcase pushes the start document under all three names; the counts are replaced by
        # numbers when the run stops
        self._current = doc["uid"]
        for field in ("start", "event_count", "datum_count"):
            self._push(doc["uid"], field, doc)

    def _descriptor(self, doc: dict) -> None:
        self._run_of[doc["uid"]] = doc["run_start"]
        self._push(doc["run_start"], "descriptors", doc)

    def _resource(self, doc: dict) -> None:
        run = doc.get("run_start") or self._current
        if run is None:
            raise ValueError(f"resource {doc['uid']!r} names no run_start and no run was started")
        self._run_of[doc["uid"]] = run
        self._push(run, "resources", doc)

    def _stop(self, doc: dict) -> None:
        run = doc["run_start"]
        mine = [uid for uid, of in self._run_of.items() if of == run]
        header = self.db.header.find_one({"run_id": run}, {"descriptors.uid": 1}) or {}
        descriptors = {d["uid"] for d in header.get("descriptors") or []}
        events = sum(self._counts.get(uid, 0) for uid in mine if uid in descriptors)
        datums = sum(self._counts.get(uid, 0) for uid in mine if uid not in descriptors)
        self._set(run, {"event_count": events, "datum_count": datums})
        self._push(run, "stop", doc)

    # -- pages: suitcase's _updateone_eventpage / _updateone_datumpage ------------------------

    def _event(self, doc: Any) -> None:
        self._event_page(dict(event_model.pack_event_page(doc)))

    def _datum(self, doc: Any) -> None:
        self._datum_page(dict(event_model.pack_datum_page(doc)))

    def _append(self, collection: str, key: str, page: dict, arrays: tuple, columns: tuple) -> None:
        owner = page[key]
        count = len(page[arrays[0]])
        first = self._counts.get(owner, 0)
        self._counts[owner] = first + count
        push = {name: {"$each": list(page[name])} for name in arrays}
        for column in columns:
            for field, values in (page.get(column) or {}).items():
                push[f"{column}.{field}"] = {"$each": list(values)}
        self.db[collection].bulk_write(
            [
                UpdateOne(
                    {key: owner, "size": {"$lt": self.page_size}},
                    {
                        "$push": push,
                        "$inc": {"size": len(bson.encode(page))},
                        "$min": {"first_index": first},
                        "$max": {"last_index": first + count - 1},
                    },
                    upsert=True,
                )
            ],
            ordered=False,
        )
        # suitcase's count worker keeps count_<descriptor or resource> in the header
        self._set(self._run_of[owner], {f"count_{owner}": self._counts[owner]})

    def _event_page(self, page: dict) -> None:
        self._append(
            "event",
            "descriptor",
            page,
            ("uid", "time", "seq_num"),
            ("data", "timestamps", "filled"),
        )

    def _datum_page(self, page: dict) -> None:
        self._append("datum", "resource", page, ("datum_id",), ("datum_kwargs",))


def write_embedded(db: Database, docs: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Write one or more runs' documents into ``db`` in the embedded layout."""
    writer = EmbeddedWriter(db)
    for name, doc in docs:
        writer(name, doc)
