// remedy dashboard: plain JavaScript, no build step, no external resources.
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
let token = localStorage.getItem("remedy-token") || "";
const history = {}; // metric -> [[t, v]]
const latest = {};  // metric -> its latest value (a sample may carry only some metrics)
const MAX_POINTS = 3600; // an hour at one sample a second

async function api(path, opts = {}) {
  opts.headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
  if (token) opts.headers.Authorization = "Bearer " + token;
  const r = await fetch(path, opts);
  if (r.status === 401) { $("#login").classList.remove("hidden"); throw new Error("token needed"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

const fmtTime = (t) => { const d = new Date(t); return isNaN(d) ? "" : d.toLocaleTimeString(); };
const ago = (t) => { if (!t) return "never"; const s = Math.round((Date.now() - new Date(t)) / 1000); return s < 90 ? s + "s ago" : s < 5400 ? Math.round(s / 60) + "m ago" : Math.round(s / 3600) + "h ago"; };
const until = (t) => { const s = Math.round((new Date(t) - Date.now()) / 1000); return s <= 0 ? "now" : s < 90 ? "in " + s + "s" : "in " + Math.round(s / 60) + "m"; };

function badge(sel, text, cls) { const b = $(sel); b.textContent = text; b.className = "badge " + (cls || ""); }

// emptyRow says, across the whole table, that there is nothing yet and what will come.
function emptyRow(tb, text) {
  const td = el("td", "empty", text); td.colSpan = tb.closest("table").querySelectorAll("thead th").length;
  const tr = el("tr", "empty-row"); tr.append(td); tb.append(tr);
}

function addSample(t, values) {
  const cut = Date.now() - 3600 * 1000;
  for (const [k, v] of Object.entries(values)) {
    const h = (history[k] = history[k] || []);
    h.push([new Date(t).getTime(), v]);
    while (h.length > MAX_POINTS || (h.length && h[0][0] < cut)) h.shift();
  }
}

// Charts (uPlot, embedded): the last hour on a time axis, each with its unit; percentages
// on a fixed 0–100 scale, other values from 0, so a small wobble does not look dramatic;
// missing samples (remedy was down, a sample was lost) are gaps, not lines.
const WINDOW_S = 3600;
const CHARTS = [
  { id: "cpu", title: "CPU", unit: "%", max: 100, series: [["cpu_percent", "CPU"]] },
  { id: "mem", title: "Memory", unit: "%", max: 100, series: [["mem_percent", "memory"]] },
  { id: "disk", title: "Disk free", unit: "%", max: 100, series: [["disk_free_percent", "free"]] },
  { id: "msgs", title: "Messages", unit: "/min", series: [["msgs_received_per_min", "received"], ["msgs_failed_per_min", "failed"]] },
  { id: "errors", title: "Error rate", unit: "%", max: 100, scale: 100, series: [["error_rate", "failed"]] },
  { id: "queues", title: "Queue depth", unit: "", caption: "items", queues: true, series: [] },
];
const COLORS = ["#2c5282", "#c53030", "#1f8a4c", "#b7791f"];
const plots = {};

function chartSeries(c) {
  if (!c.queues) return c.series;
  return Object.keys(history).filter((k) => /^queue_.*_depth$/.test(k)).sort().map((k) => [k, k.replace(/^queue_|_depth$/g, "")]);
}

// chartData puts the series on the union of their sample times: remedy samples its own
// metrics together, but a bot posts its own (queue_jobs_depth) at its own times, so no
// series' times may stand for another's. At another series' time a series has no value
// (undefined, which uPlot spans); it has a null, drawn as a gap, where two of its own
// samples are further apart than 2.5 times its usual interval.
function chartData(c, series) {
  const points = series.map(([k]) => withGaps(history[k] || []));
  const xs = [...new Set(points.flatMap((p) => p.map(([t]) => t)))].sort((a, b) => a - b);
  const ys = points.map((p) => {
    const m = new Map(p);
    return xs.map((t) => { const v = m.get(t); return v == null ? v : v * (c.scale || 1); });
  });
  return [xs.map((t) => t / 1000), ...ys];
}

// withGaps returns a series' points with a null point in each gap (see chartData).
function withGaps(h) {
  const steps = h.slice(1).map((p, i) => p[0] - h[i][0]).sort((a, b) => a - b);
  const gap = 2.5 * (steps.length ? steps[Math.floor(steps.length / 2)] : 10000);
  const out = [];
  h.forEach(([t, v], i) => {
    out.push([t, v]);
    const next = h[i + 1];
    if (next && next[0] - t > gap) out.push([t + gap / 2, null]);
  });
  return out;
}

function fmtValue(c, v) {
  if (v == null) return "–";
  const r = Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
  return r + c.unit;
}

const hhmm = (s) => new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });

function chartOpts(c, series, width) {
  const axis = { stroke: "#6b7385", grid: { stroke: "#eef0f4", width: 1 }, ticks: { stroke: "#e3e6ec", width: 1 }, font: "11px system-ui, sans-serif" };
  return {
    width, height: 150, legend: { show: series.length > 1 }, cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: () => [Date.now() / 1000 - WINDOW_S, Date.now() / 1000] },
      y: { range: (u, min, max) => c.max ? [0, c.max] : [0, Math.max(1, (max || 0) * 1.15)] },
    },
    axes: [
      Object.assign({}, axis, { space: 60, values: (u, splits) => splits.map(hhmm) }),
      Object.assign({}, axis, { size: 58, space: 30, values: (u, splits) => splits.map((v) => fmtValue(c, v)) }),
    ],
    series: [{ label: "time", value: (u, v) => v == null ? "" : hhmm(v) },
      ...series.map(([, label], i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        fill: series.length === 1 ? COLORS[i % COLORS.length] + "14" : undefined, value: (u, v) => fmtValue(c, v) }))],
  };
}

