"""One validation of incoming documents, run by :meth:`DocumentStore.insert` for every store.

Two parts:

:func:`checked`
    What a document is on its own: its event-model structure, its uids, its times, and that
    every value is one JSON can hold. Events, event pages, datums and datum pages (the
    documents that arrive many per second) are checked here by hand, as fast as packing
    them; the other documents are checked against event-model's JSON schema as well.
:class:`DocumentChecks`
    What a document is in its run: an event's values against its descriptor's data keys
    (dtype and shape, the rules the native store and the stream reader apply), and no new
    event after its run's stop. The state this needs (a compiled check per descriptor, which
    runs are stopped) is kept per store object and filled from the store once per descriptor,
    so live ingest makes no store round-trip per event.

The rules
---------
uids
    Every ``uid`` (and ``run_start``, ``descriptor``, ``resource``, ``stream_resource``
    naming one) is a non-empty string of at most :data:`MAX_UID_BYTES` UTF-8 bytes of
    printable characters (no NUL, control, format or lone surrogate characters), with no
    ``/`` or ``\\`` and not starting with ``.`` (so neither ``.`` nor ``..``): stores name
    files after uids. Real uids are uuid4 strings; ophyd-async and others use other strings,
    which pass as long as they keep to this. Datum ids and stream_datum uids are
    ``<resource uid>/<n>`` by event-model's convention: they may hold ``/``.
times
    ``time`` of every document and every event timestamp is a finite number.
values
    Only what JSON holds: dicts with string keys (no NUL), lists, strings (no NUL, no lone
    surrogates), booleans, None, floats (NaN and infinities included: they are numbers), and
    integers within 64 bits; numpy arrays and scalars of those kinds. At most
    :data:`MAX_DEPTH` containers deep.
data keys
    A key's values must fit its declaration: numeric keys (``number``, ``integer``,
    ``boolean``, ``array`` with a shape, or a numeric ``dtype_numpy``) hold numbers of the
    declared shape that convert to the declared dtype without loss (3.0 fits ``integer``, 3.5
    does not); ``string`` keys hold strings; keys of external data (``external``) hold
    datum ids (strings); anything else holds any JSON value. An event carries exactly its
    descriptor's keys (those of stream assets may be left out) and a timestamp for each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from intake_broker.errors import BrokerError, DescriptorNotFound, InvalidDocument, RunNotFound
from intake_broker.store.abilities import DescriptorIndex
from intake_broker.store.documents import DOCUMENT_NAMES, doc_label, normalize, validate
from intake_broker.views.datakeys import field_dtype

if TYPE_CHECKING:
    from intake_broker.store.contract import DocumentStore

#: The longest uid, in UTF-8 bytes (file names are at most 255 bytes on common filesystems).
MAX_UID_BYTES = 200
#: The deepest nesting of dicts and lists (MongoDB allows 100, Python's encoders about 1000).
MAX_DEPTH = 32
#: The most dimensions a data key may declare, and the largest size of one.
MAX_NDIM = 32
MAX_DIM = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: How many descriptors (and runs) a store object keeps checks for; the oldest go first.
CACHE_SIZE = 4096

_UID_RULE = (
    f"a uid is a non-empty string of at most {MAX_UID_BYTES} bytes of printable characters, "
    "without '/' or '\\' and not starting with '.' (a uuid4 string is typical)"
)
_EVENT_FIELDS = frozenset({"descriptor", "seq_num", "uid", "data", "filled", "time", "timestamps"})
_EVENT_REQUIRED = _EVENT_FIELDS - {"filled"}
_DATUM_FIELDS = frozenset({"datum_id", "datum_kwargs", "resource"})
#: uid fields and fields naming another document's uid, per stored kind (``slash``: may hold /).
_UID_FIELDS: dict[str, tuple[tuple[str, bool, bool], ...]] = {
    # (field, required, slash allowed)
    "start": (("uid", True, False),),
    "stop": (("uid", True, False), ("run_start", True, False)),
    "descriptor": (("uid", True, False), ("run_start", True, False)),
    "resource": (("uid", True, False), ("run_start", False, False)),
    "stream_resource": (("uid", True, False), ("run_start", False, False)),
    "stream_datum": (
        ("uid", True, True),
        ("stream_resource", True, False),
        ("descriptor", True, False),
    ),
}
_TIMED = frozenset({"start", "stop", "descriptor"})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _refuse(label: str, where: str, problem: str, expected: str = "") -> InvalidDocument:
    return InvalidDocument(f"{label}: {where} {problem}{'; ' + expected if expected else ''}")


# -- uids, times, numbers ----------------------------------------------------------------------


def uid_problem(value: Any, *, slash: bool = False) -> str | None:
    """What is wrong with ``value`` as a uid (None when nothing is); see the module's rules.
    ``slash``: a datum id or stream_datum uid, which may hold ``/``."""
    if not isinstance(value, str):
        return f"is {type(value).__name__} {_short(value)}, not a string"
    if not value:
        return "is empty"
    if value.isascii():
        if len(value) > MAX_UID_BYTES:
            return f"is {len(value)} bytes long"
        if not value.isprintable():
            return f"holds a control character ({_short(value)})"
    else:
        if not value.isprintable():
            return f"holds a control, format or surrogate character ({_short(value)})"
        if len(value.encode("utf-8")) > MAX_UID_BYTES:
            return f"is {len(value.encode('utf-8'))} bytes long"
    if value[0] == ".":
        return f"starts with '.' ({_short(value)})"
    if "\\" in value or (not slash and "/" in value):
        return f"holds a path separator ({_short(value)})"
    return None


def check_uid(label: str, name: str, value: Any, *, slash: bool = False) -> None:
    """Refuse ``value`` of field ``name`` unless it is a uid (see :func:`uid_problem`)."""
    problem = uid_problem(value, slash=slash)
    if problem is not None:
        rule = _UID_RULE.replace("without '/' or", "without") if slash else _UID_RULE
        raise _refuse(label, f"field {name!r}", problem, rule)


def safe_uid(value: Any) -> bool:
    """Whether ``value`` may name a run's file (a start uid that passes the uid rule)."""
    return uid_problem(value) is None


