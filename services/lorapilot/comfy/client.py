"""A client for ComfyUI's HTTP + websocket API (Comfy-Org/ComfyUI `server.py`).

Every request has a timeout; connection failures and 5xx answers are retried with exponential
backoff, then raise `ComfyUnavailableError` naming the URL. A 400 from `POST /prompt` raises
`WorkflowRejectedError` with ComfyUI's `node_errors`. Progress comes from the `/ws?clientId=`
websocket: `executing` with `node: null` for our prompt means it finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import websocket

from lorapilot.comfy.errors import (
    ComfyHTTPError,
    ComfyTimeoutError,
    ComfyUnavailableError,
    PromptFailedError,
    WorkflowRejectedError,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8188"


@dataclass(frozen=True)
class ImageRef:
    """One image a prompt wrote, as `/history` lists it."""

    node_id: str
    filename: str
    subfolder: str
    type: str


@dataclass
class ComfyClient:
    url: str = DEFAULT_URL
    timeout: float = 10.0  # one HTTP request
    retries: int = 3  # extra attempts after a connection failure or a 5xx
    backoff: float = 0.5  # first wait between attempts; doubles each time
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    # -- plumbing -------------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> bytes:
        url = f"{self.url}{path}"
        delay = self.backoff
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return answer.read()
            except urllib.error.HTTPError as exc:
                payload = exc.read()
                if exc.code < 500:
                    return self._client_error(exc.code, path, payload)
                last = ComfyHTTPError(
                    f"ComfyUI answered {exc.code} to {method} {path}: {_short(payload)}", exc.code
                )
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, DNS
                last = exc
            log.debug("%s %s failed (attempt %d): %s", method, url, attempt + 1, last)
        if isinstance(last, ComfyHTTPError):
            raise last
        raise ComfyUnavailableError(
            f"ComfyUI is not answering at {self.url} ({_reason(last)}) after {self.retries + 1} attempts; "
            "is the comfyui program running (supervisorctl status comfyui) and the URL right?"
        )

    def _client_error(self, status: int, path: str, payload: bytes) -> bytes:
        data: Any = None
        with contextlib.suppress(ValueError):
            data = json.loads(payload)
        if status == 400 and path.endswith("/prompt") and isinstance(data, dict):
            error = (
                data.get("error")
                if isinstance(data.get("error"), dict)
                else {"message": str(data.get("error"))}
            )
            raise WorkflowRejectedError(error, data.get("node_errors") or {})
        raise ComfyHTTPError(f"ComfyUI answered {status} to {path}: {_short(payload)}", status)

    def _get_json(self, path: str) -> Any:
        return json.loads(self._request("GET", path))

    def _post_json(self, path: str, value: Any) -> Any:
        body = json.dumps(value).encode()
        return json.loads(self._request("POST", path, body, {"Content-Type": "application/json"}) or b"{}")

    # -- routes ---------------------------------------------------------------------------------
    def system_stats(self) -> dict[str, Any]:
        return self._get_json("/system_stats")

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        suffix = f"/{urllib.parse.quote(node_class)}" if node_class else ""
        return self._get_json(f"/object_info{suffix}")

    def queue(self) -> dict[str, Any]:
        """`{"queue_running": [...], "queue_pending": [...]}`: the prompts ComfyUI runs and will run."""
        return self._get_json("/queue")

    def queue_prompt(self, workflow: dict[str, Any]) -> str:
        answer = self._post_json("/prompt", {"prompt": workflow, "client_id": self.client_id})
        if answer.get("node_errors"):
            raise WorkflowRejectedError({"message": "node errors"}, answer["node_errors"])
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict[str, Any]:
        return self._get_json(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id, {})

    def view(self, image: ImageRef) -> bytes:
        query = urllib.parse.urlencode(
            {"filename": image.filename, "subfolder": image.subfolder, "type": image.type}
        )
        return self._request("GET", f"/view?{query}")

    def upload_image(
        self, name: str, data: bytes, subfolder: str = "", overwrite: bool = True
    ) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        parts = []
        for key, value in (
            ("overwrite", "true" if overwrite else "false"),
            ("type", "input"),
            ("subfolder", subfolder),
        ):
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return json.loads(self._request("POST", "/upload/image", b"".join(parts), headers))

    # -- running a workflow ---------------------------------------------------------------------
    def _connect(self) -> websocket.WebSocket:
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        try:
            return websocket.create_connection(f"{ws_url}/ws?clientId={self.client_id}", timeout=self.timeout)
        except (OSError, websocket.WebSocketException) as exc:
            raise ComfyUnavailableError(
                f"ComfyUI's websocket at {ws_url}/ws does not answer ({exc}); is the comfyui program running?"
            ) from exc

    def run(self, workflow: dict[str, Any], timeout: float = 600.0) -> list[tuple[ImageRef, bytes]]:
        """Queue `workflow`, wait for it on the websocket, and return the images it saved."""
        sock = self._connect()
        try:
            prompt_id = self.queue_prompt(workflow)
            self._wait(sock, prompt_id, timeout)
        finally:
            sock.close()
        return [(ref, self.view(ref)) for ref in self.images_of(prompt_id)]

    def _wait(self, sock: websocket.WebSocket, prompt_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ComfyTimeoutError(f"prompt {prompt_id} did not finish within {timeout:g} s")
            sock.settimeout(min(left, self.timeout))
            try:
                frame = sock.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException) as exc:
                raise ComfyUnavailableError(
                    f"ComfyUI closed the websocket while running {prompt_id}: {exc}"
                ) from exc
            if not isinstance(frame, str):
                continue  # binary frames are previews
            message = json.loads(frame)
            kind, data = message.get("type"), message.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "execution_error":
                raise PromptFailedError(
                    f"ComfyUI failed prompt {prompt_id} in node {data.get('node_id')} "
                    f"({data.get('node_type')}): {data.get('exception_message', '').strip()}"
                )
            if kind == "execution_interrupted":
                raise PromptFailedError(f"prompt {prompt_id} was interrupted in ComfyUI")
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return

    def images_of(self, prompt_id: str) -> list[ImageRef]:
        entry = self.history(prompt_id)
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise PromptFailedError(f"ComfyUI reports prompt {prompt_id} failed: {status.get('messages')}")
        refs = []
        for node_id, output in sorted((entry.get("outputs") or {}).items()):
            for image in output.get("images") or []:
                refs.append(
                    ImageRef(
                        node_id, image["filename"], image.get("subfolder", ""), image.get("type", "output")
                    )
                )
        return refs


def _short(payload: bytes, limit: int = 300) -> str:
    text = payload.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _reason(exc: Exception | None) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
