"""A logged-in HTTP client for the appliance's web services, for tests and scripts.

It logs in the way a browser does (the login form's CSRF token, then the password) and sends the
session's CSRF token on every request, so it exercises the same protection the page relies on.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests


class ApplianceClient:
    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.csrf = ""
        self.timeout_s = timeout_s

    def login(self, password: str) -> requests.Response:
        page = self.http.get(f"{self.url}/login", timeout=self.timeout_s)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        token = found.group(1) if found else ""
        reply = self.http.post(
            f"{self.url}/login",
            json={"password": password},
            headers={"X-CSRF-Token": token},
            timeout=self.timeout_s,
        )
        if reply.ok:
            self.csrf = reply.json()["csrf_token"]
        return reply

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.request(
            method, f"{self.url}{path}", headers=headers, timeout=self.timeout_s, **kwargs
        )

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON reply; raises AssertionError with the status and body when it is not 2xx."""
        reply = self.call(method, path, **kwargs)
        if not reply.ok:
            raise AssertionError(f"{method} {path}: {reply.status_code} {reply.text}")
        return reply.json()

    # -- TagPilot ---------------------------------------------------------------------------------
    def new_dataset(self, prefix: str, **settings: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.ok("POST", "/api/datasets", json={"name": name, **settings})
        return name

    def upload(self, dataset: str, files: list[tuple[str, bytes]]) -> requests.Response:
        parts = [("files", (name, content, "application/octet-stream")) for name, content in files]
        return self.call("POST", f"/api/datasets/{dataset}/upload", files=parts)