def _finite(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, np.floating | np.integer) and not isinstance(value, np.bool_):
        return bool(np.isfinite(value))
    return False


def _check_time(label: str, name: str, value: Any) -> None:
    if not _finite(value):
        raise _refuse(
            label,
            f"field {name!r}",
            f"is {_short(value)}",
            "times are finite numbers (seconds since the epoch)",
        )


def _time_column(label: str, name: str, column: Any) -> None:
    if len(column) == 1:
        return _check_time(label, name, column[0])
    array = np.asarray(column)
    if array.dtype.kind not in "iuf" or array.ndim != 1 or not np.isfinite(array).all():
        bad = next((v for v in column if not _finite(v)), column)
        raise _refuse(
            label,
            f"field {name!r}",
            f"holds {_short(bad)}",
            "times are finite numbers (seconds since the epoch), one per event",
        )
    return None


def _int_column(label: str, name: str, column: Any) -> None:
    for value in column:
        ok = (type(value) is int and INT64_MIN <= value <= INT64_MAX) or (
            isinstance(value, np.integer) and not isinstance(value, np.bool_)
        )
        if not ok:
            raise _refuse(label, f"field {name!r}", f"holds {_short(value)}", "integers only")


# -- JSON values -------------------------------------------------------------------------------


class _NotJSON(Exception):
    def __init__(self, problem: str):
        self.problem = problem
        self.path: list[str] = []


def _string(value: str) -> None:
    if "\x00" in value:
        raise _NotJSON(f"holds a NUL character ({_short(value)})")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotJSON(f"holds a lone surrogate ({_short(value)})") from None


