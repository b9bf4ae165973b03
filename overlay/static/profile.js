// A creator's page (/c/{creator}): their live show, what is coming up and how many shows
// they have done; the Shop tab lists what they promote, each product through their
// affiliate link (/l/{code}), so a buy from there is credited to them.

import { api } from "./api.js";
import { hueOf, money, setText } from "./cards.js";
import { Following } from "./follow.js";
import { meta } from "./hub_client.js";
import { cover, createShowCard, ServerClock, Shelf, updateShowCard } from "./shows.js";

const $ = (id) => document.getElementById(id);
const creatorId = meta("livecart-target");
const base = `/api/v1/creators/${encodeURIComponent(creatorId)}`;
const serverClock = new ServerClock();

const avatar = $("avatar");
avatar.textContent = creatorId.charAt(0).toUpperCase();
avatar.style.setProperty("--hue", String(hueOf(creatorId)));
document.title = `${creatorId} · livecart`;

// ---- tabs (WAI-ARIA tabs pattern: arrows move between them; #shop opens the shop) -------

const tabs = [$("tab-shows"), $("tab-shop")];

function select(tab, focus = false) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  history.replaceState(null, "", tab === tabs[1] ? "#shop" : location.pathname);
}

for (const [i, tab] of tabs.entries()) {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) select(tabs[(i + step + tabs.length) % tabs.length], true);
  });
}
if (location.hash === "#shop") select(tabs[1]);

// ---- the shop ---------------------------------------------------------------------------

function createProduct(item) {
  const p = item.product;
  const li = document.createElement("li");
  li.className = "product-card";
  const link = document.createElement("a");
  link.className = "product-link";
  link.href = `/l/${encodeURIComponent(item.code)}`; // signs the creator's attribution
  const title = document.createElement("h3");
  title.className = "product-card-title";
  title.textContent = p.title;
  const price = document.createElement("p");
  price.className = "product-card-price";
  price.textContent = money(p.price_minor, p.currency);
  link.append(cover("product-thumb", p.id, p.title, p.image_url), title, price);
  li.append(link);
  return li;
}

// ---- shows ------------------------------------------------------------------------------

const following = await new Following().load();

function showShelf(state, name) {
  return new Shelf(`${base}/shows?state=${state}`, {
    list: $(`${name}-list`), empty: $(`${name}-empty`), more: $(`${name}-more`),
    create: (show) => createShowCard(show, serverClock, { withCreator: false, following }),
    update: (node, show) => updateShowCard(node, show, serverClock),
    serverClock,
  });
}

let followers = 0;
let shows = null;

function showStats() {
  if (!shows) return;
  const { past, upcoming } = shows;
  setText($("stats"), [`${followers} ${followers === 1 ? "follower" : "followers"}`,
    `${past} past ${past === 1 ? "show" : "shows"}`, `${upcoming} coming up`].join(" · "));
}

async function loadStats() {
  const r = await api("GET", base);
  if (!r.ok) return;
  ({ followers, shows } = r.data);
  showStats();
}

// Follow: the count follows the button (the answer's count, else reloaded).
following.onFollowers = (creator, count) => {
  if (creator !== creatorId) return;
  if (count === null) loadStats(); else { followers = count; showStats(); }
};
$("follow").append(following.followButton(creatorId));

const shelves = [showShelf("live", "live"), showShelf("upcoming", "upcoming")];
const shop = new Shelf(`${base}/storefront`, {
  list: $("shop-list"), empty: $("shop-empty"), more: $("shop-more"), create: createProduct,
});

await Promise.all([loadStats(), shop.load(), ...shelves.map((s) => s.load())]);
serverClock.everySecond(() => shelves.forEach((s) => s.refresh()));
