"""The SQL run index: one schema (SQLAlchemy Core) for SQLite and PostgreSQL, and its versions.

Tables
------
``schema_version``
    One row: the version of this schema the index was written with (see :data:`SCHEMA_VERSION`
    and :data:`MIGRATIONS`).
``settings``
    ``key -> value`` pairs; ``data_url`` is where the zarr columns of this index live.
``runs``
    One row per run: the start and stop documents whole (``start_doc``/``stop_doc``: the exact
    JSON text), a query copy of each (``start_q``/``stop_q``: JSON in SQLite, JSONB with a GIN
    ``jsonb_path_ops`` index in PostgreSQL) and indexed columns for what users search most
    (``uid``, ``time``, ``scan_id``, ``plan_name``). ``irregular`` marks the rare rows whose
    columns or query copy do not tell the whole truth (a ``scan_id`` that is not an integer, a
    NaN somewhere in a document): queries evaluate those rows in Python.
``summary_values``
    The numbers of each finished run's data summaries (``runs.summary_q``), one row per
    ``stream.field.stat`` path, indexed by (path, value): range queries on summaries
    (``summary.primary.theta.max < 5``) read an index instead of every run's JSON. A path with
    value NULL means "this number is not exactly a float (a huge integer): ask Python". Runs
    whose summary is not written yet (``summary_q`` NULL: still acquiring) are found through the
    partial index ``ix_runs_acquiring``.
``descriptors``
    The descriptor documents, where their events' zarr group is, and how their fields map to
    zarr arrays (``layout``).
``event_chunks``
    One row per zarr chunk of flushed events: its rows and seq_num range. Readers trust this
    table, never the zarr array shapes: a row is committed only after its chunk was written.
``event_segments``
    Runs of consecutively inserted events of one descriptor and their insertion ordinal, so
    that a run's documents replay in the order they were inserted.
``documents``
    Resources, stream_resources, stream_datums and datum pages, whole.
``datums``
    Every datum id and the datum page holding it.
``annotations``
    The current annotations of runs (tags, fields, note beside the documents; see
    :mod:`intake_broker.store.annotations`), whole (``doc``), with their ``author``,
    ``visibility`` and ``note`` as columns for searches.
``annotation_tags``, ``annotation_fields``, ``annotation_audience``
    What searches on annotations read: each tag, each field (its presence and each number or
    string it holds, indexed by name and value), and the proposals / groups an annotation is
    shared with.
``annotation_history``
    Every change of an annotation (who, when, before, after), in order.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from intake_broker import deadline
from intake_broker.queries.regex import regex_search
from intake_broker.store.summary import searchable_numbers

from .errors import (
    CorruptIndex,
    IndexUnavailable,
    ReadOnlyFolder,
    SchemaVersionError,
    StorageError,
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = 4

#: Upgrades of an older index: ``MIGRATIONS[v](connection)`` turns version ``v`` into ``v + 1``.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}


def _add_summary_column(conn: sa.Connection) -> None:
    """Version 2: ``runs.summary_q``, the data summaries of finished runs, searchable."""
    kind = "JSONB" if conn.dialect.name == "postgresql" else "JSON"
    conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN summary_q {kind}")


MIGRATIONS[1] = _add_summary_column


def _add_summary_values(conn: sa.Connection) -> None:
    """Version 3: the ``summary_values`` table (filled from ``runs.summary_q``), the partial
    index of runs still acquiring, and ``runs.summary_doc``."""
    from .docs import encode

    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN summary_doc TEXT")
    summary_values.create(conn)
    _acquiring.create(conn)
    for uid, summary in conn.execute(
        sa.select(runs.c.uid, runs.c.summary_q).where(runs.c.summary_q.is_not(None))
    ).all():
        exact, query, lossy = encode("summary", summary)
        if lossy:
            conn.execute(
                runs.update().where(runs.c.uid == uid).values(summary_q=query, summary_doc=exact)
            )
        values = summary_rows(uid, summary)
        if values:
            conn.execute(summary_values.insert(), values)


MIGRATIONS[2] = _add_summary_values

metadata = sa.MetaData()

#: Text compared by code point in both databases (PostgreSQL's default collation is not).
CText = sa.String().with_variant(sa.String(collation="C"), "postgresql")
#: A query copy of a document: JSON text in SQLite, JSONB in PostgreSQL (values arrive as JSON
#: text; see :func:`_json_passthrough`).
QueryJSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", CText, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("uid", CText, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("scan_id", sa.BigInteger),
    sa.Column("plan_name", CText),
    sa.Column("irregular", sa.Boolean, nullable=False, default=False),
    sa.Column("start_doc", sa.Text, nullable=False),
    sa.Column("start_q", QueryJSON, nullable=False),
    sa.Column("stop_doc", sa.Text),
    sa.Column("stop_q", QueryJSON),
    sa.Column("stop_time", sa.Float),
    sa.Column("exit_status", CText),
    # {stream: {field: {min, max, mean, sum, count}}} of a finished run (NULL while acquiring)
    sa.Column("summary_q", QueryJSON),
    # the exact JSON text of a summary whose query copy is not exact (NaN, infinity, integers
    # beyond 2**53: queries through JSON evaluate that run in Python); NULL otherwise
    sa.Column("summary_doc", sa.Text),
    sa.Index("ix_runs_time_uid", "time", "uid"),
    sa.Index("ix_runs_scan_id", "scan_id"),
    sa.Index("ix_runs_plan_name_scan_id", "plan_name", "scan_id"),
    sa.Index("ix_runs_irregular", "irregular"),
)
sa.Index("ix_runs_newest", runs.c.time.desc(), runs.c.uid)  # newest first, ties by uid
#: Runs without a summary yet (still acquiring): summary queries evaluate them in Python.
_acquiring = sa.Index(
    "ix_runs_acquiring",
    runs.c.uid,
    sqlite_where=runs.c.summary_q.is_(None),
    postgresql_where=runs.c.summary_q.is_(None),
)
for _column in ("start_q", "stop_q"):
    sa.Index(
        f"ix_runs_{_column}",
        runs.c[_column],
        postgresql_using="gin",
        postgresql_ops={_column: "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql")

summary_values = sa.Table(
    "summary_values",
    metadata,
    sa.Column("run_uid", CText, nullable=False, index=True),
    sa.Column("path", CText, nullable=False),
    sa.Column("value", sa.Float),
    sa.Index("ix_summary_values_path_value", "path", "value", "run_uid"),
)


def summary_rows(run_uid: str, summary: dict) -> list[dict]:
    """The ``summary_values`` rows of one run's summary (see
    :func:`intake_broker.store.summary.searchable_numbers`; a NULL value: ask Python)."""
    return [
        {"run_uid": run_uid, "path": path, "value": value}
        for path, value in searchable_numbers(summary)
    ]


descriptors = sa.Table(
    "descriptors",
    metadata,
    sa.Column("uid", CText, primary_key=True),
    sa.Column("run_uid", CText, nullable=False, index=True),
    sa.Column("name", CText, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("ord", sa.BigInteger, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("layout", sa.Text, nullable=False),
)

event_chunks = sa.Table(
    "event_chunks",
    metadata,
    sa.Column("descriptor_uid", CText, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("row_start", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("seq_first", sa.BigInteger, nullable=False),
    sa.Column("seq_last", sa.BigInteger, nullable=False),
    sa.Column("seq_min", sa.BigInteger, nullable=False),
    sa.Column("seq_max", sa.BigInteger, nullable=False),
    # seq_num strictly increasing inside the chunk and after the previous chunk's last
    sa.Column("increasing", sa.Boolean, nullable=False),
    # seq_num == seq_first + row inside the chunk (then nobody needs to read the column)
    sa.Column("contiguous", sa.Boolean, nullable=False),
)

event_segments = sa.Table(
    "event_segments",
    metadata,
    sa.Column("descriptor_uid", CText, primary_key=True),
    sa.Column("row_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("row_stop", sa.BigInteger, nullable=False),
    sa.Column("ord", sa.BigInteger, nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_uid", CText, nullable=False, index=True),
    sa.Column("kind", CText, nullable=False),
    # resource and stream_resource share the "resource" uid space, as in the memory store
    sa.Column("space", CText),
    sa.Column("uid", CText),
    sa.Column("ref", CText),
    sa.Column("ord", sa.BigInteger, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("space", "uid", name="uq_documents_space_uid"),
)

datums = sa.Table(
    "datums",
    metadata,
    sa.Column("datum_id", CText, primary_key=True),
    sa.Column("run_uid", CText, nullable=False),
    sa.Column("page_id", sa.Integer, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
)


annotation_table = sa.Table(
    "annotations",
    metadata,
    sa.Column("id", CText, primary_key=True),
    sa.Column("run_uid", CText, nullable=False, index=True),
    sa.Column("author", CText, nullable=False),
    sa.Column("visibility", CText, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
)

annotation_tags = sa.Table(
    "annotation_tags",
    metadata,
    sa.Column("annotation_id", CText, nullable=False, index=True),
    sa.Column("tag", CText, nullable=False),
    sa.Index("ix_annotation_tags_tag", "tag", "annotation_id"),
)

annotation_fields = sa.Table(
    "annotation_fields",
    metadata,
    sa.Column("annotation_id", CText, nullable=False, index=True),
    sa.Column("name", CText, nullable=False),
    # "key": the field is there; "num" / "str": a number / string it holds (or one of its list)
    sa.Column("kind", CText, nullable=False),
    sa.Column("num", sa.Float),
    sa.Column("text", CText),
    sa.Index("ix_annotation_fields_num", "name", "kind", "num"),
    sa.Index("ix_annotation_fields_text", "name", "kind", "text"),
)

annotation_audience = sa.Table(
    "annotation_audience",
    metadata,
    sa.Column("annotation_id", CText, nullable=False, index=True),
    # "proposal:<name>" or "group:<name>"
    sa.Column("label", CText, nullable=False),
    sa.Index("ix_annotation_audience_label", "label", "annotation_id"),
)

annotation_history = sa.Table(
    "annotation_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_uid", CText, nullable=False, index=True),
    sa.Column("annotation_id", CText, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.UniqueConstraint("annotation_id", "version", name="uq_annotation_history_version"),
)

ANNOTATION_TABLES = (
    annotation_table,
    annotation_tags,
    annotation_fields,
    annotation_audience,
    annotation_history,
)


def _add_annotations(conn: sa.Connection) -> None:
    """Version 4: the annotation tables (empty)."""
    for annotation_part in ANNOTATION_TABLES:
        annotation_part.create(conn, checkfirst=True)


MIGRATIONS[3] = _add_annotations


# -- connecting -------------------------------------------------------------------------------


def shown(url: sa.URL | str) -> str:
    """A URL for messages: its password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", str(url))


