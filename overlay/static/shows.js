// Storefront pieces shared by the home page and the creator pages: show cards (cover, LIVE
// badge and viewers, or the countdown to the show), creator entries, pages of an API list,
// and a clock that runs on the server's time, the way the overlay's countdowns do.

import { api, problemText } from "./api.js";
import { clock, compact, hueOf, setText } from "./cards.js";

/** The server's clock, learned from each answer's `server_time_ms`. */
export class ServerClock {
  constructor() {
    this.offsetMs = 0;
  }

  learn(serverTimeMs) {
    if (Number.isFinite(serverTimeMs)) this.offsetMs = serverTimeMs - Date.now();
  }

  now() {
    return Date.now() + this.offsetMs;
  }

  /** Calls `fn` now and on each of the server's seconds. */
  everySecond(fn) {
    const tick = () => {
      fn();
      setTimeout(tick, 1000 - (this.now() % 1000) + 5);
    };
    tick();
  }
}

// 90 s -> "1:30"; 3 h 5 min -> "3h 05m"; 2 days 4 h -> "2d 4h".
export function untilText(ms) {
  const s = Math.ceil(ms / 1000);
  if (s < 3600) return clock(s);
  const h = Math.floor(s / 3600);
  if (h < 24) return `${h}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function startsText(scheduledMs, nowMs) {
  const left = scheduledMs - nowMs;
  return left > 0 ? `Starts in ${untilText(left)}` : "Starting soon";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function when(ms) {
  const time = el("time", "show-when", new Date(ms).toLocaleString([], {
    weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  }));
  time.dateTime = new Date(ms).toISOString();
  return time;
}

/** A square of colour with an initial, and the picture over it once it loads. */
export function cover(className, id, title, imageUrl) {
  const box = el("div", className);
  box.style.setProperty("--hue", String(hueOf(id)));
  const initial = el("span", "cover-initial", (title || "?").trim().charAt(0).toUpperCase());
  initial.setAttribute("aria-hidden", "true");
  box.append(initial);
  if (imageUrl) {
    const img = el("img", "cover-img");
    img.alt = "";
    img.decoding = "async";
    img.loading = "lazy"; // shown once loaded (CSS): a broken picture leaves the initial
    img.addEventListener("load", () => { img.dataset.loaded = "true"; });
    img.src = imageUrl;
    box.append(img);
  }
  return box;
}

/** A show in a list: links to its viewer page; `clock` runs its countdown; `following`
 * (follow.js) adds "Remind me" to an upcoming show. */
export function createShowCard(show, serverClock, { withCreator = true, following = null } = {}) {
  const li = el("li", "show-card");
  li.dataset.state = show.state;
  const link = el("a", "show-link");
  link.href = `/s/${encodeURIComponent(show.id)}`;
  const art = cover("show-cover", show.id, show.title, show.cover_url);
  if (show.state === "live") {
    art.append(el("span", "live-badge", "Live"));
    const viewers = el("span", "show-viewers");
    viewers.append(el("span", "show-viewers-count"), el("span", "visually-hidden", " watching"));
    art.append(viewers);
  } else {
    const countdown = el("span", "show-countdown");
    countdown.setAttribute("role", "timer"); // aria-live off: not read out every second
    art.append(countdown);
  }
  link.append(art, el("h3", "show-title", show.title));
  li.append(link);
  if (withCreator) {
    const by = el("p", "show-creator", "with ");
    const creator = el("a", "", show.creator_id);
    creator.href = `/c/${encodeURIComponent(show.creator_id)}`;
    by.append(creator);
    li.append(by);
  }
  if (show.state !== "live") li.append(when(show.scheduled_ms));
  if (following && show.state === "scheduled") li.append(following.remindButton(show));
  updateShowCard(li, show, serverClock);
  return li;
}

export function updateShowCard(li, show, serverClock) {
  const viewers = li.querySelector(".show-viewers-count");
  if (viewers) setText(viewers, compact(show.viewers));
  const countdown = li.querySelector(".show-countdown");
  if (countdown) setText(countdown, startsText(show.scheduled_ms, serverClock.now()));
}

/** A creator with shows: links to their page, says whether they are live or when next;
 * `following` (follow.js) adds their Follow button. */
export function createCreatorItem(creator, serverClock, following = null) {
  const li = el("li", "creator-item");
  const link = el("a", "creator-link");
  link.href = `/c/${encodeURIComponent(creator.id)}`;
  const avatar = el("span", "avatar", creator.id.charAt(0).toUpperCase());
  avatar.style.setProperty("--hue", String(hueOf(creator.id)));
  avatar.setAttribute("aria-hidden", "true");
  link.append(avatar, el("span", "creator-name", creator.id), el("span", "creator-status"));
  li.append(link);
  if (following) li.append(following.followButton(creator.id));
  updateCreatorItem(li, creator, serverClock);
  return li;
}

export function updateCreatorItem(li, creator, serverClock) {
  const status = li.querySelector(".creator-status");
  li.dataset.live = String(Boolean(creator.live_stream_id));
  setText(status, creator.live_stream_id ? "Live now"
    : creator.next_show_ms ? startsText(creator.next_show_ms, serverClock.now()).replace("Starts", "Next show")
      : "");
}

/**
 * One paged API list in the page: items rendered by `create`, refreshed each second by
 * `update`, "more" pages on demand (the API's `next_cursor`), an empty note, errors said.
 */
export class Shelf {
  constructor(url, { list, empty, more, create, update, serverClock }) {
    Object.assign(this, { url, list, empty, more, create, update, serverClock });
    this.items = [];
    this.cursor = 0;
    if (more) more.addEventListener("click", () => this.load());
  }

  async load() {
    const url = new URL(this.url, location.origin);
    url.searchParams.set("cursor", String(this.cursor));
    if (this.more) this.more.disabled = true;
    const r = await api("GET", url.pathname + url.search);
    if (this.more) this.more.disabled = false;
    if (!r.ok) {
      this.empty.hidden = false;
      this.empty.dataset.kind = "error";
      setText(this.empty, `Couldn't load this list: ${problemText(r)}`);
      return;
    }
    if (this.serverClock) this.serverClock.learn(r.data.server_time_ms);
    for (const item of r.data.items) {
      this.items.push(item);
      this.list.append(this.create(item));
    }
    this.cursor = r.data.next_cursor;
    if (this.more) this.more.hidden = this.cursor === null;
    this.empty.hidden = this.items.length > 0;
  }

  refresh() {
    if (!this.update) return;
    this.items.forEach((item, i) => this.update(this.list.children[i], item));
  }
}
