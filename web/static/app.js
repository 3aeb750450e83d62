// remedy dashboard: plain JavaScript, no build step, no external resources.
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
let token = localStorage.getItem("remedy-token") || "";
const history = {}; // metric -> [[t, v]]
const latest = {};  // metric -> its latest value (a sample may carry only some metrics)
const MAX_POINTS = 360;

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

function addSample(t, values) {
  for (const [k, v] of Object.entries(values)) {
    (history[k] = history[k] || []).push([new Date(t).getTime(), v]);
    if (history[k].length > MAX_POINTS) history[k].shift();
  }
}

function drawChart(id, series) {
  const c = document.getElementById(id); if (!c) return;
  const g = c.getContext("2d"); g.clearRect(0, 0, c.width, c.height);
  let pts = series.flat(); if (!pts.length) { g.fillStyle = "#6b7385"; g.fillText("no data yet", 8, 20); return; }
  const ts = pts.map((p) => p[0]), vs = pts.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts) || t0 + 1, vmax = Math.max(1e-9, ...vs);
  const colors = ["#2c5282", "#c53030", "#1f8a4c", "#b7791f"];
  series.forEach((s, i) => {
    g.strokeStyle = colors[i % colors.length]; g.lineWidth = 1.5; g.beginPath();
    s.forEach(([t, v], j) => { const x = 4 + (c.width - 8) * (t - t0) / Math.max(1, t1 - t0); const y = c.height - 4 - (c.height - 16) * v / vmax; j ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  });
  g.fillStyle = "#6b7385"; g.fillText(String(Math.round(vmax * 100) / 100), 4, 10);
}

function drawCharts() {
  for (const m of ["cpu_percent", "mem_percent", "disk_free_percent", "msgs_received_per_min", "error_rate"]) drawChart("c-" + m, [history[m] || []]);
  drawChart("c-queues", Object.keys(history).filter((k) => /^queue_.*_depth$/.test(k)).map((k) => history[k]));
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
let pairPoll = null;
function renderPairing(state) {
  const need = state === "unpaired" || state === "pairing" || state === "logged_out";
  $("#pair-card").classList.toggle("hidden", !need);
  if (state === "pairing" && !pairPoll) pairPoll = setInterval(loadQR, 2000);
  if (state !== "pairing" && pairPoll) { clearInterval(pairPoll); pairPoll = null; loadQR(); }
}
async function loadQR() {
  try { const r = await api("/api/v1/whatsapp/qr"); $("#pair-qr").src = r.png; $("#pair-qr").classList.remove("hidden"); $("#pair-msg").textContent = ""; }
  catch (e) { $("#pair-qr").classList.add("hidden"); if (/failed/.test(e.message)) $("#pair-msg").textContent = e.message; }
}
async function startPairing() {
  try { await api("/api/v1/whatsapp/pair", { method: "POST" }); $("#pair-msg").textContent = "waiting for the code…"; await loadQR(); refreshOverview(); }
  catch (e) { $("#pair-msg").textContent = e.message; }
}

async function refreshOverview() {
  const o = await api("/api/v1/status");
  const smp = o.sample || {};
  // The login budget (6 a minute, 30 an hour): how much of it the last sample used.
  const budget = smp.wa_logins_last_min === undefined ? "" : " · logins " + smp.wa_logins_last_min + "/min, " + smp.wa_logins_last_hour + "/h" +
    (smp.wa_login_wait_seconds > 0 ? ", next in " + Math.ceil(smp.wa_login_wait_seconds) + " s" : "");
  badge("#wa", "WhatsApp " + o.whatsapp + budget, o.whatsapp === "connected" ? "ok" : o.whatsapp === "off" ? "" : o.whatsapp === "unpaired" || o.whatsapp === "pairing" ? "warn" : "bad");
  renderPairing(o.whatsapp);
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
  for (const s of o.services || []) sv.append(el("li", "", s.Name + ": " + (s.Up ? "up" : "down") + (s.Restarts ? ", " + s.Restarts + " restart(s)" : "") + (s.LastExit && !s.Up ? " (" + s.LastExit + ")" : "")));
  if (!(o.services || []).length) sv.append(el("li", "", "no supervised services configured"));
  $("#footer").textContent = "remedy " + o.version + ", up since " + new Date(o.started).toLocaleString() + " · " + o.dashboard_clients + " dashboard(s) connected";
}

function instanceText(i) {
  let t = i.state;
  if (i.key) t = i.key + ": " + t;
  if (i.state === "pending" && i.pending_until) t += " (fires " + until(i.pending_until) + ")";
  if (i.exhausted) t += " — every step failed";
  if (i.rearmed) t += " — re-armed " + i.rearmed + "×";
  else if (i.escalated) t += " — escalated";
  if (i.breaker_until) t += " — breaker open " + until(i.breaker_until);
  if (i.inhibited_by) t += " — held: inhibited by " + i.inhibited_by;
  return t;
}

async function refreshRules() {
  const ps = await api("/api/v1/policies");
  $("#rules-count").textContent = ps.length + " policies";
  const tb = $("#rules tbody"); tb.replaceChildren();
  for (const p of ps) {
    const tr = el("tr"); tr.dataset.policy = p.name;
    const name = el("td"); name.append(el("b", "", p.name), el("br"), el("small", "", p.source + (p.mode === "dry_run" ? " · dry run" : "") + (p.enabled ? "" : " · disabled")));
    const when = el("td"); if (p.when) when.append(el("code", "", p.when));
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

function openTry(p) {
  $("#try").classList.remove("hidden"); $("#try-name").textContent = p.name; $("#try").dataset.policy = p.name;
  const code = (p.on || [])[0] || "EVENT";
  $("#try-input").value = code === "sample" ? JSON.stringify({ sample: { values: { cpu_percent: 95 } } }, null, 1)
    : JSON.stringify({ event: { code: code.replace("*", ""), labels: {} } }, null, 1);
  $("#try-result").textContent = "";
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
  const rows = await api("/api/v1/alerts?limit=30");
  const tb = $("#alerts tbody"); tb.replaceChildren();
  for (const a of rows) {
    const tr = el("tr");
    const acts = el("td");
    if (!a.acked_by && a.state !== "resolved") { const b = el("button", "plain", "Ack"); b.addEventListener("click", () => ack(a.id)); acts.append(b); }
    const s = el("button", "plain", "Silence"); s.addEventListener("click", () => { $("#s-policy").value = a.policy; $("#s-author").focus(); }); acts.append(s);
    tr.append(el("td", "", fmtTime(a.ts)), el("td", "sev-" + a.severity, a.severity), el("td", "", a.policy + (a.instance ? " (" + a.instance + ")" : "")),
      el("td", "", a.state), el("td", "", a.summary + (a.suppressed ? " (+" + a.suppressed + " suppressed)" : "")), el("td", "", a.held || (a.acked_by ? "acked by " + a.acked_by : "")), acts);
    tb.append(tr);
  }
  const sl = await api("/api/v1/silences"); const ul = $("#silences"); ul.replaceChildren();
  for (const s of sl) {
    const li = el("li", "", JSON.stringify(s.matchers) + " until " + new Date(s.ends).toLocaleString() + " by " + s.author + (s.reason ? " — " + s.reason : ""));
    const b = el("button", "plain", "Expire"); b.addEventListener("click", async () => { await api("/api/v1/silences/" + s.id, { method: "DELETE" }); refreshAlerts(); });
    li.append(" ", b); ul.append(li);
  }
}

async function ack(id) {
  const by = prompt("Acknowledge as (your name):"); if (!by) return;
  await api("/api/v1/alerts/" + id + "/ack", { method: "POST", body: JSON.stringify({ by }) }); refreshAlerts();
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
  for (const a of rows) {
    const tr = el("tr");
    tr.append(el("td", "", fmtTime(a.ts)), el("td", "", a.policy + (a.instance ? " (" + a.instance + ")" : "")), el("td", "", a.action),
      el("td", "", a.step ? a.step + "." + a.attempt : ""), el("td", "", a.outcome), el("td", "", a.duration_ms + " ms"), el("td", "", a.error));
    tb.append(tr);
  }
}

function addEvent(e) {
  const li = el("li", "", fmtTime(e.time) + " " + e.code + (e.labels ? " " + JSON.stringify(e.labels) : "") + (e.message ? " — " + e.message : ""));
  const ol = $("#events"); ol.prepend(li); while (ol.children.length > 200) ol.lastChild.remove();
}

async function loadInitial() {
  const [hist, evs] = await Promise.all([api("/api/v1/history?minutes=60"), api("/api/v1/events?limit=50")]);
  for (const s of hist) addSample(s.time, s.values);
  for (const e of evs.reverse()) addEvent(e);
  drawCharts();
  try { const r = await api("/api/v1/report"); $("#report").textContent = r.report; } catch (e) { /* none yet */ }
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
    else if (msg.type === "event") { addEvent(msg.data); scheduleRefresh(); }
    else scheduleRefresh();
  };
}

async function start() {
  try {
    await Promise.all([refreshOverview(), refreshRules(), refreshAlerts(), refreshAudit(), loadInitial()]);
    $("#login").classList.add("hidden");
    connect();
    setInterval(() => refreshOverview().catch(() => {}), 5000);
    setInterval(() => refreshRules().catch(() => {}), 5000);
  } catch (e) { if (e.message !== "token needed") console.error(e); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); token = $("#token").value; localStorage.setItem("remedy-token", token); start(); });
  $("#try-run").addEventListener("click", runTry);
  $("#pair-start").addEventListener("click", startPairing);
  $("#try-close").addEventListener("click", () => $("#try").classList.add("hidden"));
  $("#silence-form").addEventListener("submit", silence);
  start();
});
