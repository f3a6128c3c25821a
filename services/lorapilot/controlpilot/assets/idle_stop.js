// Idle stop: the countdown banner with Cancel and Postpone (every ControlPilot page) and the settings
// form (dashboard). The watcher program does the stopping; this only shows its state and sends the
// user's choice (/api/idle-stop).
"use strict";

(() => {
  const banner = $("#idle-banner");
  const form = $("#idle-form");
  let view = null;
  let fetchedAt = 0; // performance.now() of the last answer: the countdown runs on the server's seconds_left

  function clock(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function bannerText(state, settings) {
    if (!view.watcher_running && settings.mode !== "off") {
      return "Idle stop is on, but its watcher (the idlestop program) is not running: nothing will stop this machine.";
    }
    if (!state) return null;
    const action = state.action || "stop";
    switch (state.phase) {
      case "countdown": {
        const left = state.seconds_left - (performance.now() - fetchedAt) / 1000;
        return `Idle stop: in ${clock(left)} this machine will ${action}, unless something starts.`;
      }
      case "stopping": return `Idle stop: saving every job, then: ${action}…`;
      case "stopped": return `Idle stop ran at ${new Date(state.fired_at * 1000).toLocaleTimeString()} (${action}).`;
      case "failed": return `Idle stop failed: ${state.error}`;
      case "error": return `Idle stop cannot run: ${state.error}`;
      default: return null;
    }
  }

  function render() {
    if (!view) return;
    const state = view.state;
    const text = bannerText(state, view.settings);
    banner.hidden = !text;
    if (!text) return;
    $("#idle-banner-text").textContent = text;
    const counting = state && state.phase === "countdown" && view.watcher_running;
    $("#idle-cancel").hidden = !counting;
    $("#idle-postpone").hidden = !counting;
    banner.dataset.phase = state ? state.phase : "";
  }

  async function refresh() {
    try {
      view = await api("GET", "/api/idle-stop");
      fetchedAt = performance.now();
      render();
    } catch (error) { /* the jobs poll reports a ControlPilot that is down */ }
  }

  async function send(path, body) {
    try {
      view = await api("POST", path, body);
      fetchedAt = performance.now();
      render();
      say(path.endsWith("cancel") ? "Idle stop cancelled: it counts down again after new activity."
                                  : "Idle stop postponed by 30 minutes.");
    } catch (error) { say(error.message); }
  }

  function fillForm() {
    const s = view.settings;
    for (const name of ["mode", "idle_minutes", "at", "grace_minutes", "on_runpod", "command"]) {
      form.elements[name].value = s[name] ?? "";
    }
    $("#idle-where").textContent = view.on_runpod
      ? `On RunPod (pod ${view.pod_id}): the stop goes through RunPod's API unless "on RunPod" is "command".`
      : "Not on RunPod (RUNPOD_POD_ID and RUNPOD_API_KEY unset): the stop runs the command.";
  }

  async function save(event) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    const body = {
      mode: data.mode, on_runpod: data.on_runpod, command: data.command || null, at: data.at || null,
      idle_minutes: Number(data.idle_minutes), grace_minutes: Number(data.grace_minutes),
    };
    const message = $("#idle-message");
    try {
      view = await api("PUT", "/api/idle-stop/settings", body);
      fetchedAt = performance.now();
      message.className = "ok";
      message.textContent = `Saved to ${view.saved}.`;
      render();
    } catch (error) {
      message.className = "error";
      message.textContent = error.message;
    }
  }

  $("#idle-cancel").addEventListener("click", () => send("/api/idle-stop/cancel"));
  $("#idle-postpone").addEventListener("click", () => send("/api/idle-stop/postpone", { minutes: 30 }));
  if (form) {
    form.addEventListener("submit", save);
    refresh().then(() => view && fillForm());
  } else {
    refresh();
  }
  setInterval(render, 1000);
  setInterval(refresh, 5000);
})();
