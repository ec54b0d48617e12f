"""What databroker 1.2.5 answered on its Mongo catalogs that its generic driver tests and users
relied on: ``stats()`` and a ``TypeError`` for search keywords pymongo did not know."""

from __future__ import annotations

import pytest

from intake_broker.testing import factories, insert_all
from intake_broker_mongo import MongoNormalizedCatalog


@pytest.fixture
def catalog(database_uri):
    cat = MongoNormalizedCatalog(database_uri(), database_uri())
    insert_all(cat, factories.scalar_run(n=3, scan_id=7))
    yield cat
    cat.store.close()


def test_stats_are_the_metadatastore_databases_dbstats(catalog):
    stats = catalog.stats()
    assert stats["db"] == catalog.store._databases["mds"].name
    assert stats["collections"] >= 3 and stats["objects"] >= 5  # start, descriptor, events, stop


def test_unknown_search_keywords_raise_type_error(catalog):
    with pytest.raises(TypeError, match="unexpected keyword arguments.*'sortt'"):
        catalog.search({"plan_name": "scan"}, sortt=[("time", 1)])
    assert len(catalog.search({"plan_name": "scan"})) == 1
