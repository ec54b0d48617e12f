// A line plot on a <canvas>: axes with round ticks, one line per series, no library.

export const COLOURS = ["#0b5cad", "#c0392b", "#1e8449", "#8e44ad", "#d35400", "#117a65", "#7d6608", "#2c3e50"];

function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function label(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(6)));
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.04;
  return [lo - pad, hi + pad];
}

// Draw `series` ([{name, x: [...], y: [...]}]) with x shifted by `origin` (e.g. the start time).
// Returns the pixel <-> data mapping of the x axis (for zooming).
export function drawPlot(canvas, series, { xLabel = "", origin = 0 } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  const left = 70;
  const right = 12;
  const top = 12;
  const bottom = 40;
  const xs = series.flatMap((s) => s.x.map((v) => (v === null ? null : v - origin)));
  const ys = series.flatMap((s) => s.y);
  const [x0, x1] = extent(xs);
  const [y0, y1] = extent(ys);
  const px = (v) => left + ((v - x0) / (x1 - x0)) * (width - left - right);
  const py = (v) => top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom);
  ctx.strokeStyle = "#d0d0d0";
  ctx.fillStyle = "#1b1b1b";
  ctx.lineWidth = 1;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of ticks(x0, x1, 8)) {
    ctx.beginPath();
    ctx.moveTo(px(t), top);
    ctx.lineTo(px(t), height - bottom);
    ctx.stroke();
    ctx.fillText(label(t), px(t), height - bottom + 4);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of ticks(y0, y1, 6)) {
    ctx.beginPath();
    ctx.moveTo(left, py(t));
    ctx.lineTo(width - right, py(t));
    ctx.stroke();
    ctx.fillText(label(t), left - 6, py(t));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(xLabel, left + (width - left - right) / 2, height - 2);
  ctx.strokeStyle = "#1b1b1b";
  ctx.strokeRect(left, top, width - left - right, height - top - bottom);
  series.forEach((s, i) => {
    ctx.strokeStyle = COLOURS[i % COLOURS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    for (let k = 0; k < s.x.length; k++) {
      const xv = s.x[k];
      const yv = s.y[k];
      if (xv === null || yv === null) {
        drawing = false;
        continue;
      }
      const X = px(xv - origin);
      const Y = py(yv);
      if (drawing) ctx.lineTo(X, Y);
      else ctx.moveTo(X, Y);
      drawing = true;
    }
    ctx.stroke();
    if (s.x.length === 1 && s.x[0] !== null && s.y[0] !== null) {
      ctx.fillStyle = COLOURS[i % COLOURS.length];
      ctx.fillRect(px(s.x[0] - origin) - 2, py(s.y[0]) - 2, 4, 4);
    }
  });
  return {
    toData: (pixel) => x0 + ((pixel - left) / (width - left - right)) * (x1 - x0) + origin,
    left,
    right: width - right,
  };
}

// Colour maps for the image viewer: 256 RGB entries, interpolated from a few stops.
const STOPS = {
  grey: [[0, 0, 0], [255, 255, 255]],
  viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
  magma: [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]],
};

export function colourMap(name) {
  const stops = STOPS[name] || STOPS.grey;
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const at = (i / 255) * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(at));
    const f = at - k;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f;
  }
  return lut;
}
