"""Simulation outputs are read-only; an annotation index attached in the YAML entry lets a user
tag and note them, searched with the same language, kept across reopening."""

from __future__ import annotations

import hashlib

import intake
import pytest

from intake_broker import open_catalog
from intake_broker.errors import AnnotationConflict

from .outputs import write_netcdf4

pytest.importorskip("intake_broker_native")  # the sqlite annotation index


@pytest.fixture(params=["intake_broker", "plain intake"])
def opener(request):
    return request.param


OPENERS: dict = {"intake_broker": open_catalog, "plain intake": intake.open_catalog}


def test_annotating_read_only_simulation_outputs(tmp_path, monkeypatch, opener):
    monkeypatch.chdir("/")  # a relative index is beside the YAML file, never in the cwd

    def _catalog(tmp_path):
        return OPENERS[opener](str(tmp_path / "sims.yml"))["twin"]

    (tmp_path / "sims").mkdir()
    heat = write_netcdf4(tmp_path / "sims" / "heat.nc", sample="LaB6", run_number=90)
    write_netcdf4(tmp_path / "sims" / "cool.nc", sample="CeO2", run_number=91)
    before = hashlib.sha256(open(heat, "rb").read()).hexdigest()
    (tmp_path / "sims.yml").write_text(
        "sources:\n"
        "  twin:\n"
        "    driver: bluesky-simulation-catalog\n"
        "    args: {paths: [sims], annotations: 'sqlite:///notes.db'}\n"
    )
    cat = _catalog(tmp_path)
    assert len(cat) == 2
    hot = cat.search("scan_id == 90")
    (uid,) = list(hot)
    run = cat[uid]
    run.tag("good", "heating", visibility="public")
    run.annotate(rating=4, note="melting front reached the edge", visibility="public")

    reopened = _catalog(tmp_path)  # a new process would see the same: the index is a file
    assert list(reopened.search('tags contains "good"')) == [uid]
    assert list(reopened.search("annotations.rating >= 4 and scan_id == 90")) == [uid]
    assert list(reopened.search('note text "melting"')) == [uid]
    assert len(reopened.search('tags contains "good" and scan_id == 91')) == 0
    assert reopened[uid].tags == ["good", "heating"]
    (seen,) = reopened[uid].annotations  # one public annotation, changed twice
    assert seen["fields"]["rating"] == 4
    assert len(reopened[uid].annotation_history()) == 2
    with pytest.raises(AnnotationConflict):
        reopened[uid].annotate(rating=5, visibility="public", if_version=seen["version"] - 1)
    assert reopened[uid].annotations[0]["fields"]["rating"] == 4
    # the outputs themselves are never written
    assert hashlib.sha256(open(heat, "rb").read()).hexdigest() == before
    assert (tmp_path / "notes.db").exists()
