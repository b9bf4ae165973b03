// The brand dashboard (/brand/{brand}): live totals, a per-minute chart, per-product and
// per-stream tables from the brand's sales feed, each show's product funnel
// (brand_shows.js), and CSV exports built in the browser.

import { meta } from "./hub_client.js";
import { FeedClient, showStatus } from "./feed.js";
import { money, setText, syncList } from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";
import { mountTeam } from "./team.js";
import { mountApiKeys } from "./api_keys.js";
import { mountShows } from "./brand_shows.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const brandId = meta("livecart-target");
// The token of a brand link, or the signed-in account acting as this brand (or an operator).
const access = await consoleAuth("livecart.token.brand", [`brand:${brandId}`]);
const auth = access.auth || {};

let currency = "USD";
let report = null;
const productTitles = new Map();
const streamTitles = new Map();
const asked = new Set(); // stream ids whose title was asked for
let showcaseAskedAt = 0;

function banner(kind, text) {
  const node = $("banner");
  node.dataset.kind = kind;
  setText(node, text);
}

// ---- names for ids ----------------------------------------------------------------------

async function loadBrand() {
  const r = await api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}`);
  if (!r.ok) return;
  currency = r.data.currency || currency;
  setText($("brand-name"), r.data.name || brandId);
  document.title = `${r.data.name || brandId} · Brand dashboard · livecart`;
  render();
}

async function loadProductTitles() {
  showcaseAskedAt = Date.now();
  let cursor = 0;
  for (let page = 0; page < 10 && cursor !== null; page += 1) {
    const r = await api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}/showcase?limit=100&cursor=${cursor}`);
    if (!r.ok) return;
    for (const item of r.data.items) productTitles.set(item.id, item.title);
    cursor = r.data.next_cursor ?? null;
  }
  render();
}

async function loadStreamTitle(id) {
  asked.add(id);
  const r = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  if (r.ok) {
    streamTitles.set(id, r.data.title);
    render();
  }
}

function namesFor(data) {
  const unknown = data.products.some((p) => !productTitles.has(p.product_id));
  if (unknown && Date.now() - showcaseAskedAt > 10000) loadProductTitles();
  for (const s of data.streams) if (!asked.has(s.stream_id)) loadStreamTitle(s.stream_id);
}

// ---- rendering --------------------------------------------------------------------------

const previous = {};

function counter(key, id, value, text) {
  const node = $(id);
  if (previous[key] !== undefined && value > previous[key]) {
    const box = node.parentElement;
    box.classList.remove("is-bumped");
    void box.offsetWidth; // restart the animation
    box.classList.add("is-bumped");
  }
  previous[key] = value;
  setText(node, text);
}

function cellsRow(values, classes) {
  const row = document.createElement("tr");
  values.forEach((_, i) => {
    const td = document.createElement("td");
    if (classes[i]) td.className = classes[i];
    row.append(td);
  });
  return row;
}

function fillRow(row, values) {
  values.forEach((value, i) => {
    const td = row.children[i];
    if (typeof value === "string") setText(td, value);
    else {
      // [title, id]: a name with its id underneath
      let title = td.querySelector(".row-title");
      if (!title) {
        title = document.createElement("span");
        title.className = "row-title";
        const sub = document.createElement("span");
        sub.className = "row-id";
        td.replaceChildren(title, sub);
      }
      setText(title, value[0]);
      setText(td.querySelector(".row-id"), value[1]);
    }
  });
}

function table(tbody, rows, key, columns, classes, empty) {
  if (!rows.length) {
    if (!tbody.querySelector(".empty-row")) {
      const row = document.createElement("tr");
      row.className = "empty-row";
      const td = document.createElement("td");
      td.colSpan = classes.length;
      td.textContent = empty;
      row.append(td);
      tbody.replaceChildren(row);
    }
    return;
  }
  const emptyRow = tbody.querySelector(".empty-row");
  if (emptyRow) emptyRow.remove();
  syncList(tbody, rows, key, (r) => {
    const row = cellsRow(columns(r), classes);
    fillRow(row, columns(r));
    return row;
  }, (row, r) => fillRow(row, columns(r)));
}

function plural(n, word) {
  return `${n.toLocaleString()} ${n === 1 ? word : `${word}s`}`;
}

function pct(x) {
  return `${(x * 100).toFixed(1)}%`;
}

