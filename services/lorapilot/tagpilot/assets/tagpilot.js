// TagPilot page: vanilla JS over the JSON API. Every state-changing call sends the CSRF token.
"use strict";

const $ = (selector) => document.querySelector(selector);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const UPLOAD_BATCH_FILES = 50;
const UPLOAD_BATCH_BYTES = 200 * 1024 * 1024;

const state = { dataset: null, images: [], current: -1, findings: {}, job: null };

function status(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf } };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location = "/login?next=/";
    throw new Error("login required");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

const enc = encodeURIComponent;
const dsPath = (suffix = "") => `/api/datasets/${enc(state.dataset)}${suffix}`;
const imgPath = (name, suffix = "") => dsPath(`/images/${enc(name)}${suffix}`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// -- datasets --------------------------------------------------------------------------------------
async function loadDatasets(select) {
  const { datasets } = await api("GET", "/api/datasets");
  const box = $("#dataset-select");
  box.replaceChildren(...datasets.map((d) => el("option", { value: d.name, text: `${d.name} (${d.images})` })));
  state.dataset = select || (datasets.some((d) => d.name === state.dataset) ? state.dataset : datasets[0]?.name) || null;
  if (state.dataset) box.value = state.dataset;
  await loadDataset();
}

async function loadDataset() {
  const disabled = !state.dataset;
  for (const id of ["#upload-button", "#start-captioning", "#export-button", "#rename-dataset", "#delete-dataset"]) {
    $(id).disabled = disabled;
  }
  if (disabled) {
    state.images = [];
    renderGallery();
    status("Create a dataset to start.");
    return;
  }
  const data = await api("GET", dsPath());
  state.images = data.image_list;
  $("#family").value = data.settings.family;
  $("#caption-style").value = data.settings.caption_style;
  $("#trigger-word").value = data.settings.trigger_word || $("#trigger-word").value;
  const repeats = $("#export-repeats");
  if (!repeats.dataset.touched) repeats.value = data.suggested_repeats;
  $("#repeats-hint").textContent = `suggested for ${data.images} images: ${data.suggested_repeats}`;
  $("#export-name").placeholder = state.dataset;
  updateZipLink();
  await loadReport();
  renderGallery();
  if (state.current >= state.images.length) state.current = state.images.length - 1;
  if (state.current >= 0) showEditor(state.current, false);
  else $("#editor").hidden = true;
  loadTags();
}

async function loadReport() {
  const report = await api("GET", dsPath("/report"));
  state.findings = {};
  const items = report.findings.map((f) => {
    (state.findings[f.image] ||= []).push(f);
    return el("li", { class: `finding ${f.check}`, text: `${f.image}: ${f.message}` });
  });
  for (const r of report.rejected.slice(-20)) {
    items.push(el("li", { class: "rejected", text: `rejected ${r.name}: ${r.reason}` }));
  }
  $("#report").replaceChildren(...items);
  $("#report-panel").querySelector("summary").textContent =
    `Dataset report: ${report.images} images, ${report.captioned} captioned, ${report.findings.length} findings`;
}

async function loadTags() {
  const { tags } = await api("GET", dsPath("/tags"));
  const rows = tags.slice(0, 300).map((t) =>
    el("tr", {}, el("td", { text: t.tag }), el("td", { text: String(t.count) }),
      el("td", {}, el("button", { type: "button", text: "remove", "aria-label": `remove tag ${t.tag}`,
        onclick: () => bulk({ op: "remove_tag", tag: t.tag }) }))));
  $("#tag-table tbody").replaceChildren(...rows);
}

function renderGallery() {
  const items = state.images.map((image, index) => {
    const flags = (state.findings[image.name] || []).filter((f) => f.check !== "no_caption");
    const button = el("button", {
      type: "button", class: `thumb${index === state.current ? " selected" : ""}`, role: "listitem",
      "data-name": image.name, title: image.caption || "(no caption)", onclick: () => showEditor(index, true),
    },
    el("img", { src: imgPath(image.name, "/thumb"), alt: image.name, loading: "lazy" }),
    el("span", { class: "name", text: image.name }),
    el("span", { class: image.caption ? "caption" : "caption missing", text: image.caption || "no caption" }));
    if (flags.length) button.append(el("span", { class: "flags", text: flags.map((f) => f.check).join(" · ") }));
    return button;
  });
  $("#gallery").replaceChildren(...items);
}

function showEditor(index, focus) {
  if (index < 0 || index >= state.images.length) return;
  state.current = index;
  const image = state.images[index];
  $("#editor").hidden = false;
  $("#editor-image").src = imgPath(image.name);
  $("#editor-image").alt = image.name;
  $("#editor-name").textContent = `${image.name} · ${image.width}×${image.height}`;
  $("#editor-findings").replaceChildren(...[...(state.findings[image.name] || []).map((f) => f.message),
    ...image.notes].map((text) => el("li", { text })));
  $("#caption-editor").value = image.caption;
  for (const node of document.querySelectorAll(".thumb")) {
    node.classList.toggle("selected", node.dataset.name === image.name);
  }
  if (focus) $("#caption-editor").focus();
}

async function saveCaption(moveBy = 0) {
  const image = state.images[state.current];
  if (!image) return;
  const { caption } = await api("PUT", imgPath(image.name, "/caption"), { caption: $("#caption-editor").value });
  image.caption = caption;
  status(`Saved caption of ${image.name}.`);
  renderGallery();
  loadTags();
  if (moveBy) showEditor(Math.min(state.images.length - 1, Math.max(0, state.current + moveBy)), true);
  else $("#caption-editor").focus();
}

// -- upload ------------------------------------------------------------------------------------------
async function upload(files) {
  if (!state.dataset || !files.length) return;
  const batches = [];
  let batch = [];
  let bytes = 0;
  for (const file of files) {
    if (batch.length && (batch.length >= UPLOAD_BATCH_FILES || bytes + file.size > UPLOAD_BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(file);
    bytes += file.size;
  }
  batches.push(batch);
  const messages = [];
  let accepted = 0;
  for (const [i, files] of batches.entries()) {
    status(`Uploading batch ${i + 1} of ${batches.length}…`);
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    try {
      const result = await api("POST", dsPath("/upload"), form);
      accepted += result.accepted.length;
      for (const a of result.accepted) {
        if (a.notes.length) messages.push(el("li", { text: `${a.name}: ${a.notes.join("; ")}` }));
      }
      for (const r of result.rejected) messages.push(el("li", { class: "rejected", text: `${r.name}: ${r.reason}` }));
    } catch (error) {
      messages.push(el("li", { class: "rejected", text: `batch ${i + 1}: ${error.message}` }));
    }
  }
  $("#upload-result").replaceChildren(...messages);
  $("#upload-input").value = "";
  status(`Uploaded ${accepted} image(s); ${messages.filter((m) => m.className === "rejected").length} refused.`);
  await loadDatasets(state.dataset);
}

// -- bulk, captioning, export -------------------------------------------------------------------------
async function bulk(body) {
  const result = await api("POST", dsPath("/captions/bulk"), body);
  status(`${body.op}: changed ${result.changed} caption(s).`);
  await loadDataset();
}

async function loadCaptioners() {
  const data = await api("GET", "/api/captioners");
  const options = data.models.map((m) => el("option", { value: JSON.stringify({ backend: m.backend, source: m.name }),
    text: `${m.name} (${m.backend})` }));
  options.push(el("option", { value: "openai", text: "OpenAI-compatible endpoint…" }));
  $("#captioner-model").replaceChildren(...options);
  toggleOpenAI();
  if (data.active_job) watchJob(data.active_job.id);
}

function toggleOpenAI() {
  $("#openai-fields").hidden = $("#captioner-model").value !== "openai";
}

function captionerChoice() {
  const value = $("#captioner-model").value;
  if (value !== "openai") return JSON.parse(value);
  const choice = { backend: "openai", source: $("#openai-url").value, model: $("#openai-model").value };
  if ($("#openai-key").value) choice.api_key = $("#openai-key").value;
  return choice;
}

async function startCaptioning() {
  const job = await api("POST", dsPath("/autocaption"), { captioner: captionerChoice(), mode: $("#caption-mode").value });
  watchJob(job.id);
}

async function watchJob(id) {
  state.job = id;
  $("#cancel-captioning").disabled = false;
  $("#start-captioning").disabled = true;
  while (state.job === id) {
    const job = await api("GET", `/api/jobs/${enc(id)}`);
    $("#caption-progress").max = Math.max(job.total, 1);
    $("#caption-progress").value = job.done;
    $("#caption-job").textContent = `${job.state}: ${job.done}/${job.total}` +
      (job.current ? ` · ${job.current}` : "") + (job.error ? ` · ${job.error}` : "") +
      (job.errors.length ? ` · ${job.errors.length} error(s)` : "");
    if (job.finished) break;
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
  state.job = null;
  $("#cancel-captioning").disabled = true;
  $("#start-captioning").disabled = !state.dataset;
  await loadDataset();
}

async function exportDataset() {
  const body = { repeats: Number($("#export-repeats").value), replace: $("#export-replace").checked };
  if ($("#export-name").value) body.name = $("#export-name").value;
  const result = await api("POST", dsPath("/export"), body);
  $("#export-result").textContent = `Exported ${result.images} images to ${result.folder}` +
    (result.replaced.length ? ` (earlier export moved to the trash)` : "");
  status(`Exported to ${result.folder}.`);
}

function updateZipLink() {
  if (state.dataset) $("#export-zip").href = dsPath(`/export.zip?repeats=${enc($("#export-repeats").value || 1)}`);
}

// -- trash -------------------------------------------------------------------------------------------
async function showTrash() {
  const { entries } = await api("GET", "/api/trash");
  const items = entries.map((e) => el("li", { text: `${e.kind} ${e.name} (${e.deleted_at}) ` },
    ...(e.kind === "export" ? [] : [el("button", { type: "button", text: "Restore", onclick: async () => {
      await api("POST", `/api/trash/${enc(e.id)}/restore`, {});
      $("#trash-dialog").close();
      await loadDatasets(e.dataset);
    } })]),
    el("button", { type: "button", text: "Delete forever", onclick: async () => {
      if (!confirm(`Delete ${e.name} forever?`)) return;
      await api("DELETE", `/api/trash/${enc(e.id)}`);
      await showTrash();
    } })));
  $("#trash-list").replaceChildren(...(items.length ? items : [el("li", { text: "The trash is empty." })]));
  if (!$("#trash-dialog").open) $("#trash-dialog").showModal();
}

// -- wiring ------------------------------------------------------------------------------------------
function guard(fn) {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (error) {
      status(error.message, true);
    }
  };
}

function wire() {
  $("#dataset-select").addEventListener("change", guard(async (e) => {
    state.dataset = e.target.value;
    state.current = -1;
    await loadDataset();
  }));
  $("#new-dataset-form").addEventListener("submit", guard(async (e) => {
    e.preventDefault();
    const name = $("#new-dataset-name").value.trim();
    await api("POST", "/api/datasets", { name, family: $("#family").value });
    $("#new-dataset-name").value = "";
    state.current = -1;
    status(`Created dataset ${name}.`);
    await loadDatasets(name);
  }));
  $("#rename-dataset").addEventListener("click", guard(async () => {
    const name = prompt("New name for the dataset", state.dataset);
    if (!name || name === state.dataset) return;
    await api("PATCH", dsPath(), { name });
    await loadDatasets(name);
  }));
  $("#delete-dataset").addEventListener("click", guard(async () => {
    if (!confirm(`Move dataset ${state.dataset} to the trash?`)) return;
    await api("DELETE", dsPath());
    state.dataset = null;
    await loadDatasets();
  }));
  $("#show-trash").addEventListener("click", guard(showTrash));
  for (const id of ["#family", "#caption-style"]) {
    $(id).addEventListener("change", guard(async () => {
      if (!state.dataset) return;
      await api("PATCH", dsPath(), { family: $("#family").value, caption_style: $("#caption-style").value });
      await loadDataset();
    }));
  }
  $("#upload-button").addEventListener("click", guard(() => upload([...$("#upload-input").files])));
  const drop = $("#drop-zone");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", guard(async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    await upload([...e.dataTransfer.files]);
  }));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("#upload-input").click(); });
  $("#save-caption").addEventListener("click", guard(() => saveCaption(0)));
  $("#prev-image").addEventListener("click", () => showEditor(state.current - 1, true));
  $("#next-image").addEventListener("click", () => showEditor(state.current + 1, true));
  $("#delete-image").addEventListener("click", guard(async () => {
    const image = state.images[state.current];
    await api("DELETE", imgPath(image.name));
    status(`Moved ${image.name} to the trash.`);
    await loadDataset();
  }));
  $("#caption-editor").addEventListener("keydown", guard(async (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); await saveCaption(1); }
    if (e.altKey && e.key === "ArrowRight") { e.preventDefault(); await saveCaption(1); }
    if (e.altKey && e.key === "ArrowLeft") { e.preventDefault(); await saveCaption(-1); }
    if (e.key === "Escape") document.querySelector(".thumb.selected")?.focus();
  }));
  for (const form of document.querySelectorAll("form.bulk")) {
    form.addEventListener("submit", guard(async (e) => {
      e.preventDefault();
      const body = { op: form.dataset.op };
      for (const input of form.querySelectorAll("input")) body[input.name] = input.value;
      await bulk(body);
    }));
  }
  $("#captioner-model").addEventListener("change", toggleOpenAI);
  $("#start-captioning").addEventListener("click", guard(startCaptioning));
  $("#cancel-captioning").addEventListener("click", guard(async () => {
    if (state.job) await api("POST", `/api/jobs/${enc(state.job)}/cancel`);
  }));
  $("#export-repeats").addEventListener("input", (e) => { e.target.dataset.touched = "1"; updateZipLink(); });
  $("#export-button").addEventListener("click", guard(exportDataset));
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "ArrowRight" || e.key === "j") showEditor(state.current + 1, false);
    if (e.key === "ArrowLeft" || e.key === "k") showEditor(state.current - 1, false);
    if (e.key === "e" && state.current >= 0) { e.preventDefault(); $("#caption-editor").focus(); }
  });
}

document.addEventListener("DOMContentLoaded", guard(async () => {
  wire();
  await loadDatasets();
  await loadCaptioners();
}));
