// ControlPilot's page: the dashboard (jobs, start form, monitor, services) or one job's page.
// Vanilla JS; every state-changing request sends the session's CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector) => document.querySelector(selector);
const jobRef = document.body.dataset.job;

async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf, Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  const data = await reply.json().catch(() => ({ error: reply.statusText }));
  if (!reply.ok) {
    const error = new Error(data.error || reply.statusText);
    error.data = data;
    throw error;
  }
  return data;
}

function say(text) { $("#status").textContent = text; }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function duration(seconds) {
  if (seconds == null) return "-";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(1)} ${units[i]}`;
}

function progressBar(fraction, text) {
  const bar = el("div", { class: "bar" });
  bar.style.width = `${Math.round(fraction * 100)}%`;
  return el("div", { class: "progress" }, bar, el("span", {}, text));
}

function progressText(job) {
  const status = job.status || {};
  return status.total ? `${status.step}/${status.total} (${Math.round(job.progress * 100)}%)`
    : `${Math.round(job.progress * 100)}%`;
}

// -- dashboard ------------------------------------------------------------------------------------
async function refreshJobs() {
  const { jobs } = await api("GET", "/api/jobs");
  fillCompareChoices(jobs);
  const body = $("#jobs-table tbody");
  body.replaceChildren(...jobs.slice().reverse().map((job) => {
    const status = job.status || {};
    return el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.name)),
      el("td", { class: `state-${job.state}` }, job.state),
      el("td", {}, progressBar(job.progress, progressText(job))),
      el("td", {}, status.loss != null ? status.loss.toFixed(4) : "-"),
      el("td", {}, status.it_per_s ? status.it_per_s.toFixed(2) : "-"),
      el("td", {}, job.state === "running" ? duration(status.eta_s) : "-"),
      el("td", {}, job.error ? job.error.split("\n")[0] : ""));
  }));
}

function fillCompareChoices(jobs) {
  for (const id of ["#compare-a", "#compare-b"]) {
    const select = $(id);
    const chosen = select.value;
    const names = jobs.map((job) => job.name);
    if (select.dataset.names === names.join("\n")) continue;
    select.dataset.names = names.join("\n");
    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    if (names.includes(chosen)) select.value = chosen;
  }
}

function sampleColumn(side) {
  const column = el("div", { class: "card" }, el("strong", {}, `${side.name} (${side.state})`));
  for (const s of side.samples) {
    column.append(el("figure", {},
      el("img", { src: `/api/jobs/${encodeURIComponent(side.id)}/samples/${encodeURIComponent(s.file)}`, alt: s.file }),
      el("figcaption", {}, `step ${s.step} #${s.index}`)));
  }
  return column;
}

