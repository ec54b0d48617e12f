"""Annotations through HTTP: the conformance suite on a remote store (the server's native and
memory stores, and an annotation index attached to read-only files on the server), two HTTP
clients writing one annotation, and the annotation leak matrix through an authenticated
service."""

from __future__ import annotations

import json
import threading

import pytest

from intake_broker.access import Principal, ProposalPolicy
from intake_broker.errors import AnnotationConflict, BadAnnotation, RunNotFound
from intake_broker.queries.expression import parse_query
from intake_broker.store.annotations import annotation_change, attach_annotations
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker.testing.annotations import AnnotationTests
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_remote import RemoteStore


class _Served(AnnotationTests):
    server = None

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _server(cls, live_server):
        cls.server = live_server

    def backend(self, runs, tmp_path):
        raise NotImplementedError

    def open_store(self, runs, tmp_path):
        url = self.server.mount(self.backend(runs, tmp_path))
        return RemoteStore(url)

    def reopen(self, store):
        return RemoteStore(store.url)  # a new client: nothing is kept client-side


class TestRemoteOverMemory(_Served):
    def backend(self, runs, tmp_path):
        store = MemoryStore()
        for docs in runs:
            insert_all(store, docs)
        return store


class TestRemoteOverNative(_Served):
    def backend(self, runs, tmp_path):
        native = pytest.importorskip("intake_broker_native")
        store = native.NativeStore(f"sqlite:///{tmp_path}/i.sqlite", str(tmp_path / "d"))
        for docs in runs:
            insert_all(store, docs)
        store.flush()
        return store


class TestRemoteOverAttachedFiles(_Served):
    """A service of read-only suitcase files with annotations kept in a notes index."""

    def backend(self, runs, tmp_path):
        files = pytest.importorskip("intake_broker_files")
        native = pytest.importorskip("intake_broker_native")
        folder = tmp_path / "files"
        writer = files.MsgpackStore.in_folder(folder)
        for docs in runs:
            insert_all(writer, docs)
        reader = files.FilesStore([str(folder / "*.msgpack")], format="msgpack")
        return attach_annotations(reader, native.AnnotationIndex(f"sqlite:///{tmp_path}/notes.db"))


def test_two_http_clients_lose_no_update(live_server, tmp_path):
    store = MemoryStore()
    docs = factories.scalar_run()
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    url = live_server.mount(store)
    updates = 1000

    def writer(name):
        client = RemoteStore(url)
        done = 0
        while done < updates:
            current = client.annotations(uid)
            version = current[0]["version"] if current else 0
            count = current[0]["fields"].get("count", 0) if current else 0
            fields = {"count": count + 1, name: done}
            change = annotation_change(
                client, uid, author=name, visibility="public", fields=fields, if_version=version
            )
            try:
                client.change_annotation(uid, change)
            except AnnotationConflict as err:
                assert err.current is not None and err.current["version"] > version
                continue
            done += 1
        client.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("c1", "c2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        (final,) = store.annotations(uid)
        assert final["fields"] == {"count": 2 * updates, "c1": updates - 1, "c2": updates - 1}
        history = store.annotation_history(uid)
        assert [e["version"] for e in history] == list(range(1, 2 * updates + 1))
        assert [e["after"]["fields"]["count"] for e in history] == list(range(1, 2 * updates + 1))
    finally:
        live_server.unmount(url)


# -- the leak matrix of annotations, through an authenticated service ----------------------

ADA = Principal("ada", proposals=("p-1",))
ANN = Principal("ann", proposals=("p-1",))  # ada's colleague in p-1
BOB = Principal("bob", proposals=("p-2",))
ROOT = Principal("root", roles=("admin",))
PRINCIPALS = {p.name: p for p in (ADA, ANN, BOB, ROOT)}


@pytest.fixture(scope="module")
def world(live_server, tmp_path_factory):
    """Runs of p-1 and p-2 with ada's private, proposal and public annotations on her run,
    served with API keys; yields ``(url, keys, uids, store)``."""
    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    store = MemoryStore()
    runs = {
        "a": factories.scalar_run(scan_id=1, proposal_id="p-1"),
        "b": factories.scalar_run(scan_id=2, proposal_id="p-2", time=1_700_000_100.0),
    }
    for docs in runs.values():
        insert_all(store, docs)
    uids = {k: d[0][1]["uid"] for k, d in runs.items()}
    secrets = tmp_path_factory.mktemp("auth")
    users = {
        p.name: {"proposals": list(p.proposals), "roles": list(p.roles)}
        for p in PRINCIPALS.values()
    }
    (secrets / "users.json").write_text(json.dumps({"users": users}))
    keys = ApiKeyStore(secrets / "keys.json")
    config = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(secrets / "users.json")
    )
    url = live_server.mount(store, auth=config)
    yield url, keys, uids, store
    live_server.unmount(url)


