"""Annotations: tags, fields and notes kept beside a run's documents, never inside them.

An annotation belongs to one run (optionally to one stream of it, and a ``seq_range`` of its
events) and holds ``tags`` (strings), ``fields`` (JSON values) and a ``note`` (free text), with
its ``author``, ``created``/``updated`` times, ``updated_by``, a ``version`` (1 for the first
change, +1 per change) and a ``visibility``:

``private``   its author only (admins included: nobody else);
``proposal``  the members of the run's proposals (``proposals``, from the start document);
``groups``    the members of the named ``groups``;
``public``    everyone who may see the run.

Whoever sees an annotation may change it (a ``write`` credential on a service). There is one
annotation per run, target and audience: a user's private one, the run's proposal one, one per
set of groups, the public one; :func:`annotation_id` names it. Every change is appended to the
run's history (who, when, the annotation before and after), so any annotation can be shown as
it was and a change undone (:func:`restore_change`).

A store keeps annotations when it has the :class:`~intake_broker.store.abilities.Annotations`
ability: ``annotations(run_uid)``, ``annotation_history(run_uid)`` and
``change_annotation(run_uid, change)``, which applies one change checked by
:func:`annotation_change` with :func:`apply_change`, atomically (a lock, a transaction), so
that concurrent writers never lose an update. :class:`MemoryAnnotations` is the reference;
:class:`AttachedAnnotations` gives a read-only store the annotations of another store.
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from intake_broker.errors import AnnotationConflict, BadAnnotation, WriteDenied
from intake_broker.queries.annotations import VISIBILITIES, Viewer, visible
from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord
from intake_broker.store.planning import select_runs, split_for_index
from intake_broker.store.wrapper import StoreWrapper

if TYPE_CHECKING:
    from intake_broker.queries import Query

__all__ = [
    "MAX_FIELDS",
    "MAX_NOTE_CHARS",
    "MAX_TAGS",
    "AttachedAnnotations",
    "MemoryAnnotations",
    "annotation_change",
    "annotation_id",
    "apply_change",
    "default_author",
    "restore_change",
]

#: Tags one annotation holds at most, and characters of one tag.
MAX_TAGS = 256
MAX_TAG_CHARS = 200
#: Fields one annotation holds at most, characters of a field name, bytes of one value's JSON.
MAX_FIELDS = 256
MAX_FIELD_NAME = 100
MAX_VALUE_BYTES = 16_384
#: Characters of a note.
MAX_NOTE_CHARS = 20_000
#: Groups an annotation is shared with at most; characters of an author's or a group's name.
MAX_GROUPS = 32
MAX_NAME_CHARS = 200
#: Changes of an annotation history answer at most (the newest are kept).
MAX_HISTORY = 100_000

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset({"tags", "note"})


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadAnnotation(f"{what} must be a non-empty string, not {value!r:.60}")
    if len(value) > MAX_NAME_CHARS:
        raise BadAnnotation(f"{what} has {len(value)} characters; at most {MAX_NAME_CHARS}")
    return value


def check_tag(tag: Any) -> str:
    """A tag as stored: a non-empty string of at most :data:`MAX_TAG_CHARS` characters."""
    if not isinstance(tag, str):
        raise BadAnnotation(
            f"a tag must be a string, not {type(tag).__name__} ({tag!r:.60}); "
            'write run.tag("good"), not run.tag(1)'
        )
    tag = tag.strip()
    if not tag:
        raise BadAnnotation("a tag must not be empty or only spaces")
    if len(tag) > MAX_TAG_CHARS:
        raise BadAnnotation(f"a tag has {len(tag)} characters; at most {MAX_TAG_CHARS} are allowed")
    return tag


def _tags(tags: Any, what: str) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise BadAnnotation(f"{what} must be a list of strings, not {type(tags).__name__}")
    out = sorted({check_tag(t) for t in tags})
    if len(out) > MAX_TAGS:
        raise BadAnnotation(f"{what} names {len(out)} tags; at most {MAX_TAGS} are allowed")
    return out


def _json_value(name: str, value: Any) -> Any:
    """``value`` if it is JSON (its JSON text within :data:`MAX_VALUE_BYTES`), as JSON reads it
    back (tuples become lists)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise BadAnnotation(
            f"the value of annotation field {name!r} is not JSON ({err}): give a str, int, "
            "float (not NaN or infinity), bool, None, or a list or dict of those"
        ) from None
    except RecursionError:
        raise BadAnnotation(f"the value of annotation field {name!r} nests too deep") from None
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise BadAnnotation(
            f"the value of annotation field {name!r} is {len(text.encode())} bytes of JSON; "
            f"at most {MAX_VALUE_BYTES} are allowed (keep large data in runs, not annotations)"
        )
    return json.loads(text)


