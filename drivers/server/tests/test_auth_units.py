"""The pieces of authentication: API keys and their CLI, JWT verification with a JWKS file,
the file and HTTP identity providers (against a loopback HTTP server started here)."""

from __future__ import annotations

import json
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_server.auth import (
    ApiKeyStore,
    AuthConfig,
    FileProvider,
    HTTPProvider,
    JWTVerifier,
    Principal,
    ProviderUnavailable,
    StaticProvider,
    Unauthorized,
    apikey_main,
)
from intake_broker_server.auth.config import Authenticator

# -- API keys ---------------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_checked(tmp_path):
    keys = ApiKeyStore(tmp_path / "keys.json")
    record, key = keys.create("ada", ["read", "write"], expires_in=3600)
    key_id, secret = key.split(".")
    assert record.id == key_id and len(secret) >= 43  # 32 random bytes, URL-safe base64
    text = (tmp_path / "keys.json").read_text()
    assert secret not in text and record.hash in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    again = ApiKeyStore(tmp_path / "keys.json").verify(key)  # another process: the file
    assert again.user == "ada" and again.scopes == ("read", "write")
    for bad in (f"{key_id}.{secret}x", f"{key_id}.", "nodot", f"zz{key_id}.{secret}"):
        with pytest.raises(Unauthorized) as info:
            keys.verify(bad)
        assert secret not in str(info.value)
    keys.revoke(key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        keys.verify(key)
    _, old = keys.create("ada", expires_in=-1)
    with pytest.raises(Unauthorized, match="expired"):
        keys.verify(old)
    with pytest.raises(ValueError, match="scopes"):
        keys.create("ada", ["admin"])
    with pytest.raises(KeyError):
        keys.revoke("nope")


def test_apikey_cli(tmp_path, capsys):
    path = str(tmp_path / "k" / "keys.json")
    assert (
        apikey_main(
            ["--keys", path, "create", "ada", "--scopes", "read,write", "--expires-in", "30"]
        )
        == 0
    )
    key = capsys.readouterr().out.strip()
    record = ApiKeyStore(path).verify(key)
    assert record.scopes == ("read", "write") and 29 * 86400 < record.expires - time.time()
    assert apikey_main(["--keys", path, "create", "bob"]) == 0
    bob = capsys.readouterr().out.strip()
    assert apikey_main(["--keys", path, "list"]) == 0
    listing = capsys.readouterr().out
    assert record.id in listing and "ada" in listing and "bob" in listing
    assert key.split(".")[1] not in listing and record.hash not in listing
    assert apikey_main(["--keys", path, "revoke", record.id]) == 0
    capsys.readouterr()
    with pytest.raises(Unauthorized):
        ApiKeyStore(path).verify(key)
    assert ApiKeyStore(path).verify(bob).user == "bob"
    apikey_main(["--keys", path, "list"])
    assert "revoked" in capsys.readouterr().out
    assert apikey_main(["--keys", path, "revoke", "nope"]) == 1
    assert apikey_main(["--keys", path, "create", "ada", "--scopes", "root"]) == 2
    assert apikey_main(["--keys", path, "create", "ada", "--expires-in", "0"]) == 2


# -- tokens -----------------------------------------------------------------------------------


def test_jwt_with_a_jwks_file(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e"},
        ]
    }
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    verifier = JWTVerifier("iss", "aud", jwks_path=tmp_path / "jwks.json", leeway=1)
    claims = {"iss": "iss", "aud": "aud", "sub": "ada", "exp": int(time.time()) + 60}
    assert (
        verifier.verify(jwt.encode(claims, rsa_key, "RS256", headers={"kid": "r"}))["sub"] == "ada"
    )
    assert (
        verifier.verify(jwt.encode(claims, ec_key, "ES256", headers={"kid": "e"}))["sub"] == "ada"
    )
    assert verifier.verify(jwt.encode(claims, ec_key, "ES256"))["sub"] == "ada"  # no kid
    with pytest.raises(Unauthorized, match="signature"):
        verifier.verify(jwt.encode(claims, ec_key, "ES256", headers={"kid": "r"}))
    with pytest.raises(ValueError):
        JWTVerifier("iss", "aud")
    with pytest.raises(ValueError):
        JWTVerifier("iss", "aud", keys={"k": rsa_key.public_key()}, algorithms=["HS256"])


