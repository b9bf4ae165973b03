// The creator studio (/studio/{creator}): schedule shows with a cover picture and a lineup
// from the brands whose programs let the creator sell, change or remove a show's cover, go
// live (the host console's camera, or OBS over WHIP), end a show and schedule the next;
// apply to brands' programs; earnings per show, brand and product, and a month's statement
// as CSV (made by the server).

import { meta } from "./hub_client.js";
import { money, setText, syncList } from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";
import { percent } from "./terms.js";

const $ = (id) => document.getElementById(id);
const creatorId = meta("livecart-target");
const creatorPath = `/api/v1/creators/${encodeURIComponent(creatorId)}`;
const access = await consoleAuth("livecart.token.creator", [`creator:${creatorId}`]);
const auth = access.auth || {};

let shows = [];
let programs = [];
const brandNames = new Map();
const productTitles = new Map();
const lineupProducts = []; // {product_id, title, brand} the creator may put in a lineup

function say(node, kind, text) {
  node.dataset.kind = kind;
  setText(node, text);
}

function button(word, hiddenName, onClick, secondary = true) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn btn-small${secondary ? " btn-secondary" : ""}`;
  b.append(word);
  if (hiddenName) {
    const span = document.createElement("span");
    span.className = "visually-hidden";
    span.textContent = ` ${hiddenName}`;
    b.append(span);
  }
  b.addEventListener("click", () => onClick(b));
  return b;
}

// ---- programs ---------------------------------------------------------------------------

const STATE_WORDS = {
  none: "", pending: "Waiting for the brand's answer", approved: "Approved: you may sell",
  rejected: "Not approved", removed: "Removed from the program",
};

function createProgram() {
  const li = document.createElement("li");
  li.className = "team-item program-item";
  const who = document.createElement("span");
  who.className = "team-who";
  const what = document.createElement("span");
  what.className = "team-what";
  const actions = document.createElement("span");
  actions.className = "program-actions";
  li.append(who, what, actions);
  return li;
}

function updateProgram(li, p) {
  li.dataset.brand = p.brand_id;
  li.dataset.state = p.my_state;
  setText(li.querySelector(".team-who"), `${p.brand_name} · ${percent(p.default_commission_bps)}%`);
  const open = p.mode === "open";
  const state = open && p.my_state !== "approved" ? "Open to every creator" : STATE_WORDS[p.my_state];
  setText(li.querySelector(".team-what"), state || "By approval: tell the brand about you");
  const actions = li.querySelector(".program-actions");
  if (!open && ["none", "rejected", "removed"].includes(p.my_state)) {
    const input = document.createElement("input");
    input.maxLength = 500;
    input.placeholder = "A note for the brand";
    input.setAttribute("aria-label", `Your note to ${p.brand_name}`);
    input.className = "apply-message";
    actions.replaceChildren(input, button("Apply", `to ${p.brand_name}`, (b) => applyTo(p, input, b), false));
  } else {
    actions.replaceChildren();
  }
}

async function loadPrograms() {
  const r = await api("GET", "/api/v1/programs?limit=100", auth);
  if (!r.ok) {
    say($("programs-status"), "error", problemText(r));
    return;
  }
  programs = r.data.items;
  for (const p of programs) brandNames.set(p.brand_id, p.brand_name);
  syncList($("programs"), programs, (p) => p.brand_id, (p) => {
    const li = createProgram();
    updateProgram(li, p);
    return li;
  }, updateProgram);
  $("programs-empty").hidden = programs.length > 0;
  await loadLineupProducts();
}

async function applyTo(program, input, b) {
  b.disabled = true;
  const r = await api("POST", `/api/v1/brands/${encodeURIComponent(program.brand_id)}/program/applications`, {
    ...auth, body: { message: input.value.trim() },
  });
  b.disabled = false;
  if (!r.ok) {
    say($("programs-status"), "error", problemText(r));
    return;
  }
  say($("programs-status"), "ok", r.data.state === "approved"
    ? `${program.brand_name} approved you: its products are in your lineup choices.`
    : `Applied to ${program.brand_name}: you'll see its answer here.`);
  await loadPrograms();
}

