// The storefront home (/): shows live now with their viewers, upcoming shows counting down
// on the server's clock, and the creators who host them. Each list pages on demand.

import {
  createCreatorItem, createShowCard, ServerClock, Shelf, updateCreatorItem, updateShowCard,
} from "./shows.js";

const $ = (id) => document.getElementById(id);
const serverClock = new ServerClock();

function shelf(url, name, create, update) {
  return new Shelf(url, {
    list: $(`${name}-list`), empty: $(`${name}-empty`), more: $(`${name}-more`),
    create: (item) => create(item, serverClock), update: (node, item) => update(node, item, serverClock),
    serverClock,
  });
}

const shelves = [
  shelf("/api/v1/shows?state=live", "live", createShowCard, updateShowCard),
  shelf("/api/v1/shows?state=upcoming", "upcoming", createShowCard, updateShowCard),
  shelf("/api/v1/creators", "creator", createCreatorItem, updateCreatorItem),
];

await Promise.all(shelves.map((s) => s.load()));
serverClock.everySecond(() => shelves.forEach((s) => s.refresh()));
