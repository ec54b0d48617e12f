"""Realistic demo runs, as a RunEngine at a beamline would write them.

Five kinds of run, each made with event-model's ``compose_run`` (no bluesky or ophyd needed) and
simulated physics: a step scan across a Gaussian peak, a count of a few detectors, a 2-D grid
scan over a 2-D Gaussian, a rocking-curve scan with a ``baseline`` stream, and a count of an area
detector taking small images of a spot. The metadata follow what bluesky writes (``plan_name``,
``plan_args``, ``motors``, ``detectors``, ``num_points``, ``hints``, descriptors with
``object_keys``, ``configuration``, ``hints``, units, ``precision`` and ``dtype_numpy``).

>>> import intake_broker
>>> from intake_broker.demo import write_demo
>>> cat = intake_broker.temp()
>>> uids = write_demo(cat, progress=False)
>>> cat[-1].primary.read()["eiger_image"].shape
(5, 64, 64)
"""

from __future__ import annotations

import copy
import time as ttime
from collections.abc import Callable, Iterator, Mapping
from typing import Any, overload

import event_model
import numpy as np

import intake_broker

#: One run as ``(name, doc)`` pairs, start first and stop last.
Documents = list[tuple[str, Mapping[str, Any]]]
#: The seed of the demo's random numbers (mixed with the first scan_id of each call).
DEFAULT_SEED = 20260101
#: Shape of the simulated area-detector frames.
IMAGE_SHAPE = (64, 64)
#: Points of the grid scan: ``motor1`` (outer) by ``motor2`` (inner).
GRID_SHAPE = (7, 9)

_OPERATORS = ("A. Rivera", "M. Chen", "K. Okafor", "S. Lindqvist")
#: Samples as ``(name, composition)``: a start document's ``sample`` is a dict of both.
_SAMPLES = (
    ("LaB6 standard", "LaB6"),
    ("Si(111) wafer", "Si"),
    ("Fe3O4 nanoparticles", "Fe3O4"),
    ("CeO2 powder", "CeO2"),
)
_GAP = 2.0  # seconds between the stop of a run and the start of the next
#: On an empty catalog the demo's runs end this many seconds before now (they are never dated in
#: the future).
LEAD = 600.0


def _key(
    source: str,
    *,
    object_name: str,
    units: str | None = None,
    precision: int | None = 3,
    dtype: str = "number",
    dtype_numpy: str = "<f8",
    shape: tuple[int, ...] = (),
    dims: list[str] | None = None,
) -> dict:
    key: dict[str, Any] = {
        "source": source,
        "dtype": dtype,
        "dtype_numpy": dtype_numpy,
        "shape": list(shape),
        "object_name": object_name,
    }
    if units is not None:
        key["units"] = units
    if precision is not None:
        key["precision"] = precision
    if dims is not None:
        key["dims"] = dims
    return key


def _motor(name: str, units: str, t: float, *, velocity: float = 1.0) -> tuple[dict, dict]:
    """Data keys and configuration of an ophyd-like motor (readback and setpoint)."""
    keys = {
        name: _key(f"PV:DEMO:{name.upper()}.RBV", object_name=name, units=units, precision=4),
        f"{name}_setpoint": _key(
            f"PV:DEMO:{name.upper()}.VAL", object_name=name, units=units, precision=4
        ),
    }
    config = _configuration(
        name, {f"{name}_velocity": (velocity, f"{units}/s"), f"{name}_acceleration": (0.2, "s")}, t
    )
    return keys, config


def _configuration(obj: str, values: dict[str, tuple[Any, str]], t: float) -> dict:
    return {
        "data": {k: v for k, (v, _) in values.items()},
        "timestamps": {k: t for k in values},
        "data_keys": {
            k: _key(
                f"PV:DEMO:{k.upper()}",
                object_name=obj,
                units=u,
                dtype="integer" if isinstance(v, int) else "number",
                dtype_numpy="<i8" if isinstance(v, int) else "<f8",
            )
            for k, (v, u) in values.items()
        },
    }


