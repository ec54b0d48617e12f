"""``driver: bluesky-mongo-normalized-catalog`` in a YAML catalog, as databroker users wrote."""

from __future__ import annotations

import textwrap

import intake
import pytest

from intake_broker.testing import factories, insert_all
from intake_broker_mongo import MongoNormalizedCatalog


@pytest.fixture
def written(database_uri):
    mds, assets = database_uri(), database_uri()
    cat = MongoNormalizedCatalog(mds, assets)
    docs = factories.scalar_run(n=4, scan_id=31)
    insert_all(cat, docs)
    cat.store.close()
    return mds, assets, docs


def test_yaml_catalog_with_databrokers_arguments(tmp_path, written):
    mds, assets, docs = written
    path = tmp_path / "facility.yml"
    path.write_text(
        textwrap.dedent(f"""
        sources:
          csx:
            description: CSX, databroker's normalized MongoDB
            driver: bluesky-mongo-normalized-catalog
            args:
              metadatastore_db: {mds}
              asset_registry_db: {assets}
              handler_registry:
                NPY_SEQ: ophyd.sim.NumpySeqHandler
              root_map: {{/old: /new}}
          one-database:
            driver: bluesky-mongo-normalized-catalog
            args:
              uri: {mds}
              server_selection_timeout: 2
    """)
    )
    top = intake.open_catalog(str(path))
    csx = top["csx"]
    assert isinstance(csx, MongoNormalizedCatalog)
    run = csx[31]
    assert run.metadata["start"]["uid"] == docs[0][1]["uid"]
    assert run.primary.read()["count"].values.tolist() == [0, 10, 20, 30]
    single = top["one-database"]
    assert len(single) == 1 and single.store.timeout == 2
    assert single.search({"plan_name": "scan"})[-1].uid == docs[0][1]["uid"]
    csx.store.close()
    single.store.close()
    from intake_broker import open_catalog  # the core's checked opening, same file

    checked = open_catalog(str(path))["csx"]
    assert checked[31].metadata["start"]["uid"] == docs[0][1]["uid"]
    checked.store.close()


def test_the_driver_and_store_are_registered():
    from importlib.metadata import entry_points

    drivers = {ep.name: ep.value for ep in entry_points(group="intake.drivers")}
    assert (
        drivers["bluesky-mongo-normalized-catalog"] == "intake_broker_mongo:MongoNormalizedCatalog"
    )
    stores = {ep.name: ep.value for ep in entry_points(group="intake_broker.stores")}
    assert stores["mongo"] == "intake_broker_mongo:MongoStore"
