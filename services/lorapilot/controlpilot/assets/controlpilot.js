// ControlPilot's page: the dashboard (jobs, start form, monitor, services) or one job's page.
// Vanilla JS; every state-changing request sends the session's CSRF token.
"use strict";

const jobRef = document.body.dataset.job;

function duration(seconds) {
  if (seconds == null) return "-";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
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
  return el("div", { class: "card", "data-run": side.name },
    el("strong", {}, `${side.name} (${side.state})`), samplesGrid(side.id, side.samples, side.sample_prompts));
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
    showCompareCharts(result.a, result.b);
  } catch (error) {
    say(error.message);
  }
}

// The two runs' loss (smoothed, raw faint) and learning rate on shared charts, A blue and B orange.
const RUN_COLORS = ["#6fa8ff", "#ffa657"];
let compareCharts = null;
function showCompareCharts(...sides) {
  const names = sides.map((side, i) => (i && side.name === sides[0].name ? `${side.name} (B)` : side.name));
  $("#compare-charts").hidden = false;
  $("#compare-legend").replaceChildren(...names.map((name, i) =>
    el("span", { class: "swatch", style: `color:${RUN_COLORS[i]}` }, name)));
  compareCharts.loss.update(sides.flatMap((side, i) => lossSeries(names[i], side.metrics, RUN_COLORS[i])));
  compareCharts.lr.update(sides.map((side, i) =>
    ({ name: names[i], steps: side.metrics.step, values: side.metrics.lr, color: RUN_COLORS[i] })));
}

// Base models to train on: the Models page's inventory (pulled from the catalog, downloaded or
// registered), the folders and files a training spec's model.path can name.
const BASE_KINDS = ["diffusers", "checkpoints", "diffusion_models", "unet", "registered"];

async function fillBaseModels() {
  const { models, family_labels: labels } = await api("GET", "/api/models");
  const select = $("#start-model");
  const chosen = select.value;
  select.replaceChildren(new Option("(the profile's or the config's)", ""));
  for (const model of models) {
    if (!BASE_KINDS.includes(model.kind) || model.family === "unknown" || model.format === "missing") continue;
    const option = new Option(`${model.name} (${labels[model.family] || model.family})`, model.path);
    option.dataset.family = model.family;
    select.add(option);
  }
  select.value = chosen;
}

function startRequest() {
  const overrides = $("#start-overrides").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const base = $("#start-model").selectedOptions[0];
  if (base && base.value) overrides.unshift(`model.path=${base.value}`, `model.family=${base.dataset.family}`);
  return {
    dataset: $("#start-dataset").value.trim(),
    profile: $("#start-profile").value,
    name: $("#start-name").value.trim(),
    config: $("#start-config").value,
    format: $("#start-config").dataset.format || undefined, // from a loaded file's extension
    overrides,
  };
}

