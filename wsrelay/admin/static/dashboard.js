// wsrelay dashboard: reads the admin JSON API (docs/openapi.yaml) with the login cookie,
// draws with plotly.js (served from the installed plotly package). No inline code (CSP).
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const REFRESH = 5000;          // ms between two polls of the live views
const HISTORY = 120;           // overview points kept (10 minutes)
const DAY = 86400;
const state = { domainLoad: 0, view: null, prev: null, history: [], timer: null, domains: [], sessionsTimer: null };

// -- helpers ---------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function setStatus(text, bad) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("bad", !!bad);
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
  if (response.status === 401) { location.reload(); throw new Error("signed out"); }
  const type = response.headers.get("content-type") || "";
  const body = type.startsWith("application/json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
  return body;
}

function scaled(value, units, step) {
  let i = 0;
  while (Math.abs(value) >= step && i < units.length - 1) { value /= step; i++; }
  return (i === 0 ? Math.round(value) : value.toFixed(value < 10 ? 2 : 1)) + " " + units[i];
}
const bytes = (n) => scaled(n, ["B", "kB", "MB", "GB", "TB"], 1000);
const bits = (n) => scaled(n, ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"], 1000);
function seconds(s) {
  if (s < 60) return s.toFixed(0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
const iso = (t) => new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
const sum = (values) => values.reduce((a, b) => a + b, 0);

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fillSelect(select, names, keep) {
  const old = select.value;
  for (const option of [...select.options]) if (option.value !== "" || !keep) option.remove();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    select.appendChild(option);
  }
  if ([...select.options].some((o) => o.value === old)) select.value = old;
}

// -- charts --------------------------------------------------------------------

function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { text: v("--text"), muted: v("--muted"), line: v("--line"), accent: v("--accent"), accent2: v("--accent-2"),
           good: v("--good"), bad: v("--bad") };
}

function layout(extra) {
  const t = theme();
  const axis = { gridcolor: t.line, zerolinecolor: t.line, linecolor: t.line, automargin: true };
  const base = {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: t.text, size: 12 }, margin: { l: 50, r: 15, t: 30, b: 40 },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, xaxis: {}, yaxis: {},
    hovermode: "x unified",
  };
  const merged = Object.assign(base, extra || {});
  for (const key of Object.keys(merged)) {  // every axis keeps the theme's colours and automatic margins
    if (/^[xy]axis\d*$/.test(key)) merged[key] = Object.assign({}, axis, merged[key]);
  }
  return merged;
}

const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

function draw(id, traces, extra) {
  if (!window.Plotly) return;
  window.Plotly.react($(id), traces, layout(extra), CONFIG);
}

const times = (points) => points.map((p) => new Date(p.start * 1000));

// -- views -------------------------------------------------------------------------

function show(view) {
  if (!["overview", "domain", "sessions", "billing"].includes(view)) view = "overview";
  state.view = view;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
  clearInterval(state.sessionsTimer);
  if (view === "domain") loadDomain();
  if (view === "sessions") { loadSessions(); state.sessionsTimer = setInterval(loadSessions, REFRESH); }
  if (view === "billing") loadBilling();
  if (view === "overview") redrawOverview();
  window.dispatchEvent(new Event("resize"));  // plotly sizes charts that were hidden
}

// -- overview ------------------------------------------------------------------------

