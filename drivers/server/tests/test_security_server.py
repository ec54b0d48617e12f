"""The server under attack (issue 14, items 3 and 8): every request under a deadline while
``/healthz`` and other clients stay answered, SIGTERM stops the server even with stuck worker
threads, client mistakes are 4xx, no SQL, path or traceback reaches a response body, a
keep-alive connection stays usable after errors, and refusals are logged.

Servers that must survive slow or stuck work (or be killed) run in a subprocess (``serve`` /
``run_app``, as ``intake-broker serve`` does) over a native store in a temporary folder, with a
short deadline. The slow work is real: catastrophic and deep queries on the native store, an
endless SQL statement on its SQLite index and an endless scan through the generic evaluator
(``select_runs``), and a call that blocks without ever looking at the deadline (as a hung
network filesystem would).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from intake_broker.errors import BrokerError
from intake_broker.testing import factories, insert_all
from intake_broker_native import NativeStore
from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider, ProposalPolicy
from intake_broker_server.testing import LiveServer, free_port

DEADLINE = 0.5  # seconds: the deadline of the servers of these tests
HANG_GUARD = 30.0  # seconds: a request not answered by then has hung the server

#: Asking the events endpoint for Arrow IPC.
ARROW = {"Accept": "application/vnd.apache.arrow.stream"}

#: What must never appear in an error body.
LEAKS = ("SELECT", "[SQL", "sqlalche.me", "Traceback", 'File "', "sqlite3.", "psycopg", ".py")

SERVER = textwrap.dedent(
    """
    import itertools, sys, time

    from intake_broker.store import select_runs
    from intake_broker_native import NativeStore
    from intake_broker_server import Limits, create_app
    from intake_broker_server.app import run_app, serve

    kind, folder, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if kind == "native":  # what `intake-broker serve --store native --data FOLDER` runs
        serve("native", data=folder, port=port, deadline=seconds, log_level="info")
        sys.exit(0)

    ENDLESS = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )


    class SlowStore(NativeStore):
        # searches that never end by themselves: counting is an endless SQL statement on the
        # index, listing an endless scan of the runs through the generic evaluator

        def count(self, query=None):
            if query is None:
                return super().count()
            with self.engine.connect() as conn:
                return conn.exec_driver_sql(ENDLESS).scalar()

        def runs(self, query=None, **kwargs):
            if query is None:
                return super().runs(**kwargs)
            every = super().runs()
            return select_runs(itertools.cycle(every), query, store=self, **kwargs)


    class StuckStore(NativeStore):
        # a search blocked in a call that never looks at the deadline (a hung mount, say)

        def count(self, query=None):
            if query is None:
                return super().count()
            time.sleep(3600)


    store = {"slow": SlowStore, "stuck": StuckStore}[kind].in_folder(folder + "/runs")
    app = create_app(store, limits=Limits(deadline=seconds), exit_when_stopped=True)
    run_app(app, port=port, log_level="info")
    """
)


# -- servers in subprocesses ----------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A data folder with a native store of 12 runs (``<folder>/runs``)."""
    folder = tmp_path_factory.mktemp("served")
    store = NativeStore.in_folder(folder / "runs")
    for docs in factories.many_runs(12):
        insert_all(store, docs)
    store.close()
    return folder


