// A money feed socket (brand sales, creator earnings): each frame is a full, absolute
// picture, so there is nothing to resume; on a drop it reconnects with jittered backoff
// (docs/protocol.md: 0.5 s doubling to 30 s, times [0.5, 1.5)).

import { backoffMs, RECONNECT } from "./hub_client.js";

export class FeedClient {
  /**
   * `token`: a bearer token for the socket; or `ticket`, an async function that returns a
   * short-lived one (a signed-in page's POST /auth/ticket), asked before each connection.
   */
  constructor(url, { token = null, ticket = null, onMessage = () => {}, onStatus = () => {} } = {}) {
    this.url = url;
    this.token = token;
    this.ticket = ticket;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.attempt = 0;
    this.closed = false;
    this.socket = null;
    this.timer = null;
    this.connect();
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
      this.token = null;
    }).then(() => {
      if (!this.closed) this.open();
    });
  }

  open() {
    const query = this.token ? `?${new URLSearchParams({ access_token: this.token })}` : "";
    const socket = new WebSocket(this.url + query);
    this.socket = socket;
    this.onStatus("connecting");
    socket.onopen = () => {
      this.attempt = 0;
      this.onStatus("live");
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      this.onMessage(message);
    };
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
    this.timer = setTimeout(() => this.connect(), delay);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "bye");
  }
}

// Words for a connection status ("live", "connecting", "offline", "closed 4004").
export function statusText(status) {
  if (status === "live") return "Live updates";
  if (status === "connecting") return "Connecting…";
  if (status === "offline") return "Reconnecting…";
  if (status === "closed 4010") return "Stream ended";
  if (status === "closed 4004") return "No such stream";
  return "Disconnected";
}

export function showStatus(node, status) {
  node.dataset.status = status.startsWith("closed") ? "closed" : status;
  const text = statusText(status);
  if (node.textContent !== text) node.textContent = text;
}
