// ferry's web view: the cluster's pods (list, then watch), each with the furthest step of its
// journey, and the journey of the pod picked as a live waterfall. It reads the API with the
// page's own credentials (a client certificate, or kubectl proxy's); every URL is relative to
// /ui/, so the page also works under a proxy's prefix. No framework: state, then rendering.
"use strict";

const ANNOTATION = "journey.ferry.dev/traceparent";
const state = {
  meta: null, // steps.json: the stages, the lanes, each step's stage and lane
  pods: new Map(), // uid -> pod
  furthest: new Map(), // uid -> the furthest step recorded for the pod
  picked: null, // uid of the pod whose journey is shown
  trace: null, // { id, abort } of the trace being watched
  spans: new Map(), // spanId -> step of that trace
};
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

class HTTPError extends Error {
  constructor(status, what) {
    super(`${what}: HTTP ${status}`);
    this.status = status;
  }
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function request(url, signal) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, signal });
  if (!response.ok) throw new HTTPError(response.status, url);
  return response;
}

const getJSON = async (url) => (await request(url)).json();

// A watch: one JSON object per line, each handed to `onItem`, until the server ends it.
async function follow(url, onItem, signal) {
  const reader = (await request(url, signal)).body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 1);
        if (line) onItem(JSON.parse(line));
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function showProblem(error) {
  const box = $("problem");
  box.textContent =
    error.status === 401 || error.status === 403
      ? `Not allowed (HTTP ${error.status}). Open this page with an administrator's client ` +
        `certificate, or through "kubectl proxy" (then http://127.0.0.1:8001/ui/).`
      : String(error.message || error);
  box.hidden = false;
  $("status").textContent = "disconnected";
}

// Runs `task` again whenever it ends (the server closed a watch) or fails, until refused.
async function keep(task, live = () => true) {
  while (live()) {
    try {
      await task();
    } catch (error) {
      if (error.name === "AbortError") return;
      // 410 Gone: the watch's revision was compacted; listing again is the cure.
      if (error.status !== 410) showProblem(error);
      if (error.status === 401 || error.status === 403) return;
    }
    await sleep(1000);
  }
}

// --- What is known -------------------------------------------------------------------------

const stageOf = (span) => state.meta.steps[span.step]?.stage ?? -1;
const key = (pod) => `${pod.metadata.namespace}/${pod.metadata.name}`;

// The pod a step was for, if it is one we list.
function podOf(span) {
  const object = span.object;
  if (!object || object.resource !== "pods") return null;
  if (object.uid && state.pods.has(object.uid)) return object.uid;
  for (const [uid, pod] of state.pods) {
    if (key(pod) === `${object.namespace}/${object.name}`) return uid;
  }
  return null;
}

// The furthest step: of the latest journey, the one of the latest stage, then the last ended.
function further(span, than) {
  if (!than) return true;
  if (span.traceId !== than.traceId) return span.startUnixNanos > than.endUnixNanos;
  const [a, b] = [stageOf(span), stageOf(than)];
  return a !== b ? a > b : span.endUnixNanos >= than.endUnixNanos;
}

function noteStep(span) {
  const uid = podOf(span);
  if (uid && further(span, state.furthest.get(uid))) {
    state.furthest.set(uid, span);
    render();
  }
}

// A pod listed or watched; a new one's steps so far are read once (new ones come by watch).
async function putPod(pod) {
  const uid = pod.metadata.uid;
  const known = state.pods.has(uid);
  state.pods.set(uid, pod);
  if (known) return;
  try {
    const { traces } = await getJSON(`../journey/v1/objects/${encodeURIComponent(uid)}`);
    for (const trace of traces) trace.spans.forEach(noteStep);
  } catch (error) {
    showProblem(error);
  }
}

function dropPod(uid) {
  state.pods.delete(uid);
  state.furthest.delete(uid);
  if (state.picked === uid) {
    state.trace?.abort.abort();
    Object.assign(state, { picked: null, trace: null, spans: new Map() });
  }
}

async function watchPods() {
  const list = await getJSON("../api/v1/pods");
  const listed = new Set(list.items.map((pod) => pod.metadata.uid));
  for (const uid of [...state.pods.keys()]) if (!listed.has(uid)) dropPod(uid);
  list.items.forEach(putPod);
  $("problem").hidden = true;
  $("status").textContent = "live";
  render();
  const since = encodeURIComponent(list.metadata.resourceVersion);
  await follow(`../api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${since}`, (event) => {
    if (event.type === "ERROR") throw new HTTPError(event.object.code || 500, "watching pods");
    if (event.type === "DELETED") dropPod(event.object.metadata.uid);
    else if (event.type !== "BOOKMARK") putPod(event.object);
    render();
  });
}

