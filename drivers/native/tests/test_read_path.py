"""The read path that places chunk bytes straight into the result arrays (issue 24, item 3):
partial slices over several chunks, streams of descriptors with different chunkings, events
appended after a read, every dtype kept, and the checksum verified once per file version."""

from __future__ import annotations

import os
import time
from pathlib import Path

import event_model
import numpy as np
import pytest

from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import CorruptChunk, NativeStore
from intake_broker_native import columns as columns_module

DATA_KEYS = {
    "f": {"dtype": "number", "shape": [], "source": "sim"},
    "i": {"dtype": "integer", "shape": [], "source": "sim"},
    "b": {"dtype": "boolean", "shape": [], "source": "sim"},
    "s": {"dtype": "string", "shape": [], "source": "sim"},
    "a": {"dtype": "array", "shape": [3], "source": "sim"},
}


def _values(n: int, offset: int = 0) -> dict[str, np.ndarray]:
    k = np.arange(offset, offset + n)
    return {
        "f": k * 0.5 - 3.25,
        "i": k * 7 - 40,
        "b": k % 3 == 0,
        "s": np.array([f"v{j}" for j in k], dtype=object),
        "a": np.stack([k, k + 1, k * 2], axis=1).astype(float),
    }


def _page(desc: dict, values: dict, seq_start: int, t0: float = 1_700_000_000.0) -> dict:
    n = len(values["f"])
    times = [t0 + seq_start + j for j in range(n)]
    return {
        "descriptor": desc["uid"],
        "uid": [f"{desc['uid']}-{seq_start + j}" for j in range(n)],
        "seq_num": list(range(seq_start, seq_start + n)),
        "time": times,
        "data": {k: [v.tolist() if np.ndim(v) else v for v in vs] for k, vs in values.items()},
        "timestamps": {k: times for k in values},
        "filled": {},
    }


def _expected(values: dict) -> dict:
    return {
        "f": values["f"].astype(np.float64),
        "i": values["i"].astype(np.int64),
        "b": values["b"].astype(bool),
        "s": values["s"],
        "a": values["a"],
    }


def _check(got: dict, want: dict, rows: slice = slice(None)) -> None:
    for key, expected in want.items():
        values = np.asarray(got[key])
        expected = expected[rows]
        assert values.shape == expected.shape, key
        if key == "s":
            assert values.tolist() == expected.tolist()
        else:
            assert values.dtype == expected.dtype, (key, values.dtype)
            np.testing.assert_array_equal(values, expected)


def _run(store: NativeStore, n: int, *, stop: bool = True):
    bundle = event_model.compose_run(metadata={"scan_id": 1})
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS).descriptor_doc
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc)
    values = _values(n)
    store.insert("event_page", _page(desc, values, 1))
    if stop:
        store.insert("stop", bundle.compose_stop())
    return bundle, desc, values


@pytest.mark.parametrize("parallel", [False, True])
def test_partial_slices_over_several_chunks(tmp_path, monkeypatch, parallel):
    """Every seq_num range (inside a chunk, across chunk borders, past the end) gives the
    documents' values with their dtypes, serially and spread over the reading threads."""
    if parallel:
        monkeypatch.setattr(columns_module, "_PARALLEL_BYTES", 0)
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    _, desc, values = _run(store, 37)
    want = _expected(values)
    for lo, hi in [(1, 38), (5, 27), (11, 21), (10, 11), (30, 100), (38, 50)]:
        cols = store.read_events(desc["uid"], seq_range=(lo, hi))
        rows = slice(lo - 1, min(hi, 38) - 1)
        _check(cols.data, want, rows)
        np.testing.assert_array_equal(cols.seq_num, np.arange(lo, min(hi, 38)))
    stream = BrokerCatalog(store)[-1].primary(seq_num=True)
    ds = stream.read()
    _check({k: ds[k].values for k in want}, want)
    np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, 38))
    lazy = stream.to_dask()
    assert lazy["f"].data.chunks == ((10, 10, 10, 7),)
    _check({k: lazy[k].values for k in want}, want)
    assert stream["data"]["f"][5:27].tolist() == want["f"][5:27].tolist()
    assert stream["data"]["a"][8:13].tolist() == want["a"][8:13].tolist()