def _start(
    rng: np.random.Generator, t: float, scan_id: int, plan_name: str, **metadata: Any
) -> event_model.ComposeRunBundle:
    md = {
        "scan_id": scan_id,
        "plan_type": "generator",
        "plan_name": plan_name,
        "operator": str(rng.choice(_OPERATORS)),
        # the samples in turn: the first demo's runs 1 and 5 are on the LaB6 standard
        "sample": dict(
            zip(("name", "composition"), _SAMPLES[(scan_id - 1) % len(_SAMPLES)], strict=True)
        ),
        "beamline_id": "DEMO",
        "proposal_id": "GU-301245",
        "purpose": "intake-broker demo",
        "versions": {
            "event_model": event_model.__version__,
            "intake_broker": intake_broker.__version__,
        },
        **metadata,
    }
    return event_model.compose_run(time=t, metadata=md)


@overload
def _gaussian(x: float, center: float, sigma: float) -> float: ...
@overload
def _gaussian(x: np.ndarray, center: float, sigma: float) -> np.ndarray: ...
def _gaussian(x: float | np.ndarray, center: float, sigma: float) -> float | np.ndarray:
    return np.exp(-((x - center) ** 2) / (2 * sigma**2))


def _counts(rng: np.random.Generator, expected: float) -> int:
    """A Poisson-distributed detector reading."""
    return int(rng.poisson(max(expected, 0.0)))


def _scan_events(
    desc: event_model.ComposeDescriptorBundle, rows: list[dict], t: float, dt: float
) -> tuple[Documents, float]:
    docs: Documents = []
    for row in rows:
        t += dt
        docs.append(
            ("event", desc.compose_event(data=row, timestamps=dict.fromkeys(row, t), time=t))
        )
    return docs, t


def step_scan(rng: np.random.Generator, scan_id: int, t: float) -> Documents:
    """``scan([det], motor, -2, 2, 21)``: a scintillator counting across a Gaussian peak."""
    start, stop, num = -2.0, 2.0, 21
    center, sigma, peak = rng.uniform(-0.6, 0.6), rng.uniform(0.25, 0.45), 12_000.0
    bundle = _start(
        rng,
        t,
        scan_id,
        "scan",
        detectors=["det"],
        motors=["motor"],
        num_points=num,
        num_intervals=num - 1,
        plan_args={
            "detectors": ["det"],
            "num": num,
            "args": ["motor", start, stop],
            "per_step": "None",
        },
        plan_pattern="inner_product",
        plan_pattern_module="bluesky.plan_patterns",
        plan_pattern_args={"num": num, "args": ["motor", start, stop]},
        hints={"dimensions": [[["motor"], "primary"]]},
    )
    motor_keys, motor_config = _motor("motor", "mm", t)
    desc = bundle.compose_descriptor(
        name="primary",
        time=t + 0.1,
        data_keys={
            **motor_keys,
            "det": _key(
                "PV:DEMO:SCINT:CNT",
                object_name="det",
                units="counts",
                precision=0,
                dtype="integer",
                dtype_numpy="<i8",
            ),
        },
        configuration={
            "motor": motor_config,
            "det": _configuration("det", {"det_exposure_time": (0.5, "s"), "det_gain": (2, "")}, t),
        },
        object_keys={"motor": ["motor", "motor_setpoint"], "det": ["det"]},
        hints={"motor": {"fields": ["motor"]}, "det": {"fields": ["det"]}},
    )
    rows = []
    for x in np.linspace(start, stop, num):
        readback = x + rng.normal(0, 5e-4)
        rows.append(
            {
                "motor": float(readback),
                "motor_setpoint": float(x),
                "det": _counts(rng, peak * _gaussian(readback, center, sigma) + 150),
            }
        )
    events, t_end = _scan_events(desc, rows, t + 0.2, 0.6)
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        *events,
        ("stop", bundle.compose_stop(time=t_end + 0.1)),
    ]


