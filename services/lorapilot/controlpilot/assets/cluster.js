// The dashboard's Cluster panel: the Ray cluster's nodes with their GPUs and jobs, from /api/cluster
// (the daemon's snapshot). Hidden while cluster mode is off; polled every 3 seconds.
"use strict";

function clusterAmount(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0+$/, "");
}

function clusterJobs(names) {
  if (!names.length) return "-";
  const cell = el("span", {});
  names.forEach((name, i) => {
    if (i) cell.append(", ");
    cell.append(el("a", { href: `/jobs/${encodeURIComponent(name)}` }, name));
  });
  return cell;
}

async function refreshCluster() {
  const panel = $("#cluster-panel");
  let report;
  try {
    report = await api("GET", "/api/cluster");
  } catch (error) {
    panel.hidden = false;
    $("#cluster-summary").textContent = error.message;
    return;
  }
  panel.hidden = !report.enabled;
  if (!report.enabled) return;
  const summary = $("#cluster-summary");
  summary.className = report.stale || report.message ? "warning" : "";
  if (report.message) {
    summary.textContent = report.message;
  } else {
    const gpus = report.nodes.filter((n) => n.alive).reduce((sum, n) => sum + n.gpus, 0);
    const alive = report.nodes.filter((n) => n.alive).length;
    summary.textContent = `Ray at ${report.ray_address}: ${alive} of ${report.nodes.length} nodes up, `
      + `${clusterAmount(gpus)} GPUs; snapshot ${duration(report.age_s)} old`
      + (report.stale ? " (the trainpilot daemon no longer updates it: is it running?)" : "");
  }
  $("#cluster-table tbody").replaceChildren(...report.nodes.map((node) =>
    el("tr", { "data-node": node.name },
      el("td", { title: node.node_id }, node.name),
      el("td", {}, node.address),
      el("td", { class: node.alive ? "state-running" : "state-failed" }, node.alive ? "up" : "lost"),
      el("td", {}, clusterAmount(node.gpus)),
      el("td", {}, clusterAmount(node.cpus)),
      el("td", {}, clusterJobs(node.jobs)))));
}

if (!document.body.dataset.job) {
  const tick = () => refreshCluster().finally(() => setTimeout(tick, 3000));
  tick();
}
