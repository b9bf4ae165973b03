// A brand's affiliate program (/brand/{brand}/program): the default commission and who may
// sell, each product's own commission and deal floor, and the creators' applications to
// approve, reject or remove. The server decides who may change what (admins; members read).

import { meta } from "./hub_client.js";
import { money, setText, syncList } from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";
import { fromMinor, percent, toBps, toMinor } from "./terms.js";

const $ = (id) => document.getElementById(id);
const brandId = meta("livecart-target");
const base = `/api/v1/brands/${encodeURIComponent(brandId)}`;
const access = await consoleAuth("livecart.token.brand", [`brand:${brandId}`]);
const auth = access.auth || {};

let currency = "USD";
let program = null;

function say(node, kind, text) {
  node.dataset.kind = kind;
  setText(node, text);
}

// ---- the program ------------------------------------------------------------------------

async function loadBrand() {
  const r = await api("GET", base);
  if (!r.ok) return;
  currency = r.data.currency || currency;
  setText($("brand-name"), r.data.name || brandId);
  document.title = `${r.data.name || brandId} · Affiliate program · livecart`;
}

function showProgram() {
  const note = $("settings-note");
  if (!program) {
    setText(note, "No program yet: choose a commission and save to start one.");
    $("products-panel").hidden = true;
    return;
  }
  setText(note, program.mode === "open"
    ? `Open to every creator at ${percent(program.default_commission_bps)}%.`
    : `Creators you approve, at ${percent(program.default_commission_bps)}%.`);
  $("default-rate").value = percent(program.default_commission_bps);
  $("mode").value = program.mode;
  $("products-panel").hidden = false;
}

async function loadProgram() {
  const r = await api("GET", `${base}/program`, auth);
  if (r.ok) program = r.data.running ? r.data : null;
  else say($("banner"), "error", problemText(r));
  showProgram();
  if (program) await loadProducts();
}

$("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const bps = toBps($("default-rate").value);
  if (bps === null || bps < 100 || bps > 8000) {
    say($("settings-status"), "error", "A commission is between 1% and 80%, e.g. 12.5.");
    $("default-rate").focus();
    return;
  }
  const submit = $("settings-submit");
  submit.disabled = true;
  const r = await api("PUT", `${base}/program`, {
    ...auth, body: { default_commission_bps: bps, mode: $("mode").value },
  });
  submit.disabled = false;
  if (!r.ok) {
    say($("settings-status"), "error", problemText(r));
    return;
  }
  program = r.data;
  showProgram();
  say($("settings-status"), "ok", `Saved: ${percent(bps)}% by default, ${program.mode === "open" ? "every creator" : "creators you approve"}.`);
  await loadProducts();
});

// ---- per product ------------------------------------------------------------------------

let products = [];

function createProductRow(p) {
  const tr = document.createElement("tr");
  tr.dataset.product = p.product_id;
  const name = document.createElement("th");
  name.scope = "row";
  const title = document.createElement("span");
  title.className = "row-title";
  const id = document.createElement("span");
  id.className = "row-id";
  name.append(title, id);
  const price = document.createElement("td");
  price.className = "num";
  const rateCell = document.createElement("td");
  const rate = document.createElement("input");
  rate.type = "number";
  rate.min = "1";
  rate.max = "80";
  rate.step = "0.01";
  rate.inputMode = "decimal";
  rate.className = "rate-input";
  rateCell.append(rate);
  const floorCell = document.createElement("td");
  const floor = document.createElement("input");
  floor.inputMode = "decimal";
  floor.className = "floor-input";
  floor.autocomplete = "off";
  floorCell.append(floor);
  const saveCell = document.createElement("td");
  const save = document.createElement("button");
  save.type = "button";
  save.className = "btn btn-small btn-secondary save-terms";
  save.append("Save", document.createElement("span"));
  save.lastChild.className = "visually-hidden";
  save.addEventListener("click", () => saveTerms(tr));
  saveCell.append(save);
  tr.append(name, price, rateCell, floorCell, saveCell);
  updateProductRow(tr, p);
  return tr;
}

function updateProductRow(tr, p) {
  setText(tr.querySelector(".row-title"), p.title);
  setText(tr.querySelector(".row-id"), p.product_id);
  setText(tr.children[1], money(p.price_minor, p.currency));
  const rate = tr.querySelector(".rate-input");
  rate.placeholder = percent(program ? program.default_commission_bps : p.commission_bps);
  rate.value = p.own_commission_bps ? percent(p.own_commission_bps) : "";
  rate.setAttribute("aria-label", `Commission for ${p.title} (%)`);
  const floor = tr.querySelector(".floor-input");
  floor.value = p.deal_floor_minor ? fromMinor(p.deal_floor_minor, p.currency) : "";
  floor.placeholder = "no deals";
  floor.setAttribute("aria-label", `Lowest deal price for ${p.title} (${p.currency})`);
  setText(tr.querySelector(".save-terms span"), ` terms of ${p.title}`);
}

