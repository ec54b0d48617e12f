// A run: its metadata as a tree, stop status, streams with their data keys and configuration,
// a quick-look plot (decimated on the server, exact on zoom), an image viewer reading one frame
// at a time, tags and notes (added and removed here with a credential that may write), export
// downloads, and, while the run is still acquiring, all kept up to date by the server-sent
// events of .../live (read with fetch, so that the Authorization header goes too), or, when the
// server refuses a stream, by polling the run's event counts once a second.

import { ApiError, get, mayWrite, post, request, whoami } from "./api.js";
import { $, clear, el, formatTime, say, show, text, tree } from "./dom.js";
import { COLOURS, colourMap, drawPlot } from "./plot.js";

const POLL_MS = 1000;
let view = null; // the run being shown: {uid, run, streams, timer, ...}

const isScalar = (dk) =>
  Array.isArray(dk.shape) && dk.shape.length === 0 && ["number", "integer", "boolean"].includes(dk.dtype) && !dk.external;
const isImage = (dk) => Array.isArray(dk.shape) && dk.shape.length >= 2 && !dk.external_string && dk.dtype !== "string";

function runPath(uid, tail = "") {
  return `api/v1/runs/${encodeURIComponent(uid)}${tail}`;
}
function webPath(uid, tail) {
  return `api/v1/web/runs/${encodeURIComponent(uid)}${tail}`;
}

// A run that is not there (any more, or for this user): not a stream or field it lacks.
const missingRun = (err) => err instanceof ApiError && err.status === 404 && err.name === "RunNotFound";

function gone(err) {
  stopPolling();
  const box = $("run-gone");
  box.hidden = false;
  box.textContent =
    err instanceof ApiError && err.status === 404
      ? "This run is not available any more (it was removed, or you may no longer see it)."
      : `The run could not be read: ${err.message}`;
  document.body.dataset.gone = "true";
}

function stopPolling() {
  if (view && view.timer) clearTimeout(view.timer);
  if (view && view.live) view.live.abort();
  if (view) {
    view.timer = null;
    view.live = null;
  }
}

function streamsOf(descriptors) {
  const streams = new Map();
  for (const d of descriptors) {
    const name = d.name || "primary";
    if (!streams.has(name)) streams.set(name, { name, dataKeys: {}, descriptors: [] });
    const s = streams.get(name);
    s.descriptors.push(d);
    for (const [k, dk] of Object.entries(d.data_keys || {})) if (!(k in s.dataKeys)) s.dataKeys[k] = dk;
  }
  return streams;
}

function renderHeader(run, progress) {
  const start = run.start || {};
  $("run-title").textContent = `Scan ${text(start.scan_id) || "?"} \u00b7 ${text(start.plan_name) || "run"}`;
  $("run-uid").textContent = run.uid;
  const parts = [`started ${formatTime(start.time)}`];
  if (run.stop) {
    parts.push(`stopped ${formatTime(run.stop.time)}: ${text(run.stop.exit_status)}`);
    if (run.stop.reason) parts.push(`reason: ${text(run.stop.reason)}`);
  } else {
    parts.push(view && view.mode === "poll" ? "still acquiring (updated every second)" : "still acquiring (updated as events arrive)");
  }
  if (progress) {
    parts.push(Object.entries(progress.streams).map(([n, c]) => `${n}: ${c} events`).join(", "));
  }
  $("run-state").textContent = parts.join(" \u2014 ");
}

function renderStreams(streams, progress) {
  const box = clear($("streams"));
  for (const s of streams.values()) {
    const count = progress ? progress.streams[s.name] : undefined;
    const table = el("table", {},
      el("caption", { text: `${s.name}${count === undefined ? "" : ` (${count} events)`}` }),
      el("thead", {}, el("tr", {}, ...["field", "dtype", "shape", "units", "source"].map((h) => el("th", { scope: "col", text: h })))));
    const body = el("tbody");
    for (const [key, dk] of Object.entries(s.dataKeys)) {
      body.append(el("tr", {},
        el("td", { text: key }),
        el("td", { text: text(dk.dtype_numpy || dk.dtype) }),
        el("td", { text: JSON.stringify(dk.shape || []) }),
        el("td", { text: text(dk.units) }),
        el("td", { text: text(dk.source) })));
    }
    table.append(body);
    box.append(el("section", { class: "stream" }, table));
    const config = {};
    for (const d of s.descriptors) {
      for (const [device, c] of Object.entries(d.configuration || {})) {
        if (c && c.data && Object.keys(c.data).length) config[device] = c.data;
      }
    }
    if (Object.keys(config).length) {
      box.append(el("details", { class: "tree" }, el("summary", { text: `${s.name} configuration` }), tree(config, 1)));
    }
  }
}

