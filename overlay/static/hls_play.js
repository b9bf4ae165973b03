// The viewer page's HLS picture, for when WebRTC cannot serve it (the node is full, or the
// connection failed): hls.js, vendored and served by the node (static/vendor, loaded only
// when needed), or the browser's own HLS where it has it with dates (Safari). Either way it
// reports the wall-clock date of each picture shown (EXT-X-PROGRAM-DATE-TIME) and the media
// clock's origin the playlist names (the `com.livecart.media-clock` DATERANGE,
// docs/recording.md), so SyncGate can hold overlay events to the HLS picture's media time.

export const MEDIA_CLOCK_CLASS = "com.livecart.media-clock";
const M3U8 = "application/vnd.apple.mpegurl";
const HLS_JS = "/static/vendor/hls.light.min.js";
const CLOCK_LINE = /#EXT-X-DATERANGE:[^\n]*CLASS="com\.livecart\.media-clock"[^\n]*START-DATE="([^"]+)"/g;

let loading = null;

// hls.js is a classic script (UMD) that sets window.Hls; 390 KB, so only HLS viewers load it.
function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = HLS_JS;
      script.addEventListener("load", () => resolve(window.Hls));
      script.addEventListener("error", () => {
        loading = null;
        reject(new Error("hls.js did not load"));
      });
      document.head.append(script);
    });
  }
  return loading;
}

// The browser plays HLS itself and can say which date is on screen (Safari: getStartDate).
function nativeWithDates(video) {
  return video.canPlayType(M3U8) !== "" && typeof video.getStartDate === "function";
}

// The latest media-clock origin at or before `dateMs` (a recording's runs each have one).
function originAt(origins, dateMs) {
  let best = null;
  for (const origin of origins) {
    if (origin <= dateMs && (best === null || origin > best)) best = origin;
  }
  return best;
}

// Where the date `dateMs` is in the media (seconds), from the segments' own dates (hls.js
// fragments: programDateTime, start, duration): inside a segment exactly; in a gap between
// two runs, the next run's start; past the end, the end.
export function timeOfDate(fragments, dateMs) {
  let end = 0;
  for (const f of fragments) {
    if (f.programDateTime === null || f.programDateTime === undefined) continue;
    if (dateMs < f.programDateTime) return f.start;
    if (dateMs < f.programDateTime + f.duration * 1000) {
      return f.start + (dateMs - f.programDateTime) / 1000;
    }
    end = f.start + f.duration;
  }
  return end;
}

/**
 * Play the HLS playlist `url` into `video`. `onPicture(dateMs, originMs)` for each picture
 * shown whose date and clock origin are known; `onFatal(why)` once the player gave up (the
 * caller closes it and tries again later). Resolves to {engine, close(), stop(),
 * seekToDate(ms), span()}: a recording (VOD) is seekable by date, and `span()` is its first
 * and last date ({first, last} ms, or null before its playlist loaded).
 */
export async function playHls(url, video, { onPicture = () => {}, onFatal = () => {} } = {}) {
  const origins = new Set();
  let hls = null;
  let closed = false;
  let engine;
  let dateOf;
  if (nativeWithDates(video)) {
    engine = "native";
    // Safari does not expose DATERANGE here: read the origins from the playlist itself.
    const text = await (await fetch(url)).text();
    for (const m of text.matchAll(CLOCK_LINE)) origins.add(Date.parse(m[1]));
    video.src = url;
    video.addEventListener("error", () => { if (!closed) onFatal("media error"); }, { once: true });
    dateOf = (mediaTime) => {
      const start = video.getStartDate().getTime();
      return Number.isFinite(start) ? start + mediaTime * 1000 : null;
    };
  } else {
    const Hls = await loadHlsJs();
    if (!Hls || !Hls.isSupported()) throw new Error("this browser plays neither HLS nor Media Source");
    engine = "hls.js";
    // No worker: the page's CSP admits no blob: scripts; no metadata cues: their text track
    // is a data: URL, which media-src does not admit either (the date ranges are read from
    // the playlist's details instead). Low-latency HLS: a live playlist with parts is
    // reloaded with blocking requests and played PART-HOLD-BACK (three parts, ~1.5 s)
    // behind its live edge, part by part; no liveSync* option is set, as one would override
    // PART-HOLD-BACK. A playlist without parts plays three segments behind (hls.js's
    // default liveSyncDurationCount).
    hls = new Hls({
      enableWorker: false, enableDateRangeMetadataCues: false, enableEmsgMetadataCues: false,
      enableID3MetadataCues: false, lowLatencyMode: true, backBufferLength: 30,
    });
    hls.on(Hls.Events.LEVEL_LOADED, (event, data) => {
      for (const range of Object.values(data.details.dateRanges || {})) {
        if (range.class === MEDIA_CLOCK_CLASS && range.startDate) origins.add(range.startDate.getTime());
      }
    });
    hls.on(Hls.Events.ERROR, (event, data) => {
      if (data.fatal && !closed) onFatal(data.details || data.type);
    });
    hls.attachMedia(video);
    hls.loadSource(url);
    // hls.playingDate: the fragment's PROGRAM-DATE-TIME plus how far into it currentTime is.
    dateOf = () => (hls.playingDate ? hls.playingDate.getTime() : null);
  }
  let callback = video.requestVideoFrameCallback(function presented(now, metadata) {
    const dateMs = dateOf(metadata.mediaTime);
    const originMs = dateMs === null ? null : originAt(origins, dateMs);
    if (originMs !== null) onPicture(dateMs, originMs);
    callback = video.requestVideoFrameCallback(presented);
  });
  video.play().catch(() => {}); // muted autoplay; an AbortError only means it was stopped
  const close = () => {
    if (closed) return;
    closed = true;
    video.cancelVideoFrameCallback(callback);
    if (hls) hls.destroy();
    video.removeAttribute("src");
    video.load();
  };
  const fragments = () => {
    if (!hls) return [];
    const level = hls.levels[Math.max(0, hls.currentLevel)];
    return (level && level.details && level.details.fragments) || [];
  };
  const span = () => {
    if (!hls) {
      const start = video.getStartDate ? video.getStartDate().getTime() : NaN;
      return Number.isFinite(start) && Number.isFinite(video.duration)
        ? { first: start, last: start + video.duration * 1000 } : null;
    }
    const dated = fragments().filter((f) => Number.isFinite(f.programDateTime));
    if (!dated.length) return null;
    const last = dated[dated.length - 1];
    return { first: dated[0].programDateTime, last: last.programDateTime + last.duration * 1000 };
  };
  const seekToDate = (dateMs) => {
    if (hls) video.currentTime = timeOfDate(fragments(), dateMs);
    else if (span()) video.currentTime = Math.max(0, (dateMs - span().first) / 1000);
  };
  return { engine, close, stop: close, seekToDate, span };
}
