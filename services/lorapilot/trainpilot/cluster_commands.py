"""`trainpilot cluster`: the Ray cluster's nodes (GPUs, CPUs, the jobs on each) from the daemon's
snapshot file, so it answers without a Ray connection of its own."""

from __future__ import annotations

import argparse
import sys

from lorapilot.cluster.nodes import ClusterReport, cluster_report
from lorapilot.trainpilot.options import add_workspace
from lorapilot.workspace import Workspace

EXIT_OK = 0
EXIT_NOTHING = 1  # cluster mode is off, or the daemon has not written a snapshot yet
HEADERS = ("NAME", "ADDRESS", "ALIVE", "GPUS", "CPUS", "JOBS")


def cmd_cluster(args: argparse.Namespace) -> int:
    report = cluster_report(Workspace.from_env(args.workspace))
    if args.json:
        print(report.model_dump_json(indent=1))
        return EXIT_OK if report.nodes else EXIT_NOTHING
    if report.message:
        print(report.message, file=sys.stderr)
        return EXIT_NOTHING
    print(f"Ray cluster at {report.ray_address}: snapshot {_age(report.age_s or 0.0)} old")
    print(nodes_table(report))
    if report.stale:
        print(
            "warning: the daemon has not updated this snapshot since then; is `trainpilot daemon` running? "
            "(logs/trainpilot.log)",
            file=sys.stderr,
        )
    return EXIT_OK


def nodes_table(report: ClusterReport) -> str:
    rows = [HEADERS] + [
        (
            node.name,
            node.address,
            "yes" if node.alive else "NO",
            _amount(node.gpus),
            _amount(node.cpus),
            ", ".join(node.jobs) or "-",
        )
        for node in report.nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def _amount(value: float) -> str:
    """Ray counts resources as floats (fractional GPUs exist); whole ones print as integers."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def add_cluster_command(sub: argparse._SubParsersAction) -> None:
    """Register `trainpilot cluster` on the `trainpilot` parser."""
    cluster = sub.add_parser(
        "cluster",
        help="the Ray cluster's nodes: GPUs, CPUs and the jobs on each (cluster mode)",
        description="Print the nodes of the Ray cluster the daemon runs jobs on, from the snapshot it "
        "writes every few seconds (cache/cluster/nodes.json), and how old that snapshot is. Exit 1 when "
        "cluster mode is off or there is no snapshot yet.",
    )
    cluster.add_argument("--json", action="store_true", help="print the report as JSON")
    add_workspace(cluster)
    cluster.set_defaults(handler=cmd_cluster)
