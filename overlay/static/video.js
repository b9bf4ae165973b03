// Live video in the pages: publish the host's camera (WHIP), play the stream (WHEP), and
// SyncGate, which holds each overlay event until the picture shows the moment it happened.
//
// Without a gate the hub's events outrun the picture by the video pipeline's latency
// (encode, jitter buffer, decode: ~100-300 ms), so a pin appeared before the viewer saw the
// host pin. The server stamps every event it puts on the "overlay" data channel with the
// stream's media time (90 kHz); the page learns which media time it is showing from
// requestVideoFrameCallback and hands an event on once the picture has reached its stamp.

export const MAX_HOLD_MS = 2000; // fail-safe: no event waits longer than this for the picture
// The same for an HLS picture, seconds behind the room (three 2 s segments and more).
export const HLS_MAX_HOLD_MS = 30000;
const CLOCK_RATE = 90000;
const GATHER_MS = 5000; // ICE gathering is local; this only guards against a stuck gatherer
const KEPT = 500; // measurements kept on window.__livecartVideo

/** A WHIP/WHEP request that did not give a session: `status` 0 when no answer came back. */
export class SignalError extends Error {
  constructor(status, detail) {
    super(detail || `video request failed (${status || "network"})`);
    this.status = status;
  }
}

/** One WHIP or WHEP session: `stop()` ends it on the server (DELETE), `close()` only here. */
class Session {
  constructor(pc, location, headers, onClose) {
    this.pc = pc;
    this.location = location;
    this.headers = headers;
    this.onClose = onClose;
    this.closed = false;
    this.stopped = false;
  }

  /** `callback` once the connection fails, unless this session was closed first. */
  onFailed(callback) {
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed" && !this.closed) callback();
    });
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
    this.onClose();
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    // DELETE before closing: a closed peer first would look like a lost connection. keepalive:
    // a stop from pagehide still reaches the server.
    await fetch(this.location, { method: "DELETE", headers: this.headers, keepalive: true })
      .catch(() => {});
    this.close();
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState !== "complete") return;
      clearTimeout(timer);
      resolve();
    });
  });
}

// No trickle ICE (the server answers PATCH with 405): the offer goes out with every candidate.
// Whatever fails on the way, the peer connection is closed before the error goes on.
async function exchange(pc, url, headers) {
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    let response;
    try {
      response = await fetch(url, {
        method: "POST", body: pc.localDescription.sdp,
        headers: { "Content-Type": "application/sdp", ...headers },
      });
    } catch (error) {
      throw new SignalError(0);
    }
    if (response.status !== 201) {
      const problem = await response.json().catch(() => ({}));
      throw new SignalError(response.status, problem.detail || problem.title);
    }
    const location = response.headers.get("Location");
    if (!location) throw new SignalError(response.status, "the answer had no Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    return new URL(location, response.url).href;
  } catch (error) {
    pc.close();
    throw error;
  }
}

/**
 * Publish `mediaStream` (the host's camera and microphone) to the WHIP endpoint `url`, as
 * `auth` says: `{token}` (a bearer token) or `{csrf}` (the page's session cookie, whose
 * changes carry its CSRF token).
 */
export async function publishWhip(url, auth, mediaStream) {
  const pc = new RTCPeerConnection();
  for (const track of mediaStream.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [mediaStream] });
  }
  const headers = auth.token ? { Authorization: `Bearer ${auth.token}` } : { "X-CSRF-Token": auth.csrf };
  const location = await exchange(pc, url, headers);
  return new Session(pc, location, headers, () => {});
}

/**
 * Play the WHEP endpoint `url` into `video`. `onMessage` gets each "overlay" data channel
 * message, `onFrame` the metadata of each frame presented (requestVideoFrameCallback).
 */