async function compareRuns() {
  try {
    const a = $("#compare-a").value, b = $("#compare-b").value;
    const result = await api("GET", `/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    const show = (value) => typeof value === "string" ? value : JSON.stringify(value);
    $("#compare-table").hidden = false;
    $("#compare-table tbody").replaceChildren(...result.differences.map((d) =>
      el("tr", {}, el("td", {}, d.field), el("td", {}, show(d.a)), el("td", {}, show(d.b)))));
    $("#compare-samples").replaceChildren(sampleColumn(result.a), sampleColumn(result.b));
  } catch (error) {
    say(error.message);
  }
}

function startRequest() {
  const overrides = $("#start-overrides").value.split("\n").map((s) => s.trim()).filter(Boolean);
  return {
    dataset: $("#start-dataset").value.trim(),
    profile: $("#start-profile").value,
    name: $("#start-name").value.trim(),
    config: $("#start-config").value,
    overrides,
  };
}

function showValidation(text, ok) {
  const box = $("#validation");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
}

async function validateStart() {
  try {
    const result = await api("POST", "/api/jobs/validate", startRequest());
    const spec = result.spec;
    showValidation(`valid: ${spec.output.name}, ${spec.model.family}, ${spec.training.max_steps} steps`, true);
  } catch (error) {
    showValidation(error.data && error.data.text ? error.data.text : error.message, false);
  }
}

async function submitStart(event) {
  event.preventDefault();
  try {
    const job = await api("POST", "/api/jobs", startRequest());
    showValidation(`queued ${job.name} (id ${job.id})`, true);
    say(`Queued ${job.name}.`);
    await refreshJobs();
  } catch (error) {
    showValidation(error.data && error.data.text ? error.data.text : error.message, false);
  }
}

function gpuCards(gpu) {
  if (!gpu.available) return [el("div", { class: "card", id: "no-gpu" }, `No GPU: ${gpu.reason}`)];
  return gpu.gpus.map((g) => el("div", { class: "card gpu" },
    el("strong", {}, `GPU ${g.index}: ${g.name}`), el("br"),
    `util ${g.utilization_percent ?? "-"} %, mem ${bytes(g.memory_used_bytes)} / ${bytes(g.memory_total_bytes)}`,
    el("br"), `${g.temperature_c ?? "-"} °C, ${g.power_w != null ? g.power_w.toFixed(0) : "-"} W`));
}

async function refreshTelemetry() {
  const t = await api("GET", "/api/telemetry");
  const host = t.host;
  $("#telemetry").replaceChildren(el("div", { class: "cards" },
    el("div", { class: "card", id: "cpu" }, `CPU ${host.cpu_percent.toFixed(0)} % of ${host.cpu_count}`),
    el("div", { class: "card", id: "ram" },
      `RAM ${bytes(host.memory.used_bytes)} / ${bytes(host.memory.total_bytes)}`),
    el("div", { class: "card", id: "disk" },
      `Disk ${bytes(host.disk.used_bytes)} / ${bytes(host.disk.total_bytes)} (${host.disk.free_bytes ? bytes(host.disk.free_bytes) : 0} free)`),
    ...gpuCards(t.gpu)));
}

async function refreshServices() {
  let services;
  try {
    ({ services } = await api("GET", "/api/services"));
  } catch (error) {
    $("#services-table tbody").replaceChildren(el("tr", {}, el("td", { colspan: 4 }, error.message)));
    return;
  }
  $("#services-table tbody").replaceChildren(...services.map((s) => {
    const buttons = el("td", {});
    for (const action of ["start", "stop", "restart", "log"]) {
      const button = el("button", { type: "button", "data-action": action, "data-service": s.name }, action);
      button.addEventListener("click", () => serviceAction(s.name, action));
      buttons.append(button, " ");
    }
    return el("tr", { "data-service": s.name },
      el("td", {}, s.name), el("td", { class: `state-${s.state}` }, s.state), el("td", {}, s.description), buttons);
  }));
}

async function serviceAction(name, action) {
  try {
    if (action === "log") {
      const { log } = await api("GET", `/api/services/${encodeURIComponent(name)}/log`);
      const box = $("#service-log");
      box.hidden = false;
      box.textContent = log || "(empty log)";
      return;
    }
    say(`${action} ${name}…`);
    const info = await api("POST", `/api/services/${encodeURIComponent(name)}/${action}`);
    say(`${name} is ${info.state}.`);
  } catch (error) {
    say(error.message);
  }
  await refreshServices();
}

function dashboard() {
  $("#dashboard").hidden = false;
  const port = document.body.dataset.tagpilotPort;
  $("#tagpilot-link").href = `${location.protocol}//${location.hostname}:${port}/`;
  $("#validate-button").addEventListener("click", validateStart);
  $("#start-form").addEventListener("submit", submitStart);
  $("#compare-button").addEventListener("click", compareRuns);
  const tick = () => Promise.all([refreshJobs(), refreshTelemetry()]).catch((e) => say(e.message));
  tick();
  refreshServices();
  setInterval(tick, 2000);
  setInterval(refreshServices, 5000);
}

// -- one job --------------------------------------------------------------------------------------
function plot(target, steps, values, label) {
  const width = 640, height = 200, pad = 36;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", label);
  const points = steps.map((s, i) => [s, values[i]]).filter(([, v]) => v != null && isFinite(v));
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { class: "axis", x1: pad, y1: height - pad, x2: width - 8, y2: height - pad });
  add("line", { class: "axis", x1: pad, y1: 8, x2: pad, y2: height - pad });
  if (points.length) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
    const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x) => pad + ((x - x0) / ((x1 - x0) || 1)) * (width - pad - 8);
    const sy = (y) => height - pad - ((y - y0) / ((y1 - y0) || 1)) * (height - pad - 8);
    add("polyline", { class: "line", points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ") });
    add("text", { x: 2, y: 14 }, y1.toPrecision(3));
    add("text", { x: 2, y: height - pad }, y0.toPrecision(3));
    add("text", { x: pad, y: height - 12 }, `step ${x0}`);
    add("text", { x: width - 80, y: height - 12 }, `step ${x1}`);
  } else {
    add("text", { x: width / 2 - 40, y: height / 2 }, "no data yet");
  }
  target.replaceChildren(svg);
  target.dataset.points = String(points.length);
}

let shownSamples = "";
async function refreshJob() {
  const job = await api("GET", `/api/jobs/${encodeURIComponent(jobRef)}`);
  const status = job.status || {};
  $("#job-title").textContent = `${job.name} — ${job.state}`;
  $("#job-bar").style.width = `${Math.round(job.progress * 100)}%`;
  $("#job-progress-text").textContent = progressText(job);
  const facts = [];
  if (status.loss != null) facts.push(`loss ${status.loss.toFixed(4)}`);
  if (status.lr != null) facts.push(`lr ${status.lr.toPrecision(3)}`);
  if (status.it_per_s) facts.push(`${status.it_per_s.toFixed(2)} it/s`);
  if (job.state === "running") facts.push(`ETA ${duration(status.eta_s)}`);
  if (job.error) facts.push(`error: ${job.error}`);
  $("#job-facts").textContent = facts.join(" · ");
  $("#cancel-button").disabled = !["queued", "running", "interrupted"].includes(job.state);
  $("#retry-button").disabled = !["failed", "cancelled"].includes(job.state);
  plot($("#loss-plot"), job.metrics.step, job.metrics.loss, "loss by step");
  plot($("#lr-plot"), job.metrics.step, job.metrics.lr, "learning rate by step");
  const key = job.samples.map((s) => s.file).join(",");
  if (key !== shownSamples) {
    shownSamples = key;
    $("#samples").replaceChildren(...job.samples.map((s) => el("figure", {},
      el("img", { src: `/api/jobs/${encodeURIComponent(job.id)}/samples/${encodeURIComponent(s.file)}`, alt: s.file }),
      el("figcaption", {}, `step ${s.step} #${s.index}`))));
  }
  const link = $("#lora-link");
  link.hidden = !(job.state === "done" || (job.status && job.status.lora));
  link.href = `/api/jobs/${encodeURIComponent(job.id)}/lora`;
  const { log } = await api("GET", `/api/jobs/${encodeURIComponent(job.id)}/log?lines=200`);
  const box = $("#job-log");
  const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.textContent = log;
  if (follow) box.scrollTop = box.scrollHeight;
}

function jobPage() {
  $("#job-view").hidden = false;
  $("#tagpilot-link").href = `${location.protocol}//${location.hostname}:${document.body.dataset.tagpilotPort}/`;
  $("#cancel-button").addEventListener("click", () =>
    api("POST", `/api/jobs/${encodeURIComponent(jobRef)}/cancel`).then(() => say("Cancel requested."), (e) => say(e.message)));
  $("#retry-button").addEventListener("click", () =>
    api("POST", `/api/jobs/${encodeURIComponent(jobRef)}/retry`).then(() => say("Queued again."), (e) => say(e.message)));
  const tick = () => refreshJob().catch((e) => say(e.message));
  tick();
  setInterval(tick, 1000);
}

if (jobRef) jobPage(); else dashboard();
