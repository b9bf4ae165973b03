// The OBS browser source (/obs/{stream}): transparent 1920x1080, the pinned cards with their
// deal countdown and stock badge, and the "just bought" ticker. Nothing to press.

import { view } from "./overlay.js";
import { HubClient, meta } from "./hub_client.js";
import { createCard, syncList, syncTicker, updateCard } from "./cards.js";

let state = null;

// `client=obs`: the source is on air, not in the audience, so the hub does not count it.
const client = new HubClient(`${meta("livecart-ws")}/ws/streams/${encodeURIComponent(meta("livecart-target"))}`, {
  params: { client: "obs" },
  onState: (next) => {
    state = next;
    render();
  },
  onStatus: (status) => {
    document.body.dataset.status = status;
  },
});

function render() {
  if (!state) return;
  const v = view(state, client.now());
  syncList(document.getElementById("cards"), v.cards, (c) => c.id,
    (c) => createCard(c, { variant: "obs" }), updateCard);
  syncTicker(document.getElementById("ticker"), v.ticker, state.products, 3);
}

function tick() {
  render();
  setTimeout(tick, 1000 - (client.now() % 1000) + 5);
}

window.addEventListener("pagehide", () => client.close());

tick();
