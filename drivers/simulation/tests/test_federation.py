"""Measured and simulated runs in one YAML federation: one query finds both."""

from __future__ import annotations

import pytest

from intake_broker import open_catalog

from .outputs import write_netcdf4

pytest.importorskip("intake_broker_native")


def test_a_federation_of_a_native_store_and_simulation_outputs(tmp_path, bluesky_runs):
    from intake_broker_native import NativeStore

    measured = NativeStore.in_folder(tmp_path / "measured")
    for docs in bluesky_runs.values():  # samples "sample-scan", "sample-count", ...
        for name, doc in docs:
            measured.insert(name, doc)
    measured.close()
    (tmp_path / "sims").mkdir()
    write_netcdf4(tmp_path / "sims" / "heat.nc", sample="sample-scan", run_number=90)
    write_netcdf4(tmp_path / "sims" / "other.nc", sample="CeO2", run_number=91)
    (tmp_path / "facility.yml").write_text(
        "sources:\n"
        "  beamline:\n"
        "    driver: bluesky-native-catalog\n"
        "    args: {index: 'sqlite:///measured/index.sqlite', data: measured/data}\n"
        "  twin:\n"
        "    driver: bluesky-simulation-catalog\n"
        "    args: {paths: [sims]}\n"
        "  everything:\n"
        "    driver: bluesky-federation-catalog\n"
        "    args: {members: ['facility.yml#beamline', 'facility.yml#twin'], timeout: 30}\n"
    )
    cat = open_catalog(str(tmp_path / "facility.yml"))["everything"]
    assert len(cat) == 5 + 2
    same_sample = cat.search('sample == "sample-scan"')
    found = {r.metadata["start"].get("plan_name"): r for _, r in same_sample.items()}
    assert set(found) == {"scan", "md-heat"}  # the measured scan and its simulation
    assert found["md-heat"].metadata["origin"] == ["facility/twin"]
    assert found["scan"].metadata["origin"] == ["facility/beamline"]
    assert found["md-heat"].primary.read()["temperature"].shape == (40,)
    assert found["scan"].primary.read()["det"].shape == (5,)
    # the data summaries of both kinds answer one query
    hot = cat.search("summary.primary.temperature.max > 250 or summary.primary.det.max > 0.5")
    assert {r.metadata["start"]["scan_id"] for _, r in hot.items()} >= {1, 90, 91}
    assert len(cat.search("scan_id >= 90")) == 2