function setupCharts() {
  const box = $("#charts");
  for (const c of CHARTS) {
    const fig = el("figure"); fig.id = "chart-" + c.id;
    const cap = el("figcaption"); cap.append(el("b", "", c.title), " ", el("small", "", "(" + (c.caption || c.unit) + ", last hour)"));
    const now = el("span", "now"); now.id = "now-" + c.id; cap.append(now);
    const plot = el("div", "plot"); plot.id = "plot-" + c.id;
    const empty = el("p", "empty", c.queues ? "No queues: they start with WhatsApp." : "No samples yet: the first one comes within the sample interval (10 s by default).");
    empty.id = "empty-" + c.id;
    fig.append(cap, plot, empty); box.append(fig);
  }
}

function drawCharts() {
  if (typeof uPlot === "undefined") return;
  for (const c of CHARTS) {
    const series = chartSeries(c), plot = $("#plot-" + c.id);
    const data = series.length ? chartData(c, series) : [[]];
    const has = data[0].length > 0;
    $("#empty-" + c.id).classList.toggle("hidden", has);
    plot.classList.toggle("hidden", !has);
    const last = has ? data.slice(1).map((ys) => ys.filter((v) => v != null).pop()) : [];
    $("#now-" + c.id).textContent = has && series.length === 1 ? "now " + fmtValue(c, last[0]) : "";
    if (!has) continue;
    const key = series.map((s) => s[0]).join(",");
    let p = plots[c.id];
    if (p && p.key !== key) { p.u.destroy(); p = null; }
    if (!p) {
      const width = Math.max(260, plot.clientWidth || 340);
      p = plots[c.id] = { key, u: new uPlot(chartOpts(c, series, width), data, plot) };
    } else {
      p.u.setData(data);
    }
  }
}

function renderCards(sample) {
  const cards = $("#cards"); cards.replaceChildren();
  const show = [["cpu_percent", "CPU", "%"], ["mem_percent", "memory", "%"], ["disk_free_percent", "disk free", "%"],
    ["process_rss_mb", "remedy memory", " MB"], ["msgs_received_per_min", "messages/min", ""], ["error_rate", "error rate", ""],
    ["msgs_undecryptable_per_min", "undecryptable/min", ""]];
  for (const [k, label, unit] of show) {
    const v = sample[k]; const m = el("div", "metric"); m.dataset.metric = k;
    m.append(el("b", "", v === undefined ? "–" : (Math.round(v * 100) / 100) + unit), el("span", "", label)); cards.append(m);
  }
  for (const k of Object.keys(sample).filter((k) => /^queue_.*_depth$/.test(k)).sort()) {
    const m = el("div", "metric"); m.append(el("b", "", String(sample[k])), el("span", "", k.replace(/^queue_|_depth$/g, "") + " queue")); cards.append(m);
  }
}

