// The paraspeechclap web page: plain functions over the JSON API, no framework, no build step.
// Every API path is relative ("v1/...") so the page also works behind a proxy that adds a path prefix.
"use strict";

const KEY_STORAGE = "paraspeechclap.apiKey";
// The model works at 16 kHz; recordings are resampled to it before upload (smaller uploads, same result).
const RECORD_RATE = 16000;
const TAG_BARS = 3; // labels shown per attribute set; the rest sit behind "all labels"

const state = {
  model: null, // /v1/models' first entry
  clip: null, // the File being classified (an upload or a recording)
  clipUrl: null, // its object URL, revoked when the clip changes
  rerankUrls: [], // object URLs of the best-of-N players
  recorder: null,
  recordTimer: null,
  seq: {classify: 0, score: 0, search: 0, rerank: 0}, // newest request per panel: stale answers are dropped
};

const $ = (id) => document.getElementById(id);

// -- small DOM helpers ------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits);
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// A horizontal bar for a value in [0, 1]; values outside are clamped (negative cosines draw empty).
function bar(fraction, kind) {
  const fill = el("span", {className: "fill"});
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return el("span", {className: `bar ${kind || ""}`.trim(), "aria-hidden": "true"}, fill);
}

// -- status line and busy state -------------------------------------------------------------------
function showError(message) {
  const status = $("status");
  status.textContent = message;
  status.hidden = false;
}

function clearError() {
  const status = $("status");
  status.textContent = "";
  status.hidden = true;
}

// An error from api() or the browser; a 401 opens the key box so the user sees where the key goes.
function reportError(err, what) {
  if (err && err.status === 401) {
    $("key-box").open = true;
    $("api-key").focus();
    showError(`${what}: this server needs an API key — enter it under "API key" and try again (${err.message})`);
    return;
  }
  showError(`${what}: ${err && err.message ? err.message : err}`);
}

// Marks a panel busy (disables its buttons) while its request runs, whatever the outcome.
async function busy(panelId, work) {
  const panel = $(panelId);
  panel.setAttribute("aria-busy", "true");
  const buttons = [...panel.querySelectorAll("button")];
  buttons.forEach((b) => { if (b.id !== "record") b.disabled = true; });
  try {
    return await work();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    panel.removeAttribute("aria-busy");
  }
}

// -- the API ---------------------------------------------------------------------------------------
function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch (e) {
    return ""; // storage blocked (private mode, file://): the key lives in the input only
  }
}

function saveApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch (e) {
    // storage blocked: nothing to keep; the input still holds the key for this visit
  }
}

function currentKey() {
  return $("api-key").value.trim() || apiKey();
}