// The products of every program that lets this creator sell, for the lineup picker.
async function loadLineupProducts() {
  const sellable = programs.filter((p) => p.mode === "open" || p.my_state === "approved");
  const found = [];
  for (const p of sellable) {
    const r = await api("GET", `/api/v1/brands/${encodeURIComponent(p.brand_id)}/program/products?limit=100`, auth);
    if (!r.ok) continue;
    for (const item of r.data.items) {
      productTitles.set(item.product_id, item.title);
      found.push({ ...item, brand: p.brand_name, brand_id: p.brand_id });
    }
  }
  const checked = new Set(chosenLineup());
  lineupProducts.splice(0, lineupProducts.length, ...found);
  const options = $("lineup-options");
  options.replaceChildren();
  let brand = null;
  for (const item of lineupProducts) {
    if (item.brand_id !== brand) {
      brand = item.brand_id;
      const head = document.createElement("p");
      head.className = "lineup-brand";
      head.textContent = item.brand;
      options.append(head);
    }
    const label = document.createElement("label");
    label.className = "lineup-option";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = item.product_id;
    box.checked = checked.has(item.product_id);
    label.append(box, `${item.title} · ${money(item.price_minor, item.currency)} · ${percent(item.commission_bps)}%`);
    options.append(label);
  }
  $("lineup-empty").hidden = lineupProducts.length > 0;
  renderEarnings();
}

function chosenLineup() {
  return [...$("lineup-options").querySelectorAll("input:checked")].map((box) => box.value);
}

// ---- shows ------------------------------------------------------------------------------

function when(show) {
  const at = (ms) => new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  if (show.state === "scheduled") return `Starts ${at(show.scheduled_ms)}`;
  if (show.state === "live") return `Live since ${at(show.started_ms)}`;
  if (show.state === "ended") return `Ended ${at(show.ended_ms)}`;
  return "Cancelled";
}

function createShow() {
  const li = document.createElement("li");
  li.className = "show-item";
  for (const cls of ["show-thumb", "show-title", "show-state", "show-when", "show-actions"]) {
    const node = document.createElement(cls === "show-actions" || cls === "show-thumb" ? "div" : "span");
    node.className = cls;
    li.append(node);
  }
  return li;
}

function hostLink(show, word) {
  const a = document.createElement("a");
  a.className = "btn btn-small";
  a.href = `/host/${encodeURIComponent(show.id)}`;
  a.textContent = word;
  return a;
}

// The show's cover as listings show it (an uploaded picture or a URL given by the API).
function updateThumb(box, show) {
  const img = box.querySelector("img");
  if (!show.cover_url) {
    if (img || !box.textContent) box.replaceChildren("No cover");
    return;
  }
  if (img && img.getAttribute("src") === show.cover_url) return;
  const next = document.createElement("img");
  next.alt = `Cover of ${show.title}`;
  next.src = show.cover_url;
  box.replaceChildren(next);
}

// While a show can be found (scheduled or live), its cover can change.
function coverButtons(show) {
  if (show.state !== "scheduled" && show.state !== "live") return [];
  const pick = button(show.cover_url ? "Change cover" : "Add cover", `of ${show.title}`, () => pickCover(show));
  if (!show.cover_url) return [pick];
  return [pick, button("Remove", `cover of ${show.title}`, (b) => removeCover(show, b))];
}

function updateShow(li, show) {
  li.dataset.stream = show.id;
  li.dataset.state = show.state;
  updateThumb(li.querySelector(".show-thumb"), show);
  setText(li.querySelector(".show-title"), show.title);
  setText(li.querySelector(".show-state"), show.state);
  setText(li.querySelector(".show-when"), `${when(show)} · ${show.lineup.length} ${show.lineup.length === 1 ? "product" : "products"}`);
  const actions = li.querySelector(".show-actions");
  if (show.state === "scheduled") {
    actions.replaceChildren(hostLink(show, "Go live with camera"),
      button("Go live with OBS", `: ${show.title}`, () => showObs(show)),
      button("Cancel", `show ${show.title}`, (b) => act(show, "cancel", b)), ...coverButtons(show));
  } else if (show.state === "live") {
    actions.replaceChildren(hostLink(show, "Host console"),
      button("End show", show.title, (b) => act(show, "end", b)), ...coverButtons(show));
  } else {
    actions.replaceChildren(button("Schedule another", `like ${show.title}`, () => again(show), false));
  }
}