def _walk(value: Any, depth: int) -> None:
    kind = type(value)
    if kind is str:
        _string(value)
    elif kind is float or kind is bool or value is None:
        pass
    elif kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _NotJSON(f"is the integer {_short(value)}, outside the 64-bit range")
    elif isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise _NotJSON(f"nests deeper than {MAX_DEPTH} levels")
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJSON(f"has the key {_short(key)} of type {type(key).__name__}")
            try:
                _string(key)
                _walk(item, depth + 1)
            except _NotJSON as err:
                err.path.append(key)
                raise
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise _NotJSON(f"nests deeper than {MAX_DEPTH} levels")
        for i, item in enumerate(value):
            try:
                _walk(item, depth + 1)
            except _NotJSON as err:
                err.path.append(str(i))
                raise
    elif isinstance(value, np.ndarray):
        _array(value, depth)
    elif isinstance(value, np.generic):
        _array(np.asarray(value), depth)
    elif isinstance(value, str):  # subclasses: np.str_, enums
        _walk(str(value), depth)
    elif isinstance(value, int):
        _walk(int(value), depth)
    elif isinstance(value, float):  # np.float64
        pass
    else:
        raise _NotJSON(f"is of type {type(value).__name__}, which JSON cannot hold")


def _array(array: np.ndarray, depth: int) -> None:
    if depth + array.ndim > MAX_DEPTH:
        raise _NotJSON(f"nests deeper than {MAX_DEPTH} levels")
    kind = array.dtype.kind
    if kind in "bif":
        return
    if kind == "u":
        if array.dtype.itemsize == 8 and array.size and array.max() > INT64_MAX:
            raise _NotJSON("holds integers outside the 64-bit range")
        return
    if kind in "OU":
        for item in array.ravel().tolist():
            _walk(item, depth + array.ndim)
        return
    raise _NotJSON(f"is a numpy array of dtype {array.dtype}, which JSON cannot hold")


def check_json(label: str, name: str, value: Any, depth: int = 0) -> None:
    """Refuse ``value`` (field ``name`` of a document) unless JSON can hold it (see the
    module's rules)."""
    try:
        _walk(value, depth)
    except _NotJSON as err:
        where = ".".join([name, *reversed(err.path)]) if name else ".".join(reversed(err.path))
        raise _refuse(
            label,
            f"field {where!r}" if where else "the document",
            err.problem,
            "documents hold only JSON values (string keys; no NUL or lone surrogate; integers "
            f"within 64 bits; at most {MAX_DEPTH} levels deep)",
        ) from None


# -- documents on their own --------------------------------------------------------------------


def _is_column(value: Any) -> bool:
    if type(value) is list or isinstance(value, tuple):
        return True
    return isinstance(value, np.ndarray) and value.ndim >= 1


def _fields(label: str, doc: dict, allowed: frozenset[str], required: frozenset[str]) -> None:
    keys = doc.keys()
    if not keys <= allowed or not required <= keys:
        extra, missing = sorted(map(str, keys - allowed)), sorted(required - keys)
        raise _refuse(
            label,
            "the document",
            f"has unexpected fields {extra} and lacks {missing}"
            if extra and missing
            else f"has unexpected fields {extra}"
            if extra
            else f"lacks the fields {missing}",
            f"the event-model schema wants {sorted(required)}"
            + (f" and allows {sorted(allowed - required)}" if allowed - required else ""),
        )


def _groups(label: str, doc: dict, names: tuple[str, ...]) -> None:
    for name in names:
        if name in doc and not isinstance(doc[name], Mapping):
            raise _refuse(label, f"field {name!r}", f"is {_short(doc[name])}", "a dict")


def _pack_event(event: dict) -> dict:
    """A checked event as a one-row event page (what event-model's ``pack_event_page``
    makes, without its generality)."""
    return {
        "time": [event["time"]],
        "uid": [event["uid"]],
        "seq_num": [event["seq_num"]],
        "descriptor": event["descriptor"],
        "filled": {k: [v] for k, v in (event.get("filled") or {}).items()},
        "data": {k: [v] for k, v in event["data"].items()},
        "timestamps": {k: [v] for k, v in event["timestamps"].items()},
    }