// Pairing: the card shows while the device is unpaired; during a pairing attempt the
// QR code (a data: URL, so the token-carrying fetch can load it) is polled every 2 s.
let pairPoll = null, pairChecked = false;
function renderPairing(state) {
  const need = state === "unpaired" || state === "pairing" || state === "logged_out";
  $("#pair-card").classList.toggle("hidden", !need);
  if (state === "pairing" && !pairPoll) pairPoll = setInterval(loadQR, 2000);
  // After an attempt, and once on page load, ask why the last attempt ended.
  if (state !== "pairing" && (pairPoll || (need && !pairChecked))) { clearInterval(pairPoll); pairPoll = null; pairChecked = true; loadQR(); }
}
async function loadQR() {
  try { const r = await api("/api/v1/whatsapp/qr"); $("#pair-qr").src = r.png; $("#pair-qr").classList.remove("hidden"); pairMsg(""); }
  catch (e) { $("#pair-qr").classList.add("hidden"); if (/failed/.test(e.message)) pairMsg(e.message, true); }
}
function pairMsg(text, isError) {
  $("#pair-msg").textContent = text; $("#pair-msg").className = isError ? "msg error" : "msg";
}
async function startPairing() {
  try { await api("/api/v1/whatsapp/pair", { method: "POST" }); pairMsg("waiting for the code…"); await loadQR(); refreshOverview(); }
  catch (e) { pairMsg(e.message, true); }
}

// Sessions (issue 22): with several WhatsApp numbers a card per session (its state,
// number, queues, handler, pairing) replaces the one pairing card, the header badge
// counts the connected ones, and the alerts and events tables filter by labels.session.
// One session looks as before.
let sessions = [];     // the last GET /api/v1/sessions
const sessionQR = {};  // name -> its QR code (a data: URL) while it pairs
const sessionMsg = {}; // name -> why the page's last Pair request was refused
const multi = () => sessions.length > 1;
const sessionOf = (labels) => (labels && labels.session) || "";
// phone is a JID's number (6281…:12@s.whatsapp.net -> +6281…); another JID as it is.
const phone = (jid) => { const u = (jid || "").split("@")[0].split(":")[0]; return /^\d+$/.test(u) ? "+" + u : u; };
const stateClass = (st) => st === "connected" ? "ok" : st === "unpaired" || st === "pairing" ? "warn" : "bad";
const pairingNow = (s) => s.state === "pairing" || s.qr_available;

async function refreshSessions() {
  sessions = await api("/api/v1/sessions");
  for (const s of sessions) if (s.paired) delete sessionMsg[s.name];
  const on = multi();
  $("#sessions-card").classList.toggle("hidden", !on);
  renderSessionFilters();
  if (!on) return;
  $("#pair-card").classList.add("hidden");
  renderSessionBadge();
  renderSessions();
  pollSessionQRs();
}

function renderSessionBadge() {
  const up = sessions.filter((s) => s.state === "connected").length;
  const cls = up === sessions.length ? "ok" : sessions.some((s) => stateClass(s.state) === "bad") ? "bad" : "warn";
  badge("#wa", "WhatsApp " + up + "/" + sessions.length + " connected", cls);
}

