"""What databroker 1.2.5's generic driver tests (databroker/tests/test_v2/generic.py) asked of
every catalog, on the golden runs in every kind of store (item 5 of issue 17)."""

from __future__ import annotations

import dask.array as da
import event_model
import numpy as np
import pytest

from intake_broker.views.datakeys import asset_kind, field_dtype, field_shape


def _image_run(catalog):
    """The newest golden run with a field kept in external files (resource + datum)."""
    for uid in catalog:
        run = catalog[uid]
        for _, doc in run.documents():
            if doc.get("data_keys") and any(
                asset_kind(dk) == "datum" for dk in doc["data_keys"].values()
            ):
                return run
    pytest.fail("no golden run with external data")


def test_documents_delayed_gives_dask_arrays_of_the_descriptors_shape(catalog):
    run = _image_run(catalog)
    descriptors, filled = {}, {}
    for name, doc in run.documents(fill="yes"):
        if name == "event_page":
            filled.setdefault(doc["descriptor"], []).append(doc)
    checked = 0
    for name, doc in run.documents(fill="delayed"):
        if name == "descriptor":
            descriptors[doc["uid"]] = doc
        if name != "event_page":
            continue
        keys = descriptors[doc["descriptor"]]["data_keys"]
        eager = filled[doc["descriptor"]].pop(0)
        for key, dk in keys.items():
            if asset_kind(dk) != "datum":
                continue
            for lazy, value in zip(doc["data"][key], eager["data"][key], strict=True):
                assert isinstance(lazy, da.Array), type(lazy)
                assert lazy.shape == field_shape(dk) and lazy.dtype == field_dtype(dk)
                np.testing.assert_array_equal(lazy.compute(), value)
                checked += 1
    assert checked


def test_read_canonical_is_documents_filled_and_warns(catalog):
    run = _image_run(catalog)
    with pytest.warns(UserWarning, match="documents"):
        old = list(run.read_canonical())
    new = list(run.documents(fill="yes"))
    assert [n for n, _ in old] == [n for n, _ in new]


def test_canonical_is_documents_and_warns(catalog):
    run = _image_run(catalog)
    with pytest.warns(UserWarning, match="documents"):
        old = list(run.canonical(fill="no"))
    assert [n for n, _ in old] == [n for n, _ in run.documents(fill="no")]


def test_out_of_range_negative_index_is_an_index_error(catalog):
    catalog[-len(catalog)]
    with pytest.raises(IndexError):
        catalog[-(1 + len(catalog))]


def test_repr_shows_the_full_uid_on_one_line(catalog):
    uid = next(iter(catalog))
    text = repr(catalog[uid])
    assert uid in text and len(text.splitlines()) == 1


def test_unknown_search_keywords_are_a_type_error(catalog):
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        catalog.search({"plan_name": "scan"}, not_an_option=1)


def test_coerce_delayed_is_registered_with_event_model(tmp_path):
    """``event_model.Filler(coerce="delayed")`` works once a catalog module is imported, and
    gives dask arrays of the descriptor's shape that compute to the handler's array."""
    import intake_broker.views.catalog  # noqa: F401

    frame = np.arange(12.0).reshape(3, 4)

    class Handler:
        def __init__(self, resource_path, **kwargs):
            self.path = resource_path

        def __call__(self, index):
            return frame + index

    filler = event_model.Filler({"TEST": Handler}, coerce="delayed", inplace=False)
    bundle = event_model.compose_run()
    filler("start", bundle.start_doc)
    resource = bundle.compose_resource(
        spec="TEST", root=str(tmp_path), resource_path="x", resource_kwargs={}
    )
    filler("resource", resource.resource_doc)
    datum = resource.compose_datum(datum_kwargs={"index": 2})
    filler("datum", datum)
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "img": {"source": "x", "dtype": "array", "shape": [3, 4], "external": "FILESTORE:"}
        },
    )
    filler("descriptor", desc.descriptor_doc)
    event = desc.compose_event(
        data={"img": datum["datum_id"]}, timestamps={"img": 0.0}, filled={"img": False}
    )
    _, out = filler("event", event)
    lazy = out["data"]["img"]
    assert isinstance(lazy, da.Array) and lazy.shape == (3, 4)
    np.testing.assert_array_equal(lazy.compute(), frame + 2)
