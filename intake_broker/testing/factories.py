"""Small, valid runs made with event-model's ``compose_run``, for the conformance suite.

The suite must not need bluesky or ophyd (a store author may not have them); the project's own
tests add runs recorded by a real RunEngine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import event_model
import numpy as np

#: One run as ``(name, doc)`` pairs; the documents are event-model's TypedDicts.
Documents = list[tuple[str, Mapping[str, Any]]]


def scalar_run(
    *,
    n: int = 5,
    time: float = 1_700_000_000.0,
    scan_id: int = 1,
    plan_name: str = "scan",
    stop: bool = True,
    page: bool = False,
    uid: str | None = None,
    **metadata,
) -> Documents:
    """A run with a ``primary`` stream of ``n`` events (``motor``, ``det``, an integer ``count``),
    and a ``baseline`` stream of two events. ``page=True`` emits ``event_page`` s."""
    bundle = event_model.compose_run(
        uid=uid,
        time=time,
        metadata={
            "scan_id": scan_id,
            "plan_name": plan_name,
            "motors": ["motor"],
            "detectors": ["det"],
            **metadata,
        },
    )
    docs: Documents = [("start", bundle.start_doc)]
    primary = bundle.compose_descriptor(
        name="primary",
        time=time + 0.1,
        data_keys={
            "motor": {
                "dtype": "number",
                "shape": [],
                "source": "SIM:motor",
                "units": "mm",
                "object_name": "motor",
            },
            "det": {"dtype": "number", "shape": [], "source": "SIM:det", "object_name": "det"},
            "count": {"dtype": "integer", "shape": [], "source": "SIM:count", "object_name": "det"},
        },
        configuration={
            "det": {
                "data": {"exposure": 0.1},
                "timestamps": {"exposure": time},
                "data_keys": {
                    "exposure": {"dtype": "number", "shape": [], "source": "SIM:exposure"}
                },
            }
        },
        object_keys={"motor": ["motor"], "det": ["det", "count"]},
    )
    baseline = bundle.compose_descriptor(
        name="baseline",
        time=time + 0.05,
        data_keys={"temperature": {"dtype": "number", "shape": [], "source": "SIM:T"}},
    )
    docs.append(("descriptor", baseline.descriptor_doc))
    docs.append(("descriptor", primary.descriptor_doc))
    docs.append(
        (
            "event",
            baseline.compose_event(
                data={"temperature": 290.0},
                timestamps={"temperature": time + 0.15},
                time=time + 0.15,
            ),
        )
    )
    events = []
    for i in range(n):
        t = time + 1 + i
        events.append(
            primary.compose_event(
                data={
                    "motor": -1.0 + 0.5 * i,
                    "det": float(np.exp(-((-1.0 + 0.5 * i) ** 2))),
                    "count": i * 10,
                },
                timestamps={"motor": t, "det": t, "count": t},
                time=t,
            )
        )
    if page and events:
        docs.append(("event_page", event_model.pack_event_page(*events)))
    else:
        docs.extend(("event", e) for e in events)
    docs.append(
        (
            "event",
            baseline.compose_event(
                data={"temperature": 291.5},
                timestamps={"temperature": time + n + 2},
                time=time + n + 2,
            ),
        )
    )
    if stop:
        docs.append(("stop", bundle.compose_stop(time=time + n + 3)))
    return docs


def image_run(
    *, n: int = 3, shape: tuple[int, int] = (4, 5), time: float = 1_700_000_500.0, scan_id: int = 7
) -> Documents:
    """A run whose ``primary`` stream holds a 2-D ``image`` per event (with ``dims``)."""
    bundle = event_model.compose_run(time=time, metadata={"scan_id": scan_id, "plan_name": "count"})
    desc = bundle.compose_descriptor(
        name="primary",
        time=time + 0.1,
        data_keys={
            "image": {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": list(shape),
                "dims": ["y", "x"],
                "source": "SIM:image",
            }
        },
    )
    docs: Documents = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for i in range(n):
        frame = np.arange(shape[0] * shape[1], dtype="u2").reshape(shape) + i
        docs.append(
            (
                "event",
                desc.compose_event(
                    data={"image": frame}, timestamps={"image": time + 1 + i}, time=time + 1 + i
                ),
            )
        )
    docs.append(("stop", bundle.compose_stop(time=time + n + 2)))
    return docs


def reconfigured_run(*, time: float = 1_700_001_000.0, scan_id: int = 9) -> Documents:
    """A run whose ``primary`` stream has two descriptors: the exposure changed mid-run, so
    seq_num goes on across them (as the RunEngine does)."""
    bundle = event_model.compose_run(time=time, metadata={"scan_id": scan_id, "plan_name": "count"})
    docs: Documents = [("start", bundle.start_doc)]
    seq = 0
    for part, exposure in enumerate((0.1, 0.5)):
        desc = bundle.compose_descriptor(
            name="primary",
            time=time + 10 * part,
            data_keys={"det": {"dtype": "number", "shape": [], "source": "SIM:det"}},
            configuration={
                "det": {
                    "data": {"exposure": exposure},
                    "timestamps": {"exposure": time},
                    "data_keys": {
                        "exposure": {"dtype": "number", "shape": [], "source": "SIM:exposure"}
                    },
                }
            },
        )
        docs.append(("descriptor", desc.descriptor_doc))
        for _ in range(3):
            seq += 1
            t = time + 10 * part + seq
            event = desc.compose_event(data={"det": float(seq)}, timestamps={"det": t}, time=t)
            docs.append(("event", event))
    docs.append(("stop", bundle.compose_stop(time=time + 30)))
    return docs


def asset_run(*, time: float = 1_700_002_000.0, scan_id: int = 11) -> Documents:
    """A run with every asset document type: resource + datum + datum_page, and
    stream_resource + stream_datum, referenced by its events."""
    bundle = event_model.compose_run(time=time, metadata={"scan_id": scan_id, "plan_name": "count"})
    docs: Documents = [("start", bundle.start_doc)]
    res = bundle.compose_resource(
        spec="NPY_SEQ", root="/data", resource_path="frames", resource_kwargs={}
    )
    docs.append(("resource", res.resource_doc))
    datum0 = res.compose_datum(datum_kwargs={"index": 0})
    docs.append(("datum", datum0))
    page = res.compose_datum_page(datum_kwargs={"index": [1, 2]})
    docs.append(("datum_page", page))
    desc = bundle.compose_descriptor(
        name="primary",
        time=time + 0.1,
        data_keys={
            "frame": {
                "dtype": "array",
                "shape": [2, 2],
                "source": "SIM:frame",
                "external": "FILESTORE:",
            },
            "det": {"dtype": "number", "shape": [], "source": "SIM:det"},
        },
    )
    docs.append(("descriptor", desc.descriptor_doc))
    ids = [datum0["datum_id"], *page["datum_id"]]
    for i, datum_id in enumerate(ids):
        t = time + 1 + i
        docs.append(
            (
                "event",
                desc.compose_event(
                    data={"frame": datum_id, "det": float(i)},
                    timestamps={"frame": t, "det": t},
                    filled={"frame": False},
                    time=t,
                ),
            )
        )
    # compose_run always sets it; event-model's bundle declares it optional
    assert bundle.compose_stream_resource is not None
    sres = bundle.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri="file://localhost/data/scan.h5",
        data_key="ad_image",
        parameters={"dataset": "/entry/data"},
    )
    docs.append(("stream_resource", sres.stream_resource_doc))
    docs.append(
        (
            "stream_datum",
            sres.compose_stream_datum(
                indices={"start": 0, "stop": 2},
                seq_nums={"start": 1, "stop": 3},
                descriptor=desc.descriptor_doc,
            ),
        )
    )
    docs.append(("stop", bundle.compose_stop(time=time + 10)))
    return docs


def many_runs(count: int, *, start_time: float = 1_600_000_000.0) -> Iterator[Documents]:
    """``count`` small runs one minute apart, scan_ids 1..count."""
    for i in range(count):
        yield scalar_run(
            n=2,
            time=start_time + 60 * i,
            scan_id=i + 1,
            plan_name="scan" if i % 2 else "count",
            uid=str(uuid.uuid4()),
        )


def ad_hdf5_run(
    root,
    *,
    filename: str = "scan.h5",
    n: int = 6,
    shape: tuple[int, int] = (32, 48),
    key: str = "cam_image",
    chunked: bool = True,
) -> tuple[Documents, np.ndarray]:
    """A run whose area detector wrote ``n`` uint16 frames to the HDF5 file ``root/filename``
    (written here with h5py, a test dependency), one AD_HDF5 datum per event interleaved with
    the events, and a scalar ``cam_stats_total`` per event; returns the documents and frames."""
    import h5py

    frames = (np.arange(n * shape[0] * shape[1], dtype=np.uint16) % 4093).reshape((n, *shape))
    with h5py.File(root / filename, "w") as f:
        f.create_dataset("/entry/data/data", data=frames, chunks=(1, *shape) if chunked else None)
    bundle = event_model.compose_run(metadata={"scan_id": 3, "plan_name": "count"})
    resource = bundle.compose_resource(
        spec="AD_HDF5",
        root=str(root),
        resource_path=filename,
        resource_kwargs={"frame_per_point": 1},
    )
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            key: {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": list(shape),
                "source": "PV:cam",
                "external": "FILESTORE:",
            },
            "cam_stats_total": {"dtype": "number", "shape": [], "source": "PV:total"},
        },
    )
    docs: Documents = [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("resource", resource.resource_doc),
    ]
    for i in range(n):
        datum = resource.compose_datum(datum_kwargs={"point_number": i})
        docs.append(("datum", datum))
        docs.append(
            (
                "event",
                desc.compose_event(
                    data={key: datum["datum_id"], "cam_stats_total": float(frames[i].sum())},
                    timestamps={key: 1.0 + i, "cam_stats_total": 1.0 + i},
                    filled={key: False},
                ),
            )
        )
    docs.append(("stop", bundle.compose_stop()))
    return docs, frames


def insert_all(store: Any, docs: Iterator[tuple[str, Mapping[str, Any]]] | list) -> None:
    """Insert ``(name, doc)`` pairs into ``store`` (anything with ``insert``), in order."""
    for name, doc in docs:
        store.insert(name, doc)