def count_detectors(rng: np.random.Generator, scan_id: int, t: float) -> Documents:
    """``count([i0, diode, ring_current], num=10)``: beam monitors drifting slowly."""
    num = 10
    bundle = _start(
        rng,
        t,
        scan_id,
        "count",
        detectors=["i0", "diode", "ring_current"],
        num_points=num,
        num_intervals=num - 1,
        plan_args={"detectors": ["i0", "diode", "ring_current"], "num": num, "delay": 1.0},
        hints={"dimensions": [[["time"], "primary"]]},
    )
    desc = bundle.compose_descriptor(
        name="primary",
        time=t + 0.1,
        data_keys={
            "i0": _key("PV:DEMO:I0:CURRENT", object_name="i0", units="nA", precision=4),
            "diode": _key("PV:DEMO:DIODE:CURRENT", object_name="diode", units="nA", precision=4),
            "ring_current": _key(
                "PV:DEMO:RING:CURRENT", object_name="ring_current", units="mA", precision=2
            ),
        },
        configuration={
            "i0": _configuration(
                "i0", {"i0_gain": (1e6, "V/A"), "i0_integration_time": (1.0, "s")}, t
            ),
            "diode": _configuration("diode", {"diode_gain": (1e7, "V/A")}, t),
        },
        object_keys={"i0": ["i0"], "diode": ["diode"], "ring_current": ["ring_current"]},
        hints={"i0": {"fields": ["i0"]}, "diode": {"fields": ["diode"]}},
    )
    ring = 400.0 - np.cumsum(rng.uniform(0.0, 0.02, num))
    i0 = 2.5 * ring / 400 * (1 + rng.normal(0, 2e-3, num))
    diode = 0.8 * i0 * (1 + rng.normal(0, 5e-3, num))
    rows = [
        {"i0": float(a), "diode": float(b), "ring_current": float(c)}
        for a, b, c in zip(i0, diode, ring, strict=True)
    ]
    events, t_end = _scan_events(desc, rows, t + 0.2, 1.0)
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        *events,
        ("stop", bundle.compose_stop(time=t_end + 0.1)),
    ]


def grid_scan(rng: np.random.Generator, scan_id: int, t: float) -> Documents:
    """``grid_scan([det4], motor1, -1, 1, 7, motor2, -1.5, 1.5, 9)`` over a 2-D Gaussian."""
    (n1, n2), (lo1, hi1), (lo2, hi2) = GRID_SHAPE, (-1.0, 1.0), (-1.5, 1.5)
    c1, c2 = rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.6)
    args = ["motor1", lo1, hi1, n1, "motor2", lo2, hi2, n2, False]
    bundle = _start(
        rng,
        t,
        scan_id,
        "grid_scan",
        detectors=["det4"],
        motors=["motor1", "motor2"],
        num_points=n1 * n2,
        num_intervals=n1 * n2 - 1,
        shape=[n1, n2],
        extents=[[lo1, hi1], [lo2, hi2]],
        snaking=[False, False],
        plan_args={"detectors": ["det4"], "args": args, "per_step": "None"},
        plan_pattern="outer_product",
        plan_pattern_module="bluesky.plan_patterns",
        plan_pattern_args={"args": args},
        hints={
            "dimensions": [[["motor1"], "primary"], [["motor2"], "primary"]],
            "gridding": "rectilinear",
        },
    )
    keys1, config1 = _motor("motor1", "mm", t)
    keys2, config2 = _motor("motor2", "mm", t, velocity=2.0)
    desc = bundle.compose_descriptor(
        name="primary",
        time=t + 0.1,
        data_keys={
            **keys1,
            **keys2,
            "det4": _key(
                "PV:DEMO:FLUO:CNT",
                object_name="det4",
                units="counts",
                precision=0,
                dtype="integer",
                dtype_numpy="<i8",
            ),
        },
        configuration={
            "motor1": config1,
            "motor2": config2,
            "det4": _configuration("det4", {"det4_exposure_time": (0.2, "s")}, t),
        },
        object_keys={
            "motor1": ["motor1", "motor1_setpoint"],
            "motor2": ["motor2", "motor2_setpoint"],
            "det4": ["det4"],
        },
        hints={
            "motor1": {"fields": ["motor1"]},
            "motor2": {"fields": ["motor2"]},
            "det4": {"fields": ["det4"]},
        },
    )
    rows = []
    for x in np.linspace(lo1, hi1, n1):
        for y in np.linspace(lo2, hi2, n2):
            spot = _gaussian(x, c1, 0.35) * _gaussian(y, c2, 0.5)
            rows.append(
                {
                    "motor1": float(x + rng.normal(0, 5e-4)),
                    "motor1_setpoint": float(x),
                    "motor2": float(y + rng.normal(0, 5e-4)),
                    "motor2_setpoint": float(y),
                    "det4": _counts(rng, 8_000 * spot + 40),
                }
            )
    events, t_end = _scan_events(desc, rows, t + 0.2, 0.3)
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        *events,
        ("stop", bundle.compose_stop(time=t_end + 0.1)),
    ]


