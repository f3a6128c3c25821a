"""CSRF protection: a random token kept in the signed session, echoed by every state-changing request.

A page gets the token from its `<meta name="csrf-token">` (or a JSON client from the login reply)
and sends it as the `X-CSRF-Token` header or a `csrf_token` form field. A cross-site form cannot
read it, so it cannot forge the request even when the browser sends the cookie.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
_KEY = "csrf"


def csrf_token() -> str:
    """This session's token, created on first use."""
    token = session.get(_KEY)
    if not token:
        token = session[_KEY] = secrets.token_urlsafe(32)
    return token


def rotate_csrf_token() -> str:
    """A fresh token (on login), so one planted before login is useless after it."""
    session[_KEY] = secrets.token_urlsafe(32)
    return session[_KEY]


def csrf_ok() -> bool:
    """True for safe methods, or when the request carries this session's token."""
    if request.method in SAFE_METHODS:
        return True
    expected = session.get(_KEY)
    sent = request.headers.get(HEADER) or _form_token()
    if not (expected and sent):
        return False
    # bytes: compare_digest refuses str with non-ASCII characters, which a forged header may carry
    return hmac.compare_digest(str(sent).encode("utf-8", "surrogatepass"), str(expected).encode())


def _form_token() -> str | None:
    # only urlencoded/multipart bodies have form fields; reading JSON bodies here would consume them
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.get(FIELD)
    return None
