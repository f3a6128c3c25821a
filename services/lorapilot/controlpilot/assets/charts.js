// ControlPilot's step charts: inline SVG drawn here (no library, nothing fetched; the appliance is
// offline). Loss is smoothed as TensorBoard smooths it, with the raw points drawn faint behind; any
// chart can use a log scale; hovering shows every series' value at the nearest step.
"use strict";

const CHART_SVG = "http://www.w3.org/2000/svg";
const SMOOTHING_KEY = "controlpilot.loss-smoothing";
// TensorBoard's default is 0.6, an average over about 2.5 steps; a diffusion loss swings with each
// step's random timestep far more than it trends, so the default here averages about 10 steps.
const DEFAULT_SMOOTHING = 0.9;
const MAX_SMOOTHING = 0.99;

// TensorBoard's debiased exponential moving average: the first points are not pulled towards 0,
// and a weight of 0 gives the raw values back exactly.
function smoothValues(values, weight) {
  let last = 0, count = 0;
  const constant = values.every((v) => v === values[0]);
  return values.map((value) => {
    if (constant || value == null || !isFinite(value)) return value;
    last = last * weight + (1 - weight) * value;
    count += 1;
    return last / (weight === 1 ? 1 : 1 - weight ** count);
  });
}

function storedSmoothing() {
  const stored = Number.parseFloat(localStorage.getItem(SMOOTHING_KEY));
  return isFinite(stored) ? Math.min(Math.max(stored, 0), MAX_SMOOTHING) : DEFAULT_SMOOTHING;
}

// Every loss chart on the page follows one smoothing, set by any `input.loss-smoothing` slider and
// remembered for the next visit.
const lossCharts = new Set();
let lossSmoothing = storedSmoothing();

function setLossSmoothing(weight) {
  lossSmoothing = Math.min(Math.max(Number(weight) || 0, 0), MAX_SMOOTHING);
  localStorage.setItem(SMOOTHING_KEY, String(lossSmoothing));
  for (const slider of document.querySelectorAll("input.loss-smoothing")) {
    slider.value = String(lossSmoothing);
    const shown = slider.parentElement.querySelector("output");
    if (shown) shown.textContent = lossSmoothing.toFixed(2);
  }
  for (const chart of lossCharts) chart.draw();
}

function bindSmoothingSliders() {
  for (const slider of document.querySelectorAll("input.loss-smoothing")) {
    Object.assign(slider, { min: "0", max: String(MAX_SMOOTHING), step: "0.01" });
    slider.addEventListener("input", () => setLossSmoothing(slider.value));
  }
  setLossSmoothing(lossSmoothing);
}

// Loss series of one run: the raw points (faint) and their smoothed curve, in the run's colour.
function lossSeries(name, metrics, color) {
  return [
    { name, role: "raw", steps: metrics.step, values: metrics.loss, color },
    { name, role: "smoothed", steps: metrics.step, values: metrics.loss, color, smooth: true },
  ];
}

function formatValue(value) {
  if (value == null || !isFinite(value)) return "-";
  const size = Math.abs(value);
  return size !== 0 && (size < 1e-3 || size >= 1e5) ? value.toExponential(2) : value.toPrecision(4);
}

// An axis label: 0.15, 2e-5 (no trailing zeros).
function tickLabel(value) {
  const size = Math.abs(value);
  if (size !== 0 && (size < 1e-3 || size >= 1e5)) return value.toExponential(2).replace(/\.?0+e/, "e");
  return String(Number(value.toPrecision(4)));
}

// Ticks for a linear axis: about `count` round numbers between lo and hi.
function linearTicks(lo, hi, count) {
  if (hi === lo) return [lo];
  const rough = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

// Ticks for a log axis: the powers of ten in range, or the ends when the range is within a decade.
function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.ceil(Math.log10(lo) - 1e-9); e <= Math.floor(Math.log10(hi) + 1e-9); e += 1) ticks.push(10 ** e);
  return ticks.length >= 2 ? ticks : [lo, hi];
}