async function pollOverview() {
  let now;
  try {
    now = await api("/v1/overview");
  } catch (e) {
    setStatus("cannot reach the relay: " + e.message, true);
    return;
  }
  const workers = now.workers.answered < now.workers.expected
    ? ` (${now.workers.answered} of ${now.workers.expected} workers answered)` : "";
  setStatus("updated " + new Date(now.time * 1000).toLocaleTimeString() + workers, !!workers);
  if (JSON.stringify(now.domains) !== JSON.stringify(state.domains)) {
    state.domains = now.domains;
    fillSelect($("d-domain"), now.domains, false);
    fillSelect($("s-domain"), now.domains, true);
    fillSelect($("b-domain"), now.domains, true);
  }
  const live = sum(Object.values(now.sessions_open));
  const point = { time: now.time, live: live, handshakes: null, out: null, in: null };
  const prev = state.prev;
  if (prev && now.time > prev.time) {
    const dt = now.time - prev.time;
    const all = (o) => sum(Object.values(o.handshakes));
    const ok = (o) => o.handshakes["101"] || 0;
    const t = (o, k) => o.traffic[k] || 0;
    const handshakes = all(now) - all(prev);
    point.handshakes = handshakes / dt;
    point.out = (t(now, "client_bytes_out") - t(prev, "client_bytes_out")) * 8 / dt;
    point.in = (t(now, "client_bytes_in") - t(prev, "client_bytes_in")) * 8 / dt;
    const refused = handshakes - (ok(now) - ok(prev));
    const closes = now.closes.total - prev.closes.total;
    const errors = now.closes.errors - prev.closes.errors;
    $("t-handshakes").textContent = point.handshakes.toFixed(1);
    $("t-out").textContent = bits(point.out);
    $("t-in").textContent = bits(point.in);
    $("t-refused").textContent = handshakes ? (100 * refused / handshakes).toFixed(1) + " %" : "0 %";
    $("t-refused").classList.toggle("bad", refused > 0);
    $("t-errors").textContent = closes ? (100 * errors / closes).toFixed(1) + " %" : "0 %";
    $("t-errors").classList.toggle("bad", errors > 0);
  }
  state.prev = now;
  $("t-sessions").textContent = live;
  const up = now.origins.filter((o) => o.up).length;
  $("t-origins").textContent = up + " / " + now.origins.length;
  $("t-origins").className = "value " + (up < now.origins.length ? "bad" : "good");
  state.history.push(point);
  if (state.history.length > HISTORY) state.history.shift();

  const domains = $("domains-table").tBodies[0];
  domains.replaceChildren();
  for (const name of now.domains) {
    const row = domains.insertRow();
    cell(row, name);
    cell(row, String(now.sessions_open[name] || 0), "num");
  }
  const origins = $("origins-table").tBodies[0];
  origins.replaceChildren();
  for (const o of now.origins) {
    const row = origins.insertRow();
    cell(row, o.domain);
    cell(row, o.origin);
    cell(row, o.up ? "up" : "down", o.up ? "up" : "down");
  }
  if (state.view === "overview") redrawOverview();
}

function redrawOverview() {
  const t = theme();
  const h = state.history;
  const x = h.map((p) => new Date(p.time * 1000));
  const last = h.length ? h[h.length - 1].time : Date.now() / 1000;
  const recent = { range: [new Date((last - HISTORY * REFRESH / 1000) * 1000), new Date(last * 1000)] };
  draw("c-live", [
    { x: x, y: h.map((p) => p.live), name: "live sessions", type: "scatter", mode: "lines", line: { color: t.accent } },
    { x: x, y: h.map((p) => p.handshakes), name: "handshakes/s", type: "scatter", mode: "lines", yaxis: "y2",
      line: { color: t.accent2 } },
  ], { yaxis2: { overlaying: "y", side: "right", gridcolor: "rgba(0,0,0,0)", rangemode: "tozero" },
       yaxis: { rangemode: "tozero" }, xaxis: recent });
  draw("c-bw", [
    { x: x, y: h.map((p) => p.out), name: "to clients", type: "scatter", mode: "lines", line: { color: t.accent } },
    { x: x, y: h.map((p) => p.in), name: "from clients", type: "scatter", mode: "lines", line: { color: t.accent2 } },
  ], { yaxis: { rangemode: "tozero", ticksuffix: " bit/s" }, xaxis: recent });
}

// -- domains ---------------------------------------------------------------------------

// The CDN's granularity rule: 5 minutes up to 3 days, hourly up to 31 days, daily beyond.
function allowedIntervals(span) {
  if (span <= 3 * DAY) return [300, 3600];
  if (span <= 31 * DAY) return [3600, 86400];
  return [86400];
}
const INTERVAL_NAMES = { 300: "5 minutes", 3600: "hourly", 86400: "daily" };

function fillIntervals() {
  const select = $("d-interval");
  const old = Number(select.value);
  const allowed = allowedIntervals(Number($("d-range").value));
  select.replaceChildren(...allowed.map((i) => {
    const o = document.createElement("option");
    o.value = i;
    o.textContent = INTERVAL_NAMES[i];
    return o;
  }));
  if (allowed.includes(old)) select.value = old;
}