def _event_page(label: str, page: dict, packed: bool = False) -> None:
    """The structure and stateless content of an event page (values are checked against
    their data keys by :class:`DocumentChecks`); ``packed``: a page made here of one checked
    event, whose columns are known to be lists of one value."""
    if not packed:
        _page_columns(label, page)
    check_uid(label, "descriptor", page["descriptor"])
    for uid in page["uid"]:
        check_uid(label, "uid", uid)
    rows = len(page["uid"])
    if rows > 1 and len(set(page["uid"])) != rows:
        raise _refuse(label, "field 'uid'", "holds the same event uid twice", "unique uids")
    _time_column(label, "time", page["time"])
    _int_column(label, "seq_num", page["seq_num"])
    data, timestamps = page["data"], page["timestamps"]
    if data.keys() != timestamps.keys():
        raise _refuse(
            label,
            "field 'timestamps'",
            f"has keys {sorted(map(str, timestamps))} but 'data' has {sorted(map(str, data))}",
            "one timestamp for each data key",
        )
    for key, column in timestamps.items():
        _time_column(label, f"timestamps.{key}", column)
    for key, column in (page.get("filled") or {}).items():
        if key not in data:
            raise _refuse(label, f"field 'filled.{key}'", "names no data key", "data keys only")
        for flag in column:
            if not isinstance(flag, bool | str | np.bool_):
                raise _refuse(
                    label, f"field 'filled.{key}'", f"holds {_short(flag)}", "True, False or a str"
                )
            if isinstance(flag, str):
                check_json(label, f"filled.{key}", flag)


def _page_columns(label: str, page: dict) -> None:
    """An event page's fields and columns: lists of one value per event."""
    _fields(label, page, _EVENT_FIELDS, _EVENT_REQUIRED)
    _groups(label, page, ("data", "timestamps", "filled"))
    for name in ("uid", "time", "seq_num"):
        if not _is_column(page[name]):
            raise _refuse(label, f"field {name!r}", f"is {_short(page[name])}", "a list")
    rows = len(page["uid"])
    columns = {"time": page["time"], "seq_num": page["seq_num"]}
    for group in ("data", "timestamps", "filled"):
        for key, column in (page.get(group) or {}).items():
            if not isinstance(key, str):
                raise _refuse(label, f"field {group!r}", f"has the key {_short(key)}", "strings")
            if not _is_column(column):
                raise _refuse(
                    label, f"field {group}.{key}", f"is {_short(column)}", "a list (one per event)"
                )
            columns[f"{group}.{key}"] = column
    for name, column in columns.items():
        if len(column) != rows:
            raise _refuse(
                label,
                f"column {name!r}",
                f"has {len(column)} rows but the page has {rows} uids",
                "every column of a page has one value per event",
            )


def _datum_page(label: str, page: dict) -> None:
    _fields(label, page, _DATUM_FIELDS, _DATUM_FIELDS)
    _groups(label, page, ("datum_kwargs",))
    check_uid(label, "resource", page["resource"])
    if not _is_column(page["datum_id"]):
        raise _refuse(label, "field 'datum_id'", f"is {_short(page['datum_id'])}", "a list")
    rows = len(page["datum_id"])
    for datum_id in page["datum_id"]:
        check_uid(label, "datum_id", datum_id, slash=True)
    if rows > 1 and len(set(page["datum_id"])) != rows:
        raise _refuse(label, "field 'datum_id'", "holds the same datum id twice", "unique ids")
    for key, column in page["datum_kwargs"].items():
        if not _is_column(column) or len(column) != rows:
            raise _refuse(
                label,
                f"field 'datum_kwargs.{key}'",
                f"is {_short(column)}",
                f"a list of {rows} values (one per datum)",
            )
    check_json(label, "datum_kwargs", page["datum_kwargs"], 1)


def _other(kind: str, label: str, doc: dict) -> None:
    for name, required, slash in _UID_FIELDS.get(kind, ()):
        if name in doc or required:
            if name not in doc:
                raise _refuse(label, "the document", f"lacks the field {name!r}", _UID_RULE)
            check_uid(label, name, doc[name], slash=slash)
    if kind in _TIMED or "time" in doc:
        if "time" not in doc:
            raise _refuse(label, "the document", "lacks the field 'time'", "a finite number")
        _check_time(label, "time", doc["time"])
    if kind == "descriptor":
        data_keys = doc.get("data_keys")
        if not isinstance(data_keys, Mapping):
            raise _refuse(label, "field 'data_keys'", f"is {_short(data_keys)}", "a dict")
        for key, data_key in data_keys.items():
            _key_spec(label, key, data_key)


