// Client against a local stand-in of GET /sdk/config: API key, ETag and If-None-Match.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Client } from "../abtest-eval.js";

const KEY = "test-key";
const config = (first) => ({
  version: 1, layers: [], holdouts: [],
  experiments: [{
    id: 1, status: "running", salt: "s", hash: "sha256", seed: "s",
    variants: [{ name: "a", allocation_percent: first }, { name: "b", allocation_percent: 100 - first }],
    coverage_percent: 100, conditions: null, layer: null, start_at: null, stop_at: null, forced: {}, holdout: false,
  }],
});

let server;
let state;
let url;

beforeEach(async () => {
  state = { document: config(100), etag: '"v1"', requests: [] };
  server = createServer((req, res) => {
    state.requests.push(req.headers);
    if (req.url !== "/sdk/config" || req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(req.url === "/sdk/config" ? 401 : 404).end('{"error":"no"}');
    } else if (req.headers["if-none-match"] === state.etag) {
      res.writeHead(304).end();
    } else {
      res.writeHead(200, { "Content-Type": "application/json", ETag: state.etag }).end(JSON.stringify(state.document));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${server.address().port}/`;
});

afterEach(() => new Promise((resolve) => server.close(resolve)));

test("downloads, then revalidates with the ETag", async () => {
  const client = new Client(url, KEY);
  assert.throws(() => client.evaluate(1, "u1"), /refresh/);
  assert.equal(await client.refresh(), true);
  assert.equal(state.requests[0]["if-none-match"], undefined);
  assert.deepEqual(client.evaluate(1, "u1", {}, "2026-12-01T00:00:00Z"), { variant: "a", reason: "assigned" });
  assert.equal(await client.refresh(), false);
  assert.equal(state.requests[1]["if-none-match"], '"v1"');
  assert.equal(client.evaluate(1, "u1").variant, "a");
});

test("takes a changed configuration", async () => {
  const client = new Client(url, KEY);
  await client.refresh();
  Object.assign(state, { document: config(0), etag: '"v2"' });
  assert.equal(await client.refresh(), true);
  assert.equal(client.etag, '"v2"');
  assert.equal(client.evaluate(1, "u1").variant, "b");
});

test("a wrong key is an error", async () => {
  await assert.rejects(new Client(url, "wrong").refresh(), /HTTP 401/);
});

test("an unknown version is refused", async () => {
  state.document = { ...config(50), version: 2 };
  const client = new Client(url, KEY);
  await assert.rejects(client.refresh(), /version 2/);
  assert.equal(client.config, null);
});