async function loadDomain() {
  if (!$("d-domain").value) return;
  fillIntervals();
  const span = Number($("d-range").value);
  const end = Math.floor(Date.now() / 1000);
  const q = new URLSearchParams({ start: iso(end - span), end: iso(end), interval: $("d-interval").value,
                                  domain: $("d-domain").value });
  const topQ = new URLSearchParams({ start: iso(end - span), end: iso(end), domain: $("d-domain").value, limit: "8" });
  const mine = ++state.domainLoad;  // an older, slower answer must not draw over a newer one
  try {
    const [traffic, connections, statuses, closes, regions, isps] = await Promise.all([
      api("/v1/traffic?" + q), api("/v1/connections?" + q), api("/v1/statuses?" + q), api("/v1/closes?" + q),
      api("/v1/top?by=region&" + topQ), api("/v1/top?by=isp&" + topQ)]);
    if (mine !== state.domainLoad) return;
    drawDomain(traffic, connections, statuses, closes, regions, isps);
    document.body.dataset.domainLoaded = q.toString();
  } catch (e) {
    setStatus("domain charts: " + e.message, true);
  }
}

function drawDomain(traffic, connections, statuses, closes, regions, isps) {
  const t = theme();
  const x = times(traffic.points);
  draw("c-bandwidth", [
    { x: x, y: traffic.points.map((p) => p.bandwidth_out), name: "to clients", type: "scatter", mode: "lines",
      line: { color: t.accent }, fill: "tozeroy" },
    { x: x, y: traffic.points.map((p) => p.bandwidth_in), name: "from clients", type: "scatter", mode: "lines",
      line: { color: t.accent2 } },
  ], { yaxis: { rangemode: "tozero", ticksuffix: " bit/s" } });
  draw("c-traffic", [
    { x: x, y: traffic.points.map((p) => p.bytes_out), name: "to clients", type: "bar", marker: { color: t.accent } },
    { x: x, y: traffic.points.map((p) => p.bytes_in), name: "from clients", type: "bar", marker: { color: t.accent2 } },
  ], { barmode: "group", yaxis: { ticksuffix: " B" } });
  const codes = [...new Set(statuses.points.flatMap((p) => Object.keys(p.statuses)))].sort();
  draw("c-statuses", codes.map((code) => ({
    x: times(statuses.points), y: statuses.points.map((p) => p.statuses[code] || 0), name: code, type: "bar",
    marker: code === "101" ? { color: t.good } : (code >= "500" ? { color: t.bad } : {}),
  })), { barmode: "stack" });
  const groups = {};
  for (const p of closes.points) {
    for (const c of p.closes) {
      const key = c.leg + " leg, closed by " + c.closed_by;
      groups[key] = groups[key] || {};
      groups[key][c.code] = (groups[key][c.code] || 0) + c.count;
    }
  }
  const allCodes = [...new Set(Object.values(groups).flatMap((g) => Object.keys(g)))].sort();
  draw("c-closes", Object.keys(groups).sort().map((key) => ({
    x: allCodes.map(String), y: allCodes.map((code) => groups[key][code] || 0), name: key, type: "bar",
  })), { barmode: "group", xaxis: { type: "category" },
         hovermode: "closest" });
  const cx = times(connections.points);
  draw("c-connections", [
    { x: cx, y: connections.points.map((p) => p.opened), name: "opened", type: "bar", marker: { color: t.accent } },
    { x: cx, y: connections.points.map((p) => p.peak_concurrent), name: "peak concurrent", type: "scatter",
      mode: "lines+markers", line: { color: t.accent2 } },
  ], { yaxis: { rangemode: "tozero", gridcolor: t.line } });
  const bars = (answer, axis, color) => ({
    type: "bar", orientation: "h", name: answer.by === "region" ? "regions" : "ISPs",
    y: answer.rows.map((r) => r.name).reverse(), x: answer.rows.map((r) => r.bytes_out).reverse(),
    xaxis: "x" + axis, yaxis: "y" + axis, marker: { color: color },
  });
  draw("c-top", [bars(regions, "", t.accent), bars(isps, "2", t.accent2)], {
    grid: { rows: 1, columns: 2, pattern: "independent" }, hovermode: "closest",
    xaxis: { ticksuffix: " B" }, xaxis2: { ticksuffix: " B" },
    yaxis: { automargin: true }, yaxis2: { automargin: true },
  });
}

// -- live sessions -------------------------------------------------------------------------