def checked(name: str, doc: Any, *, schema: bool = True) -> tuple[str, dict]:
    """``(kind, doc)`` as :func:`~intake_broker.store.documents.normalize` makes them, after every
    check a document can pass on its own (see the module's rules). ``schema``: also check
    start, stop, descriptor and asset documents against event-model's JSON schemas (events
    and datums are always checked against their schema's rules, by hand).

    Raises
    ------
    InvalidDocument
        Naming the document and the field, what is wrong and what would be right.
    """
    if name not in DOCUMENT_NAMES:
        raise InvalidDocument(
            f"unknown document name {name!r}; expected one of {', '.join(DOCUMENT_NAMES)}"
        )
    if not isinstance(doc, Mapping):
        raise InvalidDocument(
            f"a {name} document must be a dict, not {type(doc).__name__}: {_short(doc)}"
        )
    doc = dict(doc)
    label = doc_label(name, doc)
    if name == "event":
        _fields(label, doc, _EVENT_FIELDS, _EVENT_REQUIRED)
        _groups(label, doc, ("data", "timestamps", "filled"))
        page = _pack_event(doc)
        _event_page(label, page, packed=True)
        return "event_page", page
    if name == "event_page":
        _event_page(label, doc)
        doc.setdefault("filled", {})
        return name, doc
    if name == "datum":
        _fields(label, doc, _DATUM_FIELDS, _DATUM_FIELDS)
        _groups(label, doc, ("datum_kwargs",))
        page = {
            "resource": doc["resource"],
            "datum_id": [doc["datum_id"]],
            "datum_kwargs": {k: [v] for k, v in doc["datum_kwargs"].items()},
        }
        _datum_page(label, page)
        return "datum_page", page
    if name == "datum_page":
        _datum_page(label, doc)
        return name, doc
    check_json(label, "", doc)  # first: the schema's validator raises on non-string keys
    if schema:
        validate(name, doc)
    _other(name, label, doc)
    return normalize(name, doc, check=False)


# -- values against their data keys ------------------------------------------------------------