// A config file goes into the paste box, so Validate and Start send it as the pasted text and the
// messages are those of `trainpilot validate`; the server's request limit is checked here first.
async function loadConfigFile() {
  const input = $("#start-config-file");
  const file = input.files[0];
  if (!file) return;
  const limit = Number(input.dataset.maxBytes);
  if (limit && file.size > limit) {
    input.value = "";
    showValidation(`${file.name} is ${bytes(file.size)}; ControlPilot accepts configs up to ${bytes(limit)}. `
      + "A training config is a few KiB: is this the right file?", false);
    return;
  }
  const box = $("#start-config");
  box.value = await file.text();
  box.dataset.format = /\.toml$/i.test(file.name) ? "toml" : "yaml"; // JSON is read as YAML
  showValidation(`loaded ${file.name} (${bytes(file.size)}) into the config box; Validate or Start it`, true);
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
    const steps = `${spec.training.max_steps} steps`;
    showValidation(`valid: ${spec.output.name}, ${spec.model.family}, ${steps} (model ${spec.model.path})`, true);
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

// -- monitor sparklines: inline SVG, the last few minutes of each series ---------------------------
const SVG = "http://www.w3.org/2000/svg";
const SPARK_POINTS = 150; // drawn per series: the latest of the server's history
function sparkline(series, values, low, high) {
  const width = 120, height = 26;
  const points = values.filter((v) => v != null && isFinite(v)).slice(-SPARK_POINTS);
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of Object.entries({
    class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${series}, last ${points.length} samples`, "data-series": series,
    "data-points": points.length,
  })) svg.setAttribute(k, v);
  if (points.length >= 2) {
    const lo = low ?? Math.min(...points), hi = high ?? Math.max(...points);
    const x = (i) => (i / (points.length - 1)) * (width - 2) + 1;
    const y = (v) => hi === lo ? height / 2 // a steady value: a level line in the middle
      : height - 2 - ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * (height - 4);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
    svg.append(line);
  }
  return svg;
}

function metric(text, spark) {
  return el("div", { class: "metric" }, el("span", {}, text), spark);
}

function gpuCards(gpu, history) {
  if (!gpu.available) return [el("div", { class: "card", id: "no-gpu" }, `No GPU: ${gpu.reason}`)];
  return gpu.gpus.map((g, n) => {
    const key = `gpu${g.index}`;
    const series = (field) => history.map((p) => (p[field] || [])[n]);
    const temperature = series("gpu_temperature_c"), power = series("gpu_power_w");
    const rows = [
      metric(`util ${g.utilization_percent ?? "-"} %`,
        sparkline(`${key}-util`, series("gpu_utilization_percent"), 0, 100)),
      metric(`mem ${bytes(g.memory_used_bytes)} / ${bytes(g.memory_total_bytes)}`,
        sparkline(`${key}-mem`, series("gpu_memory_used_bytes"), 0, g.memory_total_bytes)),
    ];
    if (g.temperature_c != null) {
      rows.push(metric(`${g.temperature_c} °C`, sparkline(`${key}-temp`, temperature)));
    }
    if (g.power_w != null) rows.push(metric(`${g.power_w.toFixed(0)} W`, sparkline(`${key}-power`, power)));
    return el("div", { class: "card gpu", "data-gpu": g.index },
      el("strong", {}, `GPU ${g.index}: ${g.name}`), ...rows);
  });
}

async function refreshTelemetry() {
  const t = await api("GET", "/api/telemetry");
  const host = t.host, history = t.history || [];
  $("#telemetry").replaceChildren(el("div", { class: "cards" },
    el("div", { class: "card", id: "cpu" }, metric(
      `CPU ${host.cpu_percent.toFixed(0)} % of ${host.cpu_count}`,
      sparkline("cpu", history.map((p) => p.cpu_percent), 0, 100))),
    el("div", { class: "card", id: "ram" }, metric(
      `RAM ${bytes(host.memory.used_bytes)} / ${bytes(host.memory.total_bytes)}`,
      sparkline("ram", history.map((p) => p.memory_percent), 0, 100))),
    el("div", { class: "card", id: "disk" },
      `Disk ${bytes(host.disk.used_bytes)} / ${bytes(host.disk.total_bytes)} (${host.disk.free_bytes ? bytes(host.disk.free_bytes) : 0} free)`),
    ...gpuCards(t.gpu, history)));
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
      el("td", {}, s.link ? el("a", { href: s.link, target: "_blank", rel: "noopener" }, s.name) : s.name),
      el("td", { class: `state-${s.state}` }, s.state), el("td", {}, s.description), buttons);
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
  $("#validate-button").addEventListener("click", validateStart);
  $("#start-config-file").addEventListener("change",
    () => loadConfigFile().catch((e) => showValidation(e.message, false)));
  $("#start-config").addEventListener("input", () => { delete $("#start-config").dataset.format; });
  $("#start-form").addEventListener("submit", submitStart);
  $("#compare-button").addEventListener("click", compareRuns);
  compareCharts = {
    loss: new StepChart($("#compare-loss-plot"), { label: "loss by step of both runs", smoothed: true }),
    lr: new StepChart($("#compare-lr-plot"), { label: "learning rate by step of both runs" }),
  };
  bindSmoothingSliders();
  bindLogScale($("#compare-lr-log"), compareCharts.lr);
  const tick = () => Promise.all([refreshJobs(), refreshTelemetry()]).catch((e) => say(e.message));
  tick();
  refreshServices();
  fillBaseModels().catch((e) => say(e.message));
  $("#start-model").addEventListener("focus", () => fillBaseModels().catch((e) => say(e.message)));
  setInterval(tick, 2000);
  setInterval(refreshServices, 5000);
}

// -- one job --------------------------------------------------------------------------------------
let jobCharts = null;

// Samples as a grid: a row per step, a column per prompt (`step…_<k>.png` is prompt k of the spec).
function samplesGrid(jobId, samples, prompts = []) {
  if (!samples.length) return el("p", { class: "hint" }, "No samples yet.");
  const columns = Math.max(prompts.length, ...samples.map((s) => s.index + 1));
  const steps = [...new Set(samples.map((s) => s.step))].sort((a, b) => a - b);
  const cells = new Map();
  for (const s of samples) if (!cells.has(`${s.step}/${s.index}`)) cells.set(`${s.step}/${s.index}`, s);
  const prompt = (k) => prompts[k] ?? `prompt ${k + 1}`;
  const head = el("tr", {}, el("th", {}, "step"), ...Array.from({ length: columns }, (_, k) =>
    el("th", { "data-prompt": k, title: prompt(k) }, prompt(k))));
  const rows = steps.map((step) => el("tr", { "data-step": step }, el("th", {}, String(step)),
    ...Array.from({ length: columns }, (_, k) => {
      const s = cells.get(`${step}/${k}`);
      if (!s) return el("td", { "data-prompt": k, class: "missing" }, "–");
      const src = `/api/jobs/${encodeURIComponent(jobId)}/samples/${encodeURIComponent(s.file)}`;
      return el("td", { "data-prompt": k },
        el("a", { href: src, target: "_blank" }, el("img", { src, alt: `step ${step}: ${prompt(k)}` })));
    })));
  return el("table", { class: "samples-grid" }, el("thead", {}, head), el("tbody", {}, ...rows));
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
  jobCharts.loss.update(lossSeries("loss", job.metrics));
  jobCharts.lr.update([{ name: "lr", steps: job.metrics.step, values: job.metrics.lr }]);
  const key = JSON.stringify([job.samples.map((s) => s.file), job.sample_prompts]);
  if (key !== shownSamples) {
    shownSamples = key;
    $("#samples").replaceChildren(samplesGrid(job.id, job.samples, job.sample_prompts));
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

// -- one job: ComfyUI ----------------------------------------------------------------------------
const comfyPath = (suffix = "") => `/api/jobs/${encodeURIComponent(jobRef)}/comfy${suffix}`;
let comfyRendering = false, shownSheet = "";

function comfySay(text, ok) {
  const box = $("#comfy-message");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
}

function blendItems(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean).map((item) => {
    const at = item.lastIndexOf(":");
    const weight = Number(item.slice(at + 1));
    if (at < 1 || item.slice(at + 1).trim() === "" || !isFinite(weight)) {
      throw new Error(`blend: write LORA:WEIGHT, e.g. my_style:0.6 (found "${item}")`);
    }
    return { name: item.slice(0, at).trim(), weight };
  });
}

async function comfyPublish() {
  try {
    comfySay("publishing…", true);
    const p = await api("POST", comfyPath("/publish"));
    comfySay(`${p.reused ? "already published as" : "published as"} ${p.file} (sidecar ${p.sidecar})`, true);
  } catch (error) {
    comfySay(error.message, false);
  }
  await refreshComfy().catch((e) => comfySay(e.message, false));
}

async function comfyTest() {
  try {
    const body = { strengths: $("#comfy-strengths").value, with: blendItems($("#comfy-with").value) };
    const started = await api("POST", comfyPath("/test"), body);
    comfySay(`rendering ${started.render.total} images of ${started.file} through ComfyUI…`, true);
  } catch (error) {
    comfySay(error.message, false);
  }
  await refreshComfy().catch((e) => comfySay(e.message, false));
}

function renderText(render, sheet) {
  if (!render) {
    return sheet ? "The contact sheet of the comfybridge service's own test render:" : "No test render yet.";
  }
  const what = `strengths ${(render.strengths || []).join(", ")}`
    + (render.blend || []).map((b) => ` + ${b.name}@${b.weight}`).join("");
  if (render.state === "running") return `Rendering ${render.done}/${render.total} (${what})…`;
  if (render.state === "done") return `Rendered ${render.total} images (${what}) at ${render.finished_at}.`;
  return `Test render ${render.state}: ${render.error}`;
}

async function refreshComfy() {
  const c = await api("GET", comfyPath());
  const wasRendering = comfyRendering;
  comfyRendering = Boolean(c.render && c.render.state === "running");
  if (wasRendering && !comfyRendering) comfySay("", true); // the render line below says how it ended
  $("#comfy-publish-button").disabled = c.state !== "done";
  $("#comfy-test-button").disabled = c.state !== "done" || comfyRendering;
  const finals = c.published.filter((p) => p.kind === "final").map((p) => p.file);
  $("#comfy-published").textContent = finals.length ? `Published to models/loras/ as ${finals.join(", ")}`
    : c.state === "done" ? "Not published to ComfyUI yet." : "Publishing is possible once the job is done.";
  const render = $("#comfy-render");
  render.textContent = renderText(c.render, c.contact_sheet);
  render.dataset.state = c.render ? c.render.state : "";
  if (c.settings_error) comfySay(c.settings_error, false);
  if (c.contact_sheet && c.contact_sheet !== shownSheet) {
    shownSheet = c.contact_sheet;
    const image = el("img", { id: "comfy-contact-sheet", src: c.contact_sheet, alt: "prompts × strengths" });
    $("#comfy-sheet").replaceChildren(el("a", { href: c.contact_sheet, target: "_blank" }, image));
  }
}

function pollComfy() {
  refreshComfy().catch((e) => comfySay(e.message, false))
    .finally(() => setTimeout(pollComfy, comfyRendering ? 1000 : 5000));
}

function jobPage() {
  $("#job-view").hidden = false;
  $("#cancel-button").addEventListener("click", () =>
    api("POST", `/api/jobs/${encodeURIComponent(jobRef)}/cancel`).then(() => say("Cancel requested."), (e) => say(e.message)));
  $("#retry-button").addEventListener("click", () =>
    api("POST", `/api/jobs/${encodeURIComponent(jobRef)}/retry`).then(() => say("Queued again."), (e) => say(e.message)));
  $("#comfy-publish-button").addEventListener("click", comfyPublish);
  $("#comfy-test-button").addEventListener("click", comfyTest);
  jobCharts = {
    loss: new StepChart($("#loss-plot"), { label: "loss by step", smoothed: true }),
    lr: new StepChart($("#lr-plot"), { label: "learning rate by step" }),
  };
  bindSmoothingSliders();
  bindLogScale($("#lr-log"), jobCharts.lr);
  const tick = () => refreshJob().catch((e) => say(e.message));
  tick();
  setInterval(tick, 1000);
  pollComfy();
}

if (jobRef) jobPage(); else dashboard();
