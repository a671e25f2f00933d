"""Access control: the bearer token, signed session cookies for the pages, and CSRF tokens.

API clients send ``Authorization: Bearer TOKEN``. A browser logs in once with the token and gets
a session cookie (HttpOnly, SameSite=Lax) holding ``<issued>.<nonce>.<mac>``: the MAC is an
HMAC-SHA256 under a key derived from the token, so the cookie carries no secret, cannot be
forged, and every session ends when the token changes. A form's CSRF token is a second MAC over
the session's nonce. All comparisons use :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request

SESSION_COOKIE = "chrono_session"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token holder (API) or a browser session (pages and forms)."""

    via: str
    """bearer | session"""
    csrf: str | None = None
    """The session's CSRF token (None for bearer calls, which need none: no ambient cookie)."""


class NotAuthenticated(Exception):
    """Raised by :meth:`Auth.require`; the app answers 401 (API) or a redirect (pages)."""


class Auth:
    """Checks tokens, issues and verifies session cookies and CSRF tokens."""

    def __init__(self, token: str, session_hours: float = 12.0) -> None:
        self._token = token.encode("utf-8")
        self._key = hmac.new(self._token, b"chrono-session-v1", hashlib.sha256).digest()
        self.session_seconds = int(session_hours * 3600)

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8"), self._token)

    def _mac(self, purpose: str, payload: str) -> str:
        return hmac.new(self._key, f"{purpose}:{payload}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        payload = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._mac('session', payload)}"

    def session_nonce(self, cookie: str) -> str | None:
        """The nonce of a valid, unexpired cookie, else None."""
        parts = cookie.split(".")
        if len(parts) != 3:
            return None
        issued, nonce, mac = parts
        if not hmac.compare_digest(mac, self._mac("session", f"{issued}.{nonce}")):
            return None
        try:
            age = time.time() - int(issued)
        except ValueError:
            return None
        return nonce if 0 <= age <= self.session_seconds else None

    def csrf_for(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value and self.token_ok(value.strip()):
            return Principal("bearer")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            nonce = self.session_nonce(cookie)
            if nonce is not None:
                return Principal("session", self.csrf_for(nonce))
        return None

    def require(self, request: Request) -> Principal:
        found = self.principal(request)
        if found is None:
            raise NotAuthenticated()
        return found

    def check_csrf(self, principal: Principal, submitted: str | None) -> bool:
        """Bearer calls carry no ambient credential, so they need no CSRF token."""
        if principal.via == "bearer":
            return True
        return bool(submitted) and principal.csrf is not None and hmac.compare_digest(
            submitted or "", principal.csrf)