class StepChart {
  // `label` names the chart for screen readers; `smoothed` makes it a loss chart that follows the
  // page's smoothing slider.
  constructor(target, { label, smoothed = false }) {
    Object.assign(this, { target, label, smoothed, log: false, series: [], key: "", hoverX: null });
    this.width = 680; this.height = 220;
    this.pad = { left: 58, right: 24, top: 10, bottom: 30 };
    target.classList.add("plot");
    target.addEventListener("mousemove", (event) => this.hover(event));
    target.addEventListener("mouseleave", () => this.hover(null));
    if (smoothed) lossCharts.add(this);
  }

  // New data; redrawn only when it changed, so a page polling every second keeps a steady hover.
  update(series) {
    const key = JSON.stringify(series.map((s) => [s.name, s.role, s.steps, s.values]));
    this.series = series;
    if (key !== this.key) { this.key = key; this.draw(); }
  }

  setLog(log) {
    this.log = log;
    this.draw();
  }

  // Each series' drawable points [step, value, raw value], smoothing applied where asked.
  points(series) {
    const values = series.smooth ? smoothValues(series.values, lossSmoothing) : series.values;
    return series.steps.map((step, i) => [step, values[i], series.values[i]])
      .filter(([, v]) => v != null && isFinite(v) && (!this.log || v > 0));
  }

