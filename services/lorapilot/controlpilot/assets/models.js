// ControlPilot's Models page: base models by family, disk usage, registering a path, the ComfyUI
// bridge's settings, hub downloads and catalog pulls with progress, and the LoRA library with each file's ss_* metadata.
// Vanilla JS; every state-changing request sends the session's CSRF token.
"use strict";

function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : "-"; }

// -- disk usage and base models -------------------------------------------------------------------
function showDisk(disk) {
  const used = disk.used_bytes || 1;
  const rows = [el("div", { class: "disk-row", "data-kind": "filesystem" },
    el("span", {}, "Workspace filesystem"),
    progressBar(disk.used_bytes / disk.total_bytes,
      `${bytes(disk.used_bytes)} used of ${bytes(disk.total_bytes)} (${bytes(disk.free_bytes)} free)`))];
  const kinds = Object.entries(disk.by_kind);
  if (disk.registered_bytes) kinds.push(["registered", disk.registered_bytes]);
  for (const [kind, size] of kinds) {
    rows.push(el("div", { class: "disk-row", "data-kind": kind },
      el("span", {}, kind === "registered" ? "registered paths" : `models/${kind}`),
      progressBar(size / used, `${bytes(size)} (${(100 * size / used).toFixed(1)}% of used)`)));
  }
  $("#disk").replaceChildren(...rows);
}

function modelRow(model) {
  const action = model.registered
    ? el("button", { type: "button", class: "unregister", "data-path": model.path }, "Unregister") : "";
  return el("tr", { "data-path": model.path },
    el("td", {}, model.name),
    el("td", {}, model.kind),
    el("td", {}, model.format),
    el("td", {}, bytes(model.size_bytes)),
    el("td", { class: "path" }, model.path),
    el("td", { class: "note" }, model.family_note),
    el("td", {}, action));
}

function showModels(models, labels) {
  const groups = [];
  for (const [family, label] of Object.entries(labels)) {
    const members = models.filter((m) => m.family === family);
    if (!members.length) continue;
    groups.push(el("div", { class: "family-group", "data-family": family },
      el("h3", {}, `${label} (${members.length})`),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["Name", "Kind", "Format", "Size", "Path", "Family", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...members.map(modelRow)))));
  }
  $("#model-groups").replaceChildren(...(groups.length ? groups : [el("p", {}, "No models yet: download one or copy it into /workspace/models/.")]));
}

async function refreshModels() {
  const { models, disk, family_labels: labels } = await api("GET", "/api/models");
  showDisk(disk);
  showModels(models, labels);
}

async function register(event) {
  event.preventDefault();
  try {
    const { model } = await api("POST", "/api/models/register", { path: $("#register-path").value.trim() });
    say(`Registered ${model.path}.`);
    $("#register-path").value = "";
    await refreshModels();
  } catch (error) {
    say(error.message);
  }
}

async function unregister(event) {
  const button = event.target.closest("button.unregister");
  if (!button) return;
  try {
    await api("POST", "/api/models/unregister", { path: button.dataset.path });
    say(`Unregistered ${button.dataset.path}; its files are untouched.`);
    await refreshModels();
  } catch (error) {
    say(error.message);
  }
}

// -- ComfyUI settings (config/comfy.yaml) ---------------------------------------------------------
let comfyView = null;

function comfySay(text, ok) {
  const node = $("#comfy-settings-message");
  node.textContent = text;
  node.className = ok ? "ok" : "error";
}

function baseInput(family, key, value, choices, placeholder) {
  const list = `comfy-choices-${family}-${key}`;
  const input = el("input", { class: "comfy-base", "data-family": family, "data-key": key, list, size: "26",
    placeholder, "aria-label": `${family} ${key}` });
  input.value = value || "";
  return el("label", { class: "base-file" }, key, input,
    el("datalist", { id: list }, ...choices.map((choice) => el("option", { value: choice }))));
}

function baseRow(family, bases, choices) {
  const set = bases[family.family] || {};
  const inputs = family.files.map((key) => baseInput(family.family, key, set[key], choices[family.family][key] || [],
    "a file name"));
  for (const [key, fallback] of Object.entries(family.options)) {
    inputs.push(baseInput(family.family, key, set[key], choices[family.family][key] || [], `empty: ${fallback}`));
  }
  return el("tr", { "data-family": family.family }, el("td", {}, family.label), el("td", { class: "base-files" }, ...inputs));
}

function unusedBases(view) {
  const unused = [];
  for (const [family, files] of Object.entries(view.bases)) {
    const known = view.families.find((f) => f.family === family);
    for (const key of Object.keys(files)) {
      if (!known || !(known.files.includes(key) || key in known.options)) unused.push(`bases.${family}.${key}`);
    }
  }
  return unused;
}

