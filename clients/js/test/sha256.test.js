// The pure JavaScript SHA-256 (browsers) and node:crypto give the same digests and buckets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { bucketWith, sha256, sha256Node, sha256Pure } from "../abtest-eval.js";

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const utf8 = (s) => new TextEncoder().encode(s);
const VECTORS = JSON.parse(readFileSync(new URL("../../vectors.json", import.meta.url), "utf8"));

test("node:crypto is the default under Node", () => {
  assert.notEqual(sha256Node, null);
  assert.equal(sha256, sha256Node);
});

test("pure SHA-256: FIPS 180-4 examples", () => {
  assert.equal(hex(sha256Pure(utf8(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(hex(sha256Pure(utf8("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(hex(sha256Pure(utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
});

test("pure SHA-256 = node:crypto at every length up to 300 bytes", () => {
  for (let n = 0; n <= 300; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n * 7) & 0xff);
    assert.equal(hex(sha256Pure(bytes)), hex(sha256Node(bytes)), `length ${n}`);
  }
});

test("pure SHA-256 and node:crypto give the same buckets", () => {
  const pairs = VECTORS.hash.filter((v) => v.kind !== "gb_v2").map((v) => [v.salt, v.id]);
  for (let i = 0; i < 2000; i++) pairs.push([`salt-${i % 7}`, `user-${i}-é😀`]);
  for (const [salt, id] of pairs) {
    assert.equal(bucketWith(sha256Pure, salt, id), bucketWith(sha256Node, salt, id), `${salt} ${id}`);
  }
});