def check_fields(fields: Any) -> dict[str, Any]:
    """Annotation fields as stored: names that are identifiers (so that ``annotations.<name>``
    queries reach them), not ``tags`` or ``note``, and JSON values."""
    if not isinstance(fields, Mapping):
        raise BadAnnotation(f"annotation fields must be a dict, not {type(fields).__name__}")
    if len(fields) > MAX_FIELDS:
        raise BadAnnotation(f"{len(fields)} annotation fields; at most {MAX_FIELDS} are allowed")
    out = {}
    for name, value in fields.items():
        check_field_name(name)
        out[name] = _json_value(name, value)
    return out


def check_field_name(name: Any) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.match(name) or len(name) > MAX_FIELD_NAME:
        raise BadAnnotation(
            f"annotation field name {name!r:.60} is not an identifier of at most "
            f"{MAX_FIELD_NAME} characters (letters, digits, _); e.g. rating, sample_offset"
        )
    if name in _RESERVED:
        raise BadAnnotation(
            f"{name!r} is not a field name: use run.tag(...) for tags and note=... for the note"
        )
    return name


def check_note(note: Any) -> str:
    if not isinstance(note, str):
        raise BadAnnotation(f"a note must be a string, not {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise BadAnnotation(
            f"the note has {len(note):,} characters; at most {MAX_NOTE_CHARS:,} are allowed"
        )
    return note


def _seq_range(value: Any) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1] < 2**62
    ):
        raise BadAnnotation(
            f"seq_range must be two integers [first, stop) with 0 <= first < stop, "
            f"not {value!r:.60}"
        )
    return [int(value[0]), int(value[1])]


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list | tuple) else [value]
    return sorted({str(v) for v in values})


def annotation_id(
    run_uid: str,
    visibility: str,
    author: str,
    groups: Sequence[str] = (),
    stream: str | None = None,
    seq_range: Sequence[int] | None = None,
) -> str:
    """The id of the annotation of one run, target and audience (a user's private one, the
    run's proposal one, one per set of groups, the public one)."""
    owner = author if visibility == "private" else None
    key = [run_uid, visibility, owner, sorted(groups), stream, list(seq_range or []) or None]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def default_author(store: Any) -> str:
    """Who writes: the principal of an access guard in front of ``store``, else the user of
    this process (a service's guard replaces it with the credential's user anyway)."""
    principal = getattr(store, "principal", None)
    if principal is not None:
        return str(principal.name)
    try:
        return getpass.getuser()
    except Exception:  # no user name (a container without one)
        return "unknown"


def annotation_change(
    store: Any,
    run_uid: str,
    *,
    author: str | None = None,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
    fields: Mapping[str, Any] | None = None,
    remove_fields: Iterable[str] = (),
    note: str | None = None,
    visibility: str = "private",
    groups: Iterable[str] = (),
    stream: str | None = None,
    seq_range: Sequence[int] | None = None,
    if_version: int | None = None,
    proposal_key: str = "proposal_id",
) -> dict[str, Any]:
    """One change of an annotation of ``run_uid`` in ``store``, checked: what
    ``store.change_annotation(run_uid, change)`` applies.

    Raises
    ------
    BadAnnotation
        For any malformed part (nothing is stored).
    RunNotFound
        When ``store`` shows no such run.
    """
    if visibility not in VISIBILITIES:
        raise BadAnnotation(
            f"visibility {visibility!r:.40} is not one of {', '.join(VISIBILITIES)}"
        )
    group_list = sorted({_name(g, "a group") for g in _tags(groups, "groups")})
    if len(group_list) > MAX_GROUPS:
        raise BadAnnotation(f"{len(group_list)} groups; at most {MAX_GROUPS} are allowed")
    if visibility == "groups" and not group_list:
        raise BadAnnotation('visibility "groups" needs groups=[...] to share with')
    if visibility != "groups" and group_list:
        raise BadAnnotation(f'groups are given only with visibility "groups", not {visibility!r}')
    if if_version is not None and (
        not isinstance(if_version, int) or isinstance(if_version, bool) or if_version < 0
    ):
        raise BadAnnotation(f"if_version must be an integer >= 0, not {if_version!r:.40}")
    if stream is not None:
        _name(stream, "a stream name")
    change: dict[str, Any] = {
        "author": _name(author if author is not None else default_author(store), "an author"),
        "visibility": visibility,
        "groups": group_list,
        "stream": stream,
        "seq_range": _seq_range(seq_range),
        "add_tags": _tags(add_tags, "tags"),
        "remove_tags": _tags(remove_tags, "tags to remove"),
        "set_fields": check_fields(fields or {}),
        "remove_fields": sorted({check_field_name(n) for n in remove_fields}),
        "note": None if note is None else check_note(note),
        "if_version": if_version,
        "restore": None,
        "viewer": None,
    }
    if not any(change[k] for k in ("add_tags", "remove_tags", "set_fields", "remove_fields")) and (
        note is None
    ):
        raise BadAnnotation("the change changes nothing: give tags, fields or a note")
    record = store.run(run_uid)  # RunNotFound for a run the store does not show
    change["proposals"] = (
        _labels(record.start.get(proposal_key)) if visibility == "proposal" else []
    )
    if visibility == "proposal" and not change["proposals"]:
        raise BadAnnotation(
            f"run {run_uid!r} names no {proposal_key}, so nobody shares it; give "
            'visibility="groups" with groups=[...], "public" or "private"'
        )
    return finish_change(run_uid, change)