@dataclass
class KeySpec:
    """How the values of one data key are checked.

    ``kind``: ``numeric`` (numbers of ``dtype`` and ``shape``), ``str`` (strings), ``datum``
    (datum ids of external data), ``stream`` (kept in stream assets, may be left out of
    events) or ``json`` (any JSON value).
    """

    key: str
    kind: str
    dtype: np.dtype = field(default_factory=lambda: np.dtype("float64"))
    shape: tuple[int, ...] = ()

    def check(self, label: str, column: Any) -> None:
        """Refuse a page's column of values that do not fit (one value per event)."""
        if self.kind == "numeric":
            if len(column) == 1 and not self.shape and self._scalar_fits(column[0]):
                return
            self._numeric(label, column)
        elif self.kind in ("str", "datum"):
            for value in column:
                if not isinstance(value, str):
                    what = "datum ids of external data" if self.kind == "datum" else "strings"
                    raise _refuse(
                        label,
                        f"data key {self.key!r}",
                        f"holds {_short(value)} ({type(value).__name__})",
                        f"its descriptor declares {what}"
                        + ("; insert unfilled events" if self.kind == "datum" else ""),
                    )
                check_json(label, f"data.{self.key}", value)
        else:
            check_json(label, f"data.{self.key}", column, 1)

    def _scalar_fits(self, value: Any) -> bool:
        """The fast path of one scalar value (False: not decided here)."""
        target = self.dtype.kind
        if isinstance(value, bool | np.bool_):
            return True
        if isinstance(value, float):
            return target == "f" or (
                target == "i"
                and self.dtype.itemsize == 8
                and value.is_integer()
                and INT64_MIN <= value < INT64_MAX
            )
        if type(value) is int:
            if target == "b":
                return value in (0, 1)
            return INT64_MIN <= value <= INT64_MAX and (
                target == "f" or (target == "i" and self.dtype.itemsize == 8)
            )
        return False

    def _numeric(self, label: str, column: Any) -> None:
        where = (
            f"data key {self.key!r}, declared {self.dtype.str} with shape {list(self.shape)} "
            "per event,"
        )
        declared = "every value fits its data key's declaration"
        try:
            array = np.asarray(column)
        except (ValueError, TypeError, OverflowError) as err:
            raise _refuse(
                label, where, f"holds values that are not an array: {err}", declared
            ) from None
        if array.dtype.kind not in "biuf":
            sample = _plain(array.flat[0]) if array.size else column
            if array.dtype.kind == "O":
                try:
                    _walk(column, 0)
                except _NotJSON as err:
                    raise _refuse(label, where, err.problem, declared) from None
            raise _refuse(
                label,
                where,
                f"holds {_short(sample)} (mixed, ragged or non-numeric values)",
                declared,
            )
        if array.shape[1:] != self.shape:
            raise _refuse(label, where, f"holds values of shape {list(array.shape[1:])}", declared)
        if self.dtype.kind in "iub" and array.dtype != self.dtype:
            if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size:
                if array.max() > INT64_MAX:
                    raise _refuse(label, where, "holds integers beyond 64 bits", declared)
            with np.errstate(invalid="ignore", over="ignore"):
                cast = array.astype(self.dtype)
                same = np.array_equal(cast, array)
            if not same:
                bad = _plain(array[cast != array].flat[0]) if array.size else column
                raise _refuse(label, where, f"holds {_short(bad)}, which does not fit", declared)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _key_spec(label: str, key: Any, data_key: Any) -> KeySpec:
    """The check of one data key of a descriptor (refusing a declaration nothing can read)."""
    if not isinstance(key, str):
        raise _refuse(label, "field 'data_keys'", f"has the key {_short(key)}", "strings")
    where = f"data key {key!r}"
    if not isinstance(data_key, Mapping):
        raise _refuse(label, where, f"is {_short(data_key)}", "a dict with dtype, shape, source")
    shape = data_key.get("shape", [])
    if shape is None:
        shape = []
    if not (
        isinstance(shape, list | tuple)
        and len(shape) <= MAX_NDIM
        and all(type(n) is int and 0 <= n <= MAX_DIM for n in shape)
    ):
        raise _refuse(
            label,
            f"field 'shape' of {where}",
            f"is {_short(shape)}",
            f"a list of at most {MAX_NDIM} sizes, each an integer from 0 to {MAX_DIM} "
            "(variable-length dimensions, null, cannot be stored yet)",
        )
    external = data_key.get("external")
    if external is not None and not isinstance(external, str):
        raise _refuse(label, f"field 'external' of {where}", f"is {_short(external)}", "a str")
    if external and external.startswith("STREAM:"):
        return KeySpec(key, "stream")
    if data_key.get("dtype", "number") not in ("number", "integer", "boolean", "string", "array"):
        raise _refuse(
            label,
            f"field 'dtype' of {where}",
            f"is {_short(data_key.get('dtype'))}",
            "one of number, integer, boolean, string, array",
        )

    try:
        dtype = field_dtype(data_key)
    except (TypeError, ValueError, KeyError) as err:
        raise _refuse(
            label,
            f"field 'dtype_numpy' of {where}",
            f"is {_short(data_key.get('dtype_numpy'))}, which numpy does not read ({err})",
            "a numpy dtype string such as '<f8'",
        ) from None
    if external:
        return KeySpec(key, "datum")
    if dtype.kind == "O":
        kind = "str" if data_key.get("dtype") == "string" or data_key.get("dtype_numpy") else "json"
        return KeySpec(key, kind)
    if dtype.kind not in "biuf" or (data_key.get("dtype") == "array" and not shape):
        return KeySpec(key, "json")
    return KeySpec(key, "numeric", dtype, tuple(shape))


class DescriptorSpec:
    """The checks of one descriptor's events."""

    def __init__(self, descriptor: Mapping[str, Any]):
        label = doc_label("descriptor", descriptor)
        self.uid: str = descriptor["uid"]
        self.run_uid: str = descriptor["run_start"]
        self.keys = {k: _key_spec(label, k, dk) for k, dk in descriptor["data_keys"].items()}
        self.declared = frozenset(self.keys)
        self.required = frozenset(k for k, s in self.keys.items() if s.kind != "stream")

    def check(self, label: str, page: Mapping[str, Any]) -> None:
        """Refuse an event page whose keys or values do not fit this descriptor."""
        data = page["data"]
        given = data.keys()
        if not (self.required <= given <= self.declared):
            raise _refuse(
                label,
                "field 'data'",
                f"does not match the data keys of descriptor {self.uid!r}: unexpected "
                f"{sorted(map(str, given - self.declared))}, missing "
                f"{sorted(self.required - given)}",
                "every event carries exactly the keys its descriptor declares",
            )
        for key, column in data.items():
            self.keys[key].check(label, column)