@pytest.mark.parametrize("pack_bytes", [0, 1 << 20])
def test_descriptors_with_different_chunkings(tmp_path, pack_bytes):
    """A stream of two descriptors (chunks of 10 rows; the other one chunk of 7 rows, or
    packed), one of them without the integer key: read() fills one array per field in the
    order of the lazy dataset, integers without a value become NaN in float64."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=10, pack_bytes=pack_bytes)
    bundle = event_model.compose_run(metadata={"scan_id": 2})
    first = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS).descriptor_doc
    second = {
        **first,
        "uid": first["uid"][:-4] + "beef",
        "data_keys": {k: v for k, v in DATA_KEYS.items() if k != "i"},
        "configuration": {"sim": {"data": {"gain": 2}, "timestamps": {"gain": 1.0}}},
    }
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", first)
    store.insert("descriptor", second)
    a, b = _values(25), _values(7, offset=100)
    store.insert("event_page", _page(first, a, 1))
    store.insert("event_page", _page(second, {k: v for k, v in b.items() if k != "i"}, 26))
    store.insert("stop", bundle.compose_stop())
    stream = BrokerCatalog(store)[-1].primary(seq_num=True)
    lazy = stream.to_dask().compute()
    ds = stream.read()
    assert ds.sizes["time"] == 32
    for key in DATA_KEYS:
        assert ds[key].dtype == lazy[key].dtype, key
        if key == "s":
            assert ds[key].values.tolist() == lazy[key].values.tolist()
        else:
            np.testing.assert_array_equal(ds[key].values, lazy[key].values)
    assert ds["i"].dtype == np.float64
    np.testing.assert_array_equal(ds["i"].values[:25], a["i"])
    assert np.isnan(ds["i"].values[25:]).all()
    np.testing.assert_array_equal(ds["f"].values, np.concatenate([a["f"], b["f"]]))
    assert ds["b"].dtype == bool and ds["b"].values.tolist() == a["b"].tolist() + b["b"].tolist()
    np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, 33))
    np.testing.assert_array_equal(ds["time"].values, lazy["time"].values)


def test_events_appended_after_a_read(tmp_path):
    """A live run read, then given more events (its partial last chunk written again): the
    next read in the same process has them all, with the rewritten chunk's new values."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    bundle, desc, values = _run(store, 15, stop=False)
    store.flush()
    cat = BrokerCatalog(store)
    _check(cat[-1].primary.read(), _expected(values))
    more = _values(8, offset=15)
    store.insert("event_page", _page(desc, more, 16))
    store.flush()
    everything = {k: np.concatenate([values[k], more[k]]) for k in values}
    ds = cat[-1].primary.read()
    assert ds.sizes["time"] == 23
    _check({k: ds[k].values for k in DATA_KEYS}, _expected(everything))
    store.insert("stop", bundle.compose_stop())
    _check(store.read_events(desc["uid"]).data, _expected(everything))


def _chunks(root: Path) -> list[Path]:
    return [p for p in root.rglob("c/*") if p.is_file()]


def test_checksum_verified_once_per_file_version(tmp_path, monkeypatch):
    """A chunk file read once is not checksummed again while it is unchanged; a file
    changed after that read (bytes flipped, its times set back by hand) is checked again
    and the damage is an error in the same process. Files changed in the last seconds are
    checksummed on every read."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    _, desc, values = _run(store, 25)
    calls = []
    real = columns_module.google_crc32c.value

    def counting(data):
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(columns_module.google_crc32c, "value", counting)
    reader = NativeStore(store.index, store.data)
    reader.read_events(desc["uid"], fields=["f"])
    fresh = len(calls)
    assert fresh > 0  # files written just now: checked on every read
    reader.read_events(desc["uid"], fields=["f"])
    assert len(calls) == 2 * fresh

    hour_ago = time.time() - 3600
    for path in _chunks(Path(store.data)):
        os.utime(path, (hour_ago, hour_ago))
    calls.clear()
    _check(reader.read_events(desc["uid"], fields=["f"]).data, {"f": values["f"]})
    assert calls  # the new versions are verified once
    calls.clear()
    _check(reader.read_events(desc["uid"], fields=["f"]).data, {"f": values["f"]})
    assert calls == []  # ... and not again

    (chunk,) = [
        p for p in _chunks(Path(store.data)) if p.parent.parent.name == "f" and p.name == "1"
    ]
    raw = bytearray(chunk.read_bytes())
    raw[9] ^= 0x10
    chunk.write_bytes(bytes(raw))
    os.utime(chunk, (hour_ago, hour_ago))  # same mtime as before: the change time differs
    with pytest.raises(CorruptChunk, match="checksum") as info:
        reader.read_events(desc["uid"], fields=["f"])
    assert "f/c/1" in str(info.value)


def test_chunks_without_a_checksum_are_read(tmp_path):
    """Numbers written by another zarr writer as plain ``bytes`` (no ``crc32c``) are read
    by the same path, whole chunks and parts of chunks; a chunk one byte too long is an
    error."""
    import zarr

    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    _, desc, values = _run(store, 25)
    (folder,) = [p.parent for p in Path(store.data).rglob("f/zarr.json")]
    old = zarr.open_array(str(folder), mode="r")
    plain = zarr.create_array(
        str(folder),
        shape=old.shape,
        chunks=old.chunks,
        dtype=old.dtype,
        compressors=None,
        filters=None,
        fill_value=np.nan,
        dimension_names=old.metadata.dimension_names,
        attributes=dict(old.attrs),
        overwrite=True,
        config={"write_empty_chunks": True},
    )
    plain[:] = values["f"][: old.shape[0]]
    assert [c["name"] for c in plain.metadata.to_dict()["codecs"]] == ["bytes"]
    reader = NativeStore(store.index, store.data)
    _check(reader.read_events(desc["uid"], fields=["f"]).data, {"f": values["f"]})
    part = reader.read_events(desc["uid"], fields=["f"], seq_range=(4, 17)).data
    _check(part, {"f": values["f"]}, slice(3, 16))
    chunk = folder / "c" / "1"
    chunk.write_bytes(chunk.read_bytes() + b"\0")
    with pytest.raises(CorruptChunk, match="more than 80 bytes"):
        NativeStore(store.index, store.data).read_events(desc["uid"], fields=["f"])