def _regexp(pattern: str, flags: int, value: Any) -> int:
    """``ib_regexp(pattern, flags, value)`` for SQLite: RE2's search in linear time, as the
    generic evaluator does (``flags``: ``re.IGNORECASE`` or 0)."""
    return int(regex_search(pattern, not flags & re.IGNORECASE, value))


def _json_passthrough(value: Any) -> str:
    """Documents reach the JSON columns already encoded (see :mod:`.docs`)."""
    return value if isinstance(value, str) else json.dumps(value)


def sqlite_path(url: sa.URL) -> str | None:
    """The file of a SQLite URL (None in memory)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return database


def _prepare_sqlite_file(url: sa.URL) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise StorageError(
            f"cannot create the folder {folder!r} of the SQLite run index "
            f"{shown(url)}: {err.strerror or err}"
        ) from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(
            f"the folder {folder!r} of the SQLite run index {shown(url)} is not "
            "writable (SQLite in WAL mode writes its -wal and -shm files beside "
            "the index); choose a folder you can write to"
        )
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise StorageError(
            f"the SQLite run index {path!r} is not readable and writable by this user"
        )


#: What SQLite says of a file that is not (or no longer) a sound database.
_DAMAGED = ("file is not a database", "database disk image is malformed", "malformed")


def _damaged(url: sa.URL, err: BaseException) -> CorruptIndex | None:
    """A clear error for a damaged SQLite index (naming the file), else None."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not any(m in message for m in _DAMAGED):
        return None
    path = sqlite_path(url) or str(url)
    return CorruptIndex(
        f"the SQLite run index {os.path.abspath(path)!r} is damaged ({message}); restore it "
        "from a backup, or rebuild it from the data folder with `intake-broker reindex "
        "--data DIR` (intake_broker_native.reindex), which moves the damaged file aside"
    )


