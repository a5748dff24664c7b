// The dashboard's script: it reads the JSON API as any client does, with the token the user
// typed, kept in this tab's sessionStorage only. Every node is built with el() from text, so
// nothing a job holds is ever read as HTML. The page is <gateway>/ui/, so the API is "../".
"use strict";

const TOKEN_KEY = "async-api.token";
const API_ROOT = new URL("../", location.href);
const REFRESH_MS = 2000;
const LABELS = {
  pending: "running", waiting_for_approval: "waiting for approval", resolved: "succeeded",
  rejected: "failed", canceled: "canceled", timedout: "timed out",
  abandoned: "abandoned", // the page's own, for a step its ended job never finished (asEnded)
};
const RUNNING = new Set(["pending", "waiting_for_approval"]);
const RETRYABLE = new Set(["rejected", "canceled", "timedout"]);

const $ = (id) => document.getElementById(id);

// cursors[n] is what GET /jobs takes as `cursor` for page n (null: the newest page).
const paging = {cursors: [null], page: 0};
let refreshTimer = null;
let renderTurn = 0; // a render that finds a newer one started meanwhile paints nothing
let painted = null; // what the page shows: "list", or the id of the job shown

/* --- talking to the API ------------------------------------------------------------------- */

class Unauthorized extends Error {}

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error ? `${error.message} (${status} ${error.code})` : `The gateway answered ${status}.`);
    this.status = status;
  }
}

function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.append(name, value);
  }
  return url;
}

// `body` is JSON text, sent as typed: the gateway checks it and says what is wrong.
async function api(method, path, {params = {}, body} = {}) {
  const headers = {Accept: "application/json"};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiUrl(path, params), {method, headers, body});
  if (response.status === 401) throw new Unauthorized();
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function jobPath(jobId, action) {
  return `/jobs/${encodeURIComponent(jobId)}` + (action ? `/${action}` : "");
}

// Whether the job view links the route `name` (cancel, retry, steps): an older gateway has no
// steps, and no gateway links a cancel or retry the caller may not make.
function offers(job, name) {
  return Boolean(job.links && job.links[name]);
}

/* --- building nodes ----------------------------------------------------------------------- */

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function jobHash(jobId) {
  return `#/jobs/${encodeURIComponent(jobId)}`;
}

function jobAnchor(jobId) {
  return el("a", {href: jobHash(jobId)}, jobId);
}

function statusBadge(status) {
  return el("span", {class: "status", "data-status": status, title: status},
    LABELS[status] || status);
}

function pad(number) {
  return String(number).padStart(2, "0");
}

function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  const text = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  return el("time", {datetime: iso, title: iso}, text);
}

function humanDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// From `start` to `end`, or to now while `running`; "—" when the times are not known.
function span(start, end, running) {
  if (!start || (!end && !running)) return "—";
  const until = end ? Date.parse(end) : Date.now();
  return humanDuration(until - Date.parse(start));
}

function jobDuration(job) {
  return span(job.created_at, job.completed_at, RUNNING.has(job.status));
}

function fractionOf(progress) {
  return Math.min(1, Math.max(0, Number(progress.fraction) || 0));
}

function percent(progress) {
  return `${Math.round(fractionOf(progress) * 100)} %`;
}

function progressBar(progress) {
  if (!progress) return "—";
  return el("span", {class: "progress", title: progress.message || ""},
    el("progress", {max: "1", value: String(fractionOf(progress))}), ` ${percent(progress)}`);
}

/* --- messages, views and the token -------------------------------------------------------- */

// kind "stale": a refresh failed, and the next good one clears it; "error" (an action failed)
// and "info" stay until the user's next action or another page.
function say(text, kind = "error") {
  const message = $("message");
  message.textContent = text;
  message.className = kind;
  message.hidden = !text;
}

function clearStale() {
  if ($("message").className === "stale") say("");
}