// The annotation the form writes: the one of the chosen audience (for "private", the user's).
function target(visibility) {
  const list = (view && view.annotations) || [];
  return list.find((a) => a.visibility === visibility && !a.stream && !a.seq_range &&
    (!a.groups || !a.groups.length) && (visibility !== "private" || a.author === view.who.user)) || null;
}

function fillNote() {
  const found = target($("annotate-visibility").value);
  $("note-input").value = found ? found.note || "" : "";
}

async function renderAnnotations(uid, { fill = false } = {}) {
  const section = $("annotations");
  const list = clear($("annotation-list"));
  let answer;
  try {
    answer = await get(runPath(uid, "/annotations"));
  } catch (_) {
    section.hidden = true;
    return; // a store without annotations (501), or the run went (reported elsewhere)
  }
  if (!view || view.uid !== uid) return;
  view.annotations = answer.data;
  const writer = view.who && view.who.annotations && mayWrite(view.who);
  for (const a of answer.data) {
    const tags = (Array.isArray(a.tags) ? a.tags : []).flatMap((t) => {
      const tag = el("span", { class: "tag", text: text(t) });
      if (!writer) return [tag];
      const remove = el("button", { type: "button", class: "untag", text: "\u00d7", "aria-label": `Remove tag ${text(t)}` });
      remove.addEventListener("click", () => change(a, { remove_tags: [t] }, `Removed the tag "${t}".`));
      return [tag, remove];
    });
    const item = el("li", { class: "annotation" },
      el("span", { class: "who", text: `${text(a.author)} (${text(a.visibility)}, ${formatTime(a.updated)})` }), " ", ...tags);
    if (a.note) item.append(el("p", { class: "note", text: text(a.note) }));
    if (a.fields && Object.keys(a.fields).length) item.append(tree(a.fields, 1));
    list.append(item);
  }
  $("annotate").hidden = !writer;
  section.hidden = !writer && !answer.data.length;
  if (writer && fill) fillNote(); // (not after a conflict: the note being written stays)
}

// Apply one change to annotation `a` (or a new one of the form's audience), as of the version
// this page last read: a stale page gets a conflict, shown here, and the annotations again.
async function change(a, parts, done) {
  if (!view) return;
  const uid = view.uid;
  const visibility = a ? a.visibility : $("annotate-visibility").value;
  const body = {
    author: a ? a.author : view.who.user,
    visibility,
    groups: a ? a.groups || [] : [],
    stream: a ? a.stream || null : null,
    seq_range: a ? a.seq_range || null : null,
    if_version: a ? a.version : 0,
    ...parts,
  };
  $("annotate-error").textContent = "";
  delete $("annotate-error").dataset.status;
  $("annotate-status").textContent = "Saving...";
  try {
    await post(runPath(uid, "/annotations"), body);
  } catch (err) {
    $("annotate-status").textContent = "";
    if (missingRun(err)) return gone(err);
    const box = $("annotate-error");
    if (err instanceof ApiError && err.status === 409) {
      const now = err.body.current ? err.body.current.version : "?";
      box.textContent = `Not saved: someone changed these annotations meanwhile (now version ${now}). ` +
        "They are shown again above as they are now; look and try again.";
    } else if (err instanceof ApiError && err.status === 403) {
      box.textContent = `Not saved: you may not annotate this run (${err.message})`;
    } else {
      box.textContent = `Not saved: ${err.message}`;
    }
    box.dataset.status = err instanceof ApiError ? String(err.status) : "network";
    await renderAnnotations(uid);
    return;
  }
  $("annotate-status").textContent = done;
  await renderAnnotations(uid, { fill: "note" in parts }); // (a note being written stays)
}