def sqlite_read_only_reason(index: str) -> str | None:
    """Why a SQLite index file cannot be opened for writing by this user, or None.

    None also for an index that is not a SQLite file or does not exist (it is made then).
    """
    try:
        url = sa.make_url(index)
    except Exception:
        return None
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is None or not os.path.exists(path):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder!r} is not writable"
    if not os.access(path, os.W_OK):
        return f"the index file {path!r} is not writable"
    return None


def create_engine(index: str, *, fsync: bool = False, read_only: str | None = None) -> sa.Engine:
    """An engine for a run index URL: ``sqlite:///path`` or ``postgresql://...``.

    SQLite runs in WAL mode (many readers, one writer at a time) with ``synchronous=NORMAL``
    (a commit survives the death of the process; ``fsync=True``: ``synchronous=FULL``, it
    also survives a power loss); ``postgresql://`` uses psycopg 3.

    ``read_only``, a reason (such as "the folder '/shared/runs' is not writable"), opens an
    existing SQLite file read-only: ``mode=ro`` when its folder is writable (WAL readers still
    make the ``-shm`` file), else ``immutable=1`` (no ``-wal``/``-shm`` needed; the file must
    not change while it is open). Every write transaction then raises
    :class:`~.errors.ReadOnlyFolder` naming the reason; nothing is written.

    Raises
    ------
    IndexUnavailable
        For a URL that is not a SQLite or PostgreSQL URL, or a database that cannot be reached.
    CorruptIndex
        For a SQLite file that is damaged (then, and on any later statement).
    StorageError
        For a SQLite file in a folder that cannot be written.
    """
    try:
        url = sa.make_url(index)
    except Exception as err:
        raise IndexUnavailable(
            f"{index!r} is not a database URL; give 'sqlite:///path/to/"
            "index.sqlite' or 'postgresql://user@host:port/database'"
        ) from err
    backend = url.get_backend_name()
    if backend == "sqlite" and read_only is not None and sqlite_path(url) is not None:
        engine = _read_only_sqlite(url, read_only)
    elif backend == "sqlite":
        _prepare_sqlite_file(url)
        options: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
        if sqlite_path(url) is None:
            options["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, json_serializer=_json_passthrough, **options)
        sa.event.listen(engine, "connect", _sqlite_full if fsync else _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)

        def _translate(context: Any) -> None:
            error = _damaged(url, context.original_exception)
            if error is not None:
                raise error from context.original_exception

        sa.event.listen(engine, "handle_error", _translate)
    elif backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(
                url,
                json_serializer=_json_passthrough,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 10},
            )
            sa.event.listen(engine, "begin", _postgresql_begin)
        except ImportError as err:
            raise IndexUnavailable(
                f"cannot use the PostgreSQL run index {shown(url)}: {err}; "
                "install the 'postgres' extra (psycopg[binary])"
            ) from err
    else:
        raise IndexUnavailable(
            f"the run index URL {shown(url)} names the database {backend!r}; "
            "the native store keeps its index in SQLite ('sqlite:///path') "
            "or PostgreSQL ('postgresql://user@host/db')"
        )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except CorruptIndex:
        engine.dispose()
        raise
    except sa.exc.DBAPIError as err:
        engine.dispose()
        damaged = _damaged(url, getattr(err, "orig", err))
        if damaged is not None:
            raise damaged from err
        engine.dispose()
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise IndexUnavailable(f"cannot reach the run index at {shown(url)}: {reason}") from err
    return engine


