"""databroker's "normalized" MongoDB layout: collection names and indexes.

The layout, as suitcase-mongo's ``suitcase.mongo_normalized.Serializer`` writes it and
databroker reads it:

* metadatastore database: ``run_start``, ``run_stop``, ``event_descriptor``, ``event``;
* asset-registry database: ``resource``, ``datum``;
* one MongoDB document per event-model document (an ``event_page`` is stored as its events, a
  ``datum_page`` as its datums), stored as emitted plus the ``_id`` MongoDB adds.

event-model documents that suitcase-mongo does not write, ``stream_resource`` and
``stream_datum``, go to collections of those names in the asset-registry database; databroker
ignores them, as it ignores our data summaries (:data:`SUMMARY`, :data:`SUMMARY_VALUES`).

:data:`SUITCASE_INDEXES` are the indexes suitcase-mongo creates (its default
``resource_uid_unique=False``); :data:`EXTRA_INDEXES` are ours, which databroker does not need
and does not mind: ``event (descriptor, seq_num)`` serves paged column reads, the others serve
reading a run's assets.
"""

from __future__ import annotations

import logging
from typing import Any

import pymongo
import pymongo.errors
from pymongo.database import Database

logger = logging.getLogger(__name__)

RUN_START, RUN_STOP, DESCRIPTOR, EVENT = "run_start", "run_stop", "event_descriptor", "event"
RESOURCE, DATUM = "resource", "datum"
STREAM_RESOURCE, STREAM_DATUM = "stream_resource", "stream_datum"
#: Ours: data summaries and their searchable numbers (see :mod:`intake_broker_mongo.summaries`).
SUMMARY, SUMMARY_VALUES = "intake_broker_summary", "intake_broker_summary_values"
#: Annotations of runs and their history (see :mod:`intake_broker_mongo.annotations`).
ANNOTATIONS = "intake_broker_annotations"
ANNOTATION_HISTORY = "intake_broker_annotation_history"

#: Which database (``"mds"`` metadatastore or ``"assets"``) holds each collection.
DATABASE_OF = {
    RUN_START: "mds",
    RUN_STOP: "mds",
    DESCRIPTOR: "mds",
    EVENT: "mds",
    RESOURCE: "assets",
    DATUM: "assets",
    STREAM_RESOURCE: "assets",
    STREAM_DATUM: "assets",
    SUMMARY: "mds",
    SUMMARY_VALUES: "mds",
    ANNOTATIONS: "mds",
    ANNOTATION_HISTORY: "mds",
}
#: The collection of each stored document kind (pages are stored as their rows).
COLLECTION_OF = {
    "start": RUN_START,
    "stop": RUN_STOP,
    "descriptor": DESCRIPTOR,
    "event_page": EVENT,
    "resource": RESOURCE,
    "datum_page": DATUM,
    "stream_resource": STREAM_RESOURCE,
    "stream_datum": STREAM_DATUM,
}

_ASC, _DESC, _TEXT = pymongo.ASCENDING, pymongo.DESCENDING, pymongo.TEXT

# (collection, keys, options)
Index = tuple[str, list[tuple[str, Any]], dict[str, Any]]

SUITCASE_INDEXES: tuple[Index, ...] = (
    (RESOURCE, [("uid", _ASC)], {"unique": False}),
    (RESOURCE, [("resource_id", _ASC)], {}),
    (DATUM, [("datum_id", _ASC)], {"unique": True}),
    (DATUM, [("resource", _ASC)], {}),
    (RUN_START, [("uid", _ASC)], {"unique": True}),
    (RUN_START, [("scan_id", _ASC)], {"unique": False}),
    (RUN_START, [("scan_id", _DESC), ("_id", _DESC)], {"unique": True}),
    (RUN_START, [("time", _ASC), ("_id", _DESC)], {"unique": True}),
    (RUN_START, [("time", _DESC), ("_id", _DESC)], {"unique": True}),
    (RUN_START, [("time", _DESC), ("scan_id", _DESC)], {"unique": False, "background": True}),
    (RUN_START, [("$**", _TEXT)], {}),
    (RUN_START, [("data_session", _ASC)], {"unique": False}),
    (RUN_START, [("data_groups", _ASC)], {"unique": False}),
    (RUN_STOP, [("run_start", _ASC)], {"unique": True}),
    (RUN_STOP, [("uid", _ASC)], {"unique": True}),
    (RUN_STOP, [("time", _DESC)], {"unique": False, "background": True}),
    (RUN_STOP, [("$**", _TEXT)], {}),
    (DESCRIPTOR, [("uid", _ASC)], {"unique": True}),
    (DESCRIPTOR, [("run_start", _DESC), ("time", _DESC)], {"unique": False, "background": True}),
    (DESCRIPTOR, [("time", _DESC)], {"unique": False, "background": True}),
    (DESCRIPTOR, [("$**", _TEXT)], {}),
    (EVENT, [("uid", _ASC)], {"unique": True}),
    (EVENT, [("descriptor", _DESC), ("time", _ASC)], {"unique": False, "background": True}),
)

EXTRA_INDEXES: tuple[Index, ...] = (
    (EVENT, [("descriptor", _ASC), ("seq_num", _ASC)], {}),
    (RESOURCE, [("run_start", _ASC)], {}),
    (STREAM_RESOURCE, [("uid", _ASC)], {"unique": True}),
    (STREAM_RESOURCE, [("run_start", _ASC)], {}),
    (STREAM_DATUM, [("uid", _ASC)], {"unique": True}),
    (STREAM_DATUM, [("stream_resource", _ASC)], {}),
    (SUMMARY, [("run_start", _ASC)], {"unique": True}),
    (SUMMARY_VALUES, [("path", _ASC), ("value", _ASC)], {}),
    (SUMMARY_VALUES, [("run_start", _ASC)], {}),
)


def create_indexes(mds: Database, assets: Database, *, extra: bool = True) -> list[str]:
    """Create the layout's indexes (existing ones are left alone).

    Text indexes are skipped, with a log message, on servers that have none (SecantusDB).

    Returns
    -------
    list of str
        ``"collection: keys"`` of the indexes the server refused.
    """
    databases = {"mds": mds, "assets": assets}
    skipped = []
    for collection, keys, options in SUITCASE_INDEXES + (EXTRA_INDEXES if extra else ()):
        target = databases[DATABASE_OF[collection]][collection]
        try:
            target.create_index(keys, **options)
        except pymongo.errors.OperationFailure as err:
            # no text indexes (SecantusDB), or an old database has this index with other
            # options: keep what is there
            if not any(kind == _TEXT for _, kind in keys) and err.code not in (85, 86):
                raise
            skipped.append(f"{collection}: {keys}")
            logger.info("index %s on %s not created: %s", keys, collection, err)
    return skipped


def has_unique_ids(mds: Database, assets: Database) -> bool:
    """Whether ``event.uid`` and ``datum.datum_id`` have unique indexes (then a duplicate
    insert fails atomically, and a single row can be inserted without asking first)."""
    for database, collection, field in ((mds, EVENT, "uid"), (assets, DATUM, "datum_id")):
        info = database[collection].index_information().values()
        if not any(spec.get("unique") and [k for k, _ in spec["key"]] == [field] for spec in info):
            return False
    return True