def baseline_scan(rng: np.random.Generator, scan_id: int, t: float) -> Documents:
    """``rel_scan([diode], theta, -0.05, 0.05, 15)`` of a rocking curve, with a ``baseline``
    stream reading temperatures and slit gaps at the start and at the end."""
    num, center = 15, 14.221 + rng.normal(0, 0.005)
    theta = center + np.linspace(-0.05, 0.05, num)
    bundle = _start(
        rng,
        t,
        scan_id,
        "rel_scan",
        detectors=["diode"],
        motors=["theta"],
        num_points=num,
        num_intervals=num - 1,
        plan_args={
            "detectors": ["diode"],
            "num": num,
            "args": ["theta", -0.05, 0.05],
            "per_step": "None",
        },
        plan_pattern="inner_product",
        plan_pattern_module="bluesky.plan_patterns",
        plan_pattern_args={"num": num, "args": ["theta", -0.05, 0.05]},
        hints={"dimensions": [[["theta"], "primary"]]},
    )
    baseline = bundle.compose_descriptor(
        name="baseline",
        time=t + 0.05,
        data_keys={
            "cryo_temp": _key("PV:DEMO:CRYO:T", object_name="cryo", units="K", precision=2),
            "sample_temp": _key(
                "PV:DEMO:STAGE:T", object_name="sample_stage", units="K", precision=2
            ),
            "slit_h_gap": _key("PV:DEMO:SLIT:HGAP", object_name="slit", units="mm"),
            "slit_v_gap": _key("PV:DEMO:SLIT:VGAP", object_name="slit", units="mm"),
        },
        object_keys={
            "cryo": ["cryo_temp"],
            "sample_stage": ["sample_temp"],
            "slit": ["slit_h_gap", "slit_v_gap"],
        },
    )
    th_keys, th_config = _motor("theta", "deg", t, velocity=0.1)
    desc = bundle.compose_descriptor(
        name="primary",
        time=t + 0.1,
        data_keys={
            **th_keys,
            "diode": _key("PV:DEMO:DIODE:CURRENT", object_name="diode", units="nA", precision=4),
        },
        configuration={
            "theta": th_config,
            "diode": _configuration("diode", {"diode_gain": (1e7, "V/A")}, t),
        },
        object_keys={"theta": ["theta", "theta_setpoint"], "diode": ["diode"]},
        hints={"theta": {"fields": ["theta"]}, "diode": {"fields": ["diode"]}},
    )

    def reading(when: float) -> tuple[str, Mapping[str, Any]]:
        row = {
            "cryo_temp": float(80.0 + rng.normal(0, 0.02)),
            "sample_temp": float(80.4 + rng.normal(0, 0.05)),
            "slit_h_gap": 0.5,
            "slit_v_gap": 0.2,
        }
        return "event", baseline.compose_event(
            data=row, timestamps=dict.fromkeys(row, when), time=when
        )

    width = 0.008  # a Lorentzian rocking curve, FWHM 2 * width
    rows = [
        {
            "theta": float(a + rng.normal(0, 1e-5)),
            "theta_setpoint": float(a),
            "diode": float(3.0 / (1 + ((a - center) / width) ** 2) + rng.normal(0, 0.01)),
        }
        for a in theta
    ]
    events, t_end = _scan_events(desc, rows, t + 0.2, 0.8)
    return [
        ("start", bundle.start_doc),
        ("descriptor", baseline.descriptor_doc),
        reading(t + 0.08),
        ("descriptor", desc.descriptor_doc),
        *events,
        reading(t_end + 0.05),
        ("stop", bundle.compose_stop(time=t_end + 0.1)),
    ]


