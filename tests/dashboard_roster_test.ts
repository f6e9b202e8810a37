/**
 * The dashboard's device list (examples/dashboard/roster.ts) following a real
 * manager with simulated devices: grouping, search, filters, paging, devices
 * away, and the changes collected for the next batch.
 */
import assert from "node:assert/strict";
import { startFleet } from "../examples/dashboard/fleet.ts";
import { parseQuery, queryParams, Roster } from "../examples/dashboard/roster.ts";
import { startManager, waitFor } from "./_helpers.ts";

const TYPES = ["light", "lock"];
const query = (search: string) => parseQuery(new URLSearchParams(search), TYPES);
const names = (search: string, roster: Roster) =>
  roster.query(query(search)).rows.map((view) => view.name);

Deno.test("roster: grouped by type, searched, filtered and paged", async () => {
  await using manager = await startManager();
  await using roster = new Roster(manager);
  await using fleet = await startFleet({ port: manager.port, count: 12 });
  await waitFor(() => roster.counts().light.connected === 8, "8 lights listed");
  await waitFor(() => roster.counts().lock.connected === 4, "4 locks listed");

  // Lights before locks, each in name order (light 10 after light 8).
  assert.deepEqual(names("", roster), [
    "light 1",
    "light 2",
    "light 4",
    "light 5",
    "light 7",
    "light 8",
    "light 10",
    "light 11",
    "lock 3",
    "lock 6",
    "lock 9",
    "lock 12",
  ]);
  assert.deepEqual(names("q=LOCK 1", roster), ["lock 12"], "a phrase, in any case");
  const uuid = fleet.devices[4].uuid;
  assert.deepEqual(names(`q=${uuid.slice(0, 8)}`, roster), ["light 5"]);
  assert.deepEqual(names("type=lock", roster), ["lock 3", "lock 6", "lock 9", "lock 12"]);

  const page = roster.query(query("per=5&page=3"));
  assert.deepEqual([page.page, page.pages, page.matching], [3, 3, 12]);
  assert.deepEqual(page.rows.map((view) => view.name), ["lock 9", "lock 12"]);
  assert.deepEqual(page.matchingByType, { light: 8, lock: 4 });
  assert.equal(roster.query(query("per=5&page=99")).page, 3, "a page past the end shows the last");

  // State: a light switched on by a command; a wish it cannot follow stays pending.
  roster.takeChanges();
  await manager.send(fleet.devices[0].uuid, "on");
  await waitFor(() => names("state=on", roster).length === 1, "one light on");
  assert.deepEqual(names("state=on", roster), ["light 1"]);
  assert.ok(roster.takeChanges().changed.includes(fleet.devices[0].uuid));
  await manager.state.setDesired(fleet.devices[1].uuid, { color: "red" });
  await waitFor(() => names("state=pending", roster).length === 1, "one device pending");
  assert.deepEqual(names("state=pending", roster), ["light 2"]);

  // A device that leaves stays listed, as away, with why it left.
  await fleet.devices[2].close();
  await waitFor(() => names("presence=away", roster).length === 1, "one device away");
  const away = roster.get(fleet.devices[2].uuid)!;
  assert.equal(away.connected, false);
  assert.ok(away.lastEnd?.reason, "the reason it left");
  assert.equal(roster.counts().lock.away, 1);
  assert.equal(roster.takeChanges().membership, true);
  assert.equal(names("presence=connected", roster).length, 11);
});

Deno.test("roster: a query read from a URL falls back to everything on unknown values", () => {
  const parsed = query("q=%20lamp%20&type=toaster&state=melted&presence=gone&page=-2&per=9999");
  assert.deepEqual(parsed, {
    search: "lamp",
    type: "",
    state: "",
    presence: "",
    page: 1,
    perPage: 200,
  });
  assert.equal(queryParams(parsed).toString(), "q=lamp&per=200");
  assert.equal(queryParams(query("type=lock&page=2")).toString(), "type=lock&page=2");
});
