// The OBS browser source (/obs/{stream}): transparent 1920x1080, the pinned cards with their
// deal countdown and stock badge, and the "just bought" ticker. Nothing to press. With
// `?chat=1` in its URL, the chat too: the last few messages, with every deletion, ban and
// clearing applied (a message taken down on the viewer page is gone from the stream too).
// A live auction shows as its card: price, the leading paddle, the clock, then the result.

import { auctionView, view } from "./overlay.js";
import { createAuctionCard, updateAuctionCard } from "./auction.js";
import { HubClient, meta } from "./hub_client.js";
import { createCard, setText, syncList, syncTicker, updateCard } from "./cards.js";
import { ChatList, chatInitial, chatReduce } from "./chat.js";

const CHAT_SHOWN = 6;
const withChat = new URLSearchParams(location.search).get("chat") === "1";
let state = null;
let chat = chatInitial();
const auctionCard = createAuctionCard({ idPrefix: "obs-auction" });
document.getElementById("obs-auction").append(auctionCard);
const chatList = new ChatList(document.getElementById("obs-chat-list"), { shown: CHAT_SHOWN });
document.getElementById("obs-chat").hidden = !withChat;

function onMessage(message) {
  if (!withChat) return;
  const before = chat;
  chat = chatReduce(chat, message, CHAT_SHOWN);
  if (chat === before) return;
  chatList.render(chat);
  const announcement = document.getElementById("obs-announcement");
  announcement.hidden = !chat.announcement;
  setText(announcement, chat.announcement || "");
}

// `client=obs`: the source is on air, not in the audience, so the hub does not count it.
const client = new HubClient(`${meta("livecart-ws")}/ws/streams/${encodeURIComponent(meta("livecart-target"))}`, {
  params: { client: "obs" },
  onState: (next) => {
    state = next;
    render();
  },
  onMessage,
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
  updateAuctionCard(auctionCard, auctionView(state, client.now()));
}

function tick() {
  render();
  setTimeout(tick, 1000 - (client.now() % 1000) + 5);
}

window.addEventListener("pagehide", () => client.close());

tick();
