"""A live server on a loopback port for the session; tests mount their own stores on it."""

from __future__ import annotations

import httpx
import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_server.testing import LiveServer


@pytest.fixture(scope="session")
def live_server():
    with LiveServer() as server:
        yield server


@pytest.fixture
def store():
    """A memory store holding a scalar run (10 events in chunks of 4), an image run and a run
    whose primary stream has two descriptors."""
    store = MemoryStore(chunk_rows=4)
    for docs in (
        factories.scalar_run(n=10),
        factories.image_run(n=5),
        factories.reconfigured_run(),
    ):
        insert_all(store, docs)
    return store


@pytest.fixture
def url(live_server, store):
    url = live_server.mount(store)
    yield url
    live_server.unmount(url)


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


class IdentityProvider:
    """A tiny OpenID Connect issuer for tests, on a random loopback port: its authorization
    endpoint logs in :attr:`user` at once (redirecting back with a code), its token endpoint
    gives an RS256 access token only for the code's PKCE ``code_verifier``, and it publishes
    its discovery document. :attr:`forge_state` answers with another state (a forged answer);
    :attr:`swap_challenge` binds its codes to another verifier (a code injected from another
    login); :attr:`asked` counts what each endpoint was asked and :attr:`refused` what it
    refused."""

    client_id = "intake-broker-web"
    audience = "intake-broker"

    def __init__(self) -> None:
        import base64
        import hashlib
        import json
        import secrets
        import socket
        import threading
        import time

        import jwt
        import uvicorn
        from cryptography.hazmat.primitives.asymmetric import rsa
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware
        from starlette.responses import JSONResponse, RedirectResponse
        from starlette.routing import Route

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "test-idp", "use": "sig", "alg": "RS256"}]}
        self.user = "ada"
        self.forge_state = False
        self.swap_challenge = False  # bind codes to another verifier (an injected code)
        self.claimed_issuer: str | None = None  # the issuer its discovery document names
        self.asked = {"authorize": 0, "token": 0}
        self.refused: list[str] = []
        self.response_modes: list[str] = []
        self.codes: dict[str, dict] = {}
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"

        def discovery(request):
            return JSONResponse(
                {
                    "issuer": self.claimed_issuer or self.issuer,
                    "authorization_endpoint": self.issuer + "/authorize",
                    "token_endpoint": self.issuer + "/token",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        def authorize(request):
            self.asked["authorize"] += 1
            q = request.query_params
            if q.get("client_id") != self.client_id or q.get("code_challenge_method") != "S256":
                self.refused.append("authorize: client or method")
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(24)
            other = base64.urlsafe_b64encode(hashlib.sha256(b"another").digest()).rstrip(b"=")
            self.codes[code] = {
                "challenge": other.decode() if self.swap_challenge else q["code_challenge"],
                "redirect_uri": q["redirect_uri"],
                "user": self.user,
            }
            state = "forged-" + secrets.token_urlsafe(8) if self.forge_state else q["state"]
            fragment = q.get("response_mode") == "fragment"
            sep = "#" if fragment else "&" if "?" in q["redirect_uri"] else "?"
            self.response_modes.append(q.get("response_mode", "query"))
            return RedirectResponse(f"{q['redirect_uri']}{sep}code={code}&state={state}", 302)

        async def token(request):
            self.asked["token"] += 1
            from urllib.parse import parse_qsl

            form = dict(parse_qsl((await request.body()).decode()[:10_000]))
            grant = self.codes.pop(str(form.get("code")), None)  # a code is used once
            verifier = str(form.get("code_verifier") or "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("client_id") != self.client_id
                or form.get("redirect_uri") != grant["redirect_uri"]
                or challenge != grant["challenge"]
            ):
                self.refused.append("token")
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "PKCE verification failed"},
                    status_code=400,
                )
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": grant["user"],
                "iat": now,
                "exp": now + 600,
                "scope": "openid read",
            }
            access = jwt.encode(claims, self.key, "RS256", headers={"kid": "test-idp"})
            return JSONResponse(
                {"access_token": access, "token_type": "Bearer", "expires_in": 600},
                headers={"Cache-Control": "no-store"},
            )

        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ],
            middleware=[Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["POST"])],
        )
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test identity provider did not start")
            time.sleep(0.01)

    def write_auth_file(
        self, folder, users: str = "users.yml", response_mode: str = "query", extra: str = ""
    ) -> object:
        """An auth file trusting this issuer (keys in a JWKS file), its endpoints discovered."""
        import json

        (folder / "idp-jwks.json").write_text(json.dumps(self.jwks))
        path = folder / "auth.yml"
        path.write_text(
            f"users: {users}\n"
            "jwt:\n"
            f"  issuer: {self.issuer}\n"
            f"  audience: {self.audience}\n"
            "  jwks: idp-jwks.json\n"
            "  algorithms: [RS256]\n"
            "oidc:\n"
            f"  client_id: {self.client_id}\n"
            "  scope: openid profile\n"
            "  label: Test Login\n"
            f"  response_mode: {response_mode}\n" + extra
        )
        return path

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def identity_provider():
    """A test OpenID Connect issuer on a random loopback port (see :class:`IdentityProvider`)."""
    idp = IdentityProvider()
    yield idp
    idp.stop()
