// The brand's webhooks (/brand/{brand}/webhooks): endpoints with their events, the secret
// shown once, the delivery log of one endpoint with Resend, Enable for a disabled one.
// The server decides who may do what (docs/webhooks.md).

import { meta } from "./hub_client.js";
import { setText, syncList } from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";

const $ = (id) => document.getElementById(id);
const brandId = meta("livecart-target");
const base = `/api/v1/brands/${encodeURIComponent(brandId)}/webhooks`;
const access = await consoleAuth("livecart.token.brand", [`brand:${brandId}`]);
const auth = access.auth || {};
let shown = null; // the endpoint whose deliveries are listed

function say(node, kind, text) {
  node.dataset.kind = kind;
  setText(node, text);
}

function button(word, onClick, secondary = true) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = secondary ? "btn btn-small btn-secondary" : "btn btn-small";
  b.textContent = word;
  b.onclick = () => onClick(b);
  return b;
}

function showSecret(endpoint, secret) {
  setText($("secret-url"), endpoint.url);
  setText($("secret"), secret);
  $("secret-box").hidden = false;
}

// ---- endpoints --------------------------------------------------------------------------

function endpointRow() {
  const li = document.createElement("li");
  li.className = "team-item webhook-endpoint";
  const who = document.createElement("span");
  who.className = "team-who";
  const what = document.createElement("span");
  what.className = "team-what";
  const actions = document.createElement("span");
  actions.className = "webhook-actions";
  li.append(who, what, actions);
  return li;
}

function updateEndpoint(li, e) {
  setText(li.querySelector(".team-who"), e.url);
  const state = e.enabled ? "enabled" : `disabled (${e.disabled_reason || "kept failing"})`;
  setText(li.querySelector(".team-what"), `${e.events.join(", ")} · ${state}`);
  li.dataset.enabled = String(e.enabled);
  const actions = [button("Deliveries", () => showDeliveries(e))];
  if (!e.enabled) actions.push(button("Enable", (b) => act(b, "POST", `/enable`, e)));
  actions.push(button("Rotate secret", (b) => act(b, "POST", `/secret`, e)));
  actions.push(button("Delete", (b) => act(b, "DELETE", "", e)));
  li.querySelector(".webhook-actions").replaceChildren(...actions);
}

async function loadEndpoints() {
  const r = await api("GET", base, auth);
  if (!r.ok) {
    say($("banner"), "error", problemText(r));
    return;
  }
  syncList($("endpoints"), r.data.items, (e) => e.id, (e) => {
    const li = endpointRow();
    updateEndpoint(li, e);
    return li;
  }, updateEndpoint);
  $("endpoints-empty").hidden = r.data.items.length > 0;
}

async function act(b, method, suffix, e) {
  b.disabled = true;
  const r = await api(method, `/api/v1/webhooks/${encodeURIComponent(e.id)}${suffix}`, auth);
  b.disabled = false;
  if (!r.ok) {
    say($("banner"), "error", problemText(r));
    return;
  }
  if (r.data && r.data.secret) showSecret(r.data, r.data.secret);
  if (method === "DELETE" && shown && shown.id === e.id) $("deliveries-panel").hidden = true;
  say($("banner"), "ok", method === "DELETE" ? `Deleted ${e.url}.` : `Done: ${e.url}.`);
  await loadEndpoints();
}

// ---- add ----------------------------------------------------------------------------------

async function loadEventTypes() {
  const r = await api("GET", "/api/v1/webhooks/events", auth);
  if (!r.ok) return;
  const boxes = r.data.items.map((name) => {
    const label = document.createElement("label");
    label.className = "check";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "events";
    input.value = name;
    label.append(input, ` ${name}`);
    return label;
  });
  $("add-events").append(...boxes);
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const events = Array.from(document.querySelectorAll('input[name="events"]:checked'), (i) => i.value);
  if (events.length === 0) {
    say($("add-status"), "error", "Pick at least one event.");
    return;
  }
  $("add-submit").disabled = true;
  const r = await api("POST", base, { ...auth, body: {
    url: $("add-url").value.trim(), description: $("add-description").value.trim(), events } });
  $("add-submit").disabled = false;
  if (!r.ok) {
    say($("add-status"), "error", problemText(r));
    return;
  }
  say($("add-status"), "ok", `Added ${r.data.url}.`);
  showSecret(r.data, r.data.secret);
  $("add-form").reset();
  await loadEndpoints();
});

// ---- deliveries ---------------------------------------------------------------------------

function deliveryRow() {
  const tr = document.createElement("tr");
  for (let i = 0; i < 6; i += 1) tr.append(document.createElement("td"));
  tr.children[3].className = "num";
  tr.children[4].className = "num";
  return tr;
}

function updateDelivery(tr, d) {
  const cells = tr.children;
  setText(cells[0], new Date(d.created_ms).toLocaleString());
  setText(cells[1], `${d.type} ${d.resource}`);
  setText(cells[2], d.last_error ? `${d.status}: ${d.last_error}` : d.status);
  setText(cells[3], String(d.attempts));
  setText(cells[4], d.last_status ? String(d.last_status) : "");
  tr.dataset.status = d.status;
  cells[5].replaceChildren(button("Resend", async (b) => {
    b.disabled = true;
    const r = await api("POST", `/api/v1/webhooks/${encodeURIComponent(d.endpoint)}/deliveries/${encodeURIComponent(d.id)}/resend`, auth);
    b.disabled = false;
    say($("deliveries-status"), r.ok ? "ok" : "error", r.ok ? `Queued again: ${d.type}.` : problemText(r));
    await loadDeliveries();
  }));
}

async function loadDeliveries() {
  if (!shown) return;
  const r = await api("GET", `/api/v1/webhooks/${encodeURIComponent(shown.id)}/deliveries?limit=50`, auth);
  if (!r.ok) {
    say($("deliveries-status"), "error", problemText(r));
    return;
  }
  syncList($("deliveries"), r.data.items, (d) => d.id, (d) => {
    const tr = deliveryRow();
    updateDelivery(tr, d);
    return tr;
  }, updateDelivery);
  if (r.data.items.length === 0) say($("deliveries-status"), "", "Nothing delivered yet.");
}

function showDeliveries(e) {
  shown = e;
  $("deliveries-panel").hidden = false;
  setText($("deliveries-of"), e.url);
  say($("deliveries-status"), "", "");
  loadDeliveries();
}

$("deliveries-refresh").addEventListener("click", loadDeliveries);

if (access.mode === "none") {
  explainNoAccess($("banner"), access, `the webhooks of ${brandId}`);
  $("add-form").hidden = true;
} else {
  await Promise.all([loadEventTypes(), loadEndpoints()]);
}