function currentTarget() {
  return target($("annotate-visibility").value);
}

// The baseline stream as a table: one row per scalar field, one column per reading (usually
// before and after the run), read through the plot endpoint (8 fields a request, 64 at most).
async function renderBaseline(uid) {
  const section = $("baseline");
  section.hidden = true;
  const stream = view.streams.get("baseline");
  if (!stream) return;
  const fields = Object.entries(stream.dataKeys).filter(([, dk]) => isScalar(dk)).map(([k]) => k).slice(0, 64);
  if (!fields.length) return;
  const values = {};
  let seqs = [];
  for (let i = 0; i < fields.length; i += 8) {
    const part = fields.slice(i, i + 8);
    let answer;
    try {
      answer = await get(webPath(uid, "/plot"), { stream: "baseline", y: part.join(","), x: "seq_num", points: 16 });
    } catch (_) {
      return;
    }
    for (const f of part) values[f] = answer.series[f];
    seqs = answer.series[part[0]].x;
  }
  if (!view || view.uid !== uid) return;
  const table = clear($("baseline-table"));
  table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "field" }),
    ...seqs.map((s) => el("th", { scope: "col", text: `reading ${s}` })))));
  const body = el("tbody");
  for (const f of fields) {
    body.append(el("tr", {}, el("th", { scope: "row", text: f }), ...values[f].y.map((v) => el("td", { text: v === null ? "" : String(v) }))));
  }
  table.append(body);
  section.hidden = false;
}

function exportControls() {
  const formats = (view.who && view.who.export_formats) || [];
  $("download").hidden = formats.length === 0;
  fillSelect($("export-format"), formats, view.exportFormat || formats[0]);
  $("export-error").textContent = "";
  $("export-status").textContent = "";
}

// Download through fetch (the Authorization header goes with it; no secret in a URL), then
// hand the file to the browser under the name the server gave.
async function download() {
  if (!view) return;
  const uid = view.uid;
  const format = $("export-format").value;
  view.exportFormat = format;
  $("export-error").textContent = "";
  $("export-status").textContent = `Exporting as ${format}...`;
  let response, blob;
  try {
    response = await request(webPath(uid, "/export"), { format }, { as: "response", accept: "*/*" });
    blob = await response.blob();
  } catch (err) {
    $("export-status").textContent = "";
    if (missingRun(err)) return gone(err);
    $("export-error").textContent = `The export failed: ${err.message}`;
    return;
  }
  const found = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  const name = found ? found[1] : `${uid}.${format}`;
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  $("export-status").textContent = `Downloaded ${name} (${blob.size.toLocaleString()} bytes).`;
}

function fillSelect(select, options, chosen) {
  clear(select);
  for (const value of options) select.append(el("option", { value, text: value, selected: value === chosen }));
}

function plotControls() {
  const streams = [...view.streams.values()].filter((s) => Object.values(s.dataKeys).some(isScalar));
  $("plot-controls").hidden = streams.length === 0;
  $("plot").hidden = streams.length === 0;
  if (!streams.length) {
    view.plotStream = null;
    $("plot-caption").textContent = "No scalar fields to plot.";
    return;
  }
  const name = view.plotStream && view.streams.has(view.plotStream) ? view.plotStream : (view.streams.has("primary") ? "primary" : streams[0].name);
  view.plotStream = name;
  fillSelect($("plot-stream"), streams.map((s) => s.name), name);
  const scalars = Object.entries(view.streams.get(name).dataKeys).filter(([, dk]) => isScalar(dk)).map(([k]) => k);
  fillSelect($("plot-x"), ["time", "seq_num", ...scalars], view.plotX || "time");
  const fieldset = clear($("plot-y"));
  fieldset.append(el("legend", { text: "y" }));
  const motors = new Set(Array.isArray(view.run.start.motors) ? view.run.start.motors : []);
  const preferred = scalars.find((k) => !motors.has(k)) || scalars[0];
  view.plotY = (view.plotY || [preferred]).filter((k) => scalars.includes(k));
  if (!view.plotY.length) view.plotY = [preferred];
  scalars.forEach((key, i) => {
    const id = `y-${i}`;
    const box = el("input", { type: "checkbox", id, value: key, checked: view.plotY.includes(key) });
    box.addEventListener("change", () => {
      view.plotY = [...fieldset.querySelectorAll("input:checked")].map((b) => b.value);
      refreshPlot();
    });
    fieldset.append(el("span", {}, box, el("label", { for: id, text: key })));
  });
}

