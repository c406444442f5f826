"""A small OpenID Connect issuer on loopback, for ``make run`` and the tests (never deployed).

Built on kept libraries: keys from ``cryptography`` (RSA 2048, RS256), tokens signed by PyJWT.
It serves:

- ``GET /.well-known/openid-configuration``: ``issuer``, ``jwks_uri``, ``token_endpoint``;
- ``GET /jwks``: every published public key (current first);
- ``POST /token`` (form or JSON): a token for a test user or back end. Fields: ``sub`` (default
  ``local-user``), ``clubs`` (comma list), ``roles`` (comma list), ``client_id`` (default
  ``local-frontend``), ``expires_in`` (seconds, default 3600). No password: it is a test issuer.

:meth:`OidcIssuer.rotate` publishes a new signing key beside the old ones; :meth:`retire` stops
publishing one. :meth:`issue` mints a token in-process (tests), with any claim overridden.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_AUDIENCE = "api://idrettsbro-local"
DEFAULT_CLIENT_ID = "local-frontend"


class OidcIssuer:
    """The issuer; :meth:`start` serves it on ``127.0.0.1:<port>`` (0: a free port)."""

    def __init__(self, *, audience: str = DEFAULT_AUDIENCE, host: str = "127.0.0.1", port: int = 0) -> None:
        self.audience = audience
        self._bind = (host, port)
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []  # published, newest first
        self._lock = threading.Lock()
        self.jwks_requests = 0
        self.server: ThreadingHTTPServer | None = None
        self.rotate()

    # -- keys -------------------------------------------------------------------------------
    def rotate(self) -> str:
        """Sign with a new key from now on; the old ones stay published. Returns the new ``kid``."""
        kid = uuid.uuid4().hex[:16]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._keys.insert(0, (kid, key))
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing the key ``kid`` (tokens it signed no longer verify after a JWKS refresh)."""
        with self._lock:
            self._keys = [(k, v) for k, v in self._keys if k != kid]

    @property
    def kid(self) -> str:
        return self._keys[0][0]

    def public_key(self, kid: str | None = None) -> Any:
        return dict(self._keys)[kid or self.kid].public_key()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in list(self._keys):
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    # -- tokens -----------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        if self.server is None:
            raise RuntimeError("start() the issuer first: its URL is the issuer id")
        return f"http://{self._bind[0]}:{self.server.server_port}"

    def claims(
        self,
        *,
        sub: str = "local-user",
        clubs: list[str] | None = None,
        roles: list[str] | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        expires_in: int = 3600,
    ) -> dict[str, Any]:
        now = int(time.time())
        out: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "azp": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
        }
        if clubs is not None:
            out["clubs"] = [str(c) for c in clubs]
        if roles:
            out["roles"] = list(roles)
        return out

    def issue(self, *, kid: str | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A signed RS256 token. Keyword arguments go to :meth:`claims`, except claim overrides given
        as ``extra={...}`` (a value None removes the claim)."""
        extra = claims.pop("extra", {})
        payload = self.claims(**claims)
        for name, value in extra.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        kid = kid or self.kid
        key = dict(self._keys)[kid]
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid, **(headers or {})})

    # -- serving ----------------------------------------------------------------------------
    def start(self) -> OidcIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/.well-known/openid-configuration":
                    base = issuer.issuer
                    self._send(
                        200,
                        {
                            "issuer": base,
                            "jwks_uri": base + "/jwks",
                            "token_endpoint": base + "/token",
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "grant_types_supported": ["client_credentials"],
                        },
                    )
                elif path == "/jwks":
                    issuer.jwks_requests += 1
                    self._send(200, issuer.jwks())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if self.path.split("?")[0] != "/token":
                    self._send(404, {"error": "not_found"})
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                try:
                    form = json.loads(raw) if raw.lstrip().startswith("{") else dict(parse_qsl(raw))
                    expires_in = int(form.get("expires_in") or 3600)
                except ValueError:
                    self._send(400, {"error": "invalid_request"})
                    return

                def listed(name: str) -> list[str]:
                    value = form.get(name) or ""
                    return value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]

                token = issuer.issue(
                    sub=str(form.get("sub") or "local-user"),
                    clubs=listed("clubs"),
                    roles=listed("roles"),
                    client_id=str(form.get("client_id") or DEFAULT_CLIENT_ID),
                    expires_in=expires_in,
                )
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(self._bind, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="oidc-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def settings(self) -> dict[str, str]:
        """The app settings that point the app at this issuer."""
        return {"AUTH_ISSUER": self.issuer, "AUTH_AUDIENCE": self.audience}