const watchSteps = () => follow("../journey/v1/spans?watch=1", noteStep);

// The pod's journey: the trace its annotation names, else the last kept with a step for it.
async function traceOf(pod) {
  const parent = pod.metadata.annotations?.[ANNOTATION];
  if (parent) return parent.split("-")[1];
  const { traces } = await getJSON(`../journey/v1/objects/${encodeURIComponent(pod.metadata.uid)}`);
  return traces.length ? traces[traces.length - 1].traceId : null;
}

async function pick(uid) {
  state.trace?.abort.abort();
  Object.assign(state, { picked: uid, trace: null, spans: new Map() });
  render();
  const id = await traceOf(state.pods.get(uid));
  if (state.picked !== uid || !id) return;
  const trace = { id, abort: new AbortController() };
  state.trace = trace;
  const url = `../journey/v1/traces/${encodeURIComponent(id)}?watch=1`;
  const add = (span) => {
    state.spans.set(span.spanId, span);
    render();
  };
  keep(() => follow(url, add, trace.abort.signal), () => state.trace === trace);
}

// --- Rendering -----------------------------------------------------------------------------

let queued = false;
function render() {
  if (queued) return;
  queued = true;
  setTimeout(() => {
    queued = false;
    renderPods();
    renderJourney();
  }, 30);
}

// The list is patched, not rebuilt, so that a click never lands on a node just replaced.
function renderPods() {
  const list = $("pods");
  const old = new Map([...list.children].map((li) => [li.dataset.uid, li]));
  const pods = [...state.pods.values()].sort((a, b) => key(a).localeCompare(key(b)));
  const items = pods.map((pod) => {
    const uid = pod.metadata.uid;
    const li = old.get(uid) || el("li");
    Object.assign(li.dataset, { uid, name: pod.metadata.name, namespace: pod.metadata.namespace });
    li.setAttribute("aria-selected", String(uid === state.picked));
    li.tabIndex = 0;
    const where = pod.spec.nodeName ? ` · ${pod.spec.nodeName}` : "";
    const meta = `${pod.metadata.namespace} · ${pod.status?.phase || "Pending"}${where}`;
    const step = state.furthest.get(uid);
    const stage = step ? state.meta.stages[stageOf(step)] : undefined;
    const text = step ? `${step.step}${stage ? ` (${stage})` : ""}` : "no steps yet";
    const shown = [meta, text, step?.error || ""].join("\n");
    if (li.dataset.shown !== shown) {
      li.dataset.shown = shown;
      li.dataset.step = step?.step || "";
      const stepLine = el("div", `step${step?.error ? " failed" : ""}`, text);
      if (step?.error) stepLine.title = step.error;
      li.replaceChildren(el("div", "name", pod.metadata.name), el("div", "meta", meta), stepLine);
    }
    return li;
  });
  const same = items.length === list.children.length && items.every((li, i) => list.children[i] === li);
  if (!same) list.replaceChildren(...items);
  $("no-pods").hidden = items.length > 0;
}

// The steps shown for the pod: its own, its owners' (a Deployment's, a ReplicaSet's), and the
// steps under them; not those of the other pods of the same journey.
function shownSteps(pod) {
  const shown = new Map();
  const isShown = (span) => {
    if (shown.has(span.spanId)) return shown.get(span.spanId);
    shown.set(span.spanId, false); // a cycle would stop here
    let yes;
    if (span.object) {
      const own = span.object.uid === pod.metadata.uid ||
        `${span.object.namespace}/${span.object.name}` === key(pod);
      yes = span.object.resource !== "pods" || own;
    } else {
      const parent = state.spans.get(span.parentSpanId);
      yes = !parent || isShown(parent);
    }
    shown.set(span.spanId, yes);
    return yes;
  };
  return [...state.spans.values()].filter(isShown).sort((a, b) => a.startUnixNanos - b.startUnixNanos);
}

// A step's lane: the one of its step, else of its component (by name, then by a `*` pattern),
// else "other".
function laneOf(span) {
  const { steps, components, lanes } = state.meta;
  const matches = (pattern) => pattern.startsWith("*") && span.component.endsWith(pattern.slice(1));
  const pattern = Object.keys(components).find(matches);
  return steps[span.step]?.lane ?? components[span.component] ?? components[pattern] ?? lanes.length;
}

