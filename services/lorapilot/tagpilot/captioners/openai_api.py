"""Any OpenAI-compatible chat endpoint with image input (vLLM, llama.cpp server, Ollama, LM Studio…).

The source is the API base URL (`http://host:port/v1`); each image goes as a base64 JPEG data URL
in one `/chat/completions` request. The API key lives only in the running job, never on disk or
in a log.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlparse

from PIL import Image

from lorapilot.tagpilot.captioners.base import CaptionerChoice, CaptionerError, register_backend
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "Write one detailed sentence describing this image, as a caption for training an image model."
)
MAX_SIDE = 1024  # endpoints resize anyway; sending less keeps requests small


class OpenAICaptioner:
    style = "sentence"

    def __init__(
        self, base_url: str, *, model: str, api_key: str = "", prompt: str = "", max_tokens: int = 120,
        timeout_s: float = 120.0,
    ) -> None:  # fmt: skip
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CaptionerError(f"endpoint {base_url!r} is not an http(s) URL such as http://host:8000/v1")
        if not model:
            raise CaptionerError("the openai backend needs 'model': the model name the endpoint serves")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.prompt = model, api_key, prompt or DEFAULT_PROMPT
        self.max_tokens, self.timeout_s = max_tokens, timeout_s

    def caption(self, images: list[Image.Image]) -> list[str]:
        return [self._one(image) for image in images]

    def _one(self, image: Image.Image) -> str:
        body = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt},
                        {"type": "image_url", "image_url": {"url": _data_url(image)}},
                    ],
                }
            ],
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read())
            return str(reply["choices"][0]["message"]["content"]).strip()
        except urllib.error.HTTPError as exc:
            raise CaptionerError(f"endpoint {self.url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise CaptionerError(f"cannot reach endpoint {self.url} ({exc})") from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CaptionerError(f"endpoint {self.url} sent no chat completion ({exc})") from exc

    def close(self) -> None:
        self.api_key = ""


def _data_url(image: Image.Image) -> str:
    small = image.copy()
    small.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


@register_backend("openai", options=("model", "api_key", "prompt", "max_tokens", "timeout_s"))
def _openai(choice: CaptionerChoice, workspace: Workspace) -> OpenAICaptioner:
    return OpenAICaptioner(
        choice.source,
        model=str(choice.option("model", "")),
        api_key=str(choice.option("api_key", "")),
        prompt=str(choice.option("prompt", "")),
        max_tokens=int(choice.option("max_tokens", 120)),
        timeout_s=float(choice.option("timeout_s", 120.0)),
    )
