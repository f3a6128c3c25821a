// What every ControlPilot page's script shares: the CSRF token, a JSON API call that throws the
// server's own error message, the status line, a DOM builder, a progress bar and a byte formatter.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector) => document.querySelector(selector);

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

function bytes(value) {
  if (value == null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(1)} ${units[i]}`;
}

function progressBar(fraction, text) {
  const bar = el("div", { class: "bar" });
  bar.style.width = `${Math.round(Math.min(1, fraction) * 100)}%`;
  return el("div", { class: "progress" }, bar, el("span", {}, text));
}