async function loadShows() {
  const r = await api("GET", `${creatorPath}/streams?limit=50`, auth);
  if (!r.ok) {
    say($("banner"), "error", problemText(r));
    return;
  }
  shows = r.data.items;
  syncList($("shows"), shows, (s) => s.id, (s) => {
    const li = createShow();
    updateShow(li, s);
    return li;
  }, updateShow);
  $("shows-empty").hidden = shows.length > 0;
  renderEarnings();
}

async function act(show, action, b) {
  b.disabled = true;
  const r = await api("POST", `/api/v1/streams/${encodeURIComponent(show.id)}/${action}`, auth);
  b.disabled = false;
  if (!r.ok) {
    say($("show-status"), "error", problemText(r));
    return;
  }
  say($("show-status"), "ok", action === "end" ? `${show.title} ended.` : `${show.title} cancelled.`);
  await loadShows();
  $("my-shows-heading").scrollIntoView({ block: "nearest" });
}

// ---- covers -----------------------------------------------------------------------------

// The picture itself is the body (api.js `file`); the server checks it, and says why not.
async function uploadCover(show, file) {
  return api("POST", `/api/v1/streams/${encodeURIComponent(show.id)}/cover`, { ...auth, file });
}

let coverFor = null; // the show whose "Change cover" opened the file picker

function pickCover(show) {
  coverFor = show;
  $("cover-picker").value = "";
  $("cover-picker").click();
}

$("cover-picker").addEventListener("change", async () => {
  const [file] = $("cover-picker").files;
  const show = coverFor;
  coverFor = null;
  if (!file || !show) return;
  say($("show-status"), "", `Uploading the cover of “${show.title}”…`);
  const r = await uploadCover(show, file);
  if (!r.ok) {
    say($("show-status"), "error", `The cover of “${show.title}” was not changed: ${problemText(r)}`);
    return;
  }
  say($("show-status"), "ok", `New cover for “${show.title}”.`);
  await loadShows();
});

async function removeCover(show, b) {
  b.disabled = true;
  const r = await api("DELETE", `/api/v1/streams/${encodeURIComponent(show.id)}/cover`, auth);
  b.disabled = false;
  if (!r.ok) {
    say($("show-status"), "error", problemText(r));
    return;
  }
  say($("show-status"), "ok", `Cover of “${show.title}” removed: its first product's picture shows instead.`);
  await loadShows();
}

// The start a new show's form suggests: the first quarter hour an hour from now.
function nextSlot() {
  return localInput(Math.ceil((Date.now() + 3600000) / 900000) * 900000);
}

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

// "Schedule another": the form again, with the ended show's title and lineup.
function again(show) {
  $("show-title").value = show.title;
  $("show-start").value = nextSlot();
  for (const box of $("lineup-options").querySelectorAll("input")) box.checked = show.lineup.includes(box.value);
  const missing = show.lineup.filter((id) => !lineupProducts.some((p) => p.product_id === id));
  say($("show-status"), missing.length ? "error" : "ok", missing.length
    ? `${missing.length} of its products can't be in a new lineup (no program lets you sell them now).`
    : "Pick a time and schedule it.");
  $("show-title").focus();
}

$("show-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const start = new Date($("show-start").value).getTime();
  const body = { title: $("show-title").value.trim(), lineup: chosenLineup() };
  if (Number.isFinite(start)) body.scheduled_at_ms = start;
  const [cover] = $("show-cover").files;
  const submit = $("show-submit");
  submit.disabled = true;
  const r = await api("POST", "/api/v1/streams", { ...auth, body });
  // The show exists now: its cover goes up next, and a refused one leaves it scheduled
  // without (its row offers "Add cover" to try another picture).
  const uploaded = r.ok && cover ? await uploadCover(r.data, cover) : null;
  submit.disabled = false;
  if (!r.ok) {
    say($("show-status"), "error", problemText(r));
    return;
  }
  if (uploaded && !uploaded.ok) {
    say($("show-status"), "error", `Scheduled “${r.data.title}”, but not its cover: ${problemText(uploaded)}`);
  } else {
    say($("show-status"), "ok", `Scheduled “${r.data.title}”${uploaded ? " with its cover" : ""}.`);
  }
  $("show-form").reset();
  $("show-start").value = nextSlot();
  await loadShows();
});

