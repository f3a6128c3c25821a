"""Hypothesis strategies for fuzzing the web services' JSON APIs and upload paths, and the checks
each fuzzed request is held to: no unexpected exception (a 500), no file outside the workspace.

Shared by tests/integration/web/test_fuzz_*.py and longer runs. Bodies start from a valid body of
each route and are mutated with the strings attackers and careless users send (traversal, absolute
paths, NUL, 5,000 characters, numbers too big for `int()` or `float()`), so requests get past the
first type check and reach the code that turns a value into a path.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from PIL import Image

from lorapilot.families import SD15
from lorapilot.testing.sample_photos import sixteen_bit_png

HUGE_DIGITS = "9" * 5000
_RAW = "\x00raw-json:"  # a string marker replaced by raw JSON text (numbers json.dumps cannot write)


def raw_json(text: str) -> str:
    """A value that is sent as the raw JSON `text`, e.g. `1e309` or a 5,000-digit integer."""
    return f"{_RAW}{text}\x00"


def encode(body: Any) -> str:
    """The JSON text of `body`, with `raw_json` values written as they are."""
    text = json.dumps(body)
    return re.sub(r'"\\u0000raw-json:(.*?)\\u0000"', lambda m: m.group(1), text)


def odd_strings(outside: Path) -> list[str]:
    """What a request may carry where a name or path belongs; `outside` is a folder outside the
    workspace that must stay empty (absolute paths into it are canaries)."""
    return [
        "",
        " ",
        ".",
        "..",
        "../",
        "../../../../etc/passwd",
        "../" * 12 + "tmp/lorapilot-fuzz",  # ESCAPE_CANARY
        str(outside / "canary"),
        str(outside / "canary.safetensors"),
        f"/workspace/../{outside.name}/x",
        "/workspace/" + "../" * 12 + str(outside).lstrip("/"),
        "/etc/hostname",
        "/workspace",
        "/workspace/datasets/images",
        "~/x",
        "a/b",
        "a\\..\\b",
        "%2e%2e%2f",
        "a\x00b",
        "\x00",
        "x\n/y",
        "\r\nX-Injected: 1",
        "a" * 5000,
        "/workspace/" + "d/" * 2100,
        "n" * 256,
        HUGE_DIGITS,
        "1e309",
        "-1",
        "NaN",
        "CON",
        "\u202etxt.exe",
        "💥",
        "\ud800",
        "demo",
        "quick_test",
        SD15.id,
        "all",
    ]


def json_values(outside: Path) -> st.SearchStrategy[Any]:
    """Any JSON value, leaning towards the odd ones."""
    scalars = st.one_of(
        st.sampled_from(odd_strings(outside)),
        st.text(max_size=30),
        st.integers(),
        st.floats(allow_nan=False),
        st.sampled_from(
            [raw_json(HUGE_DIGITS), raw_json("-" + HUGE_DIGITS), raw_json("1e309"), raw_json("-1e309")]
        ),
        st.sampled_from([None, True, False, 0, -1, 2**63, 10**30, 0.5, -0.0]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=8,
    )


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any], outside: Path) -> Any:
    """`template` with up to three fields replaced, removed or added, or (rarely) any JSON value."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values(outside))
    body = dict(template)
    keys = sorted(body) or ["x"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "replace", "splice", "splice", "remove", "add", "wrap"]))
        key = draw(st.sampled_from(keys))
        if action == "splice" and key in body:
            body[key] = draw(spliced(body[key], outside))
        elif action == "replace":
            body[key] = draw(st.one_of(st.sampled_from(odd_strings(outside)), json_values(outside)))
        elif action == "remove":
            body.pop(key, None)
        elif action == "add":
            added = draw(st.sampled_from([*keys, "extra", "__proto__", "path", "name"]))
            body[added] = draw(json_values(outside))
        elif key in body:
            body[key] = draw(st.sampled_from([[body[key]], {"value": body[key]}, str(body[key])]))
    return body


@st.composite
def spliced(draw: st.DrawFn, value: Any, outside: Path) -> Any:
    """A text value (or one item of a list of texts) kept up to a `=` or `/` and continued with an
    odd string: `training.max_steps=` + 5,000 digits, `/workspace/imports/` + `../../etc`."""
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        items = list(value)
        index = draw(st.integers(0, len(items) - 1))
        items[index] = draw(spliced(items[index], outside))
        return items
    if not isinstance(value, str):
        return draw(st.sampled_from(odd_strings(outside)))
    cuts = sorted({0, len(value), *(i + 1 for i, ch in enumerate(value) if ch in "=/.")})
    return value[: draw(st.sampled_from(cuts))] + draw(st.sampled_from(odd_strings(outside)))


def path_params(outside: Path, known: list[str]) -> st.SearchStrategy[str]:
    """A URL path parameter: a name that exists, or an odd one (no lone surrogates: URLs are UTF-8)."""
    printable = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
    odd = [s for s in odd_strings(outside) if s and "\ud800" not in s]
    return st.one_of(st.sampled_from(known), st.sampled_from(odd), printable)


def build_url(rule: str, values: dict[str, str]) -> str:
    """The rule's URL with each `<param>` percent-encoded (so `/`, `?` and `#` stay inside it)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: quote(values[m.group(1)], safe=""), rule)


@dataclass(frozen=True)
class Route:
    endpoint: str
    rule: str
    method: str
    params: tuple[str, ...]


def routes(app: Flask, skip: set[str]) -> list[Route]:
    """Every (rule, method) of the app but the `skip`ped endpoints, in a stable order."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in skip:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Route(rule.endpoint, rule.rule, method, tuple(sorted(rule.arguments))))
    return sorted(found, key=lambda r: (r.rule, r.method))


