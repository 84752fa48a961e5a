// sampleid web page: send a clip to /v1/query, show what matched where.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_RECORD_S = 30;
let hasGenre = false;

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

function baseName(path) {
  return path.split(/[\\/]/).pop();
}

function fmt(s) {
  return s.toFixed(1) + " s";
}

async function refreshLibrary() {
  try {
    const r = await fetch("/healthz");
    const h = await r.json();
    $("library").textContent = `Library: ${h.songs} songs` + (h.writable ? "" : " (read-only)");
    $("add").hidden = !h.writable;
    hasGenre = Array.isArray(h.genre) && h.genre.length > 0;
  } catch (e) {
    $("library").textContent = "Library: unreachable";
  }
}

// ---- the query ----------------------------------------------------------

async function identify(blob, name) {
  const status = $("status");
  setStatus(status, `Identifying ${name}…`);
  $("answer").hidden = true;
  document.body.dataset.state = "busy";
  drawSpectrogram(blob, name);
  if (hasGenre) showGenre(blob, name);
  try {
    const r = await fetch("/v1/query?name=" + encodeURIComponent(name), {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) {
      setStatus(status, `${name}: ${body.error || "HTTP " + r.status}`, true);
      document.body.dataset.state = "error";
      return;
    }
    render(body);
    const n = body.matches.length;
    setStatus(status, n ? `${n} match${n > 1 ? "es" : ""} for ${name}.` : `No match for ${name}.`);
    document.body.dataset.state = "done";
  } catch (e) {
    setStatus(status, `${name}: ${e}`, true);
    document.body.dataset.state = "error";
  }
}

function render(answer) {
  const list = $("results");
  list.replaceChildren();
  for (const m of answer.matches) {
    const li = document.createElement("li");
    const head = document.createElement("div");
    const ref = document.createElement("span");
    ref.className = "ref";
    ref.textContent = baseName(m.reference);
    ref.title = m.reference;
    // The confidence is calibrated: the share of answers like this one that
    // are right. Older servers send only a score; show it as it is.
    const conf = m.confidence != null ? m.confidence : null;
    const pct = conf != null ? Math.round(100 * conf) : null;
    const meter = document.createElement("span");
    meter.className = "meter";
    meter.setAttribute("role", "img");
    meter.setAttribute("aria-label", pct != null ? `confidence ${pct} %` : `score ${m.score.toFixed(2)}`);
    const fill = document.createElement("span");
    fill.style.width = `${pct != null ? pct : 100}%`;
    meter.append(fill);
    const score = document.createElement("span");
    const found = (m.stages || []).join(" + ") || m.stage;
    score.textContent = pct != null ? `${pct} % · found by ${found}` : `score ${m.score.toFixed(2)} · ${found}`;
    score.className = "confidence";
    head.append(ref, meter, score);
    const span = matchedSpan(answer.duration_s, m);
    const facts = document.createElement("div");
    facts.className = "facts";
    let text = `query ${fmt(span.q0)}–${fmt(span.q1)} ↔ reference ${fmt(span.r0)}–${fmt(span.r1)}`;
    if (m.time_ratio != null) text += ` · time ratio ${m.time_ratio.toFixed(2)}`;
    if (m.pitch_shift != null) text += ` · pitch ${m.pitch_shift >= 0 ? "+" : ""}${m.pitch_shift.toFixed(1)} st`;
    facts.textContent = text;
    li.append(head, facts, timeline(answer.duration_s, m, span));
    list.append(li);
  }
  $("answer").hidden = false;
}

// The style of the clip, from the library's genre classifier.
async function showGenre(blob, name) {
  const el = $("genre");
  el.hidden = false;
  el.textContent = "Style: …";
  try {
    const r = await fetch("/v1/genre?name=" + encodeURIComponent(name), {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    const g = await r.json();
    el.textContent = r.ok
      ? `Style: ${g.label} (${Math.round(100 * g.probability)} %; then ` +
        g.classes.slice(1, 3).map(([c, p]) => `${c} ${Math.round(100 * p)} %`).join(", ") + ")"
      : `Style: ${g.error}`;
  } catch (e) {
    el.textContent = `Style: ${e}`;
  }
}

// The matched material runs from the match's query start to the clip's end;
// on the reference it lasts that long divided by the time ratio.
function matchedSpan(duration, m) {
  const ratio = m.time_ratio || 1;
  const q0 = Math.min(m.query_start, duration);
  const q1 = duration;
  const r0 = Math.min(m.reference_start, m.reference_duration);
  const r1 = Math.min(r0 + (q1 - q0) / ratio, m.reference_duration);
  return { q0, q1, r0, r1 };
}

function svgEl(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function timeline(duration, m, s) {
  const W = 600, x0 = 70, w = W - x0 - 10;
  const svg = svgEl("svg", { class: "timeline", viewBox: `0 0 ${W} 80`, role: "img" });
  svg.setAttribute(
    "aria-label",
    `Timeline: query ${fmt(s.q0)} to ${fmt(s.q1)} matches reference ${fmt(s.r0)} to ${fmt(s.r1)}`
  );
  // One time scale for both bars, so that lengths compare.
  const span = Math.max(duration, m.reference_duration, 1e-9);
  const qx = (t) => x0 + (w * t) / span;
  const rx = qx;
  const label = (y, t) => {
    const el = svgEl("text", { x: 0, y: y + 10 });
    el.textContent = t;
    svg.append(el);
  };
  label(6, "query");
  label(52, "reference");
  svg.append(svgEl("rect", { class: "bar", x: x0, y: 6, width: qx(duration) - x0, height: 14 }));
  svg.append(svgEl("rect", { class: "bar", x: x0, y: 52, width: rx(m.reference_duration) - x0, height: 14 }));
  svg.append(
    svgEl("polygon", {
      class: "link",
      points: `${qx(s.q0)},20 ${qx(s.q1)},20 ${rx(s.r1)},52 ${rx(s.r0)},52`,
    })
  );
  svg.append(svgEl("rect", { class: "hit", x: qx(s.q0), y: 6, width: Math.max(qx(s.q1) - qx(s.q0), 1), height: 14 }));
  svg.append(svgEl("rect", { class: "hit", x: rx(s.r0), y: 52, width: Math.max(rx(s.r1) - rx(s.r0), 1), height: 14 }));
  const ends = [[qx(duration), 30, `clip ${fmt(duration)}`], [rx(m.reference_duration), 76, `song ${fmt(m.reference_duration)}`]];
  for (const [x, y, t] of ends) {
    const el = svgEl("text", { x: Math.max(x, x0 + 60), y, "text-anchor": "end" });
    el.textContent = t;
    svg.append(el);
  }
  return svg;
}

// ---- the spectrogram thumbnail (decoded by the browser) -------------------

function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const a = (-2 * Math.PI) / len, wr = Math.cos(a), wi = Math.sin(a);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const ur = re[i + k], ui = im[i + k];
        const vr = re[i + k + len / 2] * cr - im[i + k + len / 2] * ci;
        const vi = re[i + k + len / 2] * ci + im[i + k + len / 2] * cr;
        re[i + k] = ur + vr; im[i + k] = ui + vi;
        re[i + k + len / 2] = ur - vr; im[i + k + len / 2] = ui - vi;
        [cr, ci] = [cr * wr - ci * wi, cr * wi + ci * wr];
      }
    }
  }
}