class Served:
    """A server in a subprocess: its URL, its log, and a SIGTERM."""

    def __init__(self, kind: str, folder: Path, seconds: float, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        script = log.with_suffix(".py")
        script.write_text(SERVER)
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, str(script), kind, str(folder), str(self.port), str(seconds)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test server did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def terminate(self) -> float:
        """SIGTERM; the seconds until the process has ended (HANG_GUARD: it did not)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            return HANG_GUARD
        return time.monotonic() - start

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture
def serving(folder, tmp_path):
    """``serving(kind, seconds)``: a server of that kind; all are stopped after the test."""
    started: list[Served] = []

    def start(kind: str, seconds: float = DEADLINE) -> Served:
        server = Served(kind, folder, seconds, tmp_path / f"{kind}-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _backtracks() -> bool:
    """Whether this tree's regular expressions still backtrack (a catastrophic pattern over a
    native store's uid does not finish in 10 s): a server cannot then stay answered, as such a
    match holds the interpreter's lock throughout. The linear-time engine of the query work of
    issue 14 ends that; until it is merged the catastrophic-regex tests are skipped."""
    code = (
        "import sys, tempfile\n"
        "from intake_broker_native import NativeStore\n"
        "from intake_broker.queries import Regex\n"
        "from intake_broker.testing import factories, insert_all\n"
        "s = NativeStore.in_folder(tempfile.mkdtemp())\n"
        "insert_all(s, factories.scalar_run(n=1))\n"
        "try:\n"
        "    s.count(Regex('uid', '(.*)*Z'))\n"
        "except Exception:\n"
        "    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], timeout=10, capture_output=True)
    except subprocess.TimeoutExpired:
        return True
    return False


@pytest.fixture(scope="module")
def bounded_regex() -> None:
    if _backtracks():
        pytest.skip("this tree's regex engine backtracks (the query part of issue 14 fixes it)")


def q(obj: dict) -> str:
    return json.dumps(obj)


EQ = {"type": "eq", "key": "plan_name", "value": "scan"}
CATASTROPHIC = {"type": "regex", "key": "uid", "pattern": "(.*)*Z"}


def deep(levels: int) -> str:
    """A query of ``levels`` nested negations, as JSON text."""
    return '{"type": "not", "query": ' * levels + q(EQ) + "}" * levels


OR_OF_DEEP = '{"type": "or", "queries": [' + ", ".join([deep(40)] * 40) + "]}"
HUGE = {"type": "or", "queries": [{"type": "eq", "key": f"k{i}", "value": i} for i in range(3000)]}
LONG_KEY = {"type": "eq", "key": ".".join(["a"] * 10_000), "value": 1}


# -- liveness -------------------------------------------------------------------------------


def _in_threads(url: str, requests: list[tuple[str, str, dict]]) -> tuple[list, list]:
    """Start ``(method, path, params)`` requests (a POST sends ``params`` as its JSON body),
    each on its own connection, in threads; the list their answers (or exceptions) arrive
    in, and the threads."""
    answers: list = [None] * len(requests)

    def one(i: int, method: str, path: str, params: dict) -> None:
        try:
            with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
                if method == "POST":
                    answers[i] = client.post(path, json=params)
                else:
                    answers[i] = client.get(path, params=params)
        except Exception as err:  # reported by the test
            answers[i] = err

    threads = [
        threading.Thread(target=one, args=(i, *request), daemon=True)
        for i, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    return answers, threads


def _probe(url: str, path: str = "/healthz", times: int = 12) -> list[tuple[int, float]]:
    """``(status, seconds)`` of ``times`` GETs of ``path`` a tenth of a second apart."""
    found = []
    with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
        for _ in range(times):
            start = time.monotonic()
            status = client.get(path).status_code
            found.append((status, time.monotonic() - start))
            time.sleep(0.1)
    return found


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(HANG_GUARD)
        assert not thread.is_alive(), "a request was not answered: the server hangs"


def _check_body(response: httpx.Response) -> dict:
    """An error body: JSON with error, message and the request id of its header; no leak."""
    body = response.json()
    assert set(body) >= {"error", "message", "request_id"}, body
    assert body["request_id"] == response.headers["x-request-id"]
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text)
    return body


def _is_deadline(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = _check_body(response)
    assert body["error"] == "DeadlineExceeded" and "deadline" in body["message"], body


def test_healthz_and_other_clients_answered_while_four_searches_never_end(serving, folder):
    server = serving("slow")
    uid = httpx.get(f"{server.url}/api/v1/runs", params={"limit": 1}).json()["data"][0]["uid"]
    slow = [
        ("GET", "/api/v1/runs/count", {"query": q(EQ)}),  # an endless SQL statement
        ("GET", "/api/v1/runs/count", {"query": q(EQ)}),
        ("GET", "/api/v1/runs", {"query": q(EQ)}),  # an endless scan in Python
        ("GET", "/api/v1/runs", {"query": q(EQ)}),
    ]
    answers, threads = _in_threads(server.url, slow)
    time.sleep(0.1)
    health = _probe(server.url)
    others = _probe(server.url, f"/api/v1/runs/{uid}", times=3)
    _join(threads)
    for status, seconds in health + others:
        assert status == 200 and seconds < 1.0, (health, others)
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        _is_deadline(answer)
    # the work stopped at the deadline (SQLite interrupted, the scan raised): no CPU burns
    assert "stopped at its deadline: OperationalError" in server.log()
    time.sleep(0.3)
    before = server.cpu_seconds()
    time.sleep(1.0)
    assert server.cpu_seconds() - before < 0.5, "the slow work goes on after its deadline"


def test_deep_huge_and_long_key_queries_on_a_native_store(serving):
    server = serving("native", seconds=2.0)
    slow = [
        ("GET", "/api/v1/runs/count", {"query": deep(120)}),
        ("POST", "/api/v1/runs/search", {"query": HUGE}),
        ("POST", "/api/v1/runs/search", {"query": LONG_KEY}),
        ("POST", "/api/v1/runs/search", {"query": json.loads(OR_OF_DEEP)}),
    ]
    answers, threads = _in_threads(server.url, slow)
    health = _probe(server.url)
    _join(threads)
    assert all(status == 200 and seconds < 1.0 for status, seconds in health), health
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code in (200, 400, 503), answer.text
        if answer.status_code != 200:
            _check_body(answer)


def test_catastrophic_regexes_on_a_native_store(serving, bounded_regex):
    server = serving("native")
    slow = [("GET", "/api/v1/runs/count", {"query": q(CATASTROPHIC)})] * 2 + [
        ("GET", "/api/v1/runs", {"query": q(CATASTROPHIC)}),
        ("GET", "/api/v1/runs/count", {"query": deep(60)}),
    ]
    answers, threads = _in_threads(server.url, slow)
    health = _probe(server.url)
    _join(threads)
    assert all(status == 200 and seconds < 1.0 for status, seconds in health), health
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code in (200, 400, 503), answer.text
    assert server.terminate() < 10


# -- stopping -------------------------------------------------------------------------------


def test_sigterm_stops_a_server_whose_threads_are_stuck(serving):
    server = serving("stuck", seconds=60.0)  # the requests are still running at SIGTERM
    answers, threads = _in_threads(
        server.url, [("GET", "/api/v1/runs/count", {"query": q(EQ)})] * 4
    )
    time.sleep(0.5)
    assert all(status == 200 for status, _ in _probe(server.url, times=3))
    took = server.terminate()
    assert took < 10, f"the server did not stop within 10 s of SIGTERM ({took:.1f} s)"
    _join(threads)
    for answer in answers:  # answered, and told to try again
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 503 and answer.json()["error"] == "ServerStopping"


def test_a_request_past_its_deadline_is_answered_though_its_thread_is_stuck(serving):
    server = serving("stuck")
    answers, threads = _in_threads(
        server.url, [("GET", "/api/v1/runs/count", {"query": q(EQ)})] * 4
    )
    _join(threads)
    for answer in answers:
        _is_deadline(answer)
    assert all(status == 200 and s < 1.0 for status, s in _probe(server.url, times=3))
    assert server.terminate() < 10


def test_sigterm_stops_the_native_server_during_slow_searches(serving):
    server = serving("native", seconds=5.0)
    _in_threads(
        server.url,
        [
            ("GET", "/api/v1/runs", {"query": q(HUGE)}),
            ("GET", "/api/v1/runs", {"query": q(LONG_KEY)}),
        ],
    )
    time.sleep(0.3)
    took = server.terminate()
    assert took < 10, f"the server did not stop within 10 s of SIGTERM ({took:.1f} s)"


# -- errors: status, bodies, connections ----------------------------------------------------


@pytest.fixture(scope="module")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def native(tmp_path):
    """A native store of a scalar run, an image run and (where the store takes it) a run of
    datums whose files are missing, in a temporary folder."""
    store = NativeStore.in_folder(tmp_path / "runs")
    for docs in (factories.scalar_run(n=5), factories.image_run(n=2)):
        insert_all(store, docs)
    try:  # a run whose frames are datums of files the server does not have
        insert_all(store, factories.asset_run())
    except BrokerError:  # a store that confines assets refuses its root: no such run then
        pass
    yield store
    store.close()


def _crafted(uid: str, descriptor: str) -> list[tuple[str, str, dict]]:
    """Bad requests of every kind: ``(method, path, httpx keyword arguments)``."""
    runs = "/api/v1/runs"
    queries = [
        "{",
        "[]",
        '"text"',
        q({"type": "nope"}),
        q({"type": "eq"}),
        q({"type": "eq", "key": 5, "value": 1}),
        q({"type": "eq", "key": "", "value": 1}),
        q({"type": "comparison", "key": "scan_id", "operator": "lt", "value": "x"}),
        q({"type": "comparison", "key": "scan_id", "operator": "lt", "value": 2**70}),
        q({"type": "regex", "key": "plan_name", "pattern": "("}),
        q({"type": "eq", "key": "plan_name", "value": "\x00"}),
        '{"type": "eq", "key": "plan_name", "value": "\\ud800"}',
        deep(150),
        q({"type": "eq", "key": "descriptors.data_keys", "value": {"a": [1, {"b": None}]}}),
    ]
    crafted: list[tuple[str, str, dict]] = [
        ("GET", f"{runs}/count", {"params": {"query": text}}) for text in queries
    ]
    crafted += [("GET", runs, {"params": {"query": text}}) for text in queries[::3]]
    crafted += [
        (
            "POST",
            f"{runs}/search",
            {"content": b"{", "headers": {"content-type": "application/json"}},
        ),
        ("POST", f"{runs}/search", {"json": {"query": {"type": "nope"}, "limit": 0}}),
        ("POST", f"{runs}/search", {"json": {"query": HUGE}}),
        ("POST", f"{runs}/search", {"content": '{"query": ' + deep(3000) + "}"}),
        ("POST", f"{runs}/search", {"json": {"query": LONG_KEY}}),
        ("GET", runs, {"params": {"sort": "..,-"}}),
        ("GET", runs, {"params": {"limit": 10**9}}),
        ("GET", runs, {"params": {"skip": -1}}),
        ("GET", f"{runs}/..%2F..%2Fetc%2Fpasswd", {}),
        ("GET", f"{runs}/{'x' * 5000}", {}),
        ("GET", f"{runs}/{uid}/resources/nope", {}),
        ("GET", f"/api/v1/descriptors/{'0' * 36}/events", {}),
        ("GET", f"/api/v1/descriptors/{'0' * 36}/events", {"headers": ARROW}),
        (
            "GET",
            f"/api/v1/descriptors/{descriptor}/events",
            {"params": {"fields": "no"}, "headers": ARROW},
        ),
        (
            "GET",
            f"/api/v1/descriptors/{descriptor}/events",
            {"params": {"groups": "index,oops"}, "headers": ARROW},
        ),
        ("GET", f"/api/v1/descriptors/{descriptor}/events", {"params": {"groups": "index,oops"}}),
        (
            "GET",
            f"/api/v1/descriptors/{descriptor}/events",
            {"params": {"seq_start": 5, "seq_stop": 1}},
        ),
        (
            "POST",
            f"{runs}/{uid}/assets/datums",
            {"json": {"key": "det", "datum_ids": ["no", "pe"]}},
        ),
        ("POST", f"{runs}/{uid}/assets/datums", {"json": {"key": "nope", "datum_ids": []}}),
        ("POST", f"{runs}/{uid}/assets/datums", {"json": ["wrong"]}),
        (
            "GET",
            f"{runs}/{uid}/assets/stream",
            {"params": {"key": "det", "descriptor": descriptor, "seq_start": 0, "seq_stop": 3}},
        ),
        (
            "GET",
            f"{runs}/{uid}/assets/stream",
            {"params": {"key": "det", "descriptor": "nope", "seq_start": 0, "seq_stop": 3}},
        ),
        (
            "POST",
            "/api/v1/documents",
            {"content": b"\x00\xff", "headers": {"content-type": "application/x-msgpack"}},
        ),
        ("POST", "/api/v1/documents", {"json": ["start", {"uid": "../../escaped", "time": "x"}]}),
        ("POST", "/api/v1/documents", {"json": ["event", {"descriptor": "nope", "uid": "e"}]}),
        ("POST", "/api/v1/documents", {"json": ["nope", {}]}),
        ("GET", "/zarr/v3/runs/nope/primary/zarr.json", {}),
        ("GET", f"/zarr/v3/runs/{uid}/primary/nope/c/0", {}),
        ("GET", "/nowhere", {}),
        ("DELETE", runs, {}),
    ]
    return crafted


def test_no_sql_paths_or_tracebacks_in_any_error_body(live, native, tmp_path):
    url = live.mount(native, asset_roots=["/data"])  # the frames' files are under it, missing
    try:
        uid = native.runs(limit=1)[0].uid
        descriptor = native.descriptors(uid)[0]["uid"]
        crafted = _crafted(uid, descriptor)
        for run in native.runs():
            datums = sorted(native.run_assets(run.uid).datums)
            if not datums:
                continue
            desc = native.descriptors(run.uid)[0]["uid"]
            datum_path = f"/api/v1/runs/{run.uid}/assets/datums"
            stream_path = f"/api/v1/runs/{run.uid}/assets/stream"
            crafted += [  # frames of datums not in the run, of missing files, of no stream
                ("POST", datum_path, {"json": {"key": "frame", "datum_ids": ["no"]}}),
                ("POST", datum_path, {"json": {"key": "frame", "datum_ids": datums[:2]}}),
            ]
            for where in (desc, "nope"):
                params = {"key": "frame", "descriptor": where, "seq_start": 1, "seq_stop": 3}
                crafted.append(("GET", stream_path, {"params": params}))
        seen: set[int] = set()
        with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
            for method, path, kwargs in crafted:
                response = client.request(method, path, **kwargs)
                seen.add(response.status_code)
                if response.status_code < 300:
                    continue
                assert 400 <= response.status_code < 500, (method, path, kwargs, response.text)
                _check_body(response)
                assert str(tmp_path) not in response.text, response.text
                assert "/data" not in response.text, response.text  # the assets' root
        assert {400, 404, 422} <= seen, seen
    finally:
        live.unmount(url)


def test_a_server_failure_is_a_bare_500_with_the_details_in_the_log(live, native, caplog):
    caplog.set_level(logging.ERROR, logger="intake_broker_server")
    uid = native.runs(limit=1)[0].uid
    with native.engine.begin() as conn:  # the index loses a table under the server
        conn.exec_driver_sql("DROP TABLE descriptors")
    url = live.mount(native)
    try:
        response = httpx.get(f"{url}/api/v1/runs/{uid}/descriptors", timeout=HANG_GUARD)
    finally:
        live.unmount(url)
    assert response.status_code == 500, response.text
    body = _check_body(response)
    assert body["error"] == "InternalServerError" and body["request_id"] in body["message"]
    assert "descriptors" not in response.text
    logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info, "the failure is not in the log under its request id"


def test_one_keep_alive_connection_survives_every_kind_of_error(serving, live, native):
    """On one connection each: a deadline, a 404, a 400, a 500 and a 405, each followed by a
    success; the connection is never closed by the server."""
    server = serving("slow")
    uid = native.runs(limit=1)[0].uid
    with native.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE descriptors")
    url = live.mount(native)
    try:
        for base, steps in (
            (server.url, [("/api/v1/runs/count?query=" + q(EQ), 503)]),
            (
                url,
                [
                    ("/api/v1/runs/nope", 404),
                    ("/api/v1/runs/count?query=%7B", 400),
                    (f"/api/v1/runs/{uid}/descriptors", 500),
                    ("/api/v1/runs/count?query=" + deep(150), 400),
                ],
            ),
        ):
            parsed = httpx.URL(base)
            conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=HANG_GUARD)
            conn.connect()
            sock = conn.sock
            for path, status in steps:
                for want in (status, 200):
                    where = parsed.path.rstrip("/") + (path if want == status else "/healthz")
                    conn.request("GET", httpx.URL(where).raw_path.decode())
                    response = conn.getresponse()
                    response.read()
                    assert response.status == want, (path, response.status)
                    assert response.getheader("connection", "").lower() != "close", path
                    assert conn.sock is sock, f"the connection was closed after {path}"
            conn.close()
    finally:
        live.unmount(url)


# -- refusals in the log --------------------------------------------------------------------


def test_refusals_are_logged_with_their_reason_and_request_id(live, tmp_path, caplog):
    from intake_broker.store.memory import MemoryStore

    store = MemoryStore()
    uids = {}
    for proposal in ("p-A", "p-B"):
        docs = factories.scalar_run(n=2, proposal_id=proposal)
        insert_all(store, docs)
        uids[proposal] = docs[0][1]["uid"]
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"ada": {"proposals": ["p-A"]}}}))
    keys = ApiKeyStore(tmp_path / "keys.json")
    reader, writer = keys.create("ada", ["read"])[1], keys.create("ada", ["read", "write"])[1]
    auth = AuthConfig(policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(users))
    url = live.mount(store, auth=auth)
    caplog.set_level(logging.INFO, logger="intake_broker_server")
    start = factories.scalar_run(n=1, proposal_id="p-B")[0]
    try:
        with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
            key_id = reader.partition(".")[0]
            refusals = [
                (
                    client.get(
                        "/api/v1/runs", headers={"Authorization": "Apikey nope.s3cr3tv4lue"}
                    ),
                    401,
                ),
                (client.get("/api/v1/runs", headers={"Authorization": "Apikey no-dot"}), 401),
                (
                    client.post(
                        "/api/v1/documents",
                        json=["start", start[1]],
                        headers={"Authorization": f"Apikey {reader}"},
                    ),
                    403,
                ),
                (
                    client.get(
                        f"/api/v1/runs/{uids['p-B']}", headers={"Authorization": f"Apikey {reader}"}
                    ),
                    404,
                ),
                (
                    client.post(
                        "/api/v1/documents",
                        json=list(start),
                        headers={"Authorization": f"Apikey {writer}"},
                    ),
                    403,
                ),
            ]
            missing = client.get(
                f"/api/v1/runs/{'0' * 36}", headers={"Authorization": f"Apikey {reader}"}
            )
    finally:
        live.unmount(url)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for response, status in refusals:
        assert response.status_code == status, response.text
        rid = response.json()["request_id"]
        lines = [r for r in caplog.records if rid in r.getMessage()]
        assert lines and lines[0].levelno == logging.INFO, (status, text)
        assert "refused" in lines[0].getMessage() and str(status) in lines[0].getMessage()
    assert key_id in text and "ada" in text
    for secret in (reader.partition(".")[2], writer.partition(".")[2], "no-dot", "s3cr3tv4lue"):
        assert secret not in text
    assert missing.json()["request_id"] not in text  # a run that is not there is no refusal
