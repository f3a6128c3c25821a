"""`/api/cluster`: the cluster panel's data, from the daemon's snapshot file, behind the login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lorapilot.cluster.nodes import ClusterNode, ClusterView, write_cluster_view


def test_cluster_mode_off_answers_enabled_false_with_the_reason(session, monkeypatch):
    monkeypatch.delenv("LORAPILOT_RAY_ADDRESS", raising=False)
    report = session.ok("GET", "/api/cluster")
    assert report["enabled"] is False and report["nodes"] == []
    assert report["message"] == "cluster mode is off: set LORAPILOT_RAY_ADDRESS or config/cluster.yaml"


def test_the_nodes_with_their_gpus_and_jobs(session, ws, monkeypatch):
    monkeypatch.setenv("LORAPILOT_RAY_ADDRESS", "10.0.0.1:6379")
    assert "no snapshot of the cluster yet" in session.ok("GET", "/api/cluster")["message"]

    node = ClusterNode(name="pod-7", node_id="n7", address="10.0.0.7", alive=True, gpus=2, cpus=8, jobs=["a"])
    taken = datetime.now(UTC) - timedelta(minutes=5)
    write_cluster_view(ws, ClusterView(ray_address="10.0.0.1:6379", updated_at=taken, nodes=[node]))
    report = session.ok("GET", "/api/cluster")
    assert report["enabled"] is True and report["message"] is None
    assert report["nodes"] == [node.model_dump(mode="json")]
    assert report["stale"] is True and 299 < report["age_s"] < 330


def test_a_bad_cluster_file_is_a_400_naming_the_field(session, ws, monkeypatch):
    monkeypatch.delenv("LORAPILOT_RAY_ADDRESS", raising=False)
    ws.cluster_config.write_text("cluster:\n  sync_interval_s: 0\n")
    reply = session.call("GET", "/api/cluster")
    assert reply.status_code == 400
    assert "cluster.yaml" in reply.json["error"] and "sync_interval_s" in reply.json["error"]


def test_the_route_needs_the_password(app):
    reply = app.test_client().get("/api/cluster")
    assert reply.status_code == 401