def image_count(rng: np.random.Generator, scan_id: int, t: float, *, num: int = 5) -> Documents:
    """``count([eiger], num=5)``: an Eiger-like detector's frames of a beam spot, shot noise."""
    ny, nx = IMAGE_SHAPE
    bundle = _start(
        rng,
        t,
        scan_id,
        "count",
        detectors=["eiger"],
        num_points=num,
        num_intervals=num - 1,
        plan_args={"detectors": ["eiger"], "num": num},
        hints={"dimensions": [[["time"], "primary"]]},
    )
    desc = bundle.compose_descriptor(
        name="primary",
        time=t + 0.1,
        data_keys={
            "eiger_image": _key(
                "PV:DEMO:EIGER:image1:ArrayData",
                object_name="eiger",
                units="counts",
                precision=None,
                dtype="array",
                dtype_numpy="<u2",
                shape=IMAGE_SHAPE,
                dims=["y", "x"],
            ),
            "eiger_stats_total": _key(
                "PV:DEMO:EIGER:Stats1:Total_RBV",
                object_name="eiger",
                units="counts",
                precision=0,
                dtype="integer",
                dtype_numpy="<i8",
            ),
        },
        configuration={
            "eiger": _configuration(
                "eiger",
                {
                    "eiger_acquire_time": (0.1, "s"),
                    "eiger_photon_energy": (12_000.0, "eV"),
                    "eiger_num_images": (1, ""),
                },
                t,
            )
        },
        object_keys={"eiger": ["eiger_image", "eiger_stats_total"]},
        hints={"eiger": {"fields": ["eiger_stats_total"]}},
    )
    y, x = np.mgrid[0:ny, 0:nx]
    cy, cx = ny / 2 + rng.normal(0, 3), nx / 2 + rng.normal(0, 3)
    rows = []
    for _ in range(num):
        cy, cx = cy + rng.normal(0, 0.3), cx + rng.normal(0, 0.3)  # a little beam jitter
        expected = 2_500 * np.exp(-((y - cy) ** 2 / 18 + (x - cx) ** 2 / 32)) + 12
        frame = np.minimum(rng.poisson(expected), 65_535).astype("<u2")
        rows.append({"eiger_image": frame, "eiger_stats_total": int(frame.sum(dtype=np.int64))})
    events, t_end = _scan_events(desc, rows, t + 0.2, 0.15)
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        *events,
        ("stop", bundle.compose_stop(time=t_end + 0.1)),
    ]


#: The demo's runs, in the order they are written.
PLANS: tuple[Callable[[np.random.Generator, int, float], Documents], ...] = (
    step_scan,
    count_detectors,
    grid_scan,
    baseline_scan,
    image_count,
)


