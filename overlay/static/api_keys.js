// The brand's API keys panel (on the brand dashboard): the keys with their scopes and last
// use, a form to make one (its secret shown once, with a copy button), Revoke. The server
// decides who may (the brand's team admins, its token, operators; docs/accounts.md).

import { api, problemText } from "./api.js";
import { setText, syncList } from "./cards.js";

const part = (root, name) => root.querySelector(`[data-part="${name}"]`);
const SCOPES = [
  ["catalog:read", "Read the catalog"], ["catalog:write", "Change the catalog and stock"],
  ["orders:read", "Read orders"], ["orders:write", "Ship, cancel and refund orders"],
  ["reports:read", "Read reports"],
];

function when(ms) {
  return ms ? new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "never";
}

/** `root`: the panel (parts marked data-part); `brand`: its id; `auth`: api()'s options. */
export function mountApiKeys(root, { brand, auth }) {
  const base = `/api/v1/brands/${encodeURIComponent(brand)}/keys`;
  const status = part(root, "status");
  const form = part(root, "form");
  const scopes = part(root, "scopes");
  for (const [scope, words] of SCOPES) {
    const label = document.createElement("label");
    label.className = "check";
    const box = Object.assign(document.createElement("input"), { type: "checkbox", value: scope });
    label.append(box, ` ${words} (${scope})`);
    scopes.append(label);
  }

  function say(kind, text) {
    status.dataset.kind = kind;
    setText(status, text);
  }

  function row() {
    const li = document.createElement("li");
    li.className = "team-item";
    const who = Object.assign(document.createElement("span"), { className: "team-who" });
    const what = Object.assign(document.createElement("span"), { className: "team-what" });
    const button = Object.assign(document.createElement("button"), {
      type: "button", className: "btn btn-small btn-secondary" });
    li.append(who, what, button);
    return li;
  }

  function update(li, key) {
    setText(li.querySelector(".team-who"), `${key.name} (${key.prefix}…)`);
    setText(li.querySelector(".team-what"), `${key.scopes.join(", ")} · last used ${when(key.last_used_ms)}`);
    const button = li.querySelector("button");
    setText(button, "Revoke");
    button.setAttribute("aria-label", `Revoke ${key.name}`);
    button.onclick = async () => {
      button.disabled = true;
      const r = await api("DELETE", `${base}/${encodeURIComponent(key.id)}`, auth);
      button.disabled = false;
      if (!r.ok) return say("error", problemText(r));
      say("ok", `${key.name} revoked: it no longer works.`);
      return load();
    };
  }

  async function load() {
    const r = await api("GET", base, auth);
    if (!r.ok || !r.data.can_manage) {  // not an admin of this brand: no panel
      root.hidden = true;
      if (!r.ok && r.status !== 403 && r.status !== 404) say("error", problemText(r));
      return;
    }
    root.hidden = false;
    if (!r.ok) return say("error", `Couldn't load the API keys: ${problemText(r)}`);
    syncList(part(root, "keys"), r.data.items, (k) => k.id, (k) => {
      const li = row();
      update(li, k);
      return li;
    }, update);
    part(root, "keys-empty").hidden = r.data.items.length > 0;
    return undefined;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = [...scopes.querySelectorAll("input:checked")].map((box) => box.value);
    const body = { name: part(root, "name").value.trim(), scopes: chosen };
    const r = await api("POST", base, { ...auth, body });
    if (!r.ok) return say("error", problemText(r));
    part(root, "secret").value = r.data.key;
    part(root, "reveal").hidden = false;
    form.reset();
    say("ok", `${r.data.name} made. Copy its key now: it is shown only this once.`);
    return load();
  });
  part(root, "copy").addEventListener("click", async () => {
    await navigator.clipboard.writeText(part(root, "secret").value).catch(() => null);
    say("ok", "Copied.");
  });
  part(root, "done").addEventListener("click", () => {
    part(root, "secret").value = "";
    part(root, "reveal").hidden = true;
  });
  load();
}