function showComfy(view) {
  comfyView = view;
  const url = $("#comfy-settings-url");
  const fromEnv = view.url_source === "env";
  url.value = fromEnv ? view.url : (view.file_url || "");
  url.readOnly = fromEnv;
  url.placeholder = view.url_source === "default" ? view.url : "http://127.0.0.1:8188";
  const note = $("#comfy-settings-url-note");
  note.textContent = view.url_note ? `URL ${view.url_note}` : "";
  note.hidden = !view.url_note;
  const reach = $("#comfy-settings-reach");
  reach.dataset.state = view.comfyui.reachable ? "up" : "down";
  reach.textContent = view.comfyui.reachable ? `answering (${view.comfyui.detail})` : "not answering";
  reach.title = view.comfyui.detail;
  $("#comfy-settings-test").checked = view.test_after_publish;
  $("#comfy-settings-strengths").value = view.strengths.join(", ");
  $("#comfy-settings-bases tbody").replaceChildren(...view.families.map((f) => baseRow(f, view.bases, view.choices)));
  const notes = [view.choices_from === "workspace"
    ? "ComfyUI does not answer, so the lists show the files in /workspace/models/ (checkpoints, diffusion_models, "
      + "text_encoders, vae); any name ComfyUI will list can be typed."
    : `The lists are the files ComfyUI at ${view.url} offers; any other name can be typed.`];
  const unused = unusedBases(view);
  if (unused.length) notes.push(`No workflow uses ${unused.join(", ")}; saving drops it.`);
  $("#comfy-settings-choices").textContent = notes.join(" ");
  if (view.settings_error) comfySay(`${view.settings_error} Saving replaces ${view.settings_file}.`, false);
}

async function refreshComfy() {
  showComfy(await api("GET", "/api/comfy/settings"));
}

async function saveComfy(event) {
  event.preventDefault();
  const body = {
    test_after_publish: $("#comfy-settings-test").checked,
    strengths: $("#comfy-settings-strengths").value,
    bases: {},
  };
  if (comfyView && comfyView.url_source !== "env") body.url = $("#comfy-settings-url").value.trim();
  for (const input of document.querySelectorAll("#comfy-settings-bases input.comfy-base")) {
    body.bases[input.dataset.family] = body.bases[input.dataset.family] || {};
    body.bases[input.dataset.family][input.dataset.key] = input.value.trim();
  }
  const button = $("#comfy-settings-save");
  button.disabled = true;
  comfySay("Saving…", true);
  try {
    const view = await api("PUT", "/api/comfy/settings", body);
    showComfy(view);
    comfySay(`Saved to ${view.saved}. ${view.note}`, true);
  } catch (error) {
    comfySay(error.message, false);
  } finally {
    button.disabled = false;
  }
}

// -- hub downloads --------------------------------------------------------------------------------
let downloadsRunning = false;

async function refreshDownloads() {
  const { downloads } = await api("GET", "/api/models/downloads");
  const wasRunning = downloadsRunning;
  downloadsRunning = downloads.some((d) => d.state === "queued" || d.state === "running");
  $("#downloads-table tbody").replaceChildren(...downloads.map((d) => {
    const fraction = d.bytes_total ? d.bytes_done / d.bytes_total : (d.state === "done" ? 1 : 0);
    const text = `${bytes(d.bytes_done)} / ${bytes(d.bytes_total)}`;
    return el("tr", { "data-download": d.id },
      el("td", {}, d.filename ? `${d.repo_id} · ${d.filename}` : d.repo_id),
      el("td", { class: "path" }, d.target),
      el("td", { class: `state-${d.state}` }, d.state),
      el("td", {}, progressBar(fraction, text)),
      el("td", { class: "note" }, d.error || ""));
  }));
  if (wasRunning && !downloadsRunning) {  // a finished download is a new model (and may fill the bases)
    await Promise.all([refreshModels(), refreshCatalog(), refreshComfy()]);
  }
}

async function download(event) {
  event.preventDefault();
  const body = { repo_id: $("#download-repo").value.trim() };
  const file = $("#download-file").value.trim();
  const kind = $("#download-kind").value;
  const token = $("#download-token").value;
  if (file) body.filename = file;
  if (kind) body.kind = kind;
  if (token) body.token = token;
  $("#download-token").value = "";  // the token is not kept on the page once it is sent
  try {
    const reply = await api("POST", "/api/models/download", body);
    say(`Downloading ${reply.download.repo_id} into ${reply.download.target}.`);
    await refreshDownloads();
  } catch (error) {
    say(error.message);
  }
}