export async function playWhep(url, video, { onMessage = () => {}, onFrame = () => {} } = {}) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  // Made before the offer, so the offer has the data channel's m-line.
  const channel = pc.createDataChannel("overlay");
  channel.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  const stream = new MediaStream();
  pc.addEventListener("track", (event) => stream.addTrack(event.track));
  const location = await exchange(pc, url, {});
  // Watching starts before playback does, so the first callback is the first frame shown.
  let callback = video.requestVideoFrameCallback(function presented(now, metadata) {
    onFrame(metadata);
    callback = video.requestVideoFrameCallback(presented);
  });
  video.srcObject = stream;
  video.play().catch(() => {}); // muted autoplay; an AbortError only means it was stopped
  return new Session(pc, location, {}, () => {
    video.cancelVideoFrameCallback(callback);
    video.srcObject = null;
  });
}

// Signed distance a - b in 32-bit RTP ticks (RTP timestamps wrap).
const ticksAfter = (a, b) => (a - b) | 0;

/**
 * Holds hub events (they carry `seq`) until the picture reaches them, then hands them to
 * `release` in order. Feed it the hub's messages (`hub`), the data channel's (`channel`),
 * and each presented frame's metadata (`frame`). While no picture is playing (no session,
 * no first frame yet, or the publisher is away) everything passes straight through.
 *
 * An HLS picture has neither data channel nor RTP clock: `attachClock` gives the gate a
 * function that stamps each hub event with the media time at the server when it arrives,
 * and `pictured` the media time of each HLS picture shown (from its PROGRAM-DATE-TIME).
 */
export class SyncGate {
  constructor(release, now = () => performance.now()) {
    this.release = release;
    this.now = now;
    this.queue = []; // {message, seq, arrivedAt, pts, stampedAt}
    this.stamps = new Map(); // seq -> {pts, at} from the data channel, awaiting the hub's copy
    this.channelSeq = 0; // the newest seq the data channel stamped
    this.handedSeq = 0; // the newest seq handed on: a later stamp for it is of no use
    this.timer = null;
    this.stats = { offset: null, firstPts: null, lastDisplayedPts: null, released: [] };
    this.detach();
  }

  /** A new WHEP session starts: its clock and first frame are still to come. */
  attach() {
    this.detach();
    this.attached = true;
    this.stats.clock = "rtp";
  }

  /** An HLS picture starts: `stampNow()` is the media time at the server now (null while
   * the clock's origin is unknown), each event's stamp when the hub delivers it. The hub
   * gets an event to the page a few milliseconds after the video node stamps it, so it
   * shows that much late on HLS, seconds after it reached a WebRTC picture. */
  attachClock(stampNow, maxHoldMs = HLS_MAX_HOLD_MS) {
    this.detach();
    this.attached = true;
    this.stampNow = stampNow;
    this.maxHoldMs = maxHoldMs;
    this.stats.clock = "hls";
  }

  /** The HLS picture on screen is at media time `pts` (90 kHz). */
  pictured(pts) {
    if (!this.attached || this.stampNow === null) return;
    this.stats.lastDisplayedPts = pts;
    this.pump();
  }

  /** The hub socket (re)connects from `seq`, the last event its state applied: what the
   * gate held or handed on past that comes again, in order, so it starts over from there. */
  resume(seq) {
    this.queue = [];
    this.handedSeq = seq;
  }

  /** The picture is gone: nothing is held any more. */
  detach() {
    this.attached = false;
    this.stampNow = null;
    this.maxHoldMs = MAX_HOLD_MS;
    this.stats.clock = null;
    this.ingest = "live";
    this.firstFrame = null;
    this.stats.offset = null;
    this.stats.firstPts = null;
    this.stats.lastDisplayedPts = null;
    this.pump();
  }

  get syncing() {
    return this.attached && this.ingest === "live" && this.stats.lastDisplayedPts !== null;
  }

  hub(message) {
    const now = this.now();
    if (message.type === "snapshot") {
      this.queue = []; // it replaces everything held before it
      this.handedSeq = message.seq;
    }
    if (message.type === "snapshot" || !("seq" in message)) {
      this.release(message); // state frames (stock, counters) need no picture
      return;
    }
    // A resumed hub socket sends again what is held or handed on already.
    if (message.seq <= this.handedSeq || this.queue.some((item) => item.seq === message.seq)) return;
    const hlsPts = this.stampNow === null ? null : this.stampNow();
    const stamp = hlsPts !== null ? { pts: hlsPts, at: now } : this.stamps.get(message.seq);
    this.stamps.delete(message.seq);
    this.queue.push({ message, seq: message.seq, arrivedAt: now, pts: stamp ? stamp.pts : null,
      stampedAt: stamp ? stamp.at : null, shownOnArrival: this.stats.lastDisplayedPts });
    this.pump();
  }