def demo_runs(
    first_scan_id: int = 1,
    *,
    start_time: float | None = None,
    seed: int = DEFAULT_SEED,
    repeat: int = 1,
) -> Iterator[Documents]:
    """Make the demo runs: ``repeat`` times the five :data:`PLANS`, one after the other.

    Parameters
    ----------
    first_scan_id : int
        The scan_id of the first run; the others count up from it.
    start_time : float, optional
        When the first run starts; each next run starts two seconds after the previous one
        stops. By default the runs end :data:`LEAD` seconds (ten minutes) before now: demo runs
        are never dated in the future.
    seed : int
        Seed of the random numbers, mixed with ``first_scan_id``: the same catalog state gives
        the same values, and a second demo gives new ones.
    repeat : int
        How many times to make the five runs.

    Yields
    ------
    list of (str, dict)
        The documents of one run, start first and stop last.
    """
    rng = np.random.default_rng([seed, first_scan_id])
    if start_time is None:  # end LEAD seconds ago: a dry run (same random numbers) gives the span
        start_time = ttime.time() - LEAD - _span(copy.deepcopy(rng), first_scan_id, repeat)
    t = start_time
    scan_id = first_scan_id
    for _ in range(repeat):
        for plan in PLANS:
            docs = plan(rng, scan_id, t)
            yield docs
            t = docs[-1][1]["time"] + _GAP
            scan_id += 1


def _span(rng: np.random.Generator, first_scan_id: int, repeat: int) -> float:
    """Seconds from the first start to the last stop of the runs ``rng`` would make."""
    t, scan_id = 0.0, first_scan_id
    for _ in range(repeat):
        for plan in PLANS:
            t = plan(rng, scan_id, t)[-1][1]["time"] + _GAP
            scan_id += 1
    return t - _GAP


def next_scan(catalog: Any) -> tuple[int, float | None]:
    """The scan_id and earliest start time that follow the newest run of ``catalog``.

    Returns ``(newest scan_id + 1, newest stop time + 2 s)``, or ``(1, None)`` for an empty
    catalog, as a RunEngine that remembers its scan_id would go on.
    """
    try:
        newest = catalog[-1].metadata
    except KeyError:
        return 1, None
    start, stop = newest["start"], newest.get("stop")
    scan_id = start.get("scan_id")
    last = (stop or start).get("time")
    next_id = scan_id + 1 if isinstance(scan_id, int) and not isinstance(scan_id, bool) else 1
    return next_id, (last + _GAP if isinstance(last, (int, float)) else None)


def write_demo(
    catalog: Any, *, repeat: int = 1, seed: int = DEFAULT_SEED, progress: bool | None = None
) -> list[str]:
    """Write the demo runs into ``catalog`` (anything with ``insert`` and ``cat[-1]``).

    Parameters
    ----------
    catalog : BrokerCatalog
        A writable catalog; scan_ids and times continue from its newest run (the runs of an
        empty catalog end ten minutes before now; no run is dated in the future).
    repeat : int
        How many times to write the five runs.
    seed : int
        See :func:`demo_runs`.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).

    Returns
    -------
    list of str
        The uids of the new runs, in the order written.
    """
    from intake_broker.progress import progress_bar

    first, earliest = next_scan(catalog)
    rng = np.random.default_rng([seed, first])
    span = _span(rng, first, repeat)
    now = ttime.time()
    # After the newest run when that still ends in the past, else ending now (never later).
    if earliest is None:
        start_time = now - LEAD - span
    else:
        start_time = earliest if earliest + span <= now else now - span
    uids = []
    runs = demo_runs(first, start_time=start_time, seed=seed, repeat=repeat)
    bar = progress_bar(
        runs, total=repeat * len(PLANS), desc="writing demo runs", unit="run", enabled=progress
    )
    with bar:
        for docs in bar:
            for name, doc in docs:
                catalog.insert(name, doc)
            uids.append(docs[0][1]["uid"])
    return uids
