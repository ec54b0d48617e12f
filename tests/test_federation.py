"""Federation: catalogs/federation.yml over real stores, mirrors, parallel search, outages."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from intake_broker import open_catalog
from intake_broker.errors import BadQuery, RunNotFound
from intake_broker.federation import (
    FederatedCatalog,
    FederatedStore,
    MembersUnavailable,
    MemberUnavailableWarning,
)
from intake_broker.queries import Eq, Query
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import insert_all
from intake_broker.testing.factories import many_runs, scalar_run
from intake_broker.views.catalog import BrokerCatalog

# -- catalogs/federation.yml over the real stores ---------------------------------------------


def _open(facility, entry="everything", file="federation.yml"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemberUnavailableWarning)
        cat = open_catalog(facility.path(file))[entry]
    # only the stores whose drivers are not installed here are left out
    assert set(cat.store.skipped_members).isdisjoint(facility.members)
    return cat


def test_federation_yml_lists_every_run_of_every_store_newest_first(facility):
    cat = _open(facility)
    assert isinstance(cat, FederatedCatalog)
    assert list(cat) == facility.newest_first()
    assert len(cat) == len(facility.times)
    assert not cat.partial
    newest = cat[-1]
    assert newest.uid == facility.newest_first()[0]
    assert cat[-len(facility.times)].uid == facility.newest_first()[-1]
    for uid, holders in facility.holders.items():
        run = cat[uid]
        assert run.metadata["origin"] == holders
        assert run.metadata["start"]["sample"] == facility.plans[uid]
        assert cat[uid[:8]].uid == uid


def test_every_member_of_the_facility_files_is_searched(facility):
    cat = _open(facility)
    assert set(cat.metadata["members"]) >= set(facility.members)
    scans = cat.search({"plan_name": "scan"})
    expected = [u for u in facility.newest_first() if facility.plan_names[u] == "scan"]
    assert list(scans) == expected and len(scans) == len(expected)
    assert isinstance(scans, FederatedCatalog)
    assert {m for u in expected for m in scans[u].metadata["origin"]} >= {"nsls2/chx", "aps/xpcs"}


def test_streams_read_through_the_federation_from_every_member(facility):
    cat = _open(facility)
    for uid in facility.times:
        data = cat[uid].primary.read()
        assert data["det"].shape == (5,)
        docs = list(cat[uid].documents())
        assert docs[0][0] == "start" and docs[-1][0] == "stop"


def test_a_mirrored_run_appears_once_with_every_origin(facility):
    cat = _open(facility, "chx-and-archive")
    (shared,) = [u for u, h in facility.holders.items() if h == ["nsls2/chx", "nsls2/archive"]]
    assert list(cat) == facility.newest_first("nsls2/chx", "nsls2/archive")
    assert not cat.partial
    assert list(cat).count(shared) == 1 and len(cat) == len(list(cat))
    assert cat[shared].metadata["origin"] == ["CHX", "archive"]


def test_the_facility_file_has_its_own_federation(facility):
    nsls2 = _open(facility, "all", "nsls2.yml")
    members = [m for m in facility.members if m.startswith("nsls2/")]
    assert list(nsls2) == facility.newest_first(*members) and not nsls2.partial
    assert nsls2.metadata["timezone"] == "America/New_York"


def test_native_member(facility):
    pytest.importorskip("intake_broker_native", reason="the native driver is not installed")
    cat = _open(facility)
    csx = [u for u, h in facility.holders.items() if h[0] == "nsls2/csx"]
    assert len(csx) == 2
    for uid in csx:
        assert cat[uid].primary.read()["motor"].shape == (5,)


def test_mongo_member_with_the_password_from_the_environment(facility):
    pytest.importorskip("intake_broker_mongo", reason="the MongoDB driver is not installed")
    assert "iss-secret" not in (facility.folder / "nsls2.yml").read_text()
    cat = _open(facility)
    (iss,) = [u for u, h in facility.holders.items() if h == ["nsls2/iss"]]
    assert cat[iss].metadata["origin"] == ["nsls2/iss"]
    assert cat[iss].primary.read()["det"].shape == (5,)


# -- outages ----------------------------------------------------------------------------------


def test_a_stopped_s3_member_gives_a_warning_and_the_others(tmp_path, stoppable_s3, monkeypatch):
    local = tmp_path / "local"
    (tmp_path / "site.yml").write_text(
        textwrap.dedent(f"""
        sources:
          local:
            driver: bluesky-jsonl-catalog
            args: {{paths: [local], directory: local}}
          bucket:
            driver: bluesky-jsonl-catalog
            args:
              paths: ["s3://site/runs/*.jsonl"]
              directory: s3://site/runs
              storage_options:
                key: testing
                secret: testing
                use_listings_cache: false
                client_kwargs: {{endpoint_url: "{stoppable_s3.endpoint}"}}
                config_kwargs: {{retries: {{max_attempts: 1}}, connect_timeout: 1}}
              refresh_interval: 0                 # look at the bucket at every listing
          both:
            driver: bluesky-federation-catalog
            args: {{members: [site.yml], timeout: 3}}
        """)
    )
    stoppable_s3.filesystem().mkdir("site")
    local.mkdir()
    site = open_catalog(tmp_path / "site.yml")
    insert_all(site["local"].store, scalar_run(time=1_700_000_000.0))
    bucket = site["bucket"]
    insert_all(bucket.store, scalar_run(time=1_700_000_100.0, plan_name="count"))
    bucket.store.close()
    both = site["both"]
    assert len(both) == 2 and not both.partial

    stoppable_s3.stop()
    started = time.monotonic()
    with pytest.warns(MemberUnavailableWarning, match="site/bucket"):
        uids = list(both)
    assert time.monotonic() - started < 10
    assert len(uids) == 1 and both.partial and both.partial_members == ("site/bucket",)
    with pytest.warns(MemberUnavailableWarning):
        assert both[-1].metadata["origin"] == ["site/local"]
        assert len(both.search({"plan_name": "scan"})) == 1


def test_a_killed_mongo_member_gives_a_warning_and_the_others(tmp_path, killable_mongo):
    server = killable_mongo
    if True:
        (tmp_path / "local").mkdir()
        (tmp_path / "site.yml").write_text(
            textwrap.dedent(f"""
            sources:
              local:
                driver: bluesky-msgpack-catalog
                args: {{paths: [local]}}
              mongo:
                driver: bluesky-mongo-normalized-catalog
                args:
                  uri: mongodb://{server.host}/site
                  server_selection_timeout: 1
              both:
                driver: bluesky-federation-catalog
                args: {{members: [site.yml], timeout: 3}}
            """)
        )
        site = open_catalog(tmp_path / "site.yml")
        insert_all(site["local"].store, scalar_run(time=1_700_000_000.0))
        insert_all(site["mongo"].store, scalar_run(time=1_700_000_100.0))
        both = site["both"]
        assert len(both) == 2
        server.stop()
        with pytest.warns(MemberUnavailableWarning, match="site/mongo"):
            assert len(list(both)) == 1
        assert both.partial_members == ("site/mongo",)


class SlowStore(MemoryStore):
    """A memory store whose listings take ``delay`` seconds (and may fail on demand)."""

    def __init__(self, delay: float = 0.0, fail: bool = False):
        super().__init__()
        self.delay, self.fail, self.calls = delay, fail, 0

    def runs(self, query=None, **kwargs):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("connection refused")
        return super().runs(query, **kwargs)

    def count(self, query=None):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("connection refused")
        return super().count(query)


def _stores(*stores, start=1_600_000_000.0, each=3):
    for i, store in enumerate(stores):
        for docs in many_runs(each, start_time=start + 10 * i):
            insert_all(store, docs)
    return stores


def test_members_are_searched_in_parallel():
    stores = _stores(*(SlowStore(delay=0.3) for _ in range(4)))
    cat = FederatedCatalog({f"m{i}": s for i, s in enumerate(stores)}, timeout=5)
    started = time.monotonic()
    assert len(cat.search({"plan_name": "scan"})._runs()) == 4
    assert time.monotonic() - started < 0.9  # four members of 0.3 s each, at once


def test_a_slow_member_times_out_and_is_not_waited_for_again():
    fast, slow = _stores(MemoryStore(), SlowStore(delay=1.2), each=2)
    cat = FederatedCatalog({"fast": fast, "slow": slow}, timeout=0.4)
    started = time.monotonic()
    with pytest.warns(MemberUnavailableWarning) as caught:
        uids = [r.uid for r in cat._runs()]
    assert time.monotonic() - started < 1.0
    assert "slow: TimeoutError: no answer within 0.4 s" in str(caught[0].message)
    assert uids == [r.uid for r in fast.runs()] and cat.partial_members == ("slow",)
    started = time.monotonic()
    with pytest.warns(MemberUnavailableWarning, match="still busy"):
        cat[-1]
    assert time.monotonic() - started < 0.3  # the busy member is not waited for twice
    assert slow.calls == 1 and cat.partial
    time.sleep(1.0)  # its request ends; it is asked again
    slow.delay = 0
    assert len(cat._runs()) == 4 and not cat.partial


def test_a_hung_member_never_holds_up_the_interpreter_exit(tmp_path):
    script = textwrap.dedent("""
        import time, warnings
        from intake_broker.federation import FederatedCatalog
        from intake_broker.store.memory import MemoryStore
        from intake_broker.testing import insert_all
        from intake_broker.testing.factories import scalar_run

        class Hung(MemoryStore):
            def runs(self, *args, **kwargs):
                time.sleep(600)

        good = MemoryStore()
        insert_all(good, scalar_run())
        cat = FederatedCatalog({"good": good, "hung": Hung()}, timeout=0.2)
        warnings.simplefilter("ignore")
        print(cat[-1].uid == good.runs()[0].uid, cat.partial_members)
    """)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ('hung',)"
    assert time.monotonic() - started < 30


def test_every_member_down_is_an_error_not_an_empty_catalog():
    cat = FederatedCatalog({"a": SlowStore(fail=True), "b": SlowStore(fail=True)}, timeout=1)
    with pytest.raises(MembersUnavailable, match="no member answered.*a: ConnectionError"):
        cat[-1]
    with pytest.raises(ConnectionError):
        len(cat)


def test_a_bad_query_is_raised_not_counted_as_an_outage():
    class Picky(MemoryStore):
        def runs(self, query=None, **kwargs):
            raise BadQuery("this store cannot answer that")

    cat = FederatedCatalog({"a": MemoryStore(), "b": Picky()}, timeout=1)
    with pytest.raises(BadQuery):
        list(cat)


def test_partial_is_per_thread():
    class FailsForScans(MemoryStore):
        def runs(self, query=None, **kwargs):
            if query is not None and "scan" in repr(query):
                raise ConnectionError("down for scans")
            return super().runs(query, **kwargs)

    a, b = _stores(MemoryStore(), FailsForScans())
    cat = FederatedCatalog({"a": a, "b": b}, timeout=2)
    seen = {}

    def other_thread():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat.search({"plan_name": "scan"})._runs()
        seen["other"] = cat.partial_members

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    cat._runs()
    assert seen["other"] == ("b",) and cat.partial_members == ()


# -- merging, paging, counting ------------------------------------------------------------------


def _federation_with_mirrors():
    a, b, c = MemoryStore(), MemoryStore(), MemoryStore()
    runs = list(many_runs(30))
    for i, docs in enumerate(runs):
        for store, every in ((a, 2), (b, 3), (c, 5)):
            if i % every == 0:
                insert_all(store, docs)
    held = [docs for i, docs in enumerate(runs) if i % 2 == 0 or i % 3 == 0 or i % 5 == 0]
    expected = sorted((d[0][1] for d in held), key=lambda s: -s["time"])
    return FederatedStore({"a": a, "b": b, "c": c}, timeout=5), [s["uid"] for s in expected]


def test_pages_of_the_merged_list_match_the_whole_list():
    store, expected = _federation_with_mirrors()
    assert [r.uid for r in store.runs()] == expected
    assert store.count() == len(expected) and store.count_exact
    for size in (1, 4, 7):
        pages = []
        for skip in range(0, len(expected) + size, size):  # in order: served after served
            pages += [r.uid for r in store.runs(skip=skip, limit=size)]
        assert pages == expected
    assert [r.uid for r in store.runs(skip=5, limit=3)] == expected[5:8]  # out of order too
    assert [r.uid for r in store.runs(sort=[("time", 1)], skip=2, limit=4)] == list(
        reversed(expected)
    )[2:6]


def test_iterating_a_large_federation_asks_each_member_for_each_run_about_once(monkeypatch):
    monkeypatch.setattr("intake_broker.views.catalog._PAGE", 50)  # what catalogs iterate by
    counted = {"rows": 0}

    class Counting(MemoryStore):
        def runs(self, query=None, **kwargs):
            found = super().runs(query, **kwargs)
            counted["rows"] += len(found)
            return found

    a, b = Counting(validate=False), Counting(validate=False)
    for i, docs in enumerate(many_runs(240)):
        insert_all(a if i % 2 else b, docs)
    cat = FederatedCatalog({"a": a, "b": b}, timeout=5)
    assert len([uid for uid in cat]) == 240  # five pages
    assert counted["rows"] < 240 * 2  # not quadratic in the number of pages


def test_count_above_the_exact_limit_is_flagged():
    store, expected = _federation_with_mirrors()
    store.exact_count_limit = 5
    total = store.count()
    assert total > len(expected) and not store.count_exact


def test_reads_fall_over_to_a_mirror():
    docs = scalar_run()
    broken, mirror = MemoryStore(), MemoryStore()
    insert_all(broken, docs)
    insert_all(mirror, docs)
    cat = FederatedCatalog({"broken": broken, "mirror": mirror}, timeout=2)
    run = cat[-1]
    assert run.metadata["origin"] == ["broken", "mirror"]

    def refuse(*args, **kwargs):
        raise OSError("disk gone")

    broken.descriptors = broken.read_events = broken.event_chunks = refuse
    with pytest.warns(MemberUnavailableWarning, match="read .* from 'mirror'"):
        assert cat[-1].primary.read()["det"].shape == (5,)


def test_federated_runs_pickle_with_their_store():
    a, b = _stores(MemoryStore(), MemoryStore(), each=2)
    cat = FederatedCatalog({"a": a, "b": b}, timeout=2)
    run = pickle.loads(pickle.dumps(cat[-1]))
    assert run.primary.read()["det"].shape == (2,)
    again = pickle.loads(pickle.dumps(cat.search({"plan_name": "scan"})))
    assert isinstance(again, FederatedCatalog) and len(again) == 2


def test_member_catalogs_keep_their_filters_and_asset_options():
    a, b = _stores(MemoryStore(), MemoryStore(), each=4)
    scans = BrokerCatalog(a, query={"plan_name": "scan"}, root_map={"/old": "/a"})
    cat = FederatedCatalog({"scans-of-a": scans, "b": b}, root_map={"/old": "/fed"}, timeout=2)
    from_a = [cat[u] for u in cat if cat[u].metadata["origin"] == ["scans-of-a"]]
    assert len(from_a) == 2
    assert all(r.metadata["start"]["plan_name"] == "scan" for r in from_a)
    assert from_a[0]._asset_options["root_map"] == {"/old": "/a"}
    from_b = cat[[u for u in cat if cat[u].metadata["origin"] == ["b"]][0]]
    assert from_b._asset_options["root_map"] == {"/old": "/fed"}


def test_lookups_say_which_members_did_not_answer():
    good, bad = MemoryStore(), SlowStore(fail=True)
    bad.run = bad.runs
    cat = FederatedCatalog({"good": good, "bad": bad}, timeout=1)
    with pytest.warns(MemberUnavailableWarning, match="bad: ConnectionError"):
        with pytest.raises(RunNotFound):
            cat["0123456789abcdef"]
    assert cat.partial_members == ("bad",)
    with (
        pytest.raises(RunNotFound, match="bad did not answer"),
        pytest.warns(MemberUnavailableWarning),
    ):
        cat.store.run("0123456789abcdef")


def test_a_federation_is_read_only():
    cat = FederatedCatalog({"a": MemoryStore()}, timeout=1)
    name, doc = scalar_run()[0]
    with pytest.raises(TypeError, match="read-only"):
        cat.insert(name, doc)


def test_query_objects_reach_the_members_unchanged():
    seen: list = []

    class Spy(MemoryStore):
        def runs(self, query=None, **kwargs):
            seen.append(query)
            return super().runs(query, **kwargs)

    cat = FederatedCatalog({"a": Spy()}, timeout=1)
    cat.search(Eq("plan_name", "scan"))._runs()
    assert isinstance(seen[-1], Query) and seen[-1] == Eq("plan_name", "scan")