function renderSessions() {
  $("#sessions-count").textContent = sessions.length + " numbers";
  const box = $("#sessions"); box.replaceChildren();
  for (const s of sessions) {
    const c = el("div", "session"); c.dataset.session = s.name;
    const h = el("h3"); h.append(el("span", "name", s.name), " ", el("span", "state " + stateClass(s.state), s.state.replace(/_/g, " ")));
    c.append(h, el("div", "number", s.paired ? phone(s.jid) || "paired" : "not paired"),
      el("div", "depths", "queues: inbound " + s.inbound_depth + " · outbound " + s.outbound_depth));
    if (s.handler) c.append(el("div", "handler", "handler " + s.handler));
    const why = sessionMsg[s.name] || (s.pair_failure ? "The last pairing attempt failed. " + s.pair_failure : "");
    if (why) c.append(el("p", "msg error", why));
    if (!s.paired && s.state !== "pairing") {
      const b = el("button", "pair", "Pair"); b.addEventListener("click", () => pairSession(s.name)); c.append(b);
    }
    if (s.state === "pairing") c.append(el("p", "hint", "Scan with WhatsApp → Linked devices → Link a device; a new code appears every 20 s."));
    box.append(c);
    showSessionQR(s.name);
  }
}

async function pairSession(name) {
  try { await api("/api/v1/sessions/" + encodeURIComponent(name) + "/pair", { method: "POST" }); delete sessionMsg[name]; }
  catch (e) { sessionMsg[name] = e.message; }
  await refreshSessions().catch(() => {});
}

// The QR codes of the sessions that pair are polled every 2 s, as the one card's is.
let sessionPoll = null;
function pollSessionQRs() {
  const pairing = sessions.filter(pairingNow);
  for (const n of Object.keys(sessionQR)) if (!pairing.some((s) => s.name === n)) delete sessionQR[n];
  if (pairing.length && !sessionPoll) { sessionPoll = setInterval(loadSessionQRs, 2000); loadSessionQRs(); }
  if (!pairing.length && sessionPoll) { clearInterval(sessionPoll); sessionPoll = null; }
}
async function loadSessionQRs() {
  for (const s of sessions.filter(pairingNow)) {
    try { sessionQR[s.name] = (await api("/api/v1/sessions/" + encodeURIComponent(s.name) + "/qr")).png; }
    catch (e) { delete sessionQR[s.name]; }
    showSessionQR(s.name);
  }
}
function showSessionQR(name) {
  const card = [...$("#sessions").children].find((c) => c.dataset.session === name); if (!card) return;
  let img = card.querySelector("img.qr");
  if (!sessionQR[name]) { if (img) img.remove(); return; }
  if (!img) { img = el("img", "qr"); img.alt = "pairing QR code of " + name; img.width = img.height = 264; card.append(img); }
  img.src = sessionQR[name];
}

// The filters list the sessions (hidden with one); a filter that names a session that
// no longer runs falls back to all.
function renderSessionFilters() {
  const names = multi() ? sessions.map((s) => s.name) : [];
  for (const sel of document.querySelectorAll(".session-filter")) {
    sel.classList.toggle("hidden", !names.length);
    if ([...sel.options].map((o) => o.value).join("\n") === ["", ...names].join("\n")) continue;
    const cur = sel.value, all = el("option", "", "all sessions"); all.value = "";
    sel.replaceChildren(all, ...names.map((n) => { const o = el("option", "", n); o.value = n; return o; }));
    sel.value = names.includes(cur) ? cur : "";
    if (sel.value !== cur) sel.dispatchEvent(new Event("change"));
  }
}
// shownSession says whether a row of session s passes the filter sel.
const shownSession = (sel, s) => !$(sel).value || $(sel).value === s;

function filterEvents() {
  let shown = 0;
  for (const li of $("#events").children) { const hide = !shownSession("#events-session", li.dataset.session); li.classList.toggle("hidden", hide); if (!hide) shown++; }
  const v = $("#events-session").value, f = $("#events-filtered");
  f.textContent = v && !shown && $("#events").children.length ? "No events of session " + v + " among the latest." : "";
  f.classList.toggle("hidden", !f.textContent);
}

let sessionsTimer = null;
function scheduleSessions() { if (sessionsTimer) return; sessionsTimer = setTimeout(() => { sessionsTimer = null; refreshSessions().catch(() => {}); }, 300); }

