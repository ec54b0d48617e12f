"""Issue 14, documents: property-based fuzzing of documents against every store.

Each example is a run (start, descriptors, events, maybe a stop and events after it) whose
uids, times, metadata and event values are drawn from valid and hostile values alike. Each
document is either accepted, and then read back equal (event values at their data key's
declared dtype), or refused with a :class:`~intake_broker.errors.BrokerError`: never a raw
exception, and never an insert taking 2 s. Fixed seed (``derandomize``), bounded examples: the
four stores take well under a minute together.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from intake_broker.errors import BrokerError
from intake_broker.store.abilities import flush
from intake_broker.store.documents import event_page_rows, same_document

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = {"memory": 400, "files": 250, "native": 150, "mongo": 150}
HANG = 2.0  # seconds: an insert taking longer is a hang

# -- values -----------------------------------------------------------------------------------

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())
text = st.text(any_char, max_size=8) | st.sampled_from(["", "a", "x.y", "$where", "é", "\x00"])
numbers = (
    st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, 2**53 + 1, 1e308, -0.0])
)
leaves = st.none() | st.booleans() | numbers | text
hostile_leaves = (
    st.binary(max_size=3)
    | st.complex_numbers(max_magnitude=10, allow_nan=False)
    | st.sets(st.integers(0, 3), max_size=2)
    | st.builds(object)
    | st.just(np.array([2**64 - 1], dtype=np.uint64))
)
keys = text | st.integers(-2, 2)
values = st.recursive(
    leaves | hostile_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def mostly(good, bad, in20: int = 18):
    """``good`` in ``in20`` of twenty draws, else ``bad``: most documents of a run are valid,
    so that the documents after them are tried too."""
    return st.integers(0, 19).flatmap(lambda n: good if n < in20 else bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
metadata = mostly(
    st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in ("uid", "time")), json_values, max_size=4
    ),
    st.dictionaries(text, values, max_size=4)
    | st.integers(28, 40).map(lambda d: {"deep": nested(d)}),
    in20=14,
)
uids = mostly(
    st.just(None),  # a fresh uuid4
    text.map(lambda t: ("text", t))  # made unique per example: text + a fresh suffix
    | st.sampled_from(["..", "../../escaped", "a/b", "a\\b", "x" * 250, ".hidden", 5, ""]),
)


def uid_of(drawn) -> object:
    """A drawn uid as used: None is a fresh uuid4, text gets a fresh suffix (runs of
    different examples must not share uids), the hostile ones are used as they are."""
    if drawn is None:
        return str(uuid.uuid4())
    if isinstance(drawn, tuple):
        return f"{drawn[1]}-{uuid.uuid4().hex[:8]}"
    return drawn


times = mostly(
    st.floats(1e9, 2e9), st.sampled_from([float("nan"), float("inf"), "now", None, True])
)

DTYPES = {
    "number": (st.floats(-1e6, 1e6) | st.integers(-(2**53), 2**53), "float64"),
    "integer": (st.integers(-(2**63), 2**63 - 1) | st.booleans(), "int64"),
    "boolean": (st.booleans() | st.sampled_from([0, 1]), "bool"),
    "string": (st.text(any_char, max_size=5), None),
    "array": (st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=2), "float64"),
}


@st.composite
def runs(draw):
    """A run's documents, each maybe spoiled."""
    start_uid = draw(uids)
    start = {
        "uid": uid_of(start_uid),
        "time": draw(times),
        **draw(metadata),
    }
    docs: list[tuple[str, dict]] = [("start", start)]
    run_uid = start["uid"]
    declared = draw(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(list(DTYPES)),
            min_size=1,
            max_size=3,
        )
    )
    data_keys = {
        k: {"dtype": t, "shape": [2] if t == "array" else [], "source": "fuzz"}
        for k, t in declared.items()
    }
    if draw(st.integers(0, 9)) == 0:
        data_keys["d"] = {
            "dtype": "number",
            "shape": draw(st.sampled_from([[None], [-1], "x"])),
            "source": "fuzz",
        }
    desc_uid = draw(uids)
    descriptor = {
        "uid": uid_of(desc_uid),
        "run_start": run_uid,
        "time": draw(times),
        "name": "primary",
        "data_keys": data_keys,
    }
    docs.append(("descriptor", descriptor))
    stop_at = draw(st.integers(0, 4))
    for seq in range(1, draw(st.integers(0, 5)) + 1):
        if seq == stop_at:
            docs.append(
                (
                    "stop",
                    {
                        "uid": str(uuid.uuid4()),
                        "run_start": run_uid,
                        "time": draw(times),
                        "exit_status": "success",
                    },
                )
            )
        data = {}
        for key, data_key in data_keys.items():
            fitting = DTYPES.get(data_key["dtype"], (values, None))[0]
            data[key] = draw(mostly(fitting, values, 19))
        event_uid = draw(uids)
        docs.append(
            (
                "event",
                {
                    "uid": uid_of(event_uid),
                    "descriptor": descriptor["uid"],
                    "seq_num": draw(
                        mostly(st.just(seq), st.sampled_from([0, -5, 2**64, "1", 1.5]), 9)
                    ),
                    "time": draw(times),
                    "data": data,
                    "timestamps": {k: draw(mostly(st.floats(1e9, 2e9), times, 19)) for k in data},
                },
            )
        )
    return docs


# -- reading back -----------------------------------------------------------------------------


def _key(name: str, doc: dict) -> tuple:
    return (name, doc.get("uid"))


def _same_event(stored: dict, sent: dict, data_keys: dict) -> bool:
    if stored.keys() - {"filled"} != sent.keys() - {"filled"}:
        return False
    for field in ("uid", "descriptor", "seq_num", "time", "timestamps"):
        if not same_document(stored[field], sent[field]):
            return False
    for key, value in sent["data"].items():
        dtype = DTYPES.get(data_keys[key]["dtype"], (None, None))[1]
        got = stored["data"][key]
        if dtype is not None:  # numbers are kept at their declared dtype
            got, value = np.asarray(got, dtype=dtype), np.asarray(value, dtype=dtype)
        if not same_document(got, value):
            return False
    return True


def check_run(store, docs) -> None:
    """Insert a run's documents one by one: each accepted or refused with a BrokerError,
    none taking 2 s; then what was accepted reads back equal."""
    accepted: dict[tuple, dict] = {}
    for name, doc in docs:
        t0 = time.monotonic()
        try:
            store.insert(name, doc)
        except BrokerError:
            pass
        else:
            accepted[_key(name, doc)] = doc
        assert time.monotonic() - t0 < HANG, f"inserting {name} took over {HANG} s"
    start = docs[0][1]
    if ("start", start["uid"]) not in accepted:
        return
    flush(store)
    got: dict[tuple, dict] = {}
    for name, doc in store.documents(start["uid"]):
        rows = event_page_rows(doc) if name == "event_page" else [doc]
        for row in rows:
            got[_key("event" if name == "event_page" else name, row)] = row
    assert got.keys() == accepted.keys()
    data_keys = next((d["data_keys"] for n, d in docs if n == "descriptor"), {})
    for key, sent in accepted.items():
        if key[0] == "event":
            assert _same_event(got[key], sent, data_keys), (got[key], sent)
        else:
            assert same_document(got[key], sent), (got[key], sent)


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_every_document_is_stored_whole_or_refused_cleanly(kind, tmp_path, open_store):
    store = open_store(kind, tmp_path)

    @settings(
        max_examples=EXAMPLES[kind],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(runs())
    def fuzz(docs):
        check_run(store, docs)

    try:
        fuzz()
    finally:
        store.close()
