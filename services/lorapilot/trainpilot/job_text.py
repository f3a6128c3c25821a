"""What `list` and `status` print for people, from the job views (lorapilot.spool.views) that their
`--json` prints as they are."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lorapilot.spool import JobState


def progress_text(view: dict[str, Any]) -> str:
    status = view["status"] or {}
    if view["state"] == JobState.QUEUED:
        return f"#{view['position']} in queue" if view["position"] else JobState.QUEUED.value
    total = status.get("total")
    return f"{status.get('step', 0)}/{total}" if total else "-"


def table(views: list[dict[str, Any]]) -> str:
    rows = [("ID", "NAME", "STATE", "PROGRESS", "LOSS", "PRIORITY", "SUBMITTED")]
    for view in views:
        loss = (view["status"] or {}).get("loss")
        rows.append(
            (
                view["id"],
                view["name"],
                view["state"],
                progress_text(view),
                f"{loss:.4f}" if loss is not None else "-",
                str(view["priority"]),
                _local(view["submitted_at"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def describe(view: dict[str, Any]) -> str:
    """`trainpilot status NAME` for people."""
    status = view["status"] or {}
    lines = [f"job:       {view['name']} ({view['id']})", f"state:     {view['state']}"]
    if status.get("total"):
        parts = [f"step {status['step']}/{status['total']}"]
        if status.get("loss") is not None:
            parts.append(f"loss {status['loss']:.4f}")
        if status.get("lr") is not None:
            parts.append(f"lr {status['lr']:.3g}")
        if status.get("it_per_s"):
            parts.append(f"{status['it_per_s']:.2f} it/s")
        if view["state"] == JobState.RUNNING and status.get("eta_s") is not None:
            parts.append(f"ETA {_duration(status['eta_s'])}")
        lines.append("progress:  " + ", ".join(parts))
    if view["position"]:
        lines.append(f"queue:     #{view['position']} (priority {view['priority']})")
    if view["folder"]:
        lines.append(f"folder:    {view['folder']}")
    if status.get("lora"):
        lines.append(f"lora:      {status['lora']}")
    lines.append(f"submitted: {_local(view['submitted_at'])}")
    for key, label in (("started_at", "started"), ("updated_at", "heartbeat"), ("finished_at", "finished")):
        if status.get(key):
            lines.append(f"{label + ':':<10} {_local(status[key])}")
    for warning in status.get("warnings") or []:
        lines.append("warning:   " + warning)
    if view["error"]:
        lines.append("error:     " + view["error"].replace("\n", "\n           "))
    return "\n".join(lines)


def log_path(view: dict[str, Any]) -> Path | None:
    return Path(view["folder"]) / "_logs" / "train.log" if view["folder"] else None


def _local(stamp: str) -> str:
    """A time in the local zone; one that has none (year 1 west of UTC) is shown as written."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError):
        return stamp


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