READ_ONLY_HINT = "copy it to a folder you can write, or ask its owner"


def read_only_message(what: str, reason: str) -> str:
    """The one message of a write refused by a read-only store."""
    return f"this data folder is read-only: {reason}; cannot {what}; {READ_ONLY_HINT}"


def _read_only_sqlite(url: sa.URL, reason: str) -> sa.Engine:
    path = os.path.abspath(str(sqlite_path(url)))
    if not os.path.exists(path):
        raise IndexUnavailable(f"there is no run index at {path!r} to open read-only")
    folder_writable = os.access(os.path.dirname(path), os.W_OK | os.X_OK)
    mode = "mode=ro" if folder_writable else "immutable=1"
    uri = f"file:{urllib.parse.quote(path)}?{mode}"

    def connect() -> Any:
        return sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)

    engine = sa.create_engine(
        "sqlite://", creator=connect, json_serializer=_json_passthrough, poolclass=sa.pool.NullPool
    )
    sa.event.listen(engine, "connect", _sqlite_read_only_connect)

    def begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("ib_write", False):
            raise ReadOnlyFolder(read_only_message("write to the run index", reason))
        conn.exec_driver_sql("BEGIN")

    sa.event.listen(engine, "begin", begin)
    engine.ib_read_only = reason  # type: ignore[attr-defined]

    def _translate(context: Any) -> None:
        error = _damaged(url, context.original_exception)
        if error is not None:
            raise error from context.original_exception

    sa.event.listen(engine, "handle_error", _translate)
    return engine