function render() {
  if (!report) return;
  const d = report;
  counter("units", "t-units", d.units, d.units.toLocaleString());
  counter("orders", "t-orders", d.orders, d.orders.toLocaleString());
  counter("gmv", "t-gmv", d.gmv_minor, money(d.gmv_minor, currency));
  counter("payout", "t-payout", d.payout_minor, money(d.payout_minor, currency));
  setText($("t-captured"), money(d.captured_minor, currency));
  setText($("t-commission"), money(d.commission_minor, currency));
  setText($("t-refunded"), money(d.refunded_minor, currency));
  setText($("last-minute"), `${plural(d.orders_last_minute, "order")} in the last full minute`);

  const products = [...d.products].sort((a, b) => (b.gmv_minor || 0) - (a.gmv_minor || 0));
  table($("products"), products, (p) => p.product_id,
    (p) => [[productTitles.get(p.product_id) || p.product_id, p.product_id],
      (p.units || 0).toLocaleString(), money(p.gmv_minor || 0, currency)],
    ["", "num", "num"], "No sales yet.");
  const streams = [...d.streams].sort((a, b) => (b.gmv_minor || 0) - (a.gmv_minor || 0));
  table($("streams"), streams, (s) => s.stream_id,
    (s) => [[streamTitles.get(s.stream_id) || s.stream_id, s.stream_id],
      (s.units || 0).toLocaleString(), money(s.gmv_minor || 0, currency),
      (s.buyers || 0).toLocaleString(), (s.viewers || 0).toLocaleString(), pct(s.conversion || 0)],
    ["", "num", "num", "num", "num", "num"], "No stream sales yet.");
  drawChart(d.per_minute || []);
}

function hhmm(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart(minutes) {
  const chart = $("chart");
  const W = 640;
  const H = 220;
  const left = 64;
  const right = 8;
  const top = 12;
  const bottom = 28;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const max = niceMax(Math.max(0, ...minutes.map((m) => m.gmv_minor)));
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH * (1 - f);
    nodes.push(svg("line", { class: "grid", x1: left, x2: W - right, y1: y, y2: y }));
    nodes.push(svg("text", { class: "axis", x: left - 8, y: y + 4, "text-anchor": "end" },
      f === 0 ? "0" : compactMoney(max * f)));
  }
  const n = Math.max(1, minutes.length);
  const slot = plotW / n;
  const barW = Math.max(2, slot * 0.68);
  minutes.forEach((m, i) => {
    const h = m.gmv_minor > 0 ? Math.max(2, (m.gmv_minor / max) * plotH) : 0;
    const x = left + i * slot + (slot - barW) / 2;
    const bar = svg("rect", {
      class: i === minutes.length - 1 ? "bar bar-now" : "bar",
      x: x.toFixed(1), y: (top + plotH - h).toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), rx: 3,
    });
    bar.append(svg("title", {},
      `${hhmm(m.minute)}: ${money(m.gmv_minor, currency)}, ${plural(m.orders, "order")}`));
    nodes.push(bar);
    if (i % 5 === (minutes.length - 1) % 5) {
      const last = i === minutes.length - 1;
      nodes.push(svg("text", {
        class: "axis", x: (last ? x + barW : x + barW / 2).toFixed(1), y: H - 8,
        "text-anchor": last ? "end" : "middle",
      }, hhmm(m.minute)));
    }
  });
  const total = minutes.reduce((a, m) => a + m.gmv_minor, 0);
  const orders = minutes.reduce((a, m) => a + m.orders, 0);
  const peak = minutes.reduce((best, m) => (m.gmv_minor > (best ? best.gmv_minor : 0) ? m : best), null);
  const desc = svg("desc", { id: "chart-desc" }, total > 0
    ? `Last ${minutes.length} minutes: ${money(total, currency)} from ${plural(orders, "order")}; `
      + `busiest minute ${hhmm(peak.minute)} with ${money(peak.gmv_minor, currency)}.`
    : `No sales in the last ${minutes.length} minutes.`);
  chart.replaceChildren(desc, ...nodes);
}

function compactMoney(minor) {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(undefined, { style: "currency", currency, notation: "compact", maximumFractionDigits: 1 })
    .format(minor / 10 ** digits);
}

// ---- CSV --------------------------------------------------------------------------------

