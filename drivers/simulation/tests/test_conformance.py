"""The conformance suites over simulation outputs: the runs the suites insert are written as
simulation outputs (``write_run``: NetCDF-4 files, zarr stores; local and on S3) and read back
through a :class:`SimulationStore`.

The store is read-only: the suite's write tests (re-inserts, conflicts, schema checks) and the
document round trips (a simulation output does not keep event uids, asset documents or several
descriptors per stream) do not apply to it and are skipped by name.
"""

from __future__ import annotations

import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker_simulation import SimulationStore, write_run

NOT_FOR_READ_ONLY = [
    "test_every_document_type_round_trips",
    "test_event_pages_round_trip",
    "test_identical_reinsert_is_a_no_op",
    "test_conflicting_document_is_refused_and_changes_nothing",
    "test_event_of_unknown_descriptor_is_refused",
    "test_document_failing_its_schema_is_refused",
    "test_unknown_document_name_is_refused",
    "test_several_descriptors_of_one_stream_concatenate",
    "test_stream_datum_and_resources_are_reachable",
]


def _skip_writes(cls):
    for name in NOT_FOR_READ_ONLY:

        def skipped(self, *args, **kwargs):
            pass

        skipped.__name__ = name
        setattr(
            cls, name, pytest.mark.skip(reason="writes or replays documents: read-only")(skipped)
        )
    return cls


class _Exported(DocumentStoreTests):
    """The suite's documents go into a memory store; ``reopen`` writes each run as an output
    and opens the folder as a SimulationStore."""

    format = "netcdf4"
    suffix = ".nc"

    def folder(self, tmp_path, request) -> tuple[str, dict]:
        return str(tmp_path / "outputs"), {}

    @pytest.fixture
    def store(self, tmp_path, request):
        staging = MemoryStore()
        staging.target = self.folder(tmp_path, request)  # type: ignore[attr-defined]
        return staging

    def reopen(self, store):
        if isinstance(store, SimulationStore):
            return store
        folder, options = store.target
        for record in store.runs():
            docs = list(store.documents(record.uid))
            path = f"{folder}/{record.uid}{self.suffix}"
            if folder.startswith("/"):
                import os

                os.makedirs(folder, exist_ok=True)
            write_run(docs, path, format=self.format, storage_options=options)
        return SimulationStore(folder, storage_options=options, finished_attribute="stop_time")


@_skip_writes
class TestNetCDF4(_Exported):
    pass


@_skip_writes
class TestZarr(_Exported):
    format = "zarr"
    suffix = ".zarr"


@_skip_writes
class TestNetCDF4OnS3(_Exported):
    def folder(self, tmp_path, request):
        s3 = request.getfixturevalue("s3_server")
        return request.getfixturevalue("s3_prefix"), s3["storage_options"]


class _ExportedQueries(QueryTests):
    format = "netcdf4"
    suffix = ".nc"

    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, tmp_path_factory):
        return str(tmp_path_factory.mktemp("query-outputs"))

    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls, query_store, runs):
        for docs in runs:
            write_run(docs, f"{query_store}/{docs[0][1]['uid']}{cls.suffix}", format=cls.format)
        return SimulationStore(query_store, finished_attribute="stop_time")


class TestNetCDF4Queries(_ExportedQueries):
    pass


class TestZarrQueries(_ExportedQueries):
    format = "zarr"
    suffix = ".zarr"