async function refreshPlot() {
  if (!view || !view.plotStream) return;
  const canvas = $("plot");
  const fields = view.plotY || [];
  if (!fields.length) {
    drawPlot(canvas, [], {});
    $("plot-caption").textContent = "Choose a field to plot.";
    return;
  }
  const uid = view.uid;
  let answer;
  try {
    answer = await get(webPath(uid, "/plot"), {
      stream: view.plotStream,
      y: fields.join(","),
      x: view.plotX || "time",
      points: Math.max(16, Math.min(8192, canvas.clientWidth || 800)),
      x_min: view.zoom ? view.zoom[0] : null,
      x_max: view.zoom ? view.zoom[1] : null,
    });
  } catch (err) {
    if (view && view.uid === uid) {
      if (missingRun(err)) return gone(err);
      $("plot-caption").textContent = `The plot could not be read: ${err.message}`;
    }
    return;
  }
  if (!view || view.uid !== uid) return;
  const x = answer.x;
  const origin = x === "time" ? view.run.start.time || 0 : 0;
  const series = fields.map((name) => ({ name, ...answer.series[name] }));
  view.axis = drawPlot(canvas, series, { xLabel: x === "time" ? "seconds since start" : x, origin });
  const caption = clear($("plot-caption"));
  series.forEach((s, i) => caption.append(el("span", { class: "swatch", style: null }), s.name, " "));
  caption.querySelectorAll(".swatch").forEach((sw, i) => { sw.style.background = COLOURS[i % COLOURS.length]; });
  caption.append(`\u2014 ${answer.rows} rows${answer.decimated ? " (min/max per pixel; drag to zoom for every point)" : ""}`);
  canvas.dataset.rows = String(answer.rows);
  canvas.dataset.drawn = String((canvas.dataset.drawn | 0) + 1);
  $("plot-reset").hidden = !view.zoom;
}

function imageControls() {
  const fields = [];
  for (const s of view.streams.values()) {
    for (const [k, dk] of Object.entries(s.dataKeys)) if (isImage(dk)) fields.push(`${s.name}/${k}`);
  }
  $("images").hidden = fields.length === 0;
  if (!fields.length) return;
  view.imageField = fields.includes(view.imageField) ? view.imageField : fields[0];
  fillSelect($("image-field"), fields, view.imageField);
}

async function refreshFrame() {
  if (!view || !view.imageField) return;
  const [stream, field] = view.imageField.split(/\/(.*)/s);
  const index = Number($("frame").value) || 0;
  const uid = view.uid;
  const token = (view.frameToken = (view.frameToken || 0) + 1);
  let response;
  try {
    response = await get(webPath(uid, "/frame"), {
      stream, field, index, vmin: $("vmin").value, vmax: $("vmax").value,
    }, { as: "response" });
  } catch (err) {
    if (view && view.uid === uid) {
      if (missingRun(err)) return gone(err);
      $("image-caption").textContent = `The frame could not be read: ${err.message}`;
    }
    return;
  }
  const blob = await response.blob();
  if (!view || view.uid !== uid || token !== view.frameToken) return;
  const bitmap = await createImageBitmap(blob);
  const canvas = $("image");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const lut = colourMap($("cmap").value);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const g = pixels.data[i];
    pixels.data[i] = lut[g * 3];
    pixels.data[i + 1] = lut[g * 3 + 1];
    pixels.data[i + 2] = lut[g * 3 + 2];
  }
  ctx.putImageData(pixels, 0, 0);
  const scale = Math.max(1, Math.floor(400 / Math.max(bitmap.width, bitmap.height)));
  canvas.style.width = `${bitmap.width * scale}px`;
  canvas.style.height = `${bitmap.height * scale}px`;
  const count = Number(response.headers.get("X-Frame-Count"));
  $("frame").max = String(Math.max(0, count - 1));
  $("frame-label").textContent = `${index + 1} of ${count}`;
  $("image-caption").textContent =
    `${field}, frame ${index} (${bitmap.width}\u00d7${bitmap.height}); values ${response.headers.get("X-Frame-Min")} to ${response.headers.get("X-Frame-Max")}`;
  canvas.dataset.frame = String(index);
}

