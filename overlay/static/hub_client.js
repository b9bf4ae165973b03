// A hub connection that keeps an overlay state current: snapshot, then deltas; on a gap
// or a drop it reconnects with jittered backoff and resumes from its last seq.

import { reduce, Resync } from "./overlay.js";

// Close codes after which a client reconnects (docs/protocol.md); others are final.
export const RECONNECT = new Set([4008, 4011, 4013, 4029, 1001, 1006, 1011, 1012, 1013]);

/** Jittered exponential backoff: 0.5 s doubling up to `capMs`, times [0.5, 1.5). */
export function backoffMs(attempt, capMs) {
  return Math.min(capMs, 500 * 2 ** attempt) * (0.5 + Math.random());
}

export class HubClient {
  /**
   * `token`: a bearer token for the socket; or `ticket`, an async function that returns a
   * short-lived one (a signed-in page's POST /auth/ticket) or null, asked before each
   * connection, so a reconnect never uses an expired ticket. `params`: more query
   * parameters for every connection, e.g. {client: "obs"} (docs/protocol.md).
   */
  constructor(url, { token = null, ticket = null, params = {}, onState = () => {}, onMessage = () => {}, onStatus = () => {} } = {}) {
    this.url = url;
    this.token = token;
    this.ticket = ticket;
    this.params = params;
    this.onState = onState;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.state = null;
    this.offsetMs = 0; // server clock minus ours, from the snapshot
    this.attempt = 0;
    this.closed = false;
    this.socket = null;
    this.timer = null;
    this.connect();
  }

  now() {
    return Date.now() + this.offsetMs;
  }

  connect() {
    if (!this.ticket) {
      this.open();
      return;
    }
    this.onStatus("connecting");
    this.ticket().then((ticket) => {
      this.token = ticket;
    }, () => {
      this.token = null; // no ticket: watch anonymously
    }).then(() => {
      if (!this.closed) this.open();
    });
  }

  open() {
    const params = new URLSearchParams(this.params);
    if (this.token) params.set("access_token", this.token);
    if (this.state) params.set("since", String(this.state.seq));
    const query = params.toString();
    const socket = new WebSocket(this.url + (query ? `?${query}` : ""));
    this.socket = socket;
    this.onStatus("connecting");
    socket.onopen = () => {
      this.attempt = 0;
      this.onStatus("live");
    };
    socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.onStatus("offline");
      if (this.closed) return;
      if (RECONNECT.has(event.code)) this.retry();
      else this.onStatus(`closed ${event.code}`);
    };
  }

  retry() {
    const delay = backoffMs(this.attempt, 30000);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.closed) this.connect();
    }, delay);
  }

  receive(message) {
    if (message.type === "snapshot") this.offsetMs = message.server_time_ms - Date.now();
    try {
      const next = reduce(this.state, message);
      if (next !== this.state) {
        this.state = next;
        this.onState(this.state);
      }
    } catch (error) {
      if (!(error instanceof Resync)) throw error;
      if (message.type === "lineup.changed") this.state = null; // need the new cards
      const old = this.socket;
      this.socket = null; // its close event is ours, not a drop
      old.close(4000, "resync");
      this.retry();
      return;
    }
    this.onMessage(message);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "bye");
  }
}

// A page's token: taken from the URL fragment once (#token=...), kept for the tab only.
export function pageToken(key) {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromHash = hash.get("token");
  if (fromHash) {
    sessionStorage.setItem(key, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(key);
}

export function meta(name) {
  const tag = document.querySelector(`meta[name="${name}"]`);
  return tag ? tag.content : null;
}