// Media elements cannot send headers, so their URLs carry the key as ?api_key= (the server accepts both).
function withKey(url) {
  const key = currentKey();
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}api_key=${encodeURIComponent(key)}`;
}

// The server's absolute links ("/v1/audio/3") made relative, like every other API path here.
function relative(url) {
  return url.startsWith("/") ? url.slice(1) : url;
}

// fetch + JSON; a non-2xx answer throws an Error carrying the server's {"error"} text and the status.
async function api(path, options) {
  const headers = new Headers((options && options.headers) || {});
  const key = currentKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, {...options, headers});
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null; // not JSON (a proxy's HTML error page): fall back to the status text below
  }
  if (!response.ok) {
    const err = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

function postForm(path, form) {
  return api(path, {method: "POST", body: form});
}

// -- model info and attribute sets -----------------------------------------------------------------
async function loadModel() {
  try {
    const body = await api("v1/models");
    state.model = body.models[0];
    renderModel(state.model);
    renderSetChoices(state.model);
    $("search-panel").hidden = !state.model.index;
    if (state.model.index) {
      $("search-info").textContent =
        `Find the clips of the index (${state.model.index.rows} clips) that best match a caption.`;
    }
    clearError();
  } catch (err) {
    $("model-info").textContent = "model not loaded";
    reportError(err, "Loading the model info");
  }
}

function renderModel(model) {
  $("model-info").textContent =
    `model ${model.id} · ${model.precision} · ${model.embed_dim}-d · weights ${model.checksum.slice(0, 12)}`;
  $("model-info").title = `checksum ${model.checksum}`;
}

// Checkboxes for every attribute set, the model's defaults ticked and first (in the model's order, which
// is the order the tags are shown in); a change re-tags the current clip.
function renderSetChoices(model) {
  const box = $("sets-choices");
  box.replaceChildren();
  const defaults = new Set(model.default_attribute_sets);
  const others = model.attribute_sets.filter((name) => !defaults.has(name));
  for (const name of [...model.default_attribute_sets, ...others]) {
    const input = el("input", {type: "checkbox", value: name, checked: defaults.has(name)});
    input.addEventListener("change", onSetsChanged);
    box.append(el("label", {className: "choice"}, input, ` ${name}`));
  }
  updateSetsCount();
}

function chosenSets() {
  return [...$("sets-choices").querySelectorAll("input:checked")].map((i) => i.value);
}

function updateSetsCount() {
  const total = $("sets-choices").querySelectorAll("input").length;
  $("sets-count").textContent = `(${chosenSets().length} of ${total})`;
}

function onSetsChanged() {
  updateSetsCount();
  if (state.clip) classifyClip();
}

// -- the clip panel --------------------------------------------------------------------------------
// A new clip (upload or recording): play it back, tag it, then score the captions against it.
async function useClip(file) {
  state.clip = file;
  if (state.clipUrl) URL.revokeObjectURL(state.clipUrl);
  state.clipUrl = URL.createObjectURL(file);
  $("clip-player").src = state.clipUrl;
  $("clip-name").textContent = file.name;
  $("clip-now").hidden = false;
  // the last clip's tags and scores would read as this one's
  $("tags").replaceChildren();
  $("caption-results").replaceChildren();
  // one request after the other: the tags and caption scores then come from separate model batches;
  // a clip the server cannot tag would only fail again, so its error stays the one shown
  if (await classifyClip() && captionLines().length) await scoreCaptions();
}

// Tags the current clip; true when its tags are shown.
async function classifyClip() {
  if (!state.clip) return false;
  const seq = ++state.seq.classify;
  const form = new FormData();
  form.append("audio", state.clip, state.clip.name);
  for (const name of chosenSets()) form.append("attribute_sets", name);
  try {
    const body = await busy("clip-panel", () => postForm("v1/classify", form));
    if (seq !== state.seq.classify) return false;
    renderTags(body.results[0]);
    clearError();
    return true;
  } catch (err) {
    if (seq !== state.seq.classify) return false;
    $("tags").replaceChildren();
    reportError(err, "Tagging the clip");
    return false;
  }
}

function renderTags(result) {
  const cards = Object.entries(result.sets).map(([name, set]) => tagCard(name, set));
  const tags = $("tags");
  tags.dataset.clip = result.clip;
  tags.replaceChildren(...cards);
}

// One attribute set: the top label with its cosine and probability, then the best labels as bars.
function tagCard(name, set) {
  const top = set.labels[0];
  const head = el("div", {className: "set-head"},
    el("span", {className: "set-name", text: name}),
    el("strong", {className: "top-label", "data-role": "top-label", text: set.top}),
    el("span", {className: "num", "data-role": "top-score", title: "cosine", text: fmt(top.score)}),
    el("span", {className: "num prob", "data-role": "top-probability", title: "probability",
      text: percent(top.probability)}));
  const card = el("article", {className: "set", "data-set": name}, head,
    labelBars(set.labels.slice(0, TAG_BARS)));
  if (set.labels.length > TAG_BARS) {
    card.append(el("details", {className: "more"},
      el("summary", {text: `all ${set.labels.length} labels`}), labelBars(set.labels.slice(TAG_BARS))));
  }
  const calibration = set.calibrated ? `calibrated, T = ${fmt(set.temperature, 2)}` : "uncalibrated";
  card.append(el("p", {className: "fine", text: calibration}));
  return card;
}

function labelBars(labels) {
  return el("ol", {className: "bars"}, ...labels.map((l) => el("li", {"data-label": l.label},
    el("span", {className: "bar-label", text: l.label}),
    bar(l.probability),
    el("span", {className: "num", title: `cosine ${fmt(l.score)}`, text: percent(l.probability)}))));
}

function onClipFile(event) {
  const file = event.target.files && event.target.files[0];
  if (file) useClip(file);
}

// -- recording -------------------------------------------------------------------------------------
function canRecord() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
}

async function toggleRecording() {
  if (state.recorder) {
    stopRecording();
    return;
  }
  if (!canRecord()) {
    // getUserMedia exists only on secure pages: https, or http on localhost / 127.0.0.1
    showError("Recording needs a secure page (https, or http://localhost) and a browser with MediaRecorder.");
    return;
  }
  try {
    await startRecording();
  } catch (err) {
    reportError(err, "Recording");
  }
}

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((t) => t.stop()); // turns the microphone light off
    finishRecording(new Blob(chunks, {type: recorder.mimeType}));
  });
  recorder.start();
  state.recorder = recorder;
  const started = Date.now();
  // the server refuses clips over its duration limit: stop there rather than upload in vain
  const limit = state.model ? state.model.limits.max_clip_seconds : 30;
  state.recordTimer = setInterval(() => {
    const seconds = (Date.now() - started) / 1000;
    $("record-note").textContent = `recording… ${seconds.toFixed(0)} s`;
    if (seconds >= limit - 0.5) stopRecording();
  }, 250);
  $("record").textContent = "■ Stop";
  $("record").setAttribute("aria-pressed", "true");
  $("record-note").textContent = "recording…";
}

function stopRecording() {
  clearInterval(state.recordTimer);
  const recorder = state.recorder;
  state.recorder = null;
  $("record").textContent = "● Record";
  $("record").setAttribute("aria-pressed", "false");
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

// The recorder's webm/ogg/mp4 -> 16-bit PCM WAV: the server decodes with libsndfile, which reads WAV
// but not the browser's compressed formats.
async function finishRecording(blob) {
  $("record-note").textContent = "encoding…";
  try {
    const wav = await toWav(blob);
    const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "");
    $("record-note").textContent = "";
    $("clip-file").value = ""; // the clip is now the recording, not the last chosen file
    await useClip(new File([wav], `recording-${stamp}.wav`, {type: "audio/wav"}));
  } catch (err) {
    $("record-note").textContent = "";
    reportError(err, "Encoding the recording");
  }
}

async function toWav(blob) {
  // decodeAudioData resamples to its context's rate: an offline context at 16 kHz does it for us
  const context = new OfflineAudioContext(1, 1, RECORD_RATE);
  const buffer = await context.decodeAudioData(await blob.arrayBuffer());
  return encodeWav(mixToMono(buffer), buffer.sampleRate);
}

function mixToMono(buffer) {
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const channel = buffer.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / buffer.numberOfChannels;
  }
  return mono;
}

// A canonical 44-byte RIFF header + little-endian 16-bit samples, mono.
function encodeWav(samples, sampleRate) {
  const bytes = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(bytes);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // channels
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([bytes], {type: "audio/wav"});
}

// -- the captions panel ----------------------------------------------------------------------------
function captionLines() {
  return $("captions").value.split("\n").map((l) => l.trim()).filter(Boolean);
}

async function scoreCaptions() {
  const captions = captionLines();
  if (!state.clip) {
    showError("Captions: upload or record a clip first.");
    return;
  }
  if (!captions.length) {
    showError("Captions: type at least one caption.");
    return;
  }
  const seq = ++state.seq.score;
  const form = new FormData();
  form.append("audio", state.clip, state.clip.name);
  for (const caption of captions) form.append("captions", caption);
  try {
    const body = await busy("captions-panel", () => postForm("v1/score", form));
    if (seq !== state.seq.score) return;
    renderCaptionScores(body.captions, body.scores[0]);
    clearError();
  } catch (err) {
    if (seq !== state.seq.score) return;
    reportError(err, "Scoring the captions");
  }
}

function renderCaptionScores(captions, scores) {
  const rows = captions.map((caption, i) => el("li", {"data-caption-index": i},
    el("span", {className: "bar-label", text: caption}),
    bar(scores[i], "cosine"),
    el("span", {className: "num", "data-role": "caption-score", title: "cosine", text: fmt(scores[i])})));
  $("caption-results").replaceChildren(...rows);
}

function onCaptionsSubmit(event) {
  event.preventDefault();
  scoreCaptions();
}

// -- the search panel ------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  const q = $("search-q").value.trim();
  if (!q) return;
  const k = Math.max(1, parseInt($("search-k").value, 10) || 5);
  const seq = ++state.seq.search;
  try {
    const params = new URLSearchParams({q, k: String(k)});
    const body = await busy("search-panel", () => api(`v1/search?${params}`));
    if (seq !== state.seq.search) return;
    renderSearch(body.results);
    clearError();
  } catch (err) {
    if (seq !== state.seq.search) return;
    reportError(err, "Searching");
  }
}

function renderSearch(results) {
  const items = results.map((r) => el("li", {className: "result", "data-row": r.row},
    el("div", {className: "result-head"},
      el("span", {className: "rank", text: `#${r.rank}`}),
      el("span", {className: "num", "data-role": "score", title: "cosine", text: fmt(r.score)}),
      bar(r.score, "cosine")),
    el("p", {className: "path", "data-role": "path", text: r.path}),
    r.caption ? el("p", {className: "fine", text: r.caption}) : null,
    // preload="none": a long result list should not download every clip before it is played
    el("audio", {controls: true, preload: "none", src: withKey(relative(r.audio_url))})));
  $("search-results").replaceChildren(...(items.length ? items : [el("li", {text: "no results"})]));
}