// What a new progress (from the live stream or a poll) changes on the page.
async function applyProgress(uid, progress) {
  if (!view || view.uid !== uid) return;
  const before = JSON.stringify(view.progress && view.progress.streams);
  const changed = before !== JSON.stringify(progress.streams) || progress.stopped !== !!view.run.stop;
  view.progress = progress;
  if (!changed) return;
  if (progress.stopped && !view.run.stop) {
    try {
      view.run = await get(runPath(uid));
    } catch (err) {
      return gone(err);
    }
  }
  const descriptors = await get(runPath(uid, "/descriptors"), { limit: 1000 }).catch(() => null);
  if (descriptors && view && view.uid === uid) {
    const streams = streamsOf(descriptors.data);
    const grew = streams.size !== view.streams.size;
    view.streams = streams;
    if (grew) {
      plotControls();
      imageControls();
    }
  }
  if (!view || view.uid !== uid) return;
  renderHeader(view.run, progress);
  renderStreams(view.streams, progress);
  await refreshPlot();
  if (view && view.imageField) {
    const count = progress.streams[view.imageField.split("/")[0]] || 0;
    $("frame").max = String(Math.max(0, count - 1));
    if ($("frame").value === "0" && $("image").dataset.frame === undefined) await refreshFrame();
  }
}

async function poll() {
  if (!view) return;
  const uid = view.uid;
  let progress;
  try {
    progress = await get(webPath(uid, "/progress"));
  } catch (err) {
    if (view && view.uid === uid) {
      if (missingRun(err)) return gone(err);
      view.timer = setTimeout(poll, POLL_MS * 3); // a passing failure: try again later
    }
    return;
  }
  await applyProgress(uid, progress);
  if (view && view.uid === uid && !progress.stopped && !document.body.dataset.gone) view.timer = setTimeout(poll, POLL_MS);
}

function fallBackToPolling(uid) {
  if (!view || view.uid !== uid) return;
  view.mode = "poll";
  document.body.dataset.live = "poll";
  if (view.run) renderHeader(view.run, view.progress);
  view.timer = setTimeout(poll, POLL_MS);
}

// The server-sent events of .../live, read from a fetch: "progress" (as .../progress answers),
// then "end", "gone" or "timeout" (then a new stream). Polling when the server refuses one.
async function live(uid) {
  if (!view || view.uid !== uid) return;
  const controller = new AbortController();
  view.live = controller;
  let reader;
  try {
    const response = await request(webPath(uid, "/live"), {}, { as: "response", signal: controller.signal, accept: "text/event-stream" });
    reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  } catch (err) {
    if (err.name === "AbortError") return;
    if (missingRun(err)) return gone(err);
    return fallBackToPolling(uid);
  }
  view.mode = "live";
  document.body.dataset.live = "sse";
  let buffer = "";
  let last = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        last = name;
        const payload = JSON.parse(data);
        if (name === "progress") await applyProgress(uid, payload);
        else if (name === "gone") {
          controller.abort();
          return gone(new ApiError(404, payload));
        }
      }
    }
  } catch (err) {
    if (err.name === "AbortError" || controller.signal.aborted) return;
    return fallBackToPolling(uid);
  }
  if (!view || view.uid !== uid || view.live !== controller) return;
  view.live = null;
  if (last === "end" || (view.progress && view.progress.stopped)) return;
  setTimeout(() => live(uid), last === "timeout" ? 0 : POLL_MS); // a new stream
}

