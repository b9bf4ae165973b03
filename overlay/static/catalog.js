// The brand's catalog console (/brand/{brand}/catalog): its products (active, archived or
// all), an editor for one (title, description, price, SKU, options and the variants made
// of them, each with its SKU and stock), its images (upload, reorder, remove; the first is
// the product's picture), stock changes with a reason and the audit of every change, and
// archiving. Everything goes through the HTTP API as the brand (console_auth.js); the
// server decides what is allowed and says why not (problem+json, shown as it comes).

import { api, newKey, problemText } from "./api.js";
import { money, setText } from "./cards.js";
import { meta } from "./hub_client.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";

const $ = (id) => document.getElementById(id);
const brandId = meta("livecart-target");
const brandPath = `/api/v1/brands/${encodeURIComponent(brandId)}`;
const access = await consoleAuth("livecart.token.brand", [`brand:${brandId}`]);
const auth = access.auth || {};

let currency = "USD";
let digits = 2;
let nextCursor = null;
let current = null; // the product in the editor, as the server last answered; null: a new one
let variantNames = new Map();

function say(node, kind, text) {
  node.dataset.kind = kind;
  setText(node, text);
}

function el(tag, attrs = {}, text = undefined) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "className") node.className = v;
    else node.setAttribute(k, v);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- money ------------------------------------------------------------------------------