async function loadProducts() {
  const r = await api("GET", `${base}/program/products?limit=100`, auth);
  if (!r.ok) {
    say($("products-status"), "error", problemText(r));
    return;
  }
  products = r.data.items;
  const body = $("products");
  if (!products.length) {
    body.replaceChildren();
    const tr = document.createElement("tr");
    tr.className = "empty-row";
    const td = document.createElement("td");
    td.colSpan = 5;
    td.textContent = "No products yet.";
    tr.append(td);
    body.append(tr);
    return;
  }
  const empty = body.querySelector(".empty-row");
  if (empty) empty.remove();
  syncList(body, products, (p) => p.product_id, createProductRow, updateProductRow);
}

async function saveTerms(tr) {
  const p = products.find((x) => x.product_id === tr.dataset.product);
  const rateText = tr.querySelector(".rate-input").value.trim();
  const floorText = tr.querySelector(".floor-input").value.trim();
  const bps = rateText ? toBps(rateText) : null;
  const floor = floorText ? toMinor(floorText, p.currency) : null;
  if ((rateText && (bps === null || bps < 100 || bps > 8000)) || (floorText && floor === null)) {
    say($("products-status"), "error", `${p.title}: a commission is 1–80%, a floor an amount such as 12.50.`);
    return;
  }
  const r = await api("PUT", `${base}/program/products/${encodeURIComponent(p.product_id)}`, {
    ...auth, body: { commission_bps: bps, deal_floor_minor: floor },
  });
  if (!r.ok) {
    say($("products-status"), "error", `${p.title}: ${problemText(r)}`);
    return;
  }
  Object.assign(p, { own_commission_bps: r.data.own_commission_bps,
    commission_bps: r.data.commission_bps, deal_floor_minor: r.data.deal_floor_minor });
  updateProductRow(tr, p);
  say($("products-status"), "ok", `${p.title}: ${percent(r.data.commission_bps)}% commission, `
    + (r.data.deal_floor_minor ? `deals down to ${money(r.data.deal_floor_minor, p.currency)}.` : "no deals below the price."));
}

// ---- applications -----------------------------------------------------------------------

const ACTIONS = {
  pending: [["approve", "Approve"], ["reject", "Reject"]],
  approved: [["remove", "Remove"]],
  rejected: [["approve", "Approve"]],
  removed: [["approve", "Approve again"]],
};

function createApplication() {
  const li = document.createElement("li");
  li.className = "team-item application";
  const who = document.createElement("span");
  who.className = "team-who";
  const what = document.createElement("span");
  what.className = "team-what";
  const buttons = document.createElement("span");
  buttons.className = "application-actions";
  li.append(who, what, buttons);
  return li;
}

function updateApplication(li, a) {
  li.dataset.creator = a.creator_id;
  setText(li.querySelector(".team-who"), a.creator_id);
  const when = new Date(a.applied_ms).toLocaleDateString([], { dateStyle: "medium" });
  setText(li.querySelector(".team-what"), a.message ? `“${a.message}” · ${when}` : `applied ${when}`);
  const buttons = li.querySelector(".application-actions");
  buttons.replaceChildren(...(ACTIONS[a.state] || []).map(([action, word]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `btn btn-small ${action === "approve" ? "" : "btn-secondary"}`;
    button.dataset.action = action;
    button.append(word, document.createElement("span"));
    button.lastChild.className = "visually-hidden";
    button.lastChild.textContent = ` ${a.creator_id}`;
    button.addEventListener("click", () => decide(a, action, button));
    return button;
  }));
}

async function loadApplications() {
  const state = $("app-state").value;
  const r = await api("GET", `${base}/program/applications?state=${state}&limit=100`, auth);
  if (!r.ok) {
    if (r.kind !== "no-program") say($("applications-status"), "error", problemText(r));
    syncList($("applications"), [], (a) => a.creator_id, createApplication, updateApplication);
    $("applications-empty").hidden = false;
    return;
  }
  syncList($("applications"), r.data.items, (a) => a.creator_id, (a) => {
    const li = createApplication();
    updateApplication(li, a);
    return li;
  }, updateApplication);
  $("applications-empty").hidden = r.data.items.length > 0;
}

async function decide(application, action, button) {
  button.disabled = true;
  const r = await api("POST", `${base}/program/applications/${encodeURIComponent(application.creator_id)}/${action}`, auth);
  button.disabled = false;
  if (!r.ok) {
    say($("applications-status"), "error", problemText(r));
    return;
  }
  const words = { approved: "approved", rejected: "rejected", removed: "removed" };
  say($("applications-status"), "ok", `${application.creator_id} ${words[r.data.state] || r.data.state}.`);
  await loadApplications();
  $("applications-heading").focus();
}

$("app-state").addEventListener("change", loadApplications);

// ---- start ------------------------------------------------------------------------------

if (access.mode === "none") {
  explainNoAccess($("banner"), access, "this brand's affiliate program");
  $("settings-submit").disabled = true;
} else {
  await loadBrand();
  await loadProgram();
  await loadApplications();
}