async function showObs(show) {
  const r = await api("POST", `${creatorPath}/publish-token`, auth);
  if (!r.ok) {
    say($("show-status"), "error", problemText(r));
    return;
  }
  $("obs-url").value = `${location.origin}/api/v1/streams/${encodeURIComponent(show.id)}/whip`;
  $("obs-token").value = r.data.token;
  const hours = Math.round(r.data.expires_in_s / 360) / 10;
  setText($("obs-expiry"), `valid ${hours} h: it acts as you, keep it in OBS only`);
  $("obs-box").hidden = false;
  $("obs-heading").focus();
}

// ---- earnings ---------------------------------------------------------------------------

let earned = null;
let breakdown = null;

function titleOfProduct(id) {
  if (!productTitles.has(id)) {
    productTitles.set(id, id);
    api("GET", `/api/v1/products/${encodeURIComponent(id)}`).then((r) => {
      if (r.ok) {
        productTitles.set(id, r.data.title);
        renderEarnings();
      }
    });
  }
  return productTitles.get(id);
}

function fillTable(body, rows, nameOf, empty) {
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty-row";
    const td = document.createElement("td");
    td.colSpan = 4;
    td.textContent = empty;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = nameOf(row);
    tr.append(th);
    for (const text of [String(row.orders), money(row.sales_minor, row.currency), money(row.commission_minor, row.currency)]) {
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

function renderEarnings() {
  if (earned) {
    const amounts = Object.entries(earned.earned_minor || {}).map(([c, v]) => money(v, c));
    setText($("earned-total"), `${amounts.join(" · ") || money(0, "USD")} earned, ${earned.orders} ${earned.orders === 1 ? "order" : "orders"}`);
  }
  if (!breakdown) return;
  const showTitle = (id) => (id === "-" ? "Affiliate links" : (shows.find((s) => s.id === id) || {}).title || id);
  fillTable($("by-show"), breakdown.shows, (r) => showTitle(r.stream_id), "No commission yet.");
  fillTable($("by-brand"), breakdown.brands, (r) => brandNames.get(r.brand_id) || r.brand_id, "No commission yet.");
  fillTable($("by-product"), breakdown.products, (r) => titleOfProduct(r.product_id), "No commission yet.");
}

async function loadEarnings() {
  const [totals, parts] = await Promise.all([
    api("GET", `${creatorPath}/earnings`, auth), api("GET", `${creatorPath}/earnings/breakdown`, auth)]);
  if (totals.ok) earned = totals.data;
  if (parts.ok) breakdown = parts.data;
  renderEarnings();
}

$("statement-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const month = $("statement-month").value;
  const headers = { Accept: "text/csv" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  let response;
  try {
    response = await fetch(`${creatorPath}/statement?month=${encodeURIComponent(month)}`, { headers, credentials: "same-origin" });
  } catch (error) {
    say($("statement-status"), "error", "No connection. Check your network and try again.");
    return;
  }
  if (!response.ok) {
    let detail = `Request failed (${response.status}).`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (error) { /* not a problem body */ }
    say($("statement-status"), "error", detail);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `statement-${creatorId}-${month}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say($("statement-status"), "ok", `Statement for ${month} downloaded.`);
});

// ---- start ------------------------------------------------------------------------------

if (access.mode === "none") {
  explainNoAccess($("banner"), access, "this creator's studio");
  $("show-submit").disabled = true;
} else {
  $("statement-month").value = new Date().toISOString().slice(0, 7);
  $("show-start").value = nextSlot();
  await loadShows();
  await loadPrograms();
  await loadEarnings();
  const from = new URLSearchParams(location.search).get("again");
  const ended = from && shows.find((s) => s.id === from);
  if (ended) again(ended);
}
