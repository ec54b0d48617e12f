"""Streams in the zarr v3 HTTP layout, read by plain xarray + zarr + fsspec (no library of
ours on the reading side), equal to the local ``run.primary.read()``."""

from __future__ import annotations

import numpy as np
import pytest

from intake_broker.views.catalog import BrokerCatalog

xr = pytest.importorskip("xarray")
pytest.importorskip("zarr", minversion="3")
pytest.importorskip("aiohttp")


def run_with(store, scan_id):
    return next(r for r in store.runs() if r.start["scan_id"] == scan_id).uid


@pytest.mark.parametrize("scan_id", [1, 7, 9], ids=["scalars", "images", "two-descriptors"])
@pytest.mark.parametrize("consolidated", [False, None])
def test_open_zarr_equals_local_read(url, store, scan_id, consolidated):
    uid = run_with(store, scan_id)
    local = BrokerCatalog(store)[uid].primary(seq_num=True).read()  # the layout keeps seq_num
    remote = xr.open_zarr(f"{url}/zarr/v3/runs/{uid}/primary", consolidated=consolidated)
    assert remote["time"].dims == ("time",) and "seq_num" in remote.coords
    xr.testing.assert_identical(remote.load(), local)


def test_chunks_follow_the_stored_chunks(url, store, http):
    uid = run_with(store, 1)
    remote = xr.open_zarr(f"{url}/zarr/v3/runs/{uid}/primary", consolidated=False)
    assert remote["det"].chunks == ((4, 4, 2),)  # the store's chunks of 4 rows
    meta = http.get(f"/zarr/v3/runs/{uid}/primary/det/zarr.json").json()
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [4]
    assert meta["dimension_names"] == ["time"] and meta["shape"] == [10]
    assert meta["codecs"][-1]["name"] in ("zstd", "gzip")  # compressed
    listing = http.get(f"/zarr/v3/runs/{uid}/primary/").text
    assert 'href="det"' in listing and 'href="seq_num"' in listing
    assert http.head(f"/zarr/v3/runs/{uid}/primary/zarr.json").status_code == 200


def test_baseline_and_zarr_python_directly(url, store):
    import zarr

    uid = run_with(store, 1)
    group = zarr.open_group(f"{url}/zarr/v3/runs/{uid}/baseline", mode="r")
    np.testing.assert_array_equal(group["temperature"][:], [290.0, 291.5])
    assert group.attrs["stream_name"] == "baseline"
