"""`/api/cluster`: the Ray cluster's nodes (GPUs, CPUs, the jobs on each) for the dashboard's Cluster
panel, read from the daemon's snapshot file; ControlPilot never connects to Ray itself."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app

from lorapilot.cluster.nodes import cluster_report
from lorapilot.web.app import workspace_of

bp = Blueprint("cluster", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/api/cluster")
def cluster_now() -> Response:
    """`enabled: false` with the reason when cluster mode is off: the page then hides the panel."""
    report = cluster_report(workspace_of(current_app))
    return Response(report.model_dump_json(), mimetype="application/json")
