"""The one rule for links to service ports: RunPod's proxy, a LORAPILOT_PUBLIC_URL pattern, or the
host the page came from; a setting that cannot make a link stops the start with its name and a fix."""

from __future__ import annotations

import pytest

from lorapilot.web.public_links import PublicLinkError, PublicLinks

PAGE = "http://10.0.0.5:7878/"


def links(**environ: str) -> dict[str, str]:
    return PublicLinks.from_env(environ).services(PAGE)


def test_on_a_runpod_pod_every_service_opens_through_runpod_s_proxy():
    assert links(RUNPOD_POD_ID="abc") == {
        "tagpilot": "https://abc-7861.proxy.runpod.net/",
        "controlpilot": "https://abc-7878.proxy.runpod.net/",
        "comfyui": "https://abc-8188.proxy.runpod.net/",
    }


def test_the_ports_are_the_appliance_s_configured_ones():
    got = links(RUNPOD_POD_ID="x1y2", LORAPILOT_TAGPILOT_PORT="9001", LORAPILOT_COMFYUI_PORT="9002")
    assert got["tagpilot"] == "https://x1y2-9001.proxy.runpod.net/"
    assert got["comfyui"] == "https://x1y2-9002.proxy.runpod.net/"


@pytest.mark.parametrize(
    ("pattern", "tagpilot"),
    [
        ("https://gpu.example.com:{port}/", "https://gpu.example.com:7861/"),
        ("https://{port}.example.com/", "https://7861.example.com/"),
        ("https://gpu.example.com:{port}", "https://gpu.example.com:7861/"),  # a bare host gets its /
        ("http://example.com/p/{port}/", "http://example.com/p/7861/"),
    ],
)
def test_a_public_url_pattern_puts_the_port_where_it_says(pattern, tagpilot):
    assert links(LORAPILOT_PUBLIC_URL=pattern)["tagpilot"] == tagpilot


def test_a_public_url_set_on_a_pod_wins_over_the_runpod_proxy():
    got = links(RUNPOD_POD_ID="abc", LORAPILOT_PUBLIC_URL="https://{port}.tunnel.example/")
    assert got["comfyui"] == "https://8188.tunnel.example/"


def test_without_either_a_link_is_the_page_s_host_on_the_service_s_port():
    assert links()["tagpilot"] == "http://10.0.0.5:7861/"
    default = PublicLinks.from_env({})
    assert default.url(8188, "https://[::1]:7878/") == "https://[::1]:8188/"
    assert default.url(7861, "http://pod.local/") == "http://pod.local:7861/"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("https://gpu.example.com/", "no {port} placeholder"),
        ("https://{host}:{port}/", "only placeholder"),
        ("ftp://example.com:{port}/", "http:// or https://"),
        ("https://:{port}/", "names no host"),
        ("https://example.com:{port}x/", "its port is not"),
        ("https://user:secret@example.com:{port}/", "user name or password"),
        ("https://exa mple.com:{port}/", "whitespace"),
    ],
)
def test_a_pattern_that_cannot_make_links_is_refused_naming_the_variable(pattern, problem):
    with pytest.raises(PublicLinkError, match="LORAPILOT_PUBLIC_URL") as caught:
        PublicLinks.from_env({"LORAPILOT_PUBLIC_URL": pattern})
    assert problem in str(caught.value) and "e.g. https://gpu.example.com:{port}/" in str(caught.value)


def test_a_pod_id_that_is_not_one_is_refused():
    with pytest.raises(PublicLinkError, match="RUNPOD_POD_ID='a/b' is not a RunPod pod id"):
        PublicLinks.from_env({"RUNPOD_POD_ID": "a/b"})


def test_a_port_that_is_not_one_is_refused():
    with pytest.raises(PublicLinkError, match="LORAPILOT_COMFYUI_PORT='http' is not a port"):
        PublicLinks.from_env({"LORAPILOT_COMFYUI_PORT": "http"})