async function drawSpectrogram(blob, name) {
  const canvas = $("spectrogram");
  const info = $("clip-info");
  $("clip").hidden = false;
  canvas.dataset.ready = "0";
  try {
    const Ctx = window.OfflineAudioContext || window.webkitOfflineAudioContext;
    const audio = await new Ctx(1, 1, 16000).decodeAudioData(await blob.arrayBuffer());
    const x = audio.getChannelData(0);
    info.textContent = `${name}: ${audio.duration.toFixed(1)} s, ${audio.sampleRate} Hz`;
    const W = canvas.width, H = canvas.height, N = 1024;
    const hop = Math.max(1, Math.floor((x.length - N) / W));
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(W, H);
    const cols = [];
    let peak = -Infinity;
    const win = Float32Array.from({ length: N }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
    for (let c = 0; c < W; c++) {
      const re = new Float32Array(N), im = new Float32Array(N);
      const start = c * hop;
      for (let i = 0; i < N && start + i < x.length; i++) re[i] = x[start + i] * win[i];
      fft(re, im);
      // Rows on a log-frequency axis from 40 Hz to Nyquist.
      const col = new Float32Array(H);
      for (let r = 0; r < H; r++) {
        const f = 40 * Math.pow(audio.sampleRate / 2 / 40, r / (H - 1));
        const bin = Math.min(N / 2 - 1, Math.round((f * N) / audio.sampleRate));
        col[r] = 10 * Math.log10(re[bin] * re[bin] + im[bin] * im[bin] + 1e-12);
        peak = Math.max(peak, col[r]);
      }
      cols.push(col);
    }
    for (let c = 0; c < W; c++) {
      for (let r = 0; r < H; r++) {
        const v = Math.max(0, Math.min(1, (cols[c][r] - peak + 80) / 80));
        const o = ((H - 1 - r) * W + c) * 4;
        img.data[o] = 255 * Math.min(1, 1.8 * v);
        img.data[o + 1] = 255 * Math.max(0, Math.min(1, 1.8 * v - 0.6));
        img.data[o + 2] = 255 * Math.max(0, 0.6 - v) + 80 * v;
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.ready = "1";
  } catch (e) {
    info.textContent = `${name}: no preview (the browser cannot decode it; the server may still)`;
    canvas.dataset.ready = "none";
  }
}

// ---- microphone ----------------------------------------------------------

let recording = null;

function wav(samples, rate) {
  const buf = new ArrayBuffer(44 + 2 * samples.length);
  const v = new DataView(buf);
  const str = (o, s) => [...s].forEach((ch, i) => v.setUint8(o + i, ch.charCodeAt(0)));
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * samples.length, true); str(8, "WAVE");
  str(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, "data"); v.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    v.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, samples[i])) * 32767, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

async function startRecording() {
  const button = $("record");
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    setStatus($("status"), "Recording needs a secure page (https or localhost) and a recent browser.", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/recorder.js");
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "recorder");
    const chunks = [];
    node.port.onmessage = (e) => chunks.push(e.data);
    source.connect(node);
    const timer = setTimeout(stopRecording, MAX_RECORD_S * 1000);
    recording = { stream, ctx, chunks, timer };
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop and identify";
    setStatus($("status"), "Recording… press again to stop.");
  } catch (e) {
    setStatus($("status"), `Cannot record: ${e.message || e}`, true);
  }
}