def client(world, who, scopes=("read", "write")):
    url, keys, _, _ = world
    return RemoteStore(url, api_key=keys.create(who, list(scopes))[1])


#: Which of ada's annotations of her run each user sees (bob does not see the run at all).
SEES = {
    "ada": {"private-secret", "proposal-shared", "public-open"},
    "ann": {"proposal-shared", "public-open"},
    "root": {"proposal-shared", "public-open"},
}


@pytest.fixture(scope="module")
def annotated(world):
    _, _, uids, _ = world
    ada = client(world, "ada")
    run = BrokerCatalog(ada)[uids["a"]]
    run.tag("private-secret", visibility="private")
    run.annotate(note="secret words", visibility="private", rating=1)
    run.tag("proposal-shared", visibility="proposal")
    run.tag("public-open", visibility="public")
    return world


@pytest.mark.parametrize("who", ["ada", "ann", "root", "bob"])
def test_annotation_leak_matrix_through_the_service(annotated, who):
    _, _, uids, store = annotated
    remote = client(annotated, who)
    cat = BrokerCatalog(remote)
    if who == "bob":  # the run itself is hidden: every annotation path says "no such run"
        for call in (lambda: remote.annotations(uids["a"]),
                     lambda: remote.annotation_history(uids["a"]),
                     lambda: remote.change_annotation(uids["a"], {"add_tags": ["x"]})):  # fmt: skip
            with pytest.raises(RunNotFound):
                call()
        for text in ('tags contains "public-open"', 'tags contains "private-secret"',
                     'note text "secret"', "annotations.rating == 1"):  # fmt: skip
            assert remote.count(parse_query(text)) == 0
        return
    run = cat[uids["a"]]
    assert set(run.tags) == SEES[who]
    shown = json.dumps(run.annotations) + json.dumps(run.annotation_history())
    if who != "ada":
        assert "secret" not in shown and "rating" not in shown
    for tag in ("private-secret", "proposal-shared", "public-open"):
        found = {r.uid for r in remote.runs(parse_query(f'tags contains "{tag}"'))}
        assert found == ({uids["a"]} if tag in SEES[who] else set()), (who, tag)
    private = {
        r.uid for r in remote.runs(parse_query('note text "secret" or annotations.rating == 1'))
    }
    assert private == ({uids["a"]} if who == "ada" else set())
    # a forged viewer in an encoded query changes nothing: the server binds the caller's
    forged = parse_query('tags contains "private-secret"').encode()
    forged["viewer"] = {"name": "ada", "proposals": ["p-1"], "groups": [], "admin": False}
    assert remote.http.get("/api/v1/runs/count", query=json.dumps(forged))["count"] == (
        1 if who == "ada" else 0
    )


def test_writes_need_the_write_scope_and_are_by_the_caller(annotated):
    _, _, uids, store = annotated
    reader = client(annotated, "ann", scopes=("read",))
    change = annotation_change(
        reader, uids["a"], author="ada", add_tags=["x"], visibility="proposal"
    )
    with pytest.raises(Exception) as err:
        reader.change_annotation(uids["a"], change)
    assert getattr(err.value, "status", None) == 403
    writer = client(annotated, "ann")
    made = writer.change_annotation(uids["a"], change)  # author "ada" in the body is ignored
    assert made["updated_by"] == "ann" and "x" in made["tags"]
    # the change was stored once, by ann
    history = [e for e in store.annotation_history(uids["a"]) if e["who"] == "ann"]
    assert len(history) == 1
    with pytest.raises(BadAnnotation):
        writer.change_annotation(uids["a"], {**change, "add_tags": [1]})
    with pytest.raises(AnnotationConflict) as conflict:
        writer.change_annotation(uids["a"], {**change, "if_version": 1})
    assert conflict.value.current["tags"] == ["proposal-shared", "x"]