function minorToText(minor) {
  if (!digits) return String(minor);
  const s = String(minor).padStart(digits + 1, "0");
  return `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

// "49.99" -> 4999 in a 2-digit currency; null when it is not a price.
function textToMinor(text) {
  const match = new RegExp(`^(\\d{1,10})(?:\\.(\\d{0,${digits}}))?$`).exec(text.trim());
  if (!match) return null;
  const minor = Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
  return minor >= 1 ? minor : null;
}

// ---- the list ---------------------------------------------------------------------------

function productRow(p) {
  const li = el("li", { className: "catalog-item" });
  li.dataset.status = p.status;
  li.dataset.product = p.id;
  const thumb = p.image_url ? el("img", { className: "catalog-thumb", src: p.image_url, alt: "" })
    : el("span", { className: "catalog-thumb", "aria-hidden": "true" });
  const what = el("span", { className: "catalog-what" });
  const left = Object.values(p.stock || {}).reduce((a, n) => a + n, 0);
  const variants = p.variants.length > 1 ? ` · ${p.variants.length} variants` : "";
  what.append(el("span", { className: "catalog-title" }, p.title),
    el("span", { className: "catalog-meta" },
      `${p.sku} · ${money(p.price_minor, p.currency)} · ${left} in stock${variants}`
      + (p.status === "archived" ? " · Archived" : "")));
  const edit = el("button", { className: "btn btn-secondary btn-small", type: "button",
    "aria-label": `Edit ${p.title}` }, "Edit");
  edit.addEventListener("click", () => openProduct(p.id));
  li.append(thumb, what, edit);
  return li;
}

async function loadList(more = false) {
  const status = $("status-filter").value;
  const cursor = more ? nextCursor : 0;
  const r = await api("GET", `${brandPath}/products?status=${status}&limit=50&cursor=${cursor}`, auth);
  if (!r.ok) {
    say($("banner"), "error", problemText(r));
    return;
  }
  const rows = r.data.items.map(productRow);
  if (more) $("products").append(...rows);
  else $("products").replaceChildren(...rows);
  nextCursor = r.data.next_cursor;
  $("more").hidden = nextCursor === null;
  $("products-empty").hidden = $("products").children.length > 0;
}

// ---- options and variants ---------------------------------------------------------------

function optionRow(option = { name: "", values: [] }) {
  const row = el("div", { className: "option-row" });
  const n = $("options").children.length + 1;
  const name = el("label", { className: "field" }, "Name");
  name.append(el("input", { className: "o-name", maxlength: "40", autocomplete: "off",
    "aria-label": `Option ${n} name`, placeholder: "Size" }));
  const values = el("label", { className: "field" }, "Values");
  values.append(el("input", { className: "o-values", autocomplete: "off",
    "aria-label": `Option ${n} values`, placeholder: "S, M, L" }));
  name.lastChild.value = option.name;
  values.lastChild.value = option.values.join(", ");
  const remove = el("button", { className: "btn btn-secondary btn-small", type: "button",
    "aria-label": `Remove option ${n}` }, "Remove");
  remove.addEventListener("click", () => row.remove());
  row.append(name, values, remove);
  return row;
}

function readOptions() {
  return Array.from($("options").children).map((row) => ({
    name: row.querySelector(".o-name").value.trim(),
    values: [...new Set(row.querySelector(".o-values").value.split(",").map((v) => v.trim())
      .filter(Boolean))],
  })).filter((o) => o.name || o.values.length);
}

function combinations(options) {
  return options.reduce((combos, o) => combos.flatMap((c) => o.values.map((v) => ({ ...c, [o.name]: v }))), [{}]);
}

function slug(text) {
  const s = text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return (s || "v").slice(0, 64);
}

const optionsText = (o) => Object.values(o).join(" / ");

function variantRow(v, existing) {
  const label = optionsText(v.options || {}) || v.name || v.id;
  const row = el("tr");
  row.dataset.id = v.id;
  row.dataset.existing = existing ? "1" : "";
  row.dataset.options = JSON.stringify(v.options || {});
  const idCell = el("td");
  idCell.append(el("span", { className: "row-title" }, label), el("span", { className: "row-id" }, v.id));
  const cell = (cls, value, name, attrs = {}) => {
    const td = el("td", cls ? { className: cls } : {});
    const input = el("input", { "aria-label": `${name} of ${label}`, autocomplete: "off", ...attrs });
    input.value = value;
    td.append(input);
    return td;
  };
  const stock = existing
    ? el("td", { className: "num" }, String(current && current.stock ? current.stock[v.id] ?? 0 : 0))
    : cell("num", "0", "Stock", { inputmode: "numeric", className: "v-stock" });
  row.append(idCell, cell("", v.name || label, "Name", { maxlength: "200", className: "v-name" }),
    cell("", v.sku || "", "SKU", { maxlength: "64", spellcheck: "false", className: "v-sku" }), stock);
  return row;
}

function makeVariants() {
  const options = readOptions();
  const rows = Array.from($("variants").children);
  const wanted = combinations(options.filter((o) => o.name && o.values.length));
  const key = (o) => JSON.stringify(Object.entries(o).sort());
  const have = new Map(rows.map((r) => [key(JSON.parse(r.dataset.options)), r]));
  for (const row of rows) {
    if (!row.dataset.existing && !wanted.some((c) => key(c) === key(JSON.parse(row.dataset.options)))) row.remove();
  }
  const ids = new Set(Array.from($("variants").children, (r) => r.dataset.id));
  for (const combo of wanted) {
    if (have.has(key(combo)) && have.get(key(combo)).isConnected) continue;
    let id = slug(Object.values(combo).join("-"));
    for (let n = 2; ids.has(id); n += 1) id = `${slug(Object.values(combo).join("-")).slice(0, 60)}-${n}`;
    ids.add(id);
    $("variants").append(variantRow({ id, options: combo, name: optionsText(combo) }, false));
  }
  showVariants();
}

function showVariants() {
  const many = $("variants").children.length > 0 && (readOptions().length > 0 || $("variants").children.length > 1);
  $("variants-wrap").hidden = !many;
  $("single-stock-field").hidden = many || Boolean(current);
}

function readVariantRows() {
  return Array.from($("variants").children, (row) => {
    const stock = row.querySelector(".v-stock");
    const v = { id: row.dataset.id, name: row.querySelector(".v-name").value.trim(),
      sku: row.querySelector(".v-sku").value.trim(), options: JSON.parse(row.dataset.options),
      existing: Boolean(row.dataset.existing) };
    if (stock) v.stock = Number(stock.value.trim() || "0");
    return v;
  });
}

// ---- the editor -------------------------------------------------------------------------

function fillForm(p) {
  $("f-title").value = p ? p.title : "";
  $("f-description").value = p ? p.description : "";
  $("f-price").value = p ? minorToText(p.price_minor) : "";
  $("f-sku").value = p ? p.sku : "";
  $("f-stock").value = "0";
  $("options").replaceChildren();
  for (const o of p ? p.options : []) $("options").append(optionRow(o));
  const variants = p ? p.variants : [];
  $("variants").replaceChildren(...variants.map((v) => variantRow(v, true)));
  showVariants();
}

function showProduct(p) {
  current = p;
  variantNames = new Map(p.variants.map((v) => [v.id, v.name]));
  setText($("editor-heading"), p.title);
  setText($("editor-status-note"), p.status === "archived" ? "Archived: not on sale" : "On sale");
  $("saved-parts").hidden = false;
  $("view-product").href = `/p/${encodeURIComponent(p.id)}`;
  $("view-product").hidden = p.status !== "active";
  setText($("archive"), p.status === "archived" ? "Put back on sale" : "Archive");
  $("archive").className = `btn btn-small ${p.status === "archived" ? "" : "btn-danger"}`;
  renderImages(p.images);
  renderStock(p);
}

async function openProduct(id) {
  const r = await api("GET", `${brandPath}/products/${encodeURIComponent(id)}`, auth);
  if (!r.ok) {
    say($("banner"), "error", problemText(r));
    return;
  }
  $("editor").hidden = false;
  say($("form-status"), "", "");
  showProduct(r.data);
  fillForm(r.data);
  await loadAudit();
  $("f-title").focus();
}

function newProduct() {
  current = null;
  $("editor").hidden = false;
  $("saved-parts").hidden = true;
  setText($("editor-heading"), "New product");
  setText($("editor-status-note"), "");
  say($("form-status"), "", "");
  fillForm(null);
  $("f-title").focus();
}

async function refresh() {
  const r = await api("GET", `${brandPath}/products/${encodeURIComponent(current.id)}`, auth);
  if (r.ok) {
    showProduct(r.data);
    fillForm(r.data);
  }
  loadList();
}

function formErrors() {
  const price = textToMinor($("f-price").value);
  const checks = [[$("f-title"), $("f-title").value.trim() !== "", "a title"],
    [$("f-price"), price !== null, `a price such as ${minorToText(4999)}`],
    [$("f-sku"), /^[A-Za-z0-9._/-]{1,64}$/.test($("f-sku").value.trim()), "a SKU (letters, digits, . _ / -)"]];
  const missing = [];
  for (const [input, ok, what] of checks) {
    input.setAttribute("aria-invalid", ok ? "false" : "true");
    if (!ok) missing.push(what);
  }
  return { price, missing };
}

async function save(event) {
  event.preventDefault();
  const status = $("form-status");
  const { price, missing } = formErrors();
  if (missing.length) {
    say(status, "error", `Give ${missing.join(", ")}.`);
    return;
  }
  const options = readOptions();
  if (options.length && !$("variants").children.length) makeVariants();
  const rows = readVariantRows();
  const fields = { title: $("f-title").value.trim(), description: $("f-description").value,
    price_minor: price, sku: $("f-sku").value.trim(), options };
  const variantBody = (v) => ({ id: v.id, name: v.name || undefined, sku: v.sku || undefined,
    options: v.options, stock: v.stock });
  $("save").disabled = true;
  say(status, "", "Saving…");
  try {
    if (!current) {
      const body = { ...fields, currency };
      if (rows.length) body.variants = rows.map(variantBody);
      else body.stock = Number($("f-stock").value.trim() || "0");
      const r = await api("POST", `${brandPath}/products`, { ...auth, body });
      if (!r.ok) return say(status, "error", problemText(r));
      current = r.data;
    } else {
      let r = await api("PATCH", `/api/v1/products/${encodeURIComponent(current.id)}`, { ...auth, body: fields });
      if (!r.ok) return say(status, "error", problemText(r));
      const before = new Map(current.variants.map((v) => [v.id, v]));
      for (const v of rows) {
        const was = before.get(v.id);
        if (v.existing && was && (v.name !== was.name || v.sku !== (was.sku || ""))) {
          const body = {};
          if (v.name && v.name !== was.name) body.name = v.name;
          if (v.sku && v.sku !== (was.sku || "")) body.sku = v.sku;
          if (!Object.keys(body).length) continue;
          r = await api("PATCH", `/api/v1/products/${encodeURIComponent(current.id)}/variants/${encodeURIComponent(v.id)}`,
            { ...auth, body });
        } else if (!v.existing) {
          r = await api("POST", `/api/v1/products/${encodeURIComponent(current.id)}/variants`,
            { ...auth, body: variantBody(v) });
        }
        if (!r.ok) return say(status, "error", `${v.name || v.id}: ${problemText(r)}`);
      }
    }
    say(status, "ok", "Saved.");
    await refresh();
    await loadAudit();
  } finally {
    $("save").disabled = false;
  }
}

// ---- images -----------------------------------------------------------------------------

function renderImages(images) {
  const list = $("images");
  list.replaceChildren(...images.map((image, i) => {
    const li = el("li", { className: "image-item" });
    li.dataset.image = image.id;
    const n = i + 1;
    li.append(el("img", { src: image.url, alt: `Image ${n}${i === 0 ? " (the product's picture)" : ""}` }));
    const actions = el("div", { className: "image-actions" });
    const button = (word, label, disabled, onClick) => {
      const b = el("button", { className: "btn btn-secondary", type: "button", "aria-label": label }, word);
      b.disabled = disabled;
      b.addEventListener("click", onClick);
      actions.append(b);
    };
    button("↑", `Move image ${n} earlier`, i === 0, () => move(i, -1));
    button("↓", `Move image ${n} later`, i === images.length - 1, () => move(i, 1));
    button("Remove", `Remove image ${n}`, false, () => removeImage(image.id));
    li.append(actions);
    return li;
  }));
}

function imagesAnswer(r) {
  if (!r.ok) {
    say($("images-status"), "error", problemText(r));
    return;
  }
  current = { ...current, images: r.data.images, image_url: r.data.image_url };
  renderImages(current.images);
  loadList();
}

async function move(index, by) {
  const order = current.images.map((i) => i.id);
  [order[index], order[index + by]] = [order[index + by], order[index]];
  imagesAnswer(await api("PUT", `/api/v1/products/${encodeURIComponent(current.id)}/images`, { ...auth, body: { order } }));
}

async function removeImage(id) {
  imagesAnswer(await api("DELETE", `/api/v1/products/${encodeURIComponent(current.id)}/images/${id}`, auth));
  say($("images-status"), "ok", "Image removed.");
}

async function uploadChosen() {
  const input = $("image-input");
  const files = Array.from(input.files || []);
  input.value = "";
  for (const file of files) {
    say($("images-status"), "", `Uploading ${file.name}…`);
    const r = await api("POST", `/api/v1/products/${encodeURIComponent(current.id)}/images`, { ...auth, file });
    if (!r.ok) {
      say($("images-status"), "error", `${file.name}: ${problemText(r)}`);
      return;
    }
    imagesAnswer(r);
    say($("images-status"), "ok", `${file.name} added.`);
  }
}

// ---- stock and its audit ----------------------------------------------------------------

function renderStock(p) {
  const levels = p.stock_levels || [];
  $("stock").replaceChildren(...levels.map((s) => {
    const row = el("tr");
    row.dataset.variant = s.variant;
    row.append(el("td", {}, variantNames.get(s.variant) || s.variant),
      el("td", { className: "num" }, String(s.available)), el("td", { className: "num" }, String(s.held)),
      el("td", { className: "num" }, String(s.sold)));
    return row;
  }));
  const select = $("s-variant");
  const chosen = select.value;
  select.replaceChildren(...p.variants.map((v) => el("option", { value: v.id }, v.name)));
  if (p.variants.some((v) => v.id === chosen)) select.value = chosen;
}

async function loadAudit() {
  const r = await api("GET", `/api/v1/products/${encodeURIComponent(current.id)}/stock/audit?limit=50`, auth);
  if (!r.ok) return;
  $("audit").replaceChildren(...r.data.items.map((a) => {
    const row = el("tr");
    const delta = Number(a.delta);
    row.append(el("td", {}, new Date(Number(a.at) * 1000).toLocaleString()),
      el("td", {}, variantNames.get(a.variant) || a.variant),
      el("td", {}, `${a.kind || "other"}: ${a.why}`),
      el("td", { className: "num" }, delta > 0 ? `+${delta}` : String(delta)),
      el("td", { className: "num" }, a.avail), el("td", {}, a.who));
    return row;
  }));
}

async function adjust(event) {
  event.preventDefault();
  const status = $("stock-status");
  const delta = $("s-delta").value.trim();
  if (!/^[+-]?\d{1,8}$/.test(delta) || Number(delta) === 0) {
    $("s-delta").setAttribute("aria-invalid", "true");
    return say(status, "error", "Give the change as a whole number, such as 5 or -2.");
  }
  $("s-delta").setAttribute("aria-invalid", "false");
  const kind = $("s-kind").value;
  const variant = $("s-variant").value;
  const body = { adjust: Number(delta), kind, reason: $("s-note").value.trim() || kind, operation_id: newKey() };
  $("s-apply").disabled = true;
  const r = await api("PUT", `/api/v1/products/${encodeURIComponent(current.id)}/variants/${encodeURIComponent(variant)}/stock`,
    { ...auth, body });
  $("s-apply").disabled = false;
  if (!r.ok) {
    const words = r.kind === "negative-stock" ? "That would take the stock below zero." : problemText(r);
    return say(status, "error", words);
  }
  say(status, "ok", `${variantNames.get(variant) || variant}: ${r.data.available} available.`);
  $("s-delta").value = "";
  $("s-note").value = "";
  await refresh();
  await loadAudit();
}

async function toggleArchive() {
  const action = current.status === "archived" ? "unarchive" : "archive";
  const r = await api("POST", `/api/v1/products/${encodeURIComponent(current.id)}/${action}`, auth);
  if (!r.ok) return say($("banner"), "error", problemText(r));
  say($("banner"), "ok", `${current.title} ${action === "archive" ? "archived" : "is on sale again"}.`);
  await refresh();
}

// ---- start ------------------------------------------------------------------------------

async function loadBrand() {
  const r = await api("GET", brandPath);
  if (!r.ok) return;
  currency = r.data.currency || currency;
  digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  setText($("brand-name"), r.data.name || brandId);
  setText($("f-currency"), `(${currency})`);
  document.title = `${r.data.name || brandId} · Catalog · livecart`;
}

await loadBrand();
if (access.mode === "none") {
  explainNoAccess($("banner"), access, "this brand's catalog");
  $("new-product").disabled = true;
} else {
  $("new-product").addEventListener("click", newProduct);
  $("close-editor").addEventListener("click", () => { $("editor").hidden = true; current = null; });
  $("add-option").addEventListener("click", () => $("options").append(optionRow()));
  $("make-variants").addEventListener("click", makeVariants);
  $("product-form").addEventListener("submit", save);
  $("image-input").addEventListener("change", uploadChosen);
  $("stock-form").addEventListener("submit", adjust);
  $("archive").addEventListener("click", toggleArchive);
  $("status-filter").addEventListener("change", () => loadList());
  $("more").addEventListener("click", () => loadList(true));
  setText($("image-rules"), "JPEG, PNG or WebP; the first image is the product's picture.");
  await loadList();
}