def finish_change(run_uid: str, change: dict[str, Any]) -> dict[str, Any]:
    """``change`` with its annotation ``id`` (from its run, audience and target)."""
    change["id"] = annotation_id(
        run_uid,
        change["visibility"],
        change["author"],
        change["groups"],
        change["stream"],
        change["seq_range"],
    )
    return change


def check_change(change: Any) -> dict[str, Any]:
    """A change as received from elsewhere (a client of a service), checked again."""
    if not isinstance(change, Mapping):
        raise BadAnnotation(f"an annotation change must be an object, not {type(change).__name__}")
    known = {
        "author", "visibility", "groups", "stream", "seq_range", "add_tags", "remove_tags",
        "set_fields", "remove_fields", "note", "if_version", "restore", "viewer", "proposals",
        "id",
    }  # fmt: skip
    unknown = set(change) - known
    if unknown:
        raise BadAnnotation(f"unknown parts of an annotation change: {sorted(unknown)[:10]}")
    restore = change.get("restore")
    out = {
        "author": _name(change.get("author", "unknown"), "an author"),
        "visibility": change.get("visibility", "private"),
        "groups": sorted({_name(g, "a group") for g in _tags(change.get("groups", []), "groups")}),
        "stream": change.get("stream"),
        "seq_range": _seq_range(change.get("seq_range")),
        "add_tags": _tags(change.get("add_tags", []), "tags"),
        "remove_tags": _tags(change.get("remove_tags", []), "tags to remove"),
        "set_fields": check_fields(change.get("set_fields") or {}),
        "remove_fields": sorted({check_field_name(n) for n in change.get("remove_fields", [])}),
        "note": None if change.get("note") is None else check_note(change["note"]),
        "if_version": change.get("if_version"),
        "restore": None if restore is None else check_content(restore),
        "viewer": None,
        "proposals": _labels(change.get("proposals")),
    }
    if out["visibility"] not in VISIBILITIES:
        raise BadAnnotation(f"visibility {out['visibility']!r:.40} is not one of {VISIBILITIES}")
    if len(out["groups"]) > MAX_GROUPS:
        raise BadAnnotation(f"{len(out['groups'])} groups; at most {MAX_GROUPS} are allowed")
    if out["stream"] is not None:
        _name(out["stream"], "a stream name")
    version = out["if_version"]
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise BadAnnotation(f"if_version must be an integer, not {version!r:.40}")
    return out


def check_content(content: Any) -> dict[str, Any]:
    """The ``tags``, ``fields`` and ``note`` an annotation is restored to, checked."""
    if not isinstance(content, Mapping):
        raise BadAnnotation("restored content must be an object with tags, fields and note")
    return {
        "tags": _tags(content.get("tags", []), "tags"),
        "fields": check_fields(content.get("fields") or {}),
        "note": check_note(content.get("note") or ""),
    }


def _content(annotation: Mapping[str, Any] | None) -> tuple:
    if annotation is None:
        return ([], {}, "")
    return (annotation["tags"], annotation["fields"], annotation["note"])