  channel(message) {
    if (message.type === "clock") {
      this.stats.firstPts = message.first_pts;
      this.learnOffset();
    } else if (message.type === "publisher") {
      this.ingest = message.ingest; // away: the picture is frozen, nothing to wait for
      this.pump();
    } else if (message.type === "overlay" && message.seq !== null) {
      this.channelSeq = Math.max(this.channelSeq, message.seq);
      if (message.seq <= this.handedSeq) return;
      const held = this.queue.find((item) => item.seq === message.seq);
      if (held) {
        held.pts = message.pts;
        held.stampedAt = this.now();
      } else {
        this.stamps.set(message.seq, { pts: message.pts, at: this.now() });
        if (this.stamps.size > KEPT) this.stamps.delete(this.stamps.keys().next().value);
      }
      this.pump();
    }
  }

  frame(metadata) {
    if (!this.attached || metadata.rtpTimestamp === undefined) return;
    if (this.firstFrame === null) {
      this.firstFrame = metadata;
      this.learnOffset();
    }
    if (this.stats.offset !== null) {
      this.stats.lastDisplayedPts = (metadata.rtpTimestamp - this.stats.offset) >>> 0;
    }
    this.pump();
  }

  // RTP time = random origin + media time. The clock message names the media time of the
  // first frame sent; if frames were presented before the first callback (there should be
  // none), each is taken as one 30 fps frame (3000 ticks).
  learnOffset() {
    if (this.firstFrame === null || this.stats.firstPts === null) return;
    const skipped = (this.firstFrame.presentedFrames - 1) * (CLOCK_RATE / 30);
    this.stats.offset = (this.firstFrame.rtpTimestamp - this.stats.firstPts - skipped) >>> 0;
  }

  flush() {
    while (this.queue.length) this.hand(this.queue.shift(), "unsynced");
  }

  pump() {
    clearTimeout(this.timer);
    if (!this.syncing) {
      this.flush();
      return;
    }
    const now = this.now();
    const shown = this.stats.lastDisplayedPts;
    while (this.queue.length) {
      const head = this.queue[0];
      // Stamps come in seq order: one newer than the head means the head's was dropped.
      const lost = head.pts === null && this.channelSeq > head.seq;
      const reached = head.pts !== null && ticksAfter(shown, head.pts) >= 0;
      const expired = now - head.arrivedAt >= this.maxHoldMs;
      if (!reached && !lost && !expired) break;
      this.queue.shift();
      this.hand(head, reached ? "picture" : lost ? "unstamped" : "timeout");
    }
    if (this.queue.length) {
      this.timer = setTimeout(() => this.pump(), this.queue[0].arrivedAt + this.maxHoldMs - now);
    }
  }

  hand(item, why) {
    const shown = this.stats.lastDisplayedPts;
    const heldMs = this.now() - item.arrivedAt;
    const skewMs = item.pts !== null && shown !== null
      ? (ticksAfter(shown, item.pts) * 1000) / CLOCK_RATE : null;
    this.stats.released.push({
      seq: item.seq, type: item.message.type, pts: item.pts, displayedPts: shown, why,
      displayedOnArrivalPts: item.shownOnArrival, // where the picture was when the hub had it
      heldMs,
      skewMs, // how far the picture was past the event's moment when it was shown
      leadMs: skewMs === null ? null : heldMs - skewMs, // how early the hub had it
      viaHubFirstMs: item.stampedAt === null ? null : item.stampedAt - item.arrivedAt,
    });
    if (this.stats.released.length > KEPT) this.stats.released.shift();
    this.handedSeq = Math.max(this.handedSeq, item.seq);
    this.release(item.message);
  }
}