// -- model catalog --------------------------------------------------------------------------------
async function refreshCatalog() {
  const { entries, user_file: userFile } = await api("GET", "/api/models/catalog");
  $("#catalog-user-file").textContent = userFile;
  $("#catalog-table tbody").replaceChildren(...entries.map((entry) => {
    const size = `${entry.size_is_estimate ? "~" : ""}${bytes(entry.size_bytes)}`;
    const action = entry.pulled ? el("span", { class: "state-done" }, "pulled")
      : el("button", { type: "button", class: "catalog-pull", "data-name": entry.name }, "Pull");
    return el("tr", { "data-entry": entry.name, title: entry.description },
      el("td", {}, entry.name),
      el("td", {}, entry.family),
      el("td", { class: "path" }, entry.target),
      el("td", {}, size),
      el("td", {}, `${entry.license || "?"}${entry.gated ? " (gated: token needed)" : ""}`),
      el("td", {}, action));
  }));
}

async function pullEntry(event) {
  const button = event.target.closest("button.catalog-pull");
  if (!button) return;
  const body = { name: button.dataset.name };
  const token = $("#download-token").value;
  if (token) body.token = token;
  $("#download-token").value = "";
  try {
    const reply = await api("POST", "/api/models/catalog/pull", body);
    say(`Pulling ${button.dataset.name} into ${reply.download.target}.`);
    button.disabled = true;
    await refreshDownloads();
  } catch (error) {
    say(error.message);
  }
}

// -- LoRA library ---------------------------------------------------------------------------------
let loras = [];
let shownLora = null;

function loraRow(lora) {
  const meta = lora.metadata;
  const base = meta.ss_base_model_version || (lora.sidecar && lora.sidecar.family) || "-";
  const rank = meta.ss_network_dim ? `${meta.ss_network_dim} / ${meta.ss_network_alpha}` : "-";
  const where = lora.source === "run" ? `run ${lora.run}` : "models/loras";
  const row = el("tr", { "data-path": lora.path, class: lora.error ? "lora broken" : "lora", tabindex: "0" },
    el("td", {}, lora.name),
    el("td", {}, where),
    el("td", {}, lora.error ? el("span", { class: "state-failed" }, "unreadable") : base),
    el("td", {}, rank),
    el("td", {}, meta.ss_steps || "-"),
    el("td", {}, bytes(lora.size_bytes)),
    el("td", {}, when(lora.modified)));
  if (lora.path === shownLora) row.classList.add("selected");
  return row;
}

function showValue(value) {
  return typeof value === "string" ? value : el("pre", {}, JSON.stringify(value, null, 1));
}

function showLora(path) {
  const lora = loras.find((l) => l.path === path);
  if (!lora) return;
  shownLora = path;
  for (const row of document.querySelectorAll("#lora-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.path === path);
  }
  const rows = [];
  if (lora.error) rows.push(el("tr", { class: "state-failed" }, el("td", {}, "error"), el("td", {}, lora.error)));
  rows.push(el("tr", {}, el("td", {}, "file"), el("td", {}, `${lora.path} (${lora.tensors} tensors)`)));
  for (const [key, value] of Object.entries(lora.metadata)) {
    rows.push(el("tr", { "data-key": key }, el("td", {}, key), el("td", {}, showValue(value))));
  }
  if (lora.sidecar) rows.push(el("tr", { "data-key": "sidecar" }, el("td", {}, "sidecar .json"), el("td", {}, showValue(lora.sidecar))));
  if (!Object.keys(lora.metadata).length && !lora.error) {
    rows.push(el("tr", {}, el("td", {}, "metadata"), el("td", {}, "none: this file carries no ss_* or modelspec.* keys")));
  }
  $("#lora-detail-title").textContent = lora.file;
  $("#lora-metadata tbody").replaceChildren(...rows);
  $("#lora-detail").hidden = false;
}

async function refreshLoras() {
  ({ loras } = await api("GET", "/api/loras"));
  $("#lora-table tbody").replaceChildren(...(loras.length ? loras.map(loraRow)
    : [el("tr", {}, el("td", { colspan: "7" }, "No LoRA files yet: finished runs and models/loras/ show here."))]));
  if (shownLora) showLora(shownLora);
}

function pickLora(event) {
  const row = event.target.closest("tr.lora");
  if (row && (event.type === "click" || event.key === "Enter")) showLora(row.dataset.path);
}

function start() {
  $("#register-form").addEventListener("submit", register);
  $("#model-groups").addEventListener("click", unregister);
  $("#comfy-settings-form").addEventListener("submit", saveComfy);
  $("#download-form").addEventListener("submit", download);
  $("#catalog-table tbody").addEventListener("click", pullEntry);
  $("#lora-table tbody").addEventListener("click", pickLora);
  $("#lora-table tbody").addEventListener("keydown", pickLora);
  const fail = (error) => say(error.message);
  refreshModels().catch(fail);
  refreshLoras().catch(fail);
  refreshComfy().catch((error) => comfySay(error.message, false));
  refreshDownloads().catch(fail);
  refreshCatalog().catch(fail);
  setInterval(() => refreshDownloads().catch(fail), 1500);
  setInterval(() => Promise.all([refreshModels(), refreshLoras()]).catch(fail), 15000);
}

start();