async function loadSessions() {
  const q = new URLSearchParams({ limit: $("s-limit").value });
  if ($("s-domain").value) q.set("domain", $("s-domain").value);
  if ($("s-client").value.trim()) q.set("client", $("s-client").value.trim());
  let answer;
  try {
    answer = await api("/v1/sessions?" + q);
  } catch (e) {
    $("s-count").textContent = e.message;
    return;
  }
  $("s-count").textContent = answer.count + " open" + (answer.truncated ? ", showing " + answer.sessions.length : "");
  const body = $("sessions-table").tBodies[0];
  body.replaceChildren();
  const rtt = (v) => (v === null ? "–" : (v * 1000).toFixed(0) + " ms");
  for (const s of answer.sessions) {
    const row = body.insertRow();
    row.dataset.id = s.id;
    cell(row, s.domain);
    cell(row, s.client);
    cell(row, s.path + (s.subprotocol ? " [" + s.subprotocol + "]" : ""), "path").title = s.path;
    cell(row, s.origin);
    cell(row, seconds(s.age), "num");
    cell(row, seconds(s.idle), "num");
    cell(row, s.client_leg.messages_in + " / " + s.client_leg.messages_out + " msg · " +
         bytes(s.client_leg.bytes_in) + " / " + bytes(s.client_leg.bytes_out), "num");
    cell(row, s.origin_leg.messages_in + " / " + s.origin_leg.messages_out + " msg · " +
         bytes(s.origin_leg.bytes_in) + " / " + bytes(s.origin_leg.bytes_out), "num");
    cell(row, s.client_leg.compression ? "deflate" : "–");
    cell(row, rtt(s.client_leg.ping_rtt) + " / " + rtt(s.origin_leg.ping_rtt), "num");
    const button = document.createElement("button");
    button.className = "small danger";
    button.textContent = "Close…";
    button.addEventListener("click", () => askClose(s));
    row.insertCell().appendChild(button);
  }
}

function askClose(session) {
  const dialog = $("close-dialog");
  dialog.dataset.id = session.id;
  $("close-what").textContent = session.client + " → " + session.domain + session.path;
  $("close-error").textContent = "";
  dialog.showModal();
}

async function confirmClose(event) {
  event.preventDefault();
  const dialog = $("close-dialog");
  const q = new URLSearchParams({ code: $("close-code").value, reason: $("close-reason").value,
                                  origin_code: $("close-same").checked ? "same" : "1001" });
  try {
    await api("/v1/sessions/" + encodeURIComponent(dialog.dataset.id) + "?" + q,
              { method: "DELETE", headers: { "X-CSRF-Token": CSRF } });
    dialog.close();
    setStatus("session closed with " + $("close-code").value);
    loadSessions();
  } catch (e) {
    $("close-error").textContent = e.message;
  }
}

// -- billing -------------------------------------------------------------------------------

function billingQuery(format) {
  const end = new Date($("b-end").value + "T00:00:00Z");
  end.setUTCDate(end.getUTCDate() + 1);
  const q = new URLSearchParams({ start: $("b-start").value + "T00:00:00Z", end: iso(end.getTime() / 1000), format: format });
  if ($("b-domain").value) q.set("domain", $("b-domain").value);
  return q;
}

async function loadBilling() {
  if (!$("b-start").value) {
    const today = new Date();
    $("b-start").value = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1)).toISOString().slice(0, 10);
    $("b-end").value = today.toISOString().slice(0, 10);
  }
  $("b-csv").href = "/v1/usage?" + billingQuery("csv");
  const body = $("billing-table").tBodies[0];
  try {
    const report = await api("/v1/usage?" + billingQuery("json"));
    body.replaceChildren();
    for (const c of report.cycles) {
      const row = body.insertRow();
      cell(row, c.domain);
      cell(row, c.cycle + (c.complete ? "" : " (running)"));
      cell(row, c.method);
      cell(row, c.start.slice(0, 10));
      cell(row, c.end.slice(0, 10));
      cell(row, bytes(c.traffic_bytes), "num");
      cell(row, c.peak_bandwidth_mbps.toFixed(3), "num");
      cell(row, c.plan_deducted_gb.toFixed(3), "num");
      cell(row, c.billable_quantity.toFixed(3) + " " + c.unit, "num");
      cell(row, c.amount === null ? "–" : c.amount.toFixed(2), "num");  // null without price_tiers
    }
  } catch (e) {
    setStatus("billing: " + e.message, true);
  }
}

// -- start ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("domain-form").addEventListener("submit", (e) => { e.preventDefault(); loadDomain(); });
  $("d-range").addEventListener("change", fillIntervals);
  $("sessions-form").addEventListener("submit", (e) => { e.preventDefault(); loadSessions(); });
  $("billing-form").addEventListener("submit", (e) => { e.preventDefault(); loadBilling(); });
  $("close-confirm").addEventListener("click", confirmClose);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => show(state.view));
  fillIntervals();
  show(location.hash.slice(1));  // the view at once; its data once the first poll named the domains
  await pollOverview();
  state.timer = setInterval(pollOverview, REFRESH);
  if (state.view === "domain") loadDomain();
});