async function refreshOverview() {
  const o = await api("/api/v1/status");
  const smp = o.sample || {};
  // The login budget (6 a minute, 30 an hour): how much of it the last sample used.
  const budget = smp.wa_logins_last_min === undefined ? "" : " · logins " + smp.wa_logins_last_min + "/min, " + smp.wa_logins_last_hour + "/h" +
    (smp.wa_login_wait_seconds > 0 ? ", next in " + Math.ceil(smp.wa_login_wait_seconds) + " s" : "");
  if (multi()) renderSessionBadge(); // the cards say the rest
  else {
    badge("#wa", "WhatsApp " + o.whatsapp + budget, o.whatsapp === "connected" ? "ok" : o.whatsapp === "off" ? "" : o.whatsapp === "unpaired" || o.whatsapp === "pairing" ? "warn" : "bad");
    renderPairing(o.whatsapp);
    $("#pair-why").textContent = o.whatsapp_note || "";
    $("#pair-why").classList.toggle("hidden", !o.whatsapp_note);
  }
  badge("#db", "database " + o.database, o.database === "ok" ? "ok" : "bad");
  // The disk badge shows only when something is wrong (full, reserve missing); the
  // backlog badge while remedy's own writes wait (runbook: Store backlog).
  badge("#disk", "disk " + o.disk, o.disk && o.disk.startsWith("full") ? "bad" : "warn");
  $("#disk").classList.toggle("hidden", !o.disk || o.disk === "ok");
  badge("#backlog", o.store_backlog + " write(s) waiting", "bad");
  $("#backlog").classList.toggle("hidden", !o.store_backlog);
  badge("#firing", o.firing + " firing", o.firing ? "bad" : "ok");
  badge("#reload", o.reload.ok ? o.policies + " policies" : "reload failed", o.reload.ok ? "" : "bad");
  $("#dryrun").classList.toggle("hidden", !o.dry_run);
  $("#reload-errors-card").hidden = o.reload.ok;
  $("#reload-errors").textContent = (o.reload.errors || []).join("\n");
  if (o.sample) renderCards(Object.assign(latest, o.sample));
  $("#outbox").textContent = o.outbox ? o.outbox + " alert(s) waiting in the outbox" : "outbox empty";
  const sv = $("#services"); sv.replaceChildren();
  for (const s of o.services || []) sv.append(el("li", "", s.name + ": " + (s.up ? "up" : "down") + (s.restarts ? ", " + s.restarts + " restart(s)" : "") + (s.last_exit && !s.up ? " (" + s.last_exit + ")" : "")));
  if (!(o.services || []).length) sv.append(el("li", "", "no supervised services configured"));
  if (!reportShown) $("#report").textContent = "No report yet: the next one is due " + (o.report_next ? new Date(o.report_next).toLocaleString() : "—") +
    " (report_schedule \"" + o.report_schedule + "\", " + o.timezone + ").";
  renderDatabase(o.integrity || {}, o.retention || {});
  $("#footer").textContent = "remedy " + o.version + ", up since " + new Date(o.started).toLocaleString() + " · " + o.dashboard_clients + " dashboard(s) connected";
}

// A duration in seconds as the largest whole unit (45 s, 12 min, 3 h, 30 d).
function span(sec) {
  for (const [n, u] of [[86400, "d"], [3600, "h"], [60, "min"]]) if (sec >= n) return Math.floor(sec / n) + " " + u;
  return Math.floor(sec) + " s";
}

// The Database card: the scheduled integrity check's last result and age (status never
// runs it), and what retention keeps of each table as of its last pass.
function renderDatabase(ic, ret) {
  $("#integrity").textContent = !ic.result ? "integrity check: not run yet" + (ic.running ? " (running)" : "") :
    "integrity check: " + ic.result + ", " + span(ic.age_seconds) + " ago (took " + (ic.took_ms / 1000).toFixed(1) + " s)" + (ic.running ? "; another is running" : "");
  const tb = $("#retention tbody"); tb.replaceChildren();
  for (const t of ret.tables || []) {
    const tr = el("tr");
    tr.append(el("td", "", t.table), el("td", "", span(t.keep_seconds)), el("td", "", t.oldest_age_seconds ? span(t.oldest_age_seconds) + " old" : "—"), el("td", "", String(t.pruned)));
    tb.append(tr);
  }
  $("#retention-note").textContent = (ret.last_run && !ret.last_run.startsWith("0001") ? "pruned hourly; last pass " + new Date(ret.last_run).toLocaleString() : "no pruning pass yet") +
    (ret.free_bytes ? " · " + (ret.free_bytes / 1048576).toFixed(1) + " MiB free inside the file (reused for new rows)" : "") + (ret.error ? " · last pass failed: " + ret.error : "");
}