def apply_change(
    run_uid: str, current: dict | None, change: Mapping[str, Any], now: float | None = None
) -> dict | None:
    """The annotation after ``change`` (None when it changes nothing), from ``current`` (None:
    there is none yet). What every store's ``change_annotation`` runs inside its lock or
    transaction.

    Raises
    ------
    WriteDenied
        When the change's ``viewer`` (set by an access guard) may not see ``current``.
    AnnotationConflict
        When ``if_version`` is not the current version (0: there is none yet), with the
        current annotation.
    """
    viewer = Viewer.of(change.get("viewer"))
    if current is not None and not visible(current, viewer):
        raise WriteDenied(
            "this annotation of the run is not visible to you, so you may not change it"
        )
    version = 0 if current is None else int(current["version"])
    expected = change.get("if_version")
    if expected is not None and expected != version:
        raise AnnotationConflict(
            f"the annotation is at version {version}, not {expected} as the change expected: "
            "someone changed it meanwhile; look at its current value (.current) and retry",
            current=copy.deepcopy(current),
        )
    now = time.time() if now is None else now
    if current is None:
        new: dict[str, Any] = {
            "id": change["id"],
            "run_uid": run_uid,
            "stream": change["stream"],
            "seq_range": change["seq_range"],
            "author": change["author"],
            "visibility": change["visibility"],
            "proposals": list(change.get("proposals") or []),
            "groups": list(change["groups"]),
            "tags": [],
            "fields": {},
            "note": "",
            "version": 0,
            "created": now,
            "updated": now,
            "updated_by": change["author"],
        }
    else:
        new = copy.deepcopy(current)
    if change.get("restore") is not None:
        restored = change["restore"]
        new["tags"], new["fields"], new["note"] = (
            list(restored["tags"]),
            dict(restored["fields"]),
            restored["note"],
        )
    else:
        tags = (set(new["tags"]) | set(change["add_tags"])) - set(change["remove_tags"])
        new["tags"] = sorted(tags)
        fields = {**new["fields"], **change["set_fields"]}
        for name in change["remove_fields"]:
            fields.pop(name, None)
        new["fields"] = fields
        if change.get("note") is not None:
            new["note"] = change["note"]
    if len(new["tags"]) > MAX_TAGS or len(new["fields"]) > MAX_FIELDS:
        raise BadAnnotation(
            f"the annotation would hold {len(new['tags'])} tags and {len(new['fields'])} "
            f"fields; at most {MAX_TAGS} and {MAX_FIELDS} are allowed"
        )
    if current is not None and _content(new) == _content(current):
        return None
    new["version"] = version + 1
    new["updated"] = max(now, float(new["updated"]))
    new["updated_by"] = change["author"]
    return new


def history_entry(before: dict | None, after: dict) -> dict[str, Any]:
    """The history entry of one change (``who``, ``time``, ``before``, ``after``)."""
    return {
        "annotation": after["id"],
        "run_uid": after["run_uid"],
        "version": after["version"],
        "who": after["updated_by"],
        "time": after["updated"],
        "before": copy.deepcopy(before),
        "after": copy.deepcopy(after),
    }


def restore_change(
    store: Any, run_uid: str, entry: Mapping[str, Any], author: str | None = None
) -> dict[str, Any]:
    """The change that undoes history ``entry``: the annotation's tags, fields and note back
    to what they were before it (a new version; the history keeps both)."""
    after = entry["after"]
    before = entry.get("before") or {"tags": [], "fields": {}, "note": ""}
    change = {
        "author": author if author is not None else default_author(store),
        "visibility": after["visibility"],
        "groups": after["groups"],
        "stream": after["stream"],
        "seq_range": after["seq_range"],
        "add_tags": [],
        "remove_tags": [],
        "set_fields": {},
        "remove_fields": [],
        "note": None,
        "if_version": None,
        "restore": check_content(before),
        "viewer": None,
        "proposals": after.get("proposals") or [],
    }
    change["id"] = after["id"]
    return change


class MemoryAnnotations:
    """The annotations ability kept in dicts: the reference implementation (the memory store
    has it; :class:`AttachedAnnotations` uses one for ``annotations: memory``)."""

    def __init__(self) -> None:
        self._annotations: dict[str, dict[str, dict]] = {}  # run uid -> id -> annotation
        self._history: dict[str, list[dict]] = {}  # run uid -> entries, oldest first
        self._annotation_lock = threading.RLock()

    def annotations(self, run_uid: str) -> list[dict]:
        """Every annotation of a run, oldest first."""
        self._annotated_run(run_uid)
        with self._annotation_lock:
            found = list(self._annotations.get(run_uid, {}).values())
        return copy.deepcopy(sorted(found, key=lambda a: (a["created"], a["id"])))

    def annotation_history(self, run_uid: str) -> list[dict]:
        """Every change of a run's annotations, oldest first."""
        self._annotated_run(run_uid)
        with self._annotation_lock:
            return copy.deepcopy(self._history.get(run_uid, [])[-MAX_HISTORY:])

    def change_annotation(self, run_uid: str, change: Mapping[str, Any]) -> dict:
        """Apply one checked change (see :func:`apply_change`) and return the annotation."""
        self._annotated_run(run_uid)
        with self._annotation_lock:
            kept = self._annotations.setdefault(run_uid, {})
            current = kept.get(change["id"])
            new = apply_change(run_uid, current, change)
            if new is None:
                return copy.deepcopy(current)  # type: ignore[arg-type]
            kept[new["id"]] = new
            self._history.setdefault(run_uid, []).append(history_entry(current, new))
            self._annotations_changed()
            return copy.deepcopy(new)

    def _annotations_changed(self) -> None:
        """Hook: a store that caches search answers forgets them."""

    def _annotated_run(self, run_uid: str) -> None:
        """Hook: RunNotFound for a run the store does not hold (a store of runs checks)."""