def send(
    client: FlaskClient, route: Route, url: str, body: object, query: dict[str, str] | None = None
) -> Any:
    """One request on `route`: with `body` as JSON, or without a body when it is None."""
    if body is None:
        return client.open(url, method=route.method, query_string=query)
    return client.open(
        url, method=route.method, query_string=query, data=encode(body), content_type="application/json"
    )


# -- uploads ------------------------------------------------------------------------------------------
_MODES = {  # format → the colour modes it writes
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "I;16", "1", "RGB;16", "RGBA;16"],
    "JPEG": ["RGB", "L", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["RGB", "L", "P"],
    "GIF": ["P", "L"],
    "TIFF": ["RGB", "RGBA", "CMYK", "I;16", "F"],
}


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """A small valid image of any format and colour mode intake reads, each one different (so it
    is stored, not refused as a duplicate)."""
    fmt = draw(st.sampled_from(sorted(_MODES)))
    mode = draw(st.sampled_from(_MODES[fmt]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    if mode in ("RGB;16", "RGBA;16"):  # 16 bits a channel: Pillow cannot write these
        channels = len(mode.split(";")[0])
        return sixteen_bit_png(np.full((size[1], size[0], channels), draw(st.integers(0, 65535)), np.uint16))
    image = Image.new(mode, size)
    bands = len(image.getbands())
    for corner, value in (
        ((0, 0), draw(st.integers(0, 255))),
        ((size[0] - 1, size[1] - 1), draw(st.integers(0, 255))),
    ):
        image.putpixel(corner, value if bands == 1 else (value,) * bands)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@st.composite
def upload_content(draw: st.DrawFn, outside: Path) -> bytes:
    """An uploaded file's bytes: an image (maybe cut short or with bytes flipped), random bytes, a
    caption, or a zip whose members have odd names and contents."""
    kind = draw(st.sampled_from(["image", "image", "image", "cut", "flipped", "bytes", "caption", "zip"]))
    image = draw(images())
    if kind == "image":
        return image
    if kind == "cut":
        return image[: draw(st.integers(0, len(image) - 1))]
    if kind == "flipped":
        data = bytearray(image)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "bytes":
        return draw(st.binary(max_size=2048))
    if kind == "caption":
        text = st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
        return draw(st.one_of(text, st.binary(max_size=200)))
    member = st.tuples(zip_member_names(outside), upload_content(outside))
    members = draw(st.lists(member, min_size=1, max_size=4, unique_by=lambda m: m[0]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_member_names(outside: Path) -> st.SearchStrategy[str]:
    odd = [s for s in odd_strings(outside) if s and "\x00" not in s and "\ud800" not in s]
    plain = st.sampled_from(["a.png", "a.txt", "sub/b.jpg", "sub/b.caption", "__MACOSX/x.png", ".hidden.png"])
    return st.one_of(plain, st.sampled_from(odd), st.sampled_from(odd).map(lambda s: f"{s}.png"))


def file_names(outside: Path) -> st.SearchStrategy[str]:
    """A client's file name: ordinary, or with traversal, NUL, 5,000 characters, no suffix…"""
    odd = [s for s in odd_strings(outside) if "\ud800" not in s]
    suffixes = st.sampled_from(["", ".png", ".jpg", ".txt", ".caption", ".zip", ".PNG", ".tar.gz"])
    return st.one_of(
        st.sampled_from(["a.png", "b.jpg", "a.txt", "photos.zip"]),
        st.tuples(st.sampled_from(odd), suffixes).map("".join),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    )


# -- what must not happen -------------------------------------------------------------------------------
ESCAPE_CANARY = Path("/tmp/lorapilot-fuzz")  # where the `../` strings above lead from any workspace


class OutsideTheWorkspace:
    """Files that appear outside the workspace: anywhere under `around` (the folder holding the
    workspace, and $TMPDIR) but the workspace itself, directly in `beside` (the folder above), or
    at the escape canary. `new()` lists them."""

    def __init__(self, around: list[Path], beside: Path, workspace_root: Path) -> None:
        self.around, self.beside, self.workspace_root = around, beside, workspace_root
        self.before = self._listing()

    def new(self) -> list[str]:
        return sorted(self._listing() - self.before)

    def _listing(self) -> set[str]:
        found = {str(path) for folder in self.around for path in _walk(folder, self.workspace_root)}
        found |= {str(path) for path in self.beside.iterdir()}
        return found | ({str(ESCAPE_CANARY)} if os.path.lexists(ESCAPE_CANARY) else set())


def _walk(folder: Path, skip: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if here / d != skip]
        for name in dirs + files:
            yield here / name


def answer_ok(reply: Any, what: str) -> None:
    """A 5xx is a crash unless it is a named error's 502/503 (ComfyUI or supervisord unreachable)."""
    status = reply.status_code
    if status >= 500:
        body = reply.get_json(silent=True) or {}
        named = status in (502, 503) and isinstance(body.get("error"), str)
        assert named, f"{what}: {status} {reply.get_data(as_text=True)[:500]}"


def logged_in(app: Flask, password: str) -> FlaskClient:
    """A test client logged in like the page, sending the CSRF token with every request."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    reply = client.post("/login", json={"password": password}, headers={"X-CSRF-Token": token})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    client.environ_base["HTTP_X_CSRF_TOKEN"] = reply.get_json()["csrf_token"]
    return client