function instanceText(i) {
  let t = i.state;
  if (i.key) t = i.key + ": " + t;
  if (i.state === "pending" && i.pending_until) t += " (fires " + until(i.pending_until) + ")";
  if (i.provisional_until) t += " — action reported success; resolves once the fault is seen gone (checked " + until(i.provisional_until) + ")";
  if (i.exhausted) t += " — every step failed";
  if (i.rearmed) t += " — re-armed " + i.rearmed + "×";
  else if (i.escalated) t += " — escalated";
  if (i.breaker_until) t += " — breaker open " + until(i.breaker_until);
  if (i.inhibited_by) t += " — held: inhibited by " + i.inhibited_by;
  if (i.flapping_since) t += " — flapping: " + (i.flap_held || 0) + " notification(s) held until it settles" + (i.flapping_ends ? " (" + until(i.flapping_ends) + ")" : "");
  return t;
}

async function refreshRules() {
  const ps = await api("/api/v1/policies");
  $("#rules-count").textContent = ps.length + " policies";
  const tb = $("#rules tbody"); tb.replaceChildren();
  if (!ps.length) emptyRow(tb, "No policies are loaded. Check the policies path in the configuration (remedy config check).");
  for (const p of ps) {
    const tr = el("tr"); tr.dataset.policy = p.name;
    const name = el("td"); name.append(el("b", "", p.name), el("br"), el("small", "", p.source + (p.mode === "dry_run" ? " · dry run" : "") + (p.enabled ? "" : " · disabled")));
    const when = el("td"); if (p.when) when.append(el("code", "", p.when));
    if (p.over_budget) { when.append(el("br"), el("span", "badge warn", "over its evaluation budget " + ago(p.over_budget) + ": skipped")); when.title = p.budget_error || ""; }
    const state = el("td", "states");
    const active = (p.instances || []).filter((i) => i.state !== "inactive");
    if (!active.length) state.append(el("span", "state", "inactive"));
    for (const i of active) state.append(el("span", "state " + (i.exhausted ? "exhausted" : i.escalated ? "escalated" : i.state), instanceText(i)));
    const rec = el("td");
    for (const i of active.filter((i) => i.step)) rec.append(el("div", "", "step " + i.step + ", " + i.attempts + " attempt(s)" + (i.in_flight ? ", running" : i.next_attempt ? ", next " + until(i.next_attempt) : "")));
    if (!rec.childNodes.length && (p.actions || []).length) rec.append(el("small", "", p.actions.join(" → ")));
    for (const r of p.inhibits || []) { const d = el("div"); d.append(el("small", "", "while firing, holds the alerts of " + r)); rec.append(d); }
    const btn = el("button", "plain", "Test"); btn.addEventListener("click", () => openTry(p));
    const act = el("td"); act.append(btn);
    tr.append(name, el("td", "", (p.on || []).join(", ")), when, state, el("td", "", ago(p.last_fired)), rec, act);
    tb.append(tr);
  }
}

// The Test dialog opens in the middle of the screen, pre-filled with an input that wakes
// the policy (its on: code and labels, or the metrics its condition reads).
function openTry(p) {
  $("#try-name").textContent = p.name; $("#try").dataset.policy = p.name;
  $("#try-input").value = JSON.stringify(p.example || {}, null, 2);
  $("#try-result").textContent = "";
  $("#try").showModal();
}