// -- the best-of-N panel ---------------------------------------------------------------------------
async function rerank(event) {
  event.preventDefault();
  const prompt = $("rerank-prompt").value.trim();
  const files = [...$("rerank-files").files];
  if (!prompt || files.length === 0) {
    showError("Best of N: type a prompt and choose at least one candidate clip.");
    return;
  }
  const seq = ++state.seq.rerank;
  const form = new FormData();
  form.append("prompt", prompt);
  for (const file of files) form.append("audio", file, file.name);
  try {
    const body = await busy("rerank-panel", () => postForm("v1/rerank", form));
    if (seq !== state.seq.rerank) return;
    renderRanking(body, files);
    clearError();
  } catch (err) {
    if (seq !== state.seq.rerank) return;
    reportError(err, "Ranking the candidates");
  }
}

// The ranking, best first; each candidate plays from the local file (no second upload).
function renderRanking(body, files) {
  state.rerankUrls.forEach((u) => URL.revokeObjectURL(u));
  state.rerankUrls = files.map((f) => URL.createObjectURL(f));
  const items = body.ranking.map((r) => el("li", {
    className: `result${r.index === body.best ? " best" : ""}`, "data-index": r.index, "data-rank": r.rank},
  el("div", {className: "result-head"},
    el("span", {className: "rank", text: `#${r.rank}`}),
    el("span", {className: "num", "data-role": "score", title: "cosine", text: fmt(r.score)}),
    bar(r.score === null ? 0 : r.score, "cosine")),
  el("p", {className: "path", "data-role": "clip", text: r.clip}),
  r.reward !== r.score ? el("p", {className: "fine", text: `reward ${fmt(r.reward)}`}) : null,
  el("audio", {controls: true, preload: "metadata", src: state.rerankUrls[r.index]})));
  $("rerank-results").replaceChildren(...items);
  const issues = (body.issues || []).map((i) => el("li", {text: `${i.clip}: ${i.message}`}));
  $("rerank-issues").replaceChildren(...issues);
}

// -- start -----------------------------------------------------------------------------------------
function onKeyChange() {
  saveApiKey($("api-key").value.trim());
  if (!state.model) loadModel(); // the first try may have been refused for want of this key
}

function init() {
  $("api-key").value = apiKey();
  $("api-key").addEventListener("change", onKeyChange);
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); onKeyChange(); });
  $("clip-file").addEventListener("change", onClipFile);
  $("record").addEventListener("click", toggleRecording);
  if (!canRecord()) $("record-note").textContent = "recording needs https or localhost";
  $("captions-form").addEventListener("submit", onCaptionsSubmit);
  $("search-form").addEventListener("submit", search);
  $("rerank-form").addEventListener("submit", rerank);
  loadModel();
}

document.addEventListener("DOMContentLoaded", init);