def test_authenticator_without_a_provider_and_scopes():
    auth = Authenticator(AuthConfig())
    with pytest.raises(Unauthorized, match="credentials"):
        auth.identify(None)
    with pytest.raises(Unauthorized, match="not understood"):
        auth.identify("Apikey abc.def")  # no key store configured
    anonymous = Authenticator(AuthConfig(allow_anonymous=True)).identify("")
    assert anonymous.principal.name == "anonymous" and anonymous.scopes == ("read",)


# -- providers --------------------------------------------------------------------------------


def test_file_provider_yaml_reloads(tmp_path):
    path = tmp_path / "users.yml"
    path.write_text(
        "users:\n  ada: {proposals: [101], beamtimes: bt-7}\n"
        "  sam: {roles: [staff], beamlines: [csx]}\n"
    )
    provider = FileProvider(path)
    assert provider.principal("ada") == Principal("ada", proposals=("101",), beamtimes=("bt-7",))
    assert provider.principal("sam").roles == ("staff",)
    assert provider.principal("nobody") is None
    time.sleep(0.01)
    path.write_text("users:\n  sam: {roles: [staff], beamlines: [csx, chx]}\n")
    assert provider.principal("ada") is None
    assert provider.principal("sam").beamlines == ("csx", "chx")
    assert StaticProvider({"x": {}}).principal("x") == Principal("x")


USERS = {"ada": {"proposals": ["p-A"]}, "root": {"roles": ["admin"]}}


class _Users(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        name = self.path.rsplit("/", 1)[-1]
        if name == "slow":
            time.sleep(1.0)
        if name == "broken":
            self.send_response(500)
            self.end_headers()
            return
        if self.path.startswith("/users/") and name in USERS:
            body = json.dumps(USERS[name]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def user_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Users)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_provider(user_service):
    provider = HTTPProvider(user_service, timeout=0.3, cache_seconds=0)
    assert provider.principal("ada") == Principal("ada", proposals=("p-A",))
    assert provider.principal("root").is_admin
    assert provider.principal("nobody") is None
    assert provider.principal("../users/ada") is None  # names are quoted, not paths
    with pytest.raises(ProviderUnavailable, match="cannot be reached"):
        provider.principal("slow")
    with pytest.raises(ProviderUnavailable, match="500"):
        provider.principal("broken")
    with pytest.raises(ProviderUnavailable):
        HTTPProvider("http://127.0.0.1:9", timeout=0.3).principal("ada")


def test_http_provider_behind_the_service(live_server, user_service, tmp_path):
    store = MemoryStore()
    for scan_id, proposal in ((1, "p-A"), (2, "p-B")):
        insert_all(store, factories.scalar_run(scan_id=scan_id, proposal_id=proposal))
    keys = ApiKeyStore(tmp_path / "keys.json")
    ada, root = keys.create("ada")[1], keys.create("root")[1]
    broken = keys.create("broken")[1]
    config = AuthConfig(api_keys=keys, provider=HTTPProvider(user_service, timeout=0.5))
    url = live_server.mount(store, auth=config)
    try:

        def count(key: str) -> httpx.Response:
            return httpx.get(f"{url}/api/v1/runs/count", headers={"Authorization": f"Apikey {key}"})

        assert count(ada).json() == {"count": 1}
        assert count(root).json() == {"count": 2}
        assert count(broken).status_code == 503
    finally:
        live_server.unmount(url)


# -- configuration for the workers ------------------------------------------------------------

AUTH = AuthConfig()


def make_auth() -> AuthConfig:
    return AuthConfig(allow_anonymous=True)


def test_load_auth_by_name():
    from intake_broker_server.app import load_auth

    assert load_auth(None) is None and load_auth(AUTH) is AUTH
    assert load_auth(f"{__name__}:AUTH") is AUTH
    assert load_auth(f"{__name__}:make_auth").allow_anonymous
    with pytest.raises(ValueError):
        load_auth("no-colon")
    with pytest.raises(TypeError):
        load_auth(f"{__name__}:USERS")