  draw() {
    const { width, height, pad } = this;
    const svg = document.createElementNS(CHART_SVG, "svg");
    const add = (parent, tag, attrs, text) => {
      const node = document.createElementNS(CHART_SVG, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      parent.append(node);
      return node;
    };
    for (const [k, v] of Object.entries({
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": this.label,
      "data-scale": this.log ? "log" : "linear",
    })) svg.setAttribute(k, v);
    const drawn = this.series.map((s) => ({ ...s, points: this.points(s) }));
    const all = drawn.flatMap((s) => s.points);
    this.target.dataset.points = String(drawn.length ? drawn[0].points.length : 0);
    if (this.smoothed) this.target.dataset.smoothing = lossSmoothing.toFixed(2);
    const [left, right, top, bottom] = [pad.left, width - pad.right, pad.top, height - pad.bottom];
    add(svg, "line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom });
    add(svg, "line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom });
    if (!all.length) {
      const some = this.series.some((series) => series.values.some((v) => v != null && isFinite(v)));
      add(svg, "text", { x: width / 2, y: height / 2, "text-anchor": "middle" },
        some ? "no values above 0 to show on a log scale" : "no data yet");
      this.scale = null;
      this.target.replaceChildren(svg);
      return;
    }
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity]; // a loop: long runs overflow min(...)
    for (const [x, y] of all) {
      [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
    }
    const f = this.log ? Math.log10 : (v) => v;
    if (y0 === y1) { y0 = this.log ? y0 / 2 : y0 - Math.abs(y0 || 1) * 0.05; y1 = this.log ? y1 * 2 : y1 + Math.abs(y1 || 1) * 0.05; }
    const sx = (x) => left + ((x - x0) / ((x1 - x0) || 1)) * (right - left);
    const sy = (y) => bottom - ((f(y) - f(y0)) / (f(y1) - f(y0))) * (bottom - top);
    this.scale = { sx, sy, x0, x1, left, right, top, bottom };

    const yTicks = this.log ? logTicks(y0, y1) : linearTicks(y0, y1, 4);
    const yAxis = add(svg, "g", { class: "y-ticks" });
    for (const tick of yTicks) {
      const y = sy(tick).toFixed(1);
      add(yAxis, "line", { class: "grid", x1: left, y1: y, x2: right, y2: y });
      add(yAxis, "text", { x: left - 4, y: Number(y) + 3, "text-anchor": "end" },
        tickLabel(tick));
    }
    const xAxis = add(svg, "g", { class: "x-ticks" });
    for (const tick of linearTicks(x0, x1, 6).filter(Number.isInteger)) {
      add(xAxis, "text", { x: sx(tick).toFixed(1), y: bottom + 14, "text-anchor": "middle" }, String(tick));
    }
    add(svg, "text", { x: right, y: height - 2, "text-anchor": "end" }, "step");

    for (const s of drawn) {
      if (!s.points.length) continue;
      const line = add(svg, "polyline", {
        class: `line ${s.role || ""}`.trim(), "data-run": s.name, "data-role": s.role || "line",
        points: s.points.map(([x, y]) => `${sx(x).toFixed(2)},${sy(y).toFixed(2)}`).join(" "),
      });
      if (s.color) line.style.stroke = s.color;
      if (s.role === "raw") { // fainter the more steps share a pixel, so a long run's noise stays a haze
        line.style.strokeOpacity = String(Math.min(0.3, Math.max(0.06, (0.3 * (right - left)) / s.points.length)));
      }
    }
    this.drawn = drawn;
    this.hoverLayer = add(svg, "g", { class: "hover" });
    this.target.replaceChildren(svg);
    this.showHover();
  }

  hover(event) {
    if (!event || !this.scale) {
      this.hoverX = null;
    } else {
      const box = this.target.querySelector("svg").getBoundingClientRect();
      this.hoverX = ((event.clientX - box.left) / box.width) * this.width;
    }
    this.showHover();
  }

  // The guide at the step nearest the pointer and a tooltip with each series' value there.
  showHover() {
    const old = this.target.querySelector(".chart-tip");
    if (old) old.remove();
    if (!this.hoverLayer) return;
    this.hoverLayer.replaceChildren();
    if (this.hoverX == null || !this.scale) return;
    const { sx, sy, x0, x1, left, right, top, bottom } = this.scale;
    const wanted = x0 + ((Math.min(Math.max(this.hoverX, left), right) - left) / ((right - left) || 1)) * (x1 - x0);
    const candidates = this.drawn.flatMap((s) => s.points.map((p) => p[0]));
    const step = candidates.reduce((best, s) => (Math.abs(s - wanted) < Math.abs(best - wanted) ? s : best));
    const mark = (tag, attrs) => {
      const node = document.createElementNS(CHART_SVG, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      this.hoverLayer.append(node);
      return node;
    };
    mark("line", { class: "guide", x1: sx(step), y1: top, x2: sx(step), y2: bottom });
    const rows = [];
    for (const s of this.drawn) {
      const point = s.points.find((p) => p[0] === step);
      if (!point) continue;
      const dot = mark("circle", { cx: sx(step), cy: sy(point[1]), r: s.role === "raw" ? 2.5 : 3.5 });
      if (s.color) dot.style.fill = s.color;
      if (s.role === "raw") continue; // its value is shown with the smoothed one
      const name = this.drawn.length > 2 || !this.smoothed ? `${s.name} ` : "";
      rows.push(s.role === "smoothed"
        ? el("div", { "data-run": s.name }, `${name}smoothed ${formatValue(point[1])} · raw ${formatValue(point[2])}`)
        : el("div", { "data-run": s.name }, `${name}${formatValue(point[1])}`));
    }
    const tip = el("div", { class: "chart-tip", "data-step": step }, el("strong", {}, `step ${step}`), ...rows);
    const flip = sx(step) > this.width * 0.6;
    tip.style.left = `${(sx(step) / this.width) * 100}%`;
    tip.style.transform = flip ? "translateX(calc(-100% - 10px))" : "translateX(10px)";
    this.target.append(tip);
  }
}

// A "log scale" checkbox for learning-rate charts; the choice is remembered like the smoothing.
const LOG_SCALE_KEY = "controlpilot.lr-log-scale";
function bindLogScale(checkbox, ...charts) {
  checkbox.checked = localStorage.getItem(LOG_SCALE_KEY) === "1";
  for (const chart of charts) chart.log = checkbox.checked;
  checkbox.addEventListener("change", () => {
    localStorage.setItem(LOG_SCALE_KEY, checkbox.checked ? "1" : "0");
    for (const chart of charts) chart.setLog(checkbox.checked);
  });
}
