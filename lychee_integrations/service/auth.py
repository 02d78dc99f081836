"""API-key authentication: ``Authorization: Bearer <key>``, checked before the body is read.

Paths are protected by default; the open ones are listed (liveness, readiness, the docs page
and its assets, the OpenAPI description) or handed over to another gate (the web page,
which asks for the key on its own login form). A refused request gets 401 with a JSON
``detail`` and ``WWW-Authenticate: Bearer``, whatever its body.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from lychee_integrations.service.middleware import HttpMiddleware, send_json

__all__ = ["AuthPolicy", "BearerAuthMiddleware", "key_matches"]


def key_matches(given: str, expected: str) -> bool:
    """Compare two keys in constant time (the time does not tell how much of a guess was right).

    Example:
        >>> key_matches("s3cret", "s3cret"), key_matches("s3creT", "s3cret")
        (True, False)

    """
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class AuthPolicy:
    """Which paths need the key: all but ``open_paths`` and paths under ``open_prefixes``.

    Args:
        api_key: The key; ``None`` leaves every path open.
        open_paths: Exact paths served without the key.
        open_prefixes: Path prefixes served without the key (``"/ui"`` covers ``/ui`` and
            ``/ui/...``); used for parts with a gate of their own.

    """

    def __init__(self, api_key: str | None, open_paths: Iterable[str] = (), open_prefixes: Iterable[str] = ()) -> None:
        self.api_key = api_key
        self.open_paths = set(open_paths)
        self.open_prefixes = set(open_prefixes)

    def open_prefix(self, prefix: str) -> None:
        """Serve ``prefix`` and everything under it without the key (it has a gate of its own)."""
        self.open_prefixes.add(prefix.rstrip("/"))

    def needs_key(self, path: str) -> bool:
        """Whether a request for ``path`` must carry the key."""
        if self.api_key is None or path in self.open_paths:
            return False
        return not any(path == p or path.startswith(p + "/") for p in self.open_prefixes)

    def problem(self, authorization: str | None) -> str | None:
        """Return why an ``Authorization`` header value is refused, or ``None`` when it is accepted."""
        assert self.api_key is not None
        if not authorization:
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed Authorization header: expected 'Authorization: Bearer <key>'"
        if not key_matches(token.strip(), self.api_key):
            return "invalid API key"
        return None


class BearerAuthMiddleware(HttpMiddleware):
    """Refuse HTTP requests without the right bearer key on the paths the policy protects.

    Args:
        app: The ASGI application to protect.
        policy: The key and the open paths.

    """

    def __init__(self, app: ASGIApp, policy: AuthPolicy) -> None:
        super().__init__(app)
        self.policy = policy

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key, then run the wrapped app."""
        if scope.get("method") == "OPTIONS" or not self.policy.needs_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        # The first Authorization header counts (as Starlette's request.headers reads it); a
        # dict of the headers would keep the last one.
        raw = next((value for name, value in scope.get("headers") or () if name.lower() == b"authorization"), None)
        problem = self.policy.problem(raw.decode("latin-1") if raw is not None else None)
        if problem is None:
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, problem, (b"www-authenticate", b'Bearer realm="lychee"'))
