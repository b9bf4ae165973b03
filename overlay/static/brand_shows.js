// The brand dashboard's Shows panel: the shows that featured the brand's products, latest
// first, and for the one picked, each of the brand's products in it with its funnel (views,
// clicks, click-through, cart adds, orders, units, GMV, conversion; docs/api.md). Views and
// clicks are not in the sales feed, so a live show's table is asked again every few seconds.

import { api, problemText } from "./api.js";
import { money, setText, syncList } from "./cards.js";

// How often the picked show's table is read again: live, and coming up (it may go live).
const POLL_MS = { live: 3000, scheduled: 15000 };
const STATE_WORDS = { live: "Live", scheduled: "Coming up", ended: "Ended", cancelled: "Cancelled" };
const COLUMNS = 9;

const part = (root, name) => root.querySelector(`[data-part="${name}"]`);

function pct(x) {
  return `${(x * 100).toFixed(1)}%`;
}

function showLabel(show) {
  const at = show.started_ms || show.scheduled_ms;
  const when = at ? new Date(at).toLocaleString([], {
    month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }) : "";
  return [show.title, STATE_WORDS[show.state] || show.state, when].filter(Boolean).join(" · ");
}

function cells(row) {
  return [
    [row.title, row.product_id], row.views.toLocaleString(), row.clicks.toLocaleString(),
    pct(row.click_through), row.cart_adds.toLocaleString(), row.orders.toLocaleString(),
    row.units.toLocaleString(), money(row.gmv_minor, row.currency), pct(row.conversion),
  ];
}

function fill(tr, values) {
  values.forEach((value, i) => {
    const td = tr.children[i];
    if (typeof value === "string") {
      setText(td, value);
      return;
    }
    // [title, id]: a name with its id underneath
    if (!td.querySelector(".row-title")) {
      const title = document.createElement("span");
      title.className = "row-title";
      const id = document.createElement("span");
      id.className = "row-id";
      td.replaceChildren(title, id);
    }
    setText(td.querySelector(".row-title"), value[0]);
    setText(td.querySelector(".row-id"), value[1]);
  });
}

function newRow(row) {
  const tr = document.createElement("tr");
  for (let i = 0; i < COLUMNS; i += 1) {
    const td = document.createElement("td");
    if (i > 0) td.className = "num";
    tr.append(td);
  }
  fill(tr, cells(row));
  return tr;
}

/** `root`: the panel (parts marked with data-part); `brand`: its id; `auth`: api()'s options. */
export function mountShows(root, { brand, auth }) {
  const pick = part(root, "pick");
  const rows = part(root, "rows");
  const note = part(root, "note");
  const base = `/api/v1/brands/${encodeURIComponent(brand)}/shows`;
  let timer = null;
  let asked = 0; // an answer for an older pick is dropped
  let state = null; // the picked show's, as last read

  function empty(text) {
    const tr = document.createElement("tr");
    tr.className = "empty-row";
    const td = document.createElement("td");
    td.colSpan = COLUMNS;
    td.textContent = text;
    tr.append(td);
    rows.replaceChildren(tr);
  }

  function render(data) {
    const option = pick.querySelector(`option[value="${CSS.escape(data.show.id)}"]`);
    if (option) setText(option, showLabel(data.show));
    setText(note, data.show.state === "live" ? "Live: updated every few seconds" : "");
    if (!data.items.length) {
      empty("None of your products is in this show now.");
      return;
    }
    const stale = rows.querySelector(".empty-row");
    if (stale) stale.remove();
    syncList(rows, data.items, (r) => r.product_id, newRow, (tr, r) => fill(tr, cells(r)));
  }

  async function load() {
    clearTimeout(timer);
    const mine = ++asked;
    if (!document.hidden || state === null) { // a hidden page reads again once it is due
      const r = await api("GET", `${base}/${encodeURIComponent(pick.value)}/products`, auth);
      if (mine !== asked) return;
      if (!r.ok) {
        setText(note, problemText(r));
        return;
      }
      state = r.data.show.state;
      render(r.data);
    }
    if (POLL_MS[state]) timer = setTimeout(load, POLL_MS[state]);
  }

  async function loadShows() {
    const r = await api("GET", `${base}?limit=50`, auth);
    if (!r.ok) {
      setText(note, problemText(r));
      return;
    }
    const shows = r.data.items;
    syncList(pick, shows, (s) => s.id, (s) => {
      const option = document.createElement("option");
      option.value = s.id;
      option.textContent = showLabel(s);
      return option;
    }, (option, s) => setText(option, showLabel(s)));
    pick.disabled = shows.length === 0;
    if (shows.length) load();
    else empty("No show has featured your products yet.");
  }

  pick.addEventListener("change", () => {
    state = null;
    empty("Loading…");
    load();
  });
  loadShows();
}