function duration(ns) {
  if (ns < 1e3) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function renderJourney() {
  const pod = state.pods.get(state.picked);
  if (!pod) {
    $("journey-title").textContent = "Pick a pod to follow its journey";
    $("stages").replaceChildren();
    $("waterfall").replaceChildren();
    return;
  }
  const steps = shownSteps(pod);
  const start = Math.min(...steps.map((s) => s.startUnixNanos));
  const end = Math.max(...steps.map((s) => s.endUnixNanos));
  const total = Math.max(end - start, 1);
  $("journey-title").textContent = steps.length
    ? `Journey of ${key(pod)}: ${steps.length} steps over ${duration(end - start)}`
    : `Journey of ${key(pod)}: waiting for its steps…`;

  const reached = Math.max(-1, ...steps.map(stageOf));
  $("stages").replaceChildren(
    ...state.meta.stages.map((name, stage) => {
      const of = steps.filter((s) => stageOf(s) === stage);
      // Failed while the stage's last step is a failure: a pod bound after all is scheduled.
      const last = of.reduce((a, s) => (!a || s.endUnixNanos >= a.endUnixNanos ? s : a), null);
      const failed = Boolean(last?.error);
      const li = el("li", failed ? "failed" : stage === reached ? "current" : of.length ? "done" : "", name);
      li.dataset.stage = name;
      return li;
    }),
  );

  const lanes = [...state.meta.lanes, "other"];
  const rows = [];
  lanes.forEach((name, lane) => {
    const of = steps.filter((s) => laneOf(s) === lane);
    if (!of.length && lane === state.meta.lanes.length) return;
    const header = el("div", `lane${of.length ? "" : " empty"}`, of.length ? name : `${name}: no steps`);
    header.dataset.lane = name;
    rows.push(header);
    for (const span of of) rows.push(...row(span, start, total));
  });
  $("waterfall").replaceChildren(...rows);
}

// How many steps of the trace a step hangs under.
function depth(span) {
  let n = 0;
  for (let at = span; n < 32 && (at = state.spans.get(at.parentSpanId)); n++);
  return n;
}

function row(span, start, total) {
  const r = el("div", `row${span.error ? " failed" : ""}${span.step === "persisted" ? " persisted" : ""}`);
  r.dataset.step = span.step;
  const label = el("div", "label", span.step);
  label.style.paddingLeft = `${1 + 0.8 * depth(span)}em`;
  const object = span.object;
  const about = [span.attributes?.plugin, span.attributes?.verb, span.attributes?.subresource];
  if (object && object.resource !== "pods") about.push(`${object.resource}/${object.name}`);
  const more = about.filter(Boolean).join(" ");
  if (more) label.append(el("span", "object", ` ${more}`));
  const attributes = Object.entries(span.attributes || {}).map(([k, v]) => `${k}=${v}`);
  label.title = [`${span.component}: ${span.step}`, ...attributes].join("\n");
  const stage = state.meta.stages[stageOf(span)] || "";
  const offset = span.startUnixNanos - start;
  const length = span.endUnixNanos - span.startUnixNanos;
  const track = el("div", "track");
  const bar = el("div", "bar");
  const left = (100 * offset) / total;
  const width = (100 * length) / total;
  bar.style.left = `${left}%`;
  bar.style.width = `${width}%`;
  const time = el("span", "time", `+${duration(offset)} · ${duration(length)}`);
  // After the bar, or before it when the bar reaches the right edge.
  if (left + width < 75) time.style.left = `${left + width}%`;
  else Object.assign(time.style, { right: `${100 - left}%`, textAlign: "right" });
  track.append(bar, time);
  r.append(label, el("div", "stage", stage), track);
  if (!span.error) return [r];
  return [r, Object.assign(el("div", "error", `✗ ${span.error}`), { role: "note" })];
}

async function main() {
  try {
    state.meta = await getJSON("steps.json");
  } catch (error) {
    showProblem(error);
    return;
  }
  const picked = (event) => event.target.closest("li[data-uid]")?.dataset.uid;
  $("pods").addEventListener("click", (event) => picked(event) && pick(picked(event)));
  $("pods").addEventListener("keydown", (event) => event.key === "Enter" && picked(event) && pick(picked(event)));
  keep(watchPods);
  keep(watchSteps);
}

main();
