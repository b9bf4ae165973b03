// The storefront home (/): shows live now with their viewers, upcoming shows counting down
// on the server's clock, and the creators who host them. Each list pages on demand. Signed
// in, "For you" comes first: the live shows of the creators followed and the shows RSVP'd.

import { Following } from "./follow.js";
import {
  createCreatorItem, createShowCard, ServerClock, Shelf, updateCreatorItem, updateShowCard,
} from "./shows.js";

const $ = (id) => document.getElementById(id);
const serverClock = new ServerClock();
const following = await new Following().load();

function shelf(url, name, create, update) {
  return new Shelf(url, {
    list: $(`${name}-list`), empty: $(`${name}-empty`), more: $(`${name}-more`),
    create: (item) => create(item, serverClock), update: (node, item) => update(node, item, serverClock),
    serverClock,
  });
}

const card = (show, clock) => createShowCard(show, clock, { following });
const shelves = [
  shelf("/api/v1/shows?state=live", "live", card, updateShowCard),
  shelf("/api/v1/shows?state=upcoming", "upcoming", card, updateShowCard),
  shelf("/api/v1/creators", "creator",
    (creator, clock) => createCreatorItem(creator, clock, following), updateCreatorItem),
];
if (following.signedIn) {
  $("for-you").hidden = false;
  shelves.unshift(shelf("/api/v1/me/for-you", "for-you", card, updateShowCard));
}

await Promise.all(shelves.map((s) => s.load()));
serverClock.everySecond(() => shelves.forEach((s) => s.refresh()));
