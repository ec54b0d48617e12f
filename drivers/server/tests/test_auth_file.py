"""``serve --auth-config auth.yml`` (auth without writing Python, errors with file and line) and
the non-loopback guard (a loud warning, and read-only without auth unless --allow-writes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from intake_broker.cli import main
from intake_broker.queries import Eq
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_server import commands
from intake_broker_server.app import create_app, load_auth
from intake_broker_server.auth import ApiKeyStore, FileProvider, JWTVerifier
from intake_broker_server.auth.file import AuthFileError, load_auth_file
from intake_broker_server.testing import free_port


@pytest.fixture
def auth_dir(tmp_path):
    (tmp_path / "users.yml").write_text("users:\n  ada: {proposals: [p-1]}\n")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k"}]}))
    _, secret = ApiKeyStore(tmp_path / "keys.json").create("ada")
    (tmp_path / "auth.yml").write_text(
        "policy:\n"
        "  deny_unlabelled: true\n"
        "users: users.yml\n"
        "api_keys: keys.json\n"
        "jwt:\n"
        "  issuer: https://login.example.org\n"
        "  audience: intake-broker\n"
        "  jwks: jwks.json\n"
        "  algorithms: [RS256]\n"
        "  leeway: 5\n"
    )
    return tmp_path, secret, key


def test_a_good_auth_file_serves_what_its_policy_allows(auth_dir):
    folder, secret, key = auth_dir
    config = load_auth_file(folder / "auth.yml")
    assert isinstance(config.provider, FileProvider) and isinstance(config.jwt, JWTVerifier)
    assert not config.allow_anonymous
    assert load_auth(str(folder / "auth.yml")).api_keys.path == folder / "keys.json"
    store = MemoryStore()
    insert_all(store, factories.scalar_run(scan_id=1, proposal_id="p-1"))
    insert_all(store, factories.scalar_run(scan_id=2, proposal_id="p-2", time=1_700_000_100.0))
    with TestClient(create_app(store, auth=config)) as http:
        assert http.get("/api/v1/runs").status_code == 401
        answer = http.get("/api/v1/runs", headers={"Authorization": f"Apikey {secret}"})
        assert answer.status_code == 200
        assert [r["start"]["scan_id"] for r in answer.json()["data"]] == [1]
        token = jwt.encode(
            {
                "iss": "https://login.example.org",
                "aud": "intake-broker",
                "sub": "ada",
                "exp": 2_000_000_000,
            },
            key,
            "RS256",
            headers={"kid": "k"},
        )
        answer = http.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        assert [r["start"]["scan_id"] for r in answer.json()["data"]] == [1]


BAD = [
    ("polcy: {}\napi_keys: keys.json\n", 1, "unknown field (did you mean 'policy'?)"),
    ("api_keys: keys.json\npolicy:\n  deny_unlabeled: 1\n", 3, "did you mean 'deny_unlabelled'"),
    ("api_keys: keys.json\npolicy:\n  deny_unlabelled: yes please\n", 3, "true or false"),
    ("api_keys: keys.json\nusers: nobody.yml\n", 2, "no such file"),
    ("api_keys: keys.json\nidentity_provider: ftp://x\n", 2, "http(s) URL"),
    ("api_keys: keys.json\njwt:\n  issuer: x\n  audience: y\n", 2, "jwt needs jwks"),
    ("api_keys: keys.json\nanonymous: 1\n", 2, "true or false"),
    ("policy: {}\n", 1, "nobody could sign in"),
    ("api_keys: keys.json\npolicy: {a\n", 3, "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD)
def test_a_bad_auth_file_says_file_line_and_field(tmp_path, text, line, problem):
    path = tmp_path / "auth.yml"
    path.write_text(text)
    with pytest.raises(AuthFileError) as caught:
        load_auth_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}")
    assert problem in message


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_serve_with_a_mistake_in_the_auth_file_prints_one_line(tmp_path):
    path = tmp_path / "auth.yml"
    path.write_text("api_keys: keys.json\njwt:\n  isuer: x\n")
    done = subprocess.run(
        [sys.executable, "-m", "intake_broker.cli", "serve", "--auth-config", str(path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"intake-broker: error: {path}, line 3, field 'jwt.isuer': unknown field (did you "
        "mean 'issuer'?); the fields: algorithms, audience, issuer, jwks, leeway, subject_claim"
    ]


def test_a_typo_in_auth_module_name_is_one_line(capsys):
    assert main(["serve", "--auth", "intake_broker_server.auth:AuthConfg"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "intake-broker: error: --auth intake_broker_server.auth:AuthConfg: module "
        "'intake_broker_server.auth' has no 'AuthConfg' (did you mean 'AuthConfig'?)"
    ]


# -- beyond loopback -------------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch):
    """What ``serve`` would start with (the server itself is not started)."""
    calls = []
    monkeypatch.setattr("intake_broker_server.app.serve", lambda *a, **k: calls.append((a, k)))
    return calls


def test_non_loopback_without_auth_warns_and_is_read_only(started, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--catalog", "memory"]) == 0
    err = capsys.readouterr().err
    assert "WITHOUT AUTHENTICATION" in err and "Writes are refused" in err
    assert "\033[" not in err  # not a terminal: no colour
    assert started[-1][1]["read_only"] is True
    assert main(["serve", "--host", "0.0.0.0", "--allow-writes"]) == 0
    assert "anyone may also add runs" in capsys.readouterr().err
    assert started[-1][1]["read_only"] is False


def test_loopback_or_auth_is_quiet(started, auth_dir, capsys):
    folder, _, _ = auth_dir
    assert main(["serve", "--host", "127.0.0.1"]) == 0
    assert main(["serve", "--host", "::1"]) == 0
    assert main(["serve", "--host", "10.0.0.5", "--auth-config", str(folder / "auth.yml")]) == 0
    assert capsys.readouterr().err == ""
    assert [k["read_only"] for _, k in started] == [False, False, False]
    assert started[-1][1]["auth"] == str(folder / "auth.yml")


def test_serve_takes_the_catalog_file_and_entry_after_the_command(started, tmp_path):
    path = tmp_path / "aps.yml"
    path.write_text("sources:\n  xpcs: {driver: bluesky-memory-catalog}\n")
    assert main(["serve", str(path), "--entry", "xpcs"]) == 0
    args, kwargs = started[-1]
    assert args == (str(path),) and kwargs["entry"] == "xpcs"


@pytest.mark.parametrize("no_color", [None, "1"])
def test_the_warning_is_red_on_a_terminal_unless_no_color(monkeypatch, no_color):
    primary, secondary = os.openpty()
    with open(secondary, "w", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        if no_color is None:
            monkeypatch.delenv("NO_COLOR", raising=False)
        else:
            monkeypatch.setenv("NO_COLOR", no_color)
        commands.warn("loud")
    drawn = os.read(primary, 1000).decode()
    os.close(primary)
    assert ("\033[1;31m" in drawn) is (no_color is None)
    assert "loud" in drawn


def test_a_read_only_server_refuses_writes_and_serves_reads():
    docs = factories.scalar_run(scan_id=3)
    store = MemoryStore()
    with TestClient(create_app(store, read_only=True)) as http:
        answer = http.post("/api/v1/documents", json=list(docs[0]))
        assert answer.status_code == 403
        assert "read-only" in answer.text and "--allow-writes" in answer.text
        assert http.get("/api/v1/runs").status_code == 200
    assert store.count() == 0
    with TestClient(create_app(store)) as http:
        assert http.post("/api/v1/documents", json=list(docs[0])).status_code < 300
    assert store.count() == 1


def test_is_loopback():
    assert all(map(commands.is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(commands.is_loopback, ["0.0.0.0", "10.0.0.1", "::", "example.org"]))


# -- an empty answer the policy causes says so -------------------------------------------------


def test_an_empty_listing_says_how_many_runs_name_no_proposal(auth_dir):
    folder, secret, _ = auth_dir
    (folder / "open.yml").write_text("api_keys: keys.json\nusers: users.yml\nanonymous: true\n")
    store = MemoryStore()
    for i in range(3):  # demo-like runs: no proposal_id
        insert_all(store, factories.scalar_run(scan_id=10 + i, time=1_700_000_000.0 + i))
    insert_all(store, factories.scalar_run(scan_id=20, proposal_id="p-2", time=1_700_000_500.0))
    with TestClient(create_app(store, auth=load_auth_file(folder / "open.yml"))) as http:
        answer = http.get("/api/v1/runs").json()
        assert answer["data"] == []
        assert answer["hidden"] == (
            "3 runs are hidden: they name no proposal (proposal_id); only admins see them"
        )
        count = http.get("/api/v1/runs/count").json()
        assert count == {"count": 0, "hidden": answer["hidden"]}
        # ada (proposal p-1) sees nothing either, and learns nothing of p-2's run
        key = {"Authorization": f"Apikey {secret}"}
        query = json.dumps(Eq("proposal_id", "p-2").encode())
        for_p2 = http.get("/api/v1/runs", params={"query": query}, headers=key).json()
        assert for_p2["data"] == [] and "hidden" not in for_p2
    store.close()


# -- oidc: the web page's "Log in with <issuer>" --------------------------------------------


def test_oidc_endpoints_are_discovered_from_the_issuer_and_offered_to_the_page(
    tmp_path, identity_provider
):
    (tmp_path / "users.yml").write_text("users:\n  ada: {proposals: [p-1]}\n")
    config = load_auth_file(identity_provider.write_auth_file(tmp_path))
    issuer = identity_provider.issuer
    assert config.oidc.authorization_endpoint == issuer + "/authorize"
    assert config.oidc.token_endpoint == issuer + "/token"
    with TestClient(create_app(MemoryStore(), auth=config)) as http:
        assert http.get("/api/v1/web/me").status_code == 401
        options = http.get("/api/v1/web/login-options")  # public: asked before any login
        assert options.status_code == 200
        assert options.json() == {
            "auth": True,
            "api_key": False,
            "bearer": True,
            "oidc": {
                "issuer": issuer,
                "label": "Test Login",
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "client_id": "intake-broker-web",
                "scope": "openid profile",
                "token": "access_token",
                "response_mode": "query",
            },
        }
        assert "secret" not in options.text
        csp = http.get("/").headers["content-security-policy"]
        assert f"connect-src 'self' {issuer};" in csp  # the token endpoint, and nothing else
    with TestClient(create_app(MemoryStore())) as http:  # no auth: no login at all
        options = http.get("/api/v1/web/login-options").json()
        assert options == {"auth": False, "api_key": False, "bearer": False, "oidc": None}
        assert "connect-src 'self';" in http.get("/").headers["content-security-policy"]


JWT_BLOCK = "jwt:\n  issuer: https://login.example.org\n  audience: a\n  jwks: jwks.json\n"
BAD_OIDC = [
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  authorization_endpoint: ftp://x/auth\n"
        "  token_endpoint: https://login.example.org/token\n",
        7,
        "authorization_endpoint must be an https URL",
    ),
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  authorization_endpoint: http://example.org/a\n"
        "  token_endpoint: https://login.example.org/token\n",
        7,
        "must be https (http only for localhost)",
    ),
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  authorization_endpoint: https://x.org/a\n"
        '  token_endpoint: "https://x.org;script-src */t"\n',
        8,
        "must be a plain URL",
    ),
    (
        JWT_BLOCK + "oidc:\n  scope: openid\n  authorization_endpoint: https://x.org/a\n"
        "  token_endpoint: https://x.org/t\n",
        5,
        "oidc needs client_id",
    ),
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  token_endpoint: https://x.org/t\n",
        7,
        "give both authorization_endpoint and token_endpoint",
    ),
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  scope: profile\n"
        "  authorization_endpoint: https://x.org/a\n  token_endpoint: https://x.org/t\n",
        7,
        "holding openid",
    ),
    (
        JWT_BLOCK + "oidc:\n  client_id: web\n  client_secret: s\n",
        7,
        "unknown field (did you mean 'client_id'?)",
    ),
    ("api_keys: keys.json\noidc:\n  client_id: web\n", 2, "oidc needs a jwt: block"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_OIDC)
def test_a_bad_oidc_block_says_file_line_and_field(auth_dir, text, line, problem):
    folder = auth_dir[0]
    path = folder / "bad.yml"
    path.write_text(text)
    with pytest.raises(AuthFileError) as caught:
        load_auth_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}"), message
    assert problem in message


def test_discovery_that_fails_or_names_another_issuer_is_refused(tmp_path, identity_provider):
    (tmp_path / "users.yml").write_text("users: {}\n")
    path = identity_provider.write_auth_file(tmp_path)
    real = identity_provider.issuer
    path.write_text(path.read_text().replace(real, real + "/elsewhere"))
    with pytest.raises(AuthFileError) as caught:  # a 404 at {issuer}/.well-known/...
        load_auth_file(path)
    assert "line 7" in str(caught.value) and "answered HTTP 404" in str(caught.value)
    from intake_broker_server.auth import oidc

    port = free_port()
    with pytest.raises(ValueError, match="failed .ConnectError.; give authorization_endpoint"):
        oidc.discover(f"http://127.0.0.1:{port}")
    identity_provider.claimed_issuer = "https://login.example.org"  # another issuer's document
    with pytest.raises(ValueError, match="names issuer 'https://login.example.org', not"):
        oidc.discover(real)


def test_pkce_is_checked_by_the_test_identity_provider(identity_provider):
    """The browser tests rely on this provider refusing a wrong code_verifier."""
    import base64
    import hashlib
    import secrets

    import httpx

    issuer = identity_provider.issuer
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect = "http://127.0.0.1:1/"

    def code() -> str:
        answer = httpx.get(
            issuer + "/authorize",
            params={
                "client_id": "intake-broker-web",
                "redirect_uri": redirect,
                "state": "s",
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        assert answer.status_code == 302
        return answer.headers["location"].split("code=")[1].split("&")[0]

    form = {"grant_type": "authorization_code", "client_id": "intake-broker-web"}
    form["redirect_uri"] = redirect
    wrong = httpx.post(issuer + "/token", data={**form, "code": code(), "code_verifier": "x" * 43})
    assert wrong.status_code == 400 and "access_token" not in wrong.json()
    right = httpx.post(issuer + "/token", data={**form, "code": code(), "code_verifier": verifier})
    assert right.status_code == 200
    claims = JWTVerifier(
        issuer=issuer,
        audience="intake-broker",
        keys={"test-idp": identity_provider.jwks["keys"][0]},
    ).verify(right.json()["access_token"])
    assert claims["sub"] == "ada"