class DocumentChecks:
    """The checks of documents in their runs, with what they need to know of the store kept
    per store object (see the module's docstring). Pickled empty."""

    def __init__(self) -> None:
        self._specs: dict[str, DescriptorSpec] = {}
        self._stopped: dict[str, bool] = {}

    def __reduce__(self) -> tuple:
        return (DocumentChecks, ())

    @staticmethod
    def _keep(cache: dict, key: str, value: Any) -> None:
        cache[key] = value
        if len(cache) > CACHE_SIZE:
            cache.pop(next(iter(cache)), None)

    def before(self, store: DocumentStore, kind: str, doc: dict) -> Any:
        """Refuse ``doc`` if it does not fit its run as far as ``store`` shows it; returns
        what :meth:`after` needs."""
        if kind == "descriptor":
            return DescriptorSpec(doc)
        if kind != "event_page":
            return None
        label = doc_label(kind, doc)
        spec = self._spec(store, doc["descriptor"], label)
        if spec is None:  # a run this caller cannot see: the store refuses, or takes JSON
            check_json(label, "data", doc["data"], 1)
            return None
        spec.check(label, doc)
        if self._stopped.get(spec.run_uid):
            self._after_stop(store, spec, label, doc)
        return None

    def after(self, kind: str, doc: dict, token: Any) -> None:
        """Learn from a document the store has taken."""
        # (a start says nothing: re-inserting the start of a stopped run is a no-op; whether a
        # run has stopped is asked of the store at its first event, once)
        if kind == "stop":
            self._keep(self._stopped, doc["run_start"], True)
        elif kind == "descriptor" and token is not None:
            self._keep(self._specs, doc["uid"], token)

    def _spec(self, store: DocumentStore, uid: str, label: str) -> DescriptorSpec | None:
        spec = self._specs.get(uid)
        if spec is None:
            spec = self._lookup(store, uid, label)
            if spec is None:
                return None
            self._keep(self._specs, uid, spec)
        if spec.run_uid not in self._stopped:
            try:
                stopped = store.run(spec.run_uid).stop is not None
            except RunNotFound:
                return None
            self._keep(self._stopped, spec.run_uid, stopped)
        return spec

    def _lookup(self, store: DocumentStore, uid: str, label: str) -> DescriptorSpec | None:
        """The descriptor ``uid`` as ``store`` shows it (None: not shown; the store's put
        decides). A wrapper (an access guard) is asked through its own methods, so what it
        hides stays hidden."""
        if not store.supports(DescriptorIndex):
            return None  # the store's put refuses an event of a descriptor it does not hold
        try:
            run_uid = store.descriptor_run(uid)  # type: ignore[attr-defined]
        except (DescriptorNotFound, RunNotFound):
            raise InvalidDocument(
                f"{label} refers to descriptor {uid!r}, which no run in this store holds; "
                "insert the descriptor (and its run's start) first"
            ) from None
        try:
            found = [d for d in store.descriptors(run_uid) if d.get("uid") == uid]
        except RunNotFound:
            return None
        if not found:
            return None
        try:
            return DescriptorSpec(found[0])
        except (InvalidDocument, KeyError, TypeError):  # stored before these rules: not checked
            return None

    def _after_stop(
        self, store: DocumentStore, spec: DescriptorSpec, label: str, page: dict
    ) -> None:
        """An event page of a stopped run: refused unless every event in it is stored (an
        identical re-insert, a no-op, or a conflict the store reports)."""
        seq = [int(s) for s in page["seq_num"]]
        try:
            stored = store.read_events(
                spec.uid, fields=[], seq_range=(min(seq), max(seq) + 1), uids=True
            ).uid
        except BrokerError:
            stored = None
        if stored is not None and set(page["uid"]) <= set(np.asarray(stored).tolist()):
            return
        raise _refuse(
            label,
            "field 'descriptor'",
            f"names descriptor {spec.uid!r} of run {spec.run_uid!r}, which has stopped",
            "a stopped run takes no new events; start a new run for them",
        )