def _sqlite_read_only_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("ib_regexp", 3, _regexp, deterministic=True)
    deadline.install_sqlite(dbapi_connection)
    dbapi_connection.execute("PRAGMA query_only=1")


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin
    dbapi_connection.create_function("ib_regexp", 3, _regexp, deterministic=True)
    deadline.install_sqlite(dbapi_connection)  # a statement past the request's deadline stops
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _postgresql_begin(conn: sa.Connection) -> None:
    timeout = deadline.statement_timeout_ms()  # under a request's deadline: stop there
    if timeout is not None:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout}")


def _sqlite_full(dbapi_connection: Any, record: Any) -> None:
    _sqlite_connect(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA synchronous=FULL")


def _sqlite_begin(conn: sa.Connection) -> None:
    # Writers take the write lock up front, so that a transaction never fails half-way when it
    # upgrades from reading to writing; readers never take it.
    immediate = conn.get_execution_options().get("ib_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction: committed on success, rolled back on any error."""
    with engine.connect() as conn:
        conn.execution_options(ib_write=True)
        with conn.begin():
            yield conn


# -- versions ---------------------------------------------------------------------------------


def _stored_version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def ensure_schema(engine: sa.Engine, where: str) -> None:
    """Create the tables of a new index, upgrade an older one, refuse a newer one.

    An index at the current version is only read (no write lock is taken).

    Raises
    ------
    SchemaVersionError
        When the index was written by a newer version of this package.
    IndexUnavailable
        When the tables cannot be read or created.
    """
    try:
        with engine.connect() as conn:
            version = _stored_version(conn)
        if version == SCHEMA_VERSION:
            return
        _check_not_newer(version, where)
        if getattr(engine, "ib_read_only", None) is not None:
            raise ReadOnlyFolder(
                read_only_message(
                    f"upgrade the run index {where} from schema version {version} "
                    f"to {SCHEMA_VERSION}",
                    engine.ib_read_only,  # type: ignore[attr-defined]
                )
            )
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":  # one creator at a time
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4711470118)")
            version = _stored_version(conn)
            if version is None:
                metadata.create_all(conn)
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                return
            _check_not_newer(version, where)
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(schema_version.delete())
                conn.execute(schema_version.insert().values(version=version))
    except sa.exc.OperationalError as err:
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise IndexUnavailable(
            f"cannot create or open the tables of the run index {where}: {reason}"
        ) from err


def _check_not_newer(version: int | None, where: str) -> None:
    if version == 0:
        raise SchemaVersionError(
            f"the run index {where} has an empty schema_version table; "
            "it was not written by intake-broker-native"
        )
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the run index {where} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this intake-broker-native understands; upgrade "
            "intake-broker-native (pip install -U intake-broker-native) to read it"
        )


def get_setting(engine: sa.Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(settings.c.value).where(settings.c.key == key)).scalar()


def set_setting(engine: sa.Engine, key: str, value: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(settings.delete().where(settings.c.key == key))
        conn.execute(settings.insert().values(key=key, value=value))
