"""The demo's runs: dated in the past, with the fields the README's searches use."""

from __future__ import annotations

import time

import intake_broker
from intake_broker.demo import LEAD, PLANS, write_demo


def _times(cat):
    for run in cat.values():
        for name, doc in run.documents():
            if name == "event_page":
                yield from doc["time"]
            elif "time" in doc:
                yield doc["time"]


def test_demo_runs_are_dated_in_the_past():
    cat = intake_broker.temp()
    before = time.time()
    write_demo(cat, progress=False)
    newest_stop = cat[-1].metadata["stop"]["time"]
    assert max(_times(cat)) <= time.time() - LEAD  # an empty catalog's demo ends LEAD ago
    assert newest_stop > before - LEAD - 60  # ... not long before that
    # a second demo right after goes on after the first, still in the past
    write_demo(cat, progress=False)
    after = time.time()
    assert len(cat) == 2 * len(PLANS)
    assert max(_times(cat)) <= after
    starts = [run.metadata["start"] for run in cat.values()]  # newest first
    assert [s["scan_id"] for s in starts] == list(range(10, 0, -1))
    assert [s["time"] for s in starts] == sorted((s["time"] for s in starts), reverse=True)
    assert starts[4]["time"] > newest_stop  # no overlap with the earlier runs


def test_demo_ends_now_when_it_cannot_go_on_after_the_newest_run():
    cat = intake_broker.temp()
    write_demo(cat, progress=False)
    write_demo(cat, progress=False, repeat=30)  # 150 runs do not fit in LEAD seconds
    assert max(_times(cat)) <= time.time()


def test_demo_has_what_the_readme_searches_for():
    cat = intake_broker.temp()
    write_demo(cat, progress=False)
    assert len(cat.search('plan_name == "scan" and 1 <= scan_id <= 3')) == 1
    assert len(cat.search("summary.primary.theta.max < 15")) == 1
    assert len(cat.search("descriptors.configuration.eiger.data.eiger_acquire_time == 0.1")) == 1
    assert len(cat.search('sample.name ~ "^LaB"')) == 2  # runs 1 and 5
    assert len(cat.search('sample.composition == "Si"')) == 1
    rocking = cat.search("summary.primary.theta.max < 15")[-1].primary.read()
    assert 14 < float(rocking["theta"].min()) < float(rocking["theta"].max()) < 15  # degrees
    image = cat[-1].primary.read()["eiger_image"]
    assert image.dims == ("time", "y", "x") and int(image.max()) > 1000  # a bright spot


def test_a_demo_run_plots_to_png(tmp_path):
    """What the tour does, `ds["det"].plot()`, with the Agg backend (no display) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cat = intake_broker.temp()
    write_demo(cat, progress=False)
    ds = cat[1].primary.read()
    fig = plt.figure()
    try:
        lines = ds["det"].plot()
        assert lines[0].get_ydata().tolist() == ds["det"].values.tolist()
        fig.savefig(tmp_path / "det.png")
    finally:
        plt.close(fig)
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_of_a_device_the_stream_lacks_names_those_it_has():
    import pytest

    from intake_broker.errors import ConfigurationNotFound

    cat = intake_broker.temp()
    write_demo(cat, progress=False)
    config = cat[-1].primary.config  # the Eiger count
    assert config["eiger"].read()["eiger_acquire_time"].values.tolist() == [0.1] * 5
    with pytest.raises(KeyError) as caught:
        config["det"]
    assert isinstance(caught.value, ConfigurationNotFound)
    assert str(caught.value) == (
        "stream 'primary' has no configuration of a device 'det'; it has the devices ['eiger']"
    )
    with pytest.raises(ConfigurationNotFound, match=r"'eiger_stats_total' is a data key"):
        config["eiger_stats_total"]
    assert config.get("det") is None and "det" not in config  # still a dict otherwise