export async function showRun(uid) {
  stopPolling();
  show("run");
  say("Loading the run...");
  $("run-gone").hidden = true;
  delete document.body.dataset.gone;
  delete $("image").dataset.frame;
  let run, descriptors;
  try {
    run = await get(runPath(uid));
    descriptors = await get(runPath(uid, "/descriptors"), { limit: 1000 });
  } catch (err) {
    say("");
    if (err instanceof ApiError && err.status === 401) throw err;
    $("run-title").textContent = "Run";
    $("run-uid").textContent = uid;
    clear($("streams"));
    clear($("metadata"));
    $("images").hidden = true;
    $("run-state").textContent = "";
    gone(err);
    document.body.dataset.ready = "run";
    return;
  }
  const progress = await get(webPath(uid, "/progress")).catch(() => null);
  const who = await whoami().catch(() => ({ scopes: [], export_formats: [] }));
  view = { uid, run, streams: streamsOf(descriptors.data), timer: null, live: null, zoom: null, progress, who, mode: "live" };
  $("annotate-error").textContent = "";
  $("annotate-status").textContent = "";
  $("tag-input").value = "";
  delete document.body.dataset.live;
  renderHeader(run, progress);
  renderStreams(view.streams, progress);
  clear($("metadata")).append(tree({ start: run.start, stop: run.stop }, 0));
  plotControls();
  imageControls();
  exportControls();
  say("");
  await Promise.all([refreshPlot(), refreshFrame(), renderAnnotations(uid, { fill: true }), renderBaseline(uid)]);
  document.body.dataset.ready = "run";
  if (!run.stop) live(uid);
}

function wireRun() {
  $("annotate").addEventListener("submit", (event) => event.preventDefault());
  $("annotate-visibility").addEventListener("change", fillNote);
  const addTag = () => {
    const tag = $("tag-input").value.trim();
    if (!tag) {
      $("annotate-error").textContent = "Write a tag to add.";
      return;
    }
    change(currentTarget(), { add_tags: [tag] }, `Added the tag "${tag}".`).then(() => {
      if (!$("annotate-error").textContent) $("tag-input").value = "";
    });
  };
  $("add-tag").addEventListener("click", addTag);
  $("tag-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addTag();
    }
  });
  $("save-note").addEventListener("click", () => {
    change(currentTarget(), { note: $("note-input").value }, "Saved the note.");
  });
  $("export-form").addEventListener("submit", (event) => {
    event.preventDefault();
    download();
  });
  $("plot-stream").addEventListener("change", () => {
    view.plotStream = $("plot-stream").value;
    view.plotY = null;
    view.zoom = null;
    $("zoom-from").value = $("zoom-to").value = "";
    plotControls();
    refreshPlot();
  });
  $("plot-x").addEventListener("change", () => {
    view.plotX = $("plot-x").value;
    view.zoom = null;
    $("zoom-from").value = $("zoom-to").value = "";
    refreshPlot();
  });
  $("plot-reset").addEventListener("click", () => {
    view.zoom = null;
    $("zoom-from").value = "";
    $("zoom-to").value = "";
    refreshPlot();
  });
  $("zoom-form").addEventListener("submit", (event) => {
    // the keyboard's way to zoom: x in the axis' units (seconds since start for time)
    event.preventDefault();
    if (!view) return;
    const origin = (view.plotX || "time") === "time" ? view.run.start.time || 0 : 0;
    const lo = parseFloat($("zoom-from").value);
    const hi = parseFloat($("zoom-to").value);
    view.zoom = [Number.isFinite(lo) ? lo + origin : null, Number.isFinite(hi) ? hi + origin : null];
    if (view.zoom[0] === null && view.zoom[1] === null) view.zoom = null;
    refreshPlot();
  });
  const canvas = $("plot");
  let from = null;
  canvas.addEventListener("mousedown", (e) => { from = e.offsetX; });
  canvas.addEventListener("mouseup", (e) => {
    if (from === null || !view || !view.axis) return;
    const a = Math.min(from, e.offsetX);
    const b = Math.max(from, e.offsetX);
    from = null;
    if (b - a < 5) return;
    view.zoom = [view.axis.toData(a), view.axis.toData(b)];
    const origin = (view.plotX || "time") === "time" ? view.run.start.time || 0 : 0;
    $("zoom-from").value = String(Number((view.zoom[0] - origin).toPrecision(6)));
    $("zoom-to").value = String(Number((view.zoom[1] - origin).toPrecision(6)));
    refreshPlot();
  });
  $("image-field").addEventListener("change", () => {
    view.imageField = $("image-field").value;
    $("frame").value = "0";
    refreshFrame();
  });
  for (const id of ["frame", "cmap", "vmin", "vmax"]) $(id).addEventListener("input", () => refreshFrame());
}

wireRun();