async function stopRecording() {
  if (!recording) return;
  const { stream, ctx, chunks, timer } = recording;
  recording = null;
  clearTimeout(timer);
  stream.getTracks().forEach((t) => t.stop());
  const rate = ctx.sampleRate;
  await ctx.close();
  const button = $("record");
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Record from the microphone";
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const all = new Float32Array(n);
  let o = 0;
  for (const c of chunks) { all.set(c, o); o += c.length; }
  identify(wav(all, rate), "recording.wav");
}

// ---- adding songs -----------------------------------------------------------

async function addSong(ev) {
  ev.preventDefault();
  const out = $("add-status");
  const file = $("add-file").files[0];
  if (!file) return;
  setStatus(out, `Indexing ${file.name}…`);
  try {
    const r = await fetch("/v1/songs?name=" + encodeURIComponent(file.name), {
      method: "POST",
      body: file,
      headers: { Authorization: "Bearer " + $("token").value.trim(), "Content-Type": file.type || "application/octet-stream" },
    });
    const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) {
      setStatus(out, `${file.name}: ${body.error}`, true);
    } else if (body.status === "skipped") {
      setStatus(out, `${file.name}: already indexed (${body.reason}).`);
    } else {
      setStatus(out, `Indexed ${file.name} as song ${body.song.id} (${body.song.duration_s.toFixed(1)} s).`);
    }
  } catch (e) {
    setStatus(out, `${file.name}: ${e}`, true);
  }
  refreshLibrary();
}

// ---- wiring ------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) identify(f, f.name);
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) identify(f, f.name);
  });
  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
  $("add-form").addEventListener("submit", addSong);
  refreshLibrary();
});