async function runTry() {
  try {
    const r = await api("/api/v1/policies/" + encodeURIComponent($("#try").dataset.policy) + "/try", { method: "POST", body: $("#try-input").value });
    $("#try-result").textContent = (r.matched ? "condition " + r.result : "this input does not wake the policy") +
      (r.values.length ? "\n  " + r.values.join("\n  ") : "") + (r.error ? "\nerror: " + r.error : "") +
      "\n\n" + (r.decisions.length ? r.decisions.join("\n") : "no decisions");
  } catch (e) { $("#try-result").textContent = "error: " + e.message; }
}

async function refreshAlerts() {
  const only = $("#alerts-session").value; // a session's alerts: from more rows
  const all = await api("/api/v1/alerts?limit=" + (only ? 200 : 30));
  const rows = all.filter((a) => !only || sessionOf(a.labels) === only).slice(0, 30);
  const tb = $("#alerts tbody"); tb.replaceChildren();
  if (!all.length) emptyRow(tb, "No alerts yet. When a policy fires, its alert appears here and goes to the configured channels (WhatsApp admins, webhook, Alertmanager).");
  else if (!rows.length) emptyRow(tb, "No alerts of session " + only + " among the latest " + all.length + ".");
  for (const a of rows) {
    const tr = el("tr"); tr.dataset.session = sessionOf(a.labels);
    const acts = el("td");
    // Ack only where the server would take it (the incident is still open): no dead buttons.
    if (a.ackable && !a.acked_by) { const b = el("button", "plain", "Ack"); b.addEventListener("click", () => ack(a.id)); acts.append(b); }
    const s = el("button", "plain", "Silence"); s.addEventListener("click", () => { $("#s-policy").value = a.policy; $("#s-author").focus(); }); acts.append(s);
    // A resolution reads as one (green, "resolved"), not as the firing it ends; the
    // severity it had stays in the text.
    const resolved = a.state === "resolved";
    const sev = resolved ? el("td", "sev-resolved", "resolved") : el("td", "sev-" + a.severity, a.severity);
    const text = (resolved ? "Resolved (was " + a.severity + "): " : "") + a.summary + (resolved && a.reason ? " — " + a.reason : "") +
      (a.suppressed ? " (+" + a.suppressed + " suppressed)" : "");
    const st = el("td"); st.append(el("span", "state " + a.state, a.state));
    tr.className = resolved ? "alert-resolved" : "";
    tr.append(el("td", "", fmtTime(a.ts)), sev, el("td", "", a.policy + (a.instance ? " (" + a.instance + ")" : "")),
      st, el("td", "", text), el("td", "", a.held || (a.acked_by ? "acked by " + a.acked_by : "")), acts);
    tb.append(tr);
  }
  const sl = await api("/api/v1/silences"); const ul = $("#silences"); ul.replaceChildren();
  if (!sl.length) ul.append(el("li", "empty", "No active silences."));
  for (const s of sl) {
    const li = el("li", "", JSON.stringify(s.matchers) + " until " + new Date(s.ends).toLocaleString() + " by " + s.author + (s.reason ? " — " + s.reason : ""));
    const b = el("button", "plain", "Expire"); b.addEventListener("click", async () => { await api("/api/v1/silences/" + s.id, { method: "DELETE" }); refreshAlerts(); });
    li.append(" ", b); ul.append(li);
  }
}

// ack acknowledges an alert's incident; a refusal (the incident resolved meanwhile: 404)
// is shown above the table, never swallowed.
async function ack(id) {
  const by = prompt("Acknowledge as (your name):"); if (!by) return;
  try { await api("/api/v1/alerts/" + id + "/ack", { method: "POST", body: JSON.stringify({ by }) }); alertsMsg(""); }
  catch (e) { alertsMsg("Could not acknowledge alert #" + id + ": " + e.message, true); }
  refreshAlerts();
}
function alertsMsg(text, isError) {
  $("#alerts-msg").textContent = text; $("#alerts-msg").className = isError ? "msg error" : "msg";
}

async function silence(ev) {
  ev.preventDefault();
  try {
    await api("/api/v1/silences", { method: "POST", body: JSON.stringify({ matchers: { policy: $("#s-policy").value }, duration: $("#s-duration").value, author: $("#s-author").value, reason: $("#s-reason").value }) });
    $("#s-policy").value = ""; refreshAlerts();
  } catch (e) { alert(e.message); }
}