// RFC 4180 quoting; a text cell that a spreadsheet would run as a formula gets a leading '.
function csvCell(value) {
  let text = String(value ?? "");
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function exportRows(kind) {
  const d = report;
  if (kind === "summary") {
    return [["metric", "value_minor", "currency"], [
      ["units", d.units, ""], ["orders", d.orders, ""], ["gmv", d.gmv_minor, currency],
      ["captured", d.captured_minor, currency], ["refunded", d.refunded_minor, currency],
      ["creator_commission", d.commission_minor, currency], ["payout", d.payout_minor, currency]]];
  }
  if (kind === "products") {
    return [["product_id", "title", "units", "gmv_minor", "currency"],
      d.products.map((p) => [p.product_id, productTitles.get(p.product_id) || "", p.units || 0,
        p.gmv_minor || 0, currency])];
  }
  if (kind === "streams") {
    return [["stream_id", "title", "units", "gmv_minor", "currency", "buyers", "viewers", "conversion"],
      d.streams.map((s) => [s.stream_id, streamTitles.get(s.stream_id) || "", s.units || 0, s.gmv_minor || 0,
        currency, s.buyers || 0, s.viewers || 0, s.conversion || 0])];
  }
  return [["minute_utc", "orders", "gmv_minor", "currency"],
    (d.per_minute || []).map((m) => [new Date(m.minute * 1000).toISOString(), m.orders, m.gmv_minor, currency])];
}

const ORDER_FIELDS = ["id", "created_ms", "state", "product", "variant", "qty", "unit_price_minor",
  "amount_minor", "currency", "stream", "channel", "creator", "commission_bps", "commission_minor",
  "buyer"];

// Orders (with each one's commission) come page by page from the API, at most 10,000.
async function orderRows() {
  const rows = [];
  let cursor = 0;
  while (cursor !== null && rows.length < 10000) {
    const r = await api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}/orders?limit=100&cursor=${cursor}`,
      auth);
    if (!r.ok) throw new Error(problemText(r));
    for (const o of r.data.items) rows.push(ORDER_FIELDS.map((f) => o[f]));
    cursor = r.data.next_cursor;
  }
  return [ORDER_FIELDS, rows];
}

async function download(kind) {
  if (kind === "orders") {
    try {
      save(kind, ...(await orderRows()));
    } catch (error) {
      banner("error", `Orders export failed: ${error.message}`);
    }
    return;
  }
  if (!report) {
    banner("error", "No data yet: the export is ready once the live feed has answered.");
    return;
  }
  save(kind, ...exportRows(kind));
}

function save(kind, header, rows) {
  const blob = new Blob([toCsv(header, rows)], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = `${brandId}-${kind}-${new Date().toISOString().slice(0, 10)}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  banner("ok", `Downloaded ${link.download}.`);
}

// The page's controls start disabled (the template), so that no click lands before its
// handler: this module awaits the console's access before it wires them.
for (const button of document.querySelectorAll("[data-export]")) {
  button.addEventListener("click", () => download(button.dataset.export));
  button.disabled = false;
}

// ---- start ------------------------------------------------------------------------------

drawChart([]);
loadBrand();
if (access.mode === "none") {
  explainNoAccess($("banner"), access, "this brand's dashboard");
  showStatus($("conn"), "closed 0");
} else {
  loadProductTitles();
  mountTeam($("team-panel"), {
    grant: `brand:${brandId}`, members: `/api/v1/brands/${encodeURIComponent(brandId)}/team`, auth,
    roleLabel: (role) => (role === "admin" ? "Admin" : "Member"),
  });
  mountApiKeys($("keys-panel"), { brand: brandId, auth });
  mountShows($("shows-panel"), { brand: brandId, auth });
  const feed = new FeedClient(`${meta("livecart-ws")}/ws/brands/${encodeURIComponent(brandId)}/sales`, {
    token: access.token,
    ticket: access.ticket,
    onMessage: (message) => {
      if (message.type !== "sales") return;
      report = message;
      namesFor(message);
      render();
    },
    onStatus: (status) => showStatus($("conn"), status),
  });
  window.addEventListener("pagehide", () => feed.close());
  // A fuller report (60 minutes) is one request away; the feed then keeps it current.
  api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}/report`, auth).then((r) => {
    if (r.ok && !report) {
      const minutes = r.data.per_minute;
      report = { ...r.data, per_minute: minutes.slice(-15), orders_last_minute: minutes.at(-2).orders };
      namesFor(report);
      render();
    } else if (!r.ok) {
      banner("error", problemText(r));
    }
  });
}
