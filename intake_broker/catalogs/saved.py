"""Saved queries: a query stored under a name and re-run later (``cat.search(saved="name")``).

They live in one JSON file, ``saved-queries.json`` in the data directory (see
:func:`intake_broker.catalogs.config.data_dir`), as the queries' JSON encoding, so they outlive the
session and can be shared by copying the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from intake_broker.errors import BadQuery
from intake_broker.queries import Query, decode_query

FILE_NAME = "saved-queries.json"


def _path(folder: str | os.PathLike | None = None) -> Path:
    from intake_broker.catalogs.paths import data_dir

    return Path(folder if folder is not None else data_dir()) / FILE_NAME


def saved_queries(folder: str | os.PathLike | None = None) -> dict[str, Query]:
    """Every saved query by name."""
    path = _path(folder)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: decode_query(encoded) for name, encoded in raw.items()}
    except (ValueError, AttributeError) as err:
        raise BadQuery(
            f"the saved queries in {path} cannot be read ({err}); fix or remove the file"
        ) from err


def save_query(name: str, query: Query, folder: str | os.PathLike | None = None) -> None:
    """Store ``query`` under ``name`` (replacing an older one of that name)."""
    if not isinstance(name, str) or not name.strip():
        raise BadQuery(f"a saved query needs a non-empty name, got {name!r}")
    if not isinstance(query, Query):
        raise BadQuery(f"only Query objects can be saved, not {type(query).__name__}")
    path = _path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {n: q.encode() for n, q in saved_queries(folder).items()}
    encoded[name] = query.encode()
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(encoded, f, indent=1, sort_keys=True)
    os.replace(f.name, path)  # never a half-written file


def saved_query(name: str, folder: str | os.PathLike | None = None) -> Query:
    """The query saved as ``name``."""
    queries = saved_queries(folder)
    if name not in queries:
        known = ", ".join(sorted(queries)) or "none yet"
        raise BadQuery(f"no saved query named {name!r}; saved: {known}")
    return queries[name]