async function refreshAudit() {
  const rows = await api("/api/v1/actions?limit=30"); const tb = $("#audit tbody"); tb.replaceChildren();
  if (!rows.length) emptyRow(tb, "No recovery actions yet. Each attempt a policy starts (reconnect, restart, clear a queue…) is listed here with its outcome.");
  for (const a of rows) {
    const tr = el("tr");
    tr.append(el("td", "", fmtTime(a.ts)), el("td", "", a.policy + (a.instance ? " (" + a.instance + ")" : "")), el("td", "", a.action),
      el("td", "", a.step ? a.step + "." + a.attempt : ""), el("td", "", a.outcome), el("td", "", a.duration_ms + " ms"), el("td", "", a.error));
    tb.append(tr);
  }
}

function addEvent(e) {
  const li = el("li", "", fmtTime(e.time) + " " + e.code + (e.labels ? " " + JSON.stringify(e.labels) : "") + (e.message ? " — " + e.message : ""));
  li.dataset.session = sessionOf(e.labels);
  const ol = $("#events"); ol.prepend(li); while (ol.children.length > 200) ol.lastChild.remove();
  $("#events-empty").classList.add("hidden");
  filterEvents();
}

async function loadInitial() {
  const [hist, evs] = await Promise.all([api("/api/v1/history?minutes=60"), api("/api/v1/events?limit=50")]);
  for (const s of hist) addSample(s.time, s.values);
  for (const e of evs.reverse()) addEvent(e);
  drawCharts();
  try { const r = await api("/api/v1/report"); $("#report").textContent = r.report; reportShown = true; } catch (e) { /* none yet: the overview says when */ }
}

let refreshTimer = null;
function scheduleRefresh() { if (refreshTimer) return; refreshTimer = setTimeout(() => { refreshTimer = null; refreshRules().catch(() => {}); refreshAlerts().catch(() => {}); refreshAudit().catch(() => {}); refreshOverview().catch(() => {}); }, 250); }

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/stream" + (token ? "?token=" + encodeURIComponent(token) : ""));
  ws.onopen = () => badge("#live", "live", "ok");
  ws.onclose = () => { badge("#live", "reconnecting", "warn"); setTimeout(connect, 2000); };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "sample") { addSample(msg.data.time, msg.data.values); renderCards(Object.assign(latest, msg.data.values)); drawCharts(); }
    else if (msg.type === "event") { addEvent(msg.data); scheduleRefresh(); if (/^WA_/.test(msg.data.code)) scheduleSessions(); }
    else if (msg.type === "report") { $("#report").textContent = msg.data.report; reportShown = true; }
    else scheduleRefresh();
  };
}

let reportShown = false;
async function start() {
  if (!$("#charts").children.length) setupCharts();
  // Every panel loads on its own: one that fails (shown in its place) must not keep the
  // login over a dashboard the token opened; only a refused token keeps it.
  // The sessions first: with several, the overview leaves the badge and pairing to them.
  const results = await Promise.allSettled([refreshSessions().catch(() => {}).then(refreshOverview), refreshRules(), refreshAlerts(), refreshAudit(), loadInitial()]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  if (failed.some((e) => e && e.message === "token needed")) return;
  failed.forEach((e) => console.error(e));
  $("#login").classList.add("hidden");
  connect();
  setInterval(() => refreshOverview().catch(() => {}), 5000);
  setInterval(() => refreshRules().catch(() => {}), 5000);
  setInterval(() => refreshSessions().catch(() => {}), 10000); // queue depths; WA_* events refresh sooner
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); token = $("#token").value; localStorage.setItem("remedy-token", token); start(); });
  $("#try-run").addEventListener("click", runTry);
  $("#pair-start").addEventListener("click", startPairing);
  $("#try-close").addEventListener("click", () => $("#try").close());
  $("#silence-form").addEventListener("submit", silence);
  $("#events-session").addEventListener("change", filterEvents);
  $("#alerts-session").addEventListener("change", () => refreshAlerts().catch(() => {}));
  start();
});