class AttachedAnnotations(StoreWrapper):
    """``store`` (read-only, say: suitcase files, a MongoDB you may not write) with the
    annotations of ``annotations``, another store that has the ability (a native index
    ``sqlite:///~/notes.db``, a service, a :class:`MemoryAnnotations`).

    Runs are found in ``store``; annotations of them are kept in ``annotations`` by run uid.
    Queries on annotations are answered over ``store``'s candidates.
    """

    def __init__(self, store: DocumentStore, annotations: Any):
        if not callable(getattr(annotations, "change_annotation", None)):
            raise BadAnnotation(
                f"{type(annotations).__name__} keeps no annotations; attach a store with the "
                "Annotations ability (a native index URL such as sqlite:///notes.db, or memory)"
            )
        self.store = store
        self.annotation_store = annotations

    def supports(self, ability: type) -> bool:
        from intake_broker.store.abilities import Annotations

        return ability is Annotations or self.store.supports(ability)

    # -- annotations: kept in the attached store, for runs of this one -----------------------

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run of ``store``."""
        self.store.run(run_uid)
        return self.annotation_store.annotations(run_uid)

    def annotation_history(self, run_uid: str) -> list[dict]:
        """The history of a run's annotations."""
        self.store.run(run_uid)
        return self.annotation_store.annotation_history(run_uid)

    def change_annotation(self, run_uid: str, change: Mapping[str, Any]) -> dict:
        """Apply a change to an annotation of a run of ``store``."""
        self.store.run(run_uid)
        return self.annotation_store.change_annotation(run_uid, change)

    # -- searches on annotations: over the store's candidates ----------------------------

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        index_part, rest = split_for_index(query, _OWN)
        if rest is None:
            return self.store.runs(query, sort=sort, skip=skip, limit=limit)
        candidates = self.store.runs(index_part, sort=sort)
        return select_runs(candidates, rest, sort, skip, limit, store=self)

    def count(self, query: Query | None = None) -> int:
        if split_for_index(query, _OWN)[1] is None:
            return self.store.count(query)
        return len(self.runs(query))

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        parts = set(parts)
        out = self.store.record_parts(run_uid, parts - {"annotations"})
        if "annotations" in parts:
            out["annotations"] = self.annotation_store.annotations(run_uid)
        return out

    def close(self) -> None:
        self.store.close()
        close = getattr(self.annotation_store, "close", None)
        if close is not None:
            close()


#: What the store behind an :class:`AttachedAnnotations` answers itself.
_OWN = frozenset({"start", "stop", "summary", "descriptors"})


def attach_annotations(store: DocumentStore, spec: Any) -> DocumentStore:
    """``store`` with annotations kept in ``spec``: a store with the ability, ``"memory"``, or
    a URL opened by the ``intake_broker.annotation_stores`` plugin of its scheme:
    ``sqlite:///path`` or ``postgresql://...`` (the native driver's annotation index),
    ``http(s)://...`` (a service, through the remote driver)."""
    if spec is None:
        return store
    backend: Any = spec
    if isinstance(spec, str):
        if spec == "memory":
            backend = MemoryAnnotations()
        else:
            import os

            from intake_broker import plugins

            scheme = spec.split(":", 1)[0].split("+", 1)[0].lower()
            if "://" not in spec or not scheme.isalpha():
                raise BadAnnotation(
                    f"annotations: {spec!r:.80} is not a place for annotations; give "
                    "'memory', 'sqlite:///path/notes.db', 'postgresql://...' or a service URL"
                )
            if spec.startswith("sqlite:///~"):
                spec = "sqlite:///" + os.path.expanduser(spec[len("sqlite:///") :])
            opener: Any = plugins.load(
                plugins.ANNOTATION_STORES, scheme, f"annotation store for {scheme}:// URLs"
            )
            backend = opener(spec)
    return AttachedAnnotations(store, backend)