function show(viewId) {
  for (const id of ["token-view", "list-view", "detail-view"]) $(id).hidden = id !== viewId;
  $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(why) {
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  show("token-view");
  say(why);
  $("token").focus();
}

// Shows what went wrong; false when the token was refused (the token form is then shown).
function report(error, kind) {
  if (error instanceof Unauthorized) {
    askForToken(sessionStorage.getItem(TOKEN_KEY)
      ? "The gateway refused this token; enter another."
      : "This gateway needs a token.");
    return false;
  }
  say(error instanceof ApiError ? error.message
    : `The gateway could not be reached (${error.message}).`, kind);
  return true;
}

/* --- the job list ------------------------------------------------------------------------- */

function loadList() {
  return api("GET", "/jobs", {params: {
    state: $("state").value, limit: $("limit").value, cursor: paging.cursors[paging.page],
  }});
}

function jobRow(job) {
  return el("tr", {"data-job-id": job.job_id},
    el("td", {}, jobAnchor(job.job_id)),
    el("td", {}, job.function || "—"),
    el("td", {}, statusBadge(job.status)),
    el("td", {}, progressBar(job.progress)),
    el("td", {}, when(job.created_at)),
    el("td", {}, jobDuration(job)));
}

function paintList({jobs, next_cursor: nextCursor}) {
  show("list-view");
  paging.cursors.length = paging.page + 1; // pages past this one may have moved
  paging.cursors.push(nextCursor);
  $("jobs").tBodies[0].replaceChildren(...jobs.map(jobRow));
  $("no-jobs").hidden = jobs.length > 0;
  $("newer").disabled = paging.page === 0;
  $("older").disabled = !nextCursor;
  $("page-number").textContent = `page ${paging.page + 1}`;
}

function turnPage(step) {
  paging.page = Math.max(0, paging.page + step);
  render();
}

function firstPage() {
  paging.cursors = [null];
  paging.page = 0;
  render();
}

/* --- one job ------------------------------------------------------------------------------ */

// null when this gateway lists no steps (its job view offers no link to them).
async function loadSteps(job) {
  return offers(job, "steps") ? (await api("GET", jobPath(job.job_id, "steps"))).steps : null;
}

// What the gateway answers for an id that names no job.
const NO_SUCH_JOB = {error: {code: "not_found", message: "No job has this id."}};

async function loadJob(jobId) {
  // No id holds "/": not asked. The gateway answers a path holding %2F 404; an older one
  // decoded it into another route's path (order:A1/steps was order:A1's steps).
  if (jobId.includes("/")) throw new ApiError(404, NO_SUCH_JOB);
  const job = await api("GET", jobPath(jobId));
  return {job, steps: await loadSteps(job)};
}

const FACTS = [
  ["Function", (job) => job.function],
  ["Group", (job) => job.group],
  ["Attempt", (job) => job.attempt],
  ["Retry of", (job) => job.retry_of && jobAnchor(job.retry_of)],
  ["First attempt", (job) => job.first_attempt && jobAnchor(job.first_attempt)],
  ["Retried by", (job) => job.retried_by && jobAnchor(job.retried_by)],
  ["Waiting for", (job) => job.waiting_for],
  ["Created", (job) => job.created_at && when(job.created_at)],
  ["Updated", (job) => job.updated_at && when(job.updated_at)],
  ["Completed", (job) => job.completed_at && when(job.completed_at)],
  ["Duration", (job) => job.created_at && jobDuration(job)],
];

function facts(job) {
  return FACTS.flatMap(([label, value]) => {
    const shown = value(job);
    return shown === undefined || shown === null ? []
      : [el("dt", {}, label), el("dd", {"data-fact": label}, shown)];
  });
}

function progressDetail(progress) {
  if (!progress) return [];
  return [progressBar(progress), el("span", {class: "progress-message"}, progress.message || "")];
}

// Shows `value` as JSON under `title`, or hides both when the job has none.
function paintBlock(id, title, value) {
  $(`${id}-title`).hidden = $(id).hidden = value === undefined;
  if (title) $(`${id}-title`).textContent = title;
  $(id).textContent = value === undefined ? "" : JSON.stringify(value, null, 2);
}

function outcome(job) {
  if (job.status === "resolved") return ["Result", job.result];
  if ("reason" in job) return ["Error", job.reason];
  return [null, undefined];
}

// A progress report says what it reported; a step or call, what it runs.
function stepName(step) {
  if (step.kind === "progress" && step.progress) {
    return `${percent(step.progress)} ${step.progress.message || ""}`;
  }
  return step.function || step.id;
}

function stepItem(step) {
  return el("li", {"data-status": step.status, "data-step-id": step.id},
    el("span", {class: "step-time"}, when(step.created_at)),
    el("span", {class: "step-name"}, stepName(step)),
    el("span", {class: "step-kind"}, step.kind || ""),
    statusBadge(step.status),
    el("span", {class: "step-duration"},
      span(step.created_at, step.completed_at, step.status === "pending")));
}

// A job that ended (canceled, timed out) leaves the steps it was in stored as pending: they
// will never go on, so they are shown abandoned, timed to the job's end rather than to now.
// So is one that ended only after the job did: a canceled job's sleep, whose timer the engine
// still fires, or its approval, timed out or decided for a retry, did nothing for this job.
function asEnded(step, job) {
  if (RUNNING.has(job.status)) return step;
  const endedAfterJob = step.completed_at !== null && step.completed_at > job.completed_at;
  if (step.status !== "pending" && !endedAfterJob) return step;
  return {...step, status: "abandoned", completed_at: job.completed_at};
}

function paintSteps(steps, job) {
  $("timeline").replaceChildren(...(steps || []).map((step) => stepItem(asEnded(step, job))));
  const none = steps === null ? "This gateway does not list a job's steps."
    : steps.length === 0 ? "No steps yet." : "";
  $("no-steps").textContent = none;
  $("no-steps").hidden = !none;
}

// Once retried, the job links its next attempt instead (a second retry would return it).
function canRetry(job) {
  return RETRYABLE.has(job.status) && offers(job, "retry") && !job.retried_by;
}

function paintJob({job, steps}) {
  show("detail-view");
  $("job-title").replaceChildren(`${job.job_id} `, statusBadge(job.status));
  $("job-facts").replaceChildren(...facts(job));
  $("job-progress").replaceChildren(...progressDetail(job.progress));
  paintBlock("job-outcome", ...outcome(job));
  paintBlock("job-args", null, job.args);
  paintSteps(steps, job);
  $("cancel").hidden = !(RUNNING.has(job.status) && offers(job, "cancel"));
  $("retry").hidden = !canRetry(job);
}

/* --- rendering what the address says, again and again ------------------------------------ */

function openedJob() {
  const match = location.hash.match(/^#\/jobs\/(.+)$/);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1]; // a malformed escape: asked for as it is, and answered 400 or 404
  }
}

// A page that failed to load shows nothing of the one shown before it (a failed refresh of
// the same page keeps it, marked stale).
function blank(jobId) {
  if (jobId === null) {
    show("list-view");
    $("jobs").tBodies[0].replaceChildren();
    return;
  }
  show("detail-view");
  $("job-title").replaceChildren(jobId);
  for (const id of ["job-facts", "job-progress", "timeline"]) $(id).replaceChildren();
  for (const id of ["job-outcome-title", "job-outcome", "job-args-title", "job-args", "cancel",
                    "retry", "no-steps"]) $(id).hidden = true;
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if ($("auto-refresh").checked) refreshTimer = setTimeout(render, REFRESH_MS);
}

async function render() {
  clearTimeout(refreshTimer);
  const turn = ++renderTurn;
  const jobId = openedJob();
  const view = jobId === null ? {load: loadList, paint: paintList}
    : {load: () => loadJob(jobId), paint: paintJob};
  try {
    const data = await view.load();
    if (turn !== renderTurn) return;
    view.paint(data);
    painted = jobId ?? "list";
    clearStale();
  } catch (error) {
    if (turn !== renderTurn) return;
    if (painted !== (jobId ?? "list")) {
      blank(jobId);
      painted = null;
    }
    if (!report(error, "stale")) return;
  }
  scheduleRefresh();
}

/* --- what the buttons do ------------------------------------------------------------------ */

// Runs a request the user asked for; returns its answer, or null after saying what failed.
async function act(request) {
  say("");
  try {
    return await request();
  } catch (error) {
    report(error, "error");
    return null;
  }
}

async function beginJob(event) {
  event.preventDefault();
  const answer = await act(() => api("POST", "/begin", {
    params: {id: $("begin-id").value.trim()}, body: $("begin-body").value,
  }));
  if (answer) {
    say(`Started job ${answer.promise}.`, "info");
    firstPage();
  }
}

async function cancelJob() {
  const jobId = openedJob();
  if (!confirm(`Cancel job ${jobId}?`)) return;
  if (await act(() => api("POST", jobPath(jobId, "cancel")))) {
    say(`Canceled ${jobId}.`, "info");
    render();
  }
}

async function retryJob() {
  const jobId = openedJob();
  const attempt = await act(() => api("POST", jobPath(jobId, "retry")));
  if (attempt) location.hash = jobHash(attempt.job_id); // its page says what it retries
}

function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  say("");
  render();
}

function forgetToken() {
  askForToken("The token is forgotten.");
}

// Another page: what was said about the last one no longer applies.
function leavePage() {
  say("");
  render();
}

function wire() {
  $("token-form").addEventListener("submit", useToken);
  $("forget-token").addEventListener("click", forgetToken);
  $("begin-form").addEventListener("submit", beginJob);
  $("state").addEventListener("change", firstPage);
  $("limit").addEventListener("change", firstPage);
  $("auto-refresh").addEventListener("change", render);
  $("refresh").addEventListener("click", render);
  $("newer").addEventListener("click", () => turnPage(-1));
  $("older").addEventListener("click", () => turnPage(1));
  $("cancel").addEventListener("click", cancelJob);
  $("retry").addEventListener("click", retryJob);
  window.addEventListener("hashchange", leavePage);
}

wire();
render();
