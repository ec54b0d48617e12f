"""Authentication and access control through the live service: a leak matrix (users of
proposals A and B, staff, admin, anonymous; raw HTTP and the remote catalog), 401 vs 403 vs
404, refused keys and tokens, and no secret in the logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from intake_broker.errors import InvalidDocument, WriteDenied
from intake_broker.queries import Comparison, Contains, Eq, FullText, PartialUID, Regex, ScanID
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_remote import RemoteCatalog
from intake_broker_remote.errors import Forbidden, Unauthorized
from intake_broker_server.auth import (
    ApiKeyStore,
    AuthConfig,
    FileProvider,
    JWTVerifier,
    Principal,
    ProposalPolicy,
)

ISSUER, AUDIENCE = "https://id.facility.test", "intake-broker"
USERS = {
    "users": {
        "ada": {"proposals": ["p-A"], "beamtimes": ["bt-A"]},
        "bob": {"proposals": ["p-B"]},
        "sam": {"roles": ["staff"], "beamlines": ["csx"]},
        "root": {"roles": ["admin"]},
        "ghost": {"proposals": ["p-A"]},  # deleted from the provider by a test
    }
}


# -- the world --------------------------------------------------------------------------------


class World:
    """The store, the users, keys and signing keys of these tests."""

    def __init__(self, tmp) -> None:
        self.store = MemoryStore(chunk_rows=4)
        self.uids: dict[str, str] = {}
        runs = {
            "A1": dict(
                scan_id=1,
                proposal_id="p-A",
                beamtime_id="bt-A",
                beamline_id="csx",
                sample="alpha quartz",
            ),
            "B1": dict(
                scan_id=2,
                proposal_id="p-B",
                beamtime_id="bt-B",
                beamline_id="chx",
                sample="secret beryllium",
                plan_name="count",
            ),
            "B2": dict(
                scan_id=3,
                proposal_id="p-B",
                beamtime_id="bt-B",
                beamline_id="csx",
                sample="secret boron",
            ),
            "U": dict(scan_id=4, sample="unlabelled"),
        }
        for number, (name, md) in enumerate(runs.items()):
            docs = factories.scalar_run(n=6, time=1_700_000_000.0 + 100 * number, **md)
            insert_all(self.store, docs)
            self.uids[name] = docs[0][1]["uid"]
        self.users_path = tmp / "users.json"
        self.users_path.write_text(json.dumps(USERS))
        self.keys = ApiKeyStore(tmp / "keys.json")
        self.key = {
            user: self.keys.create(user, ["read"])[1]
            for user in ("ada", "bob", "sam", "root", "ghost")
        }
        self.writer = self.keys.create("ada", ["read", "write"])[1]
        self.expired = self.keys.create("ada", ["read"], expires_in=-1)[1]
        self.revoked = self.keys.create("ada", ["read"])[1]
        self.keys.revoke(self.revoked.split(".")[0])
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwt = JWTVerifier(
            ISSUER,
            AUDIENCE,
            keys={"rsa-1": pem(self.rsa.public_key()), "ec-1": self.ec.public_key()},
        )

    def config(self, **kwargs) -> AuthConfig:
        return AuthConfig(
            policy=ProposalPolicy(),
            api_keys=self.keys,
            jwt=self.jwt,
            provider=FileProvider(self.users_path),
            **kwargs,
        )

    def token(
        self, sub: str = "ada", *, key=None, kid: str = "rsa-1", alg: str = "RS256", **claims
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.rsa, algorithm=alg, headers={"kid": kid})


def pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def url(live_server, world):
    url = live_server.mount(world.store, auth=world.config())
    yield url
    live_server.unmount(url)


@pytest.fixture(scope="module")
def open_url(live_server, world):
    """The same store, anonymous requests allowed."""
    url = live_server.mount(world.store, auth=world.config(allow_anonymous=True))
    yield url
    live_server.unmount(url)


def client(url: str, authorization: str | None = None) -> httpx.Client:
    headers = {} if authorization is None else {"Authorization": authorization}
    return httpx.Client(base_url=url, timeout=30, headers=headers)


def listed(http: httpx.Client, query=None) -> set[str]:
    params = {} if query is None else {"query": json.dumps(query.encode())}
    response = http.get("/api/v1/runs", params=params)
    assert response.status_code == 200, response.text
    return {r["uid"] for r in response.json()["data"]}


# -- 401 ------------------------------------------------------------------------------------


def test_no_credentials_is_401_with_a_challenge(url):
    with client(url) as http:
        for path in (
            "/api/v1/runs",
            "/api/v1",
            "/api/v1/runs/count",
            f"/api/v1/runs/{uuid.uuid4()}",
            "/zarr/v3/runs/x/primary/zarr.json",
        ):
            response = http.get(path)
            assert response.status_code == 401, (path, response.text)
            assert "Bearer" in response.headers["www-authenticate"]
            assert "Apikey" in response.headers["www-authenticate"]
            assert response.json()["error"] == "Unauthorized"
        assert http.post("/api/v1/documents", json=["start", {}]).status_code == 401
        assert http.get("/healthz").json()["status"] == "ok"  # liveness stays open


# -- the leak matrix ------------------------------------------------------------------------


def ada_credentials(world):
    return [
        f"Apikey {world.key['ada']}",
        f"Bearer {world.token('ada')}",
        f"Bearer {world.token('ada', key=world.ec, kid='ec-1', alg='ES256')}",
    ]


def queries_for_b(world):
    b1 = world.uids["B1"]
    return [
        None,
        Eq("proposal_id", "p-B"),
        Eq("uid", b1),
        Regex("sample", ".*"),
        Regex("sample", "^secret"),
        FullText("beryllium"),
        FullText("secret"),
        PartialUID(b1[:6]),
        PartialUID(world.uids["B2"][:8]),
        ScanID(2),
        ScanID(2, 3),
        Eq("plan_name", "count"),
        Comparison("gt", "summary.primary.det.max", -1e9),
        Comparison("ge", "scan_id", 0),
        Eq("beamline_id", "chx"),
    ]


def test_user_a_sees_only_a_over_raw_http(url, world):
    a1 = world.uids["A1"]
    hidden = {world.uids[n] for n in ("B1", "B2", "U")}
    for authorization in ada_credentials(world):
        with client(url, authorization) as http:
            assert listed(http) == {a1}
            assert http.get("/api/v1/runs/count").json() == {"count": 1}
            for query in queries_for_b(world):
                assert not listed(http, query) & hidden, query
                body = {"query": None if query is None else query.encode(), "limit": 50}
                posted = http.post("/api/v1/runs/search", json=body)
                assert posted.status_code == 200
                assert not {r["uid"] for r in posted.json()["data"]} & hidden
                assert "beryllium" not in posted.text and "boron" not in posted.text
                params = {} if query is None else {"query": json.dumps(query.encode())}
                assert http.get("/api/v1/runs/count", params=params).json()["count"] <= 1


def test_runs_of_b_are_404_exactly_like_missing_runs(url, world):
    b1, a1 = world.uids["B1"], world.uids["A1"]
    descriptor_b = world.store.descriptors(b1)[0]["uid"]
    with client(url, f"Apikey {world.key['ada']}") as http:
        assert http.get(f"/api/v1/runs/{a1}").status_code == 200
        missing = str(uuid.uuid4())
        for template in (
            "/api/v1/runs/{}",
            "/api/v1/runs/{}/descriptors",
            "/api/v1/runs/{}/documents",
            "/api/v1/runs/{}/datum_pages",
            "/api/v1/runs/{}/assets",
            "/api/v1/runs/{}/resources/r1",
            "/api/v1/runs/{}/assets/stream?key=det&descriptor=d&seq_start=0&seq_stop=1",
            "/zarr/v3/runs/{}/primary/zarr.json",
            "/zarr/v3/runs/{}/primary/det/c/0",
        ):
            denied, absent = http.get(template.format(b1)), http.get(template.format(missing))
            assert denied.status_code == absent.status_code == 404, (template, denied.text)
            assert denied.json()["error"] == absent.json()["error"]
            assert denied.json()["message"].replace(b1, "X") == absent.json()["message"].replace(
                missing, "X"
            )
            assert "beryllium" not in denied.text
        datums = http.post(
            f"/api/v1/runs/{b1}/assets/datums", json={"key": "det", "datum_ids": ["x"]}
        )
        assert datums.status_code == 404
        for path in (
            f"/api/v1/descriptors/{descriptor_b}/chunks",
            f"/api/v1/descriptors/{descriptor_b}/events",
        ):
            assert http.get(path).status_code == 404, path
        # even after listing its own run's descriptors, B's stay hidden
        assert http.get(f"/api/v1/runs/{a1}/descriptors").status_code == 200
        assert http.get(f"/api/v1/descriptors/{descriptor_b}/events").status_code == 404


def test_user_a_through_the_remote_catalog(url, world):
    a1, b1, b2 = world.uids["A1"], world.uids["B1"], world.uids["B2"]
    for cat in (
        RemoteCatalog(url, api_key=world.key["ada"]),
        RemoteCatalog(url, headers={"Authorization": f"Bearer {world.token('ada')}"}),
    ):
        assert list(cat) == [a1] and len(cat) == 1
        for query in queries_for_b(world)[1:]:
            assert set(cat.search(query)) <= {a1}, query
        for key in (b1, b1[:8], b2[:10], 2, 3, 4, world.uids["U"]):
            with pytest.raises(KeyError):
                cat[key]
            assert key not in cat
        run = cat[a1]
        assert run.metadata["start"]["sample"] == "alpha quartz"
        assert cat[a1[:8]].metadata["start"]["uid"] == a1 and cat[1].metadata["start"]["uid"] == a1
        data = run.primary.read()  # descriptors, then event columns, through the guarded view
        assert len(data["det"]) == 6
        assert [name for name, _ in run.documents()][0] == "start"


def test_user_b_staff_admin_and_anonymous(url, open_url, world):
    u = world.uids
    expected = {"bob": {u["B1"], u["B2"]}, "sam": {u["A1"], u["B2"]}, "root": set(u.values())}
    for user, seen in expected.items():
        for authorization in (f"Apikey {world.key[user]}", f"Bearer {world.token(user)}"):
            with client(url, authorization) as http:
                assert listed(http) == seen, user
                assert http.get("/api/v1/runs/count").json()["count"] == len(seen)
                for name, uid in u.items():
                    status = http.get(f"/api/v1/runs/{uid}/descriptors").status_code
                    assert status == (200 if uid in seen else 404), (user, name)
    sam = RemoteCatalog(url, api_key=world.key["sam"])
    assert set(sam) == expected["sam"] and sam[u["B2"]].primary.read()["det"].size == 6
    with pytest.raises(KeyError):
        sam[u["B1"]]
    with client(open_url) as http:  # anonymous: allowed, sees only public (no embargo) runs
        assert listed(http) == set() and http.get(f"/api/v1/runs/{u['A1']}").status_code == 404
        response = http.post("/api/v1/documents", json=["start", {"uid": "x", "time": 1}])
        assert response.status_code == 403 and response.json()["error"] == "Forbidden"
    with client(open_url, "Apikey not-a-key") as http:  # bad credentials are not anonymous
        assert http.get("/api/v1/runs").status_code == 401
    with client(open_url, f"Apikey {world.key['bob']}") as http:
        assert listed(http) == expected["bob"]


# -- 403 ------------------------------------------------------------------------------------


@pytest.fixture
def write_url(live_server, world):
    """A store of its own, for the tests that write."""
    url = live_server.mount(MemoryStore(), auth=world.config())
    yield url
    live_server.unmount(url)


def test_writing_needs_the_write_scope(write_url, world):
    url = write_url
    docs = factories.scalar_run(n=2, scan_id=50, proposal_id="p-A")
    start = ["start", docs[0][1]]
    for authorization in (
        f"Apikey {world.key['ada']}",
        f"Bearer {world.token('ada')}",
        f"Bearer {world.token('ada', scope='read')}",
    ):
        with client(url, authorization) as http:
            response = http.post("/api/v1/documents", json=start)
            assert response.status_code == 403, response.text
            assert response.json()["error"] == "Forbidden" and "write" in response.json()["message"]
            assert "www-authenticate" not in response.headers
    with client(url, f"Bearer {world.token('ada', scope='write')}") as http:  # no read scope
        assert http.get("/api/v1/runs").status_code == 403
    with client(url, f"Apikey {world.writer}") as http:
        assert http.post("/api/v1/documents", json=start).status_code == 200
    with client(url, f"Bearer {world.token('ada', scope='read write')}") as http:
        assert http.post("/api/v1/documents", json=["stop", docs[-1][1]]).status_code == 200
    new = docs[0][1]["uid"]
    with client(url, f"Apikey {world.key['ada']}") as http:
        assert new in listed(http)
    with client(url, f"Apikey {world.key['bob']}") as http:
        assert new not in listed(http)
    cat = RemoteCatalog(url, api_key=world.key["ada"])
    with pytest.raises(Forbidden, match="write") as info:
        cat.store.insert("start", factories.scalar_run(scan_id=51)[0][1])
    assert info.value.status == 403 and isinstance(info.value, PermissionError)


def test_writers_write_only_into_runs_of_their_proposals(write_url, world):
    url = write_url
    ours = factories.scalar_run(n=2, scan_id=60, proposal_id="p-A")
    theirs = factories.scalar_run(n=2, scan_id=61, proposal_id="p-B")
    writer = RemoteCatalog(url, api_key=world.writer)  # ada, scopes read and write
    for name, doc in ours:
        writer.store.insert(name, doc)
    assert writer[ours[0][1]["uid"]].primary.read()["det"].shape == (2,)
    with client(url, f"Apikey {world.writer}") as http:
        response = http.post("/api/v1/documents", json=["start", theirs[0][1]])
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "WriteDenied"
        assert "'ada' may not start this run" in response.json()["message"]
    with pytest.raises(WriteDenied) as info:
        writer.store.insert("start", theirs[0][1])
    assert isinstance(info.value, PermissionError)
    with client(url, f"Apikey {world.key['bob']}") as http:
        assert theirs[0][1]["uid"] not in listed(http)  # nothing was stored
    # and a run of bob's (written by the service's admin) cannot be written into by ada
    root = world.token("root", scope="read write")
    admin = RemoteCatalog(url, headers={"Authorization": f"Bearer {root}"})
    for name, doc in theirs:
        admin.store.insert(name, doc)
    descriptor = next(d for n, d in theirs if n == "descriptor")
    held = admin.store.descriptors(theirs[0][1]["uid"])
    sneaky = {**descriptor, "uid": "sneaky", "name": "sneaky"}
    with pytest.raises(InvalidDocument) as hidden:  # bob's run looks missing to ada
        writer.store.insert("descriptor", sneaky)
    with pytest.raises(InvalidDocument) as missing:
        writer.store.insert("descriptor", {**sneaky, "run_start": "no-such-run"})
    assert str(hidden.value).replace(theirs[0][1]["uid"], "?") == str(missing.value).replace(
        "no-such-run", "?"
    )
    assert admin.store.descriptors(theirs[0][1]["uid"]) == held


def test_the_remote_catalog_says_when_its_credentials_are_refused(url, world):
    for cat in (RemoteCatalog(url), RemoteCatalog(url, api_key="not-a-key-of-this-server")):
        with pytest.raises(Unauthorized) as info:
            list(cat)
        assert info.value.status == 401 and isinstance(info.value, PermissionError)
        assert "not-a-key" not in str(info.value)
    with pytest.raises(Unauthorized, match="(?i)api ?key|bearer|credential"):
        len(RemoteCatalog(url))


# -- refused credentials --------------------------------------------------------------------


def hs256(claims: dict, secret: bytes) -> str:
    """An HS256 token signed with ``secret`` (the algorithm-confusion attack: the public key
    as an HMAC secret), made by hand since PyJWT refuses to."""
    encode = jwt.utils.base64url_encode
    head = encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = encode(json.dumps(claims).encode())
    signature = hmac.new(secret, head + b"." + body, hashlib.sha256).digest()
    return b".".join([head, body, encode(signature)]).decode()


def refused(world) -> dict[str, tuple[str, str]]:
    key_id, secret = world.key["ada"].split(".")
    good = world.token("ada")
    header, payload, signature = good.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "root"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    hs = hs256(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": int(time.time()) + 60},
        pem(world.rsa.public_key()).encode(),
    )
    return {  # what is refused -> (the header, a word of the message)
        "expired key": (f"Apikey {world.expired}", "expired"),
        "revoked key": (f"Apikey {world.revoked}", "revoked"),
        "wrong secret": (f"Apikey {key_id}.{secret[::-1]}", "not valid"),
        "unknown key id": (f"Apikey 0123456789ab.{secret}", "not valid"),
        "key of a deleted user": (f"Apikey {world.key['ghost']}", "not known"),
        "malformed key": ("Apikey no-dot-here", "malformed"),
        "empty apikey": ("Apikey", "no key"),
        "unknown scheme": (f"Basic {secret}", "not understood"),
        "empty bearer": ("Bearer", "no token"),
        "not a jwt": ("Bearer not.a.jwt", "malformed"),
        "garbage": ("Bearer " + "x" * 40, "malformed"),
        "tampered payload": (f"Bearer {header}.{forged}.{signature}", "signature"),
        "tampered signature": (f"Bearer {header}.{payload}.{signature[:-4]}AAAA", "signature"),
        "wrong issuer": (f"Bearer {world.token('ada', iss='https://evil.test')}", "not issued by"),
        "wrong audience": (f"Bearer {world.token('ada', aud='other-service')}", "not meant"),
        "expired token": (f"Bearer {world.token('ada', exp=int(time.time()) - 10)}", "expired"),
        "not yet valid": (
            f"Bearer {world.token('ada', nbf=int(time.time()) + 600)}",
            "not valid yet",
        ),
        "no exp": (f"Bearer {world.token('ada', exp=None)}", "'exp'"),
        "unknown signer": (f"Bearer {world.token('ada', key=world.other)}", "signature"),
        "unknown kid": (
            f"Bearer {world.token('ada', key=world.other, kid='evil')}",
            "does not know",
        ),
        "hs256 with the public key": (f"Bearer {hs}", "algorithm"),
        "token of a deleted user": (f"Bearer {world.token('ghost')}", "not known"),
        "token of an unknown user": (f"Bearer {world.token('mallory')}", "not known"),
    }


def secret_parts(credential: str) -> list[str]:
    """The secret parts of a credential: an API key's secret (its id is public), a token's
    segments; parts too short to search for are left out."""
    parts = credential.split(".")
    if len(parts) == 2:  # <id>.<secret>
        parts = parts[1:]
    return [part for part in parts if len(part) >= 12]


def test_refused_credentials_are_401_without_echo(url, world, tmp_path):
    users = dict(USERS["users"])
    del users["ghost"]
    world.users_path.write_text(json.dumps({"users": users}))  # the provider forgets ghost
    try:
        for why, (authorization, word) in refused(world).items():
            secret = authorization.partition(" ")[2]
            with client(url, authorization) as http:
                for response in (
                    http.get("/api/v1/runs"),
                    http.get(f"/api/v1/runs/{world.uids['A1']}"),
                ):
                    assert response.status_code == 401, (why, response.text)
                    assert response.json()["error"] == "Unauthorized", why
                    assert word in response.json()["message"], (why, response.json())
                    assert response.headers["www-authenticate"], why
                    for part in secret_parts(secret):
                        assert part not in response.text, why
    finally:
        world.users_path.write_text(json.dumps(USERS))


def test_a_key_revoked_while_in_use_is_refused_next_time(url, world):
    record, key = world.keys.create("bob", ["read"])
    with client(url, f"Apikey {key}") as http:
        assert http.get("/api/v1/runs").status_code == 200
        world.keys.revoke(record.id)
        response = http.get("/api/v1/runs")
        assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_secrets_never_reach_the_logs(url, world, caplog):
    caplog.set_level(logging.DEBUG)
    credentials = [world.key["ada"], world.writer, world.token("ada"), world.token("root")]
    for authorization, _ in refused(world).values():
        credentials.append(authorization.partition(" ")[2])
        with client(url, authorization) as http:
            http.get("/api/v1/runs")
    for credential in credentials[:4]:
        scheme = "Bearer" if credential.count(".") == 2 else "Apikey"
        with client(url, f"{scheme} {credential}") as http:
            http.get("/api/v1/runs")
            http.post("/api/v1/documents", json=["start", {"nonsense": True}])
    assert "refused" in caplog.text  # refusals are logged, by reason
    for credential in credentials:
        for part in secret_parts(credential):
            assert part not in caplog.text


def test_without_auth_the_server_is_as_before(live_server, world):
    url = live_server.mount(world.store)
    try:
        with client(url) as http:
            assert len(listed(http)) >= 4
    finally:
        live_server.unmount(url)


def test_principal_of_anonymous_is_configurable(live_server, world):
    config = world.config(allow_anonymous=True, anonymous=Principal("guest", proposals=("p-B",)))
    url = live_server.mount(world.store, auth=config)
    try:
        with client(url) as http:
            assert listed(http) == {world.uids["B1"], world.uids["B2"]}
    finally:
        live_server.unmount(url)


def test_a_grant_withdrawn_by_the_provider_takes_effect_at_once(url, world):
    a1 = world.uids["A1"]
    with client(url, f"Apikey {world.key['ada']}") as http:
        descriptor = http.get(f"/api/v1/runs/{a1}/descriptors").json()["data"][0]["uid"]
        assert http.get(f"/api/v1/descriptors/{descriptor}/events").status_code == 200
        users = json.loads(json.dumps(USERS))
        users["users"]["ada"]["proposals"] = []
        users["users"]["ada"]["beamtimes"] = []
        world.users_path.write_text(json.dumps(users))
        try:
            assert listed(http) == set()
            assert http.get(f"/api/v1/runs/{a1}").status_code == 404
            assert http.get(f"/api/v1/descriptors/{descriptor}/events").status_code == 404
        finally:
            world.users_path.write_text(json.dumps(USERS))
        assert listed(http) == {a1}
        assert http.get(f"/api/v1/descriptors/{descriptor}/events").status_code == 200


# -- derived runs: inputs the reader may not see are withheld over HTTP too --------------------


def test_a_derived_runs_hidden_input_is_withheld_over_http(live_server, world):
    from intake_broker.provenance import derived
    from intake_broker.views.catalog import BrokerCatalog

    store = MemoryStore()
    docs = factories.scalar_run(n=4, scan_id=7, proposal_id="p-B", sample="secret cobalt")
    insert_all(store, docs)
    hidden = docs[0][1]["uid"]

    @derived(name="total", version="1", stream="primary", inherit=())
    def total(ds):
        return {"total": float(ds["det"].sum())}

    # someone holding both proposals derived it into p-A from p-B's run
    report = total.run(BrokerCatalog(store)[hidden], store, metadata={"proposal_id": "p-A"})
    (made,) = report.written
    url = live_server.mount(store, auth=world.config())
    try:
        with client(url, f"Apikey {world.key['ada']}") as http:
            listed_runs = http.get("/api/v1/runs").json()["data"]
            assert [r["uid"] for r in listed_runs] == [made]
            for path in (
                "/api/v1/runs",
                f"/api/v1/runs/{made}",
                f"/api/v1/runs/{made}/documents",
            ):
                response = http.get(path)
                assert response.status_code == 200, (path, response.text)
                assert hidden not in response.text and "cobalt" not in response.text, path
            for query in (Contains("derived_from", hidden), Regex("derived_from", "^")):
                params = {"query": json.dumps(query.encode())}
                search = http.get("/api/v1/runs", params=params)
                assert search.status_code == 400, search.text
                assert "runs derived from runs you can see" in search.text
                assert hidden not in search.text.replace(json.dumps(query.encode()), "")
            assert listed(http, Contains("derived_from", made)) == set()  # a visible uid: fine
            remote = RemoteCatalog(url, api_key=world.key["ada"])[made]
            graph = remote.provenance
            assert [n.uid for n in graph.withheld] == [None]
            assert hidden not in json.dumps(graph.to_prov())
        with client(url, f"Apikey {world.key['root']}") as http:  # an admin sees the input
            assert hidden in http.get(f"/api/v1/runs/{made}").text
    finally:
        live_server.unmount(url)
