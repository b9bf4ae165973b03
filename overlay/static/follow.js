// Follow and "Remind me" buttons for the storefront (issue 10, "Discovery"): the page's
// session, the creators it follows and the shows it RSVP'd, loaded once per page; each
// button flips its state with one call (PUT to follow, DELETE to stop). Signed out, each
// one is a link to the sign-in page that comes back here.

import { api, pageSession, problemText, signinHref } from "./api.js";

export class Following {
  constructor() {
    this.session = null;
    this.creators = new Set();
    this.shows = new Set();
    this.followers = new Map(); // creator -> count, once a button changed it
    this.onFollowers = () => {};
  }

  /** The session and its follows and reminders (nothing to load when signed out). */
  async load() {
    this.session = await pageSession();
    if (!this.session) return this;
    const [follows, reminders] = await Promise.all([
      api("GET", "/api/v1/me/follows"), api("GET", "/api/v1/me/reminders")]);
    if (follows.ok) follows.data.items.forEach((f) => this.creators.add(f.creator_id));
    if (reminders.ok) reminders.data.items.forEach((r) => this.shows.add(r.stream_id));
    return this;
  }

  get signedIn() {
    return Boolean(this.session);
  }

  /** "Follow <creator>": a toggle button, or a sign-in link when signed out. */
  followButton(creatorId) {
    return this.toggle({
      on: () => this.creators.has(creatorId),
      label: `Follow ${creatorId}`, offText: "Follow", onText: "Following",
      path: `/api/v1/me/follows/${encodeURIComponent(creatorId)}`,
      flip: (on, data) => {
        if (on) this.creators.add(creatorId); else this.creators.delete(creatorId);
        if (data && Number.isFinite(data.followers)) this.onFollowers(creatorId, data.followers);
        else this.onFollowers(creatorId, null);
      },
    });
  }

  /** "Remind me" of an upcoming show. */
  remindButton(show) {
    return this.toggle({
      on: () => this.shows.has(show.id),
      label: `Remind me of ${show.title}`, offText: "Remind me", onText: "Reminder set",
      path: `/api/v1/me/reminders/${encodeURIComponent(show.id)}`,
      flip: (on) => { if (on) this.shows.add(show.id); else this.shows.delete(show.id); },
    });
  }

  toggle({ on, label, offText, onText, path, flip }) {
    if (!this.signedIn) {
      const link = document.createElement("a");
      link.className = "btn btn-secondary follow-btn";
      link.href = signinHref();
      link.textContent = offText;
      link.setAttribute("aria-label", `${label} (sign in)`);
      return link;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary follow-btn";
    button.setAttribute("aria-label", label);
    const show = () => {
      button.setAttribute("aria-pressed", String(on()));
      button.textContent = on() ? onText : offText;
    };
    button.addEventListener("click", async () => {
      const want = !on();
      button.disabled = true;
      const r = await api(want ? "PUT" : "DELETE", path, { csrf: this.session.csrf });
      button.disabled = false;
      if (r.ok) {
        flip(want, r.data);
        show();
        button.removeAttribute("title");
      } else {
        button.title = problemText(r);
        button.textContent = problemText(r);
      }
    });
    show();
    return button;
  }
}
