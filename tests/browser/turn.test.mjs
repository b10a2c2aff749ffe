// TURN for strict networks: a coturn relay on loopback (Debian's package, shared-secret
// credentials), classroomd configured with its URLs and secret, and Chromium pages forced to
// relay-only ICE (`iceTransportPolicy: "relay"`, as a network that blocks UDP and direct TCP
// leaves nothing else). The pages reach the lesson only with the credentials the join
// response hands out: the teacher goes live and the student decodes them, over a TURN
// allocation on UDP and, in the second test, over TLS.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { school, startServer } from "./lib/server.mjs";
import { eventually, inbound, launch, pageAs } from "./lib/browser.mjs";

const SECRET = "loopback-turn-test-secret";

let server;
let people;
let browser;
let turn;
let certDir;

/** A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both). */
async function freePort() {
  for (;;) {
    const tcp = createServer();
    const port = await new Promise((ok) => tcp.listen(0, "127.0.0.1", () => ok(tcp.address().port)));
    const udp = createSocket("udp4");
    const free = await new Promise((ok) => {
      udp.once("error", () => ok(false));
      udp.bind(port, "127.0.0.1", () => ok(true));
    });
    udp.close();
    await new Promise((ok) => tcp.close(ok));
    if (free) return port;
  }
}

/** coturn on loopback: plain TURN on `port` (UDP and TCP), TLS on `tlsPort`. */
function startCoturn(port, tlsPort) {
  const args = [
    "-n", "--no-cli", "--no-stdout-log", "--log-file=stdout", "--simple-log",
    "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", `--listening-port=${port}`,
    `--tls-listening-port=${tlsPort}`, "--no-dtls", `--cert=${join(certDir, "cert.pem")}`,
    `--pkey=${join(certDir, "key.pem")}`, "--use-auth-secret", `--static-auth-secret=${SECRET}`,
    "--realm=classroom.test", "--allow-loopback-peers", "--fingerprint",
    "--min-port=40000", "--max-port=40999", `--pidfile=${join(certDir, "turnserver.pid")}`,
  ];
  const child = spawn("turnserver", args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  return { child, log: () => log };
}

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), "classroom-turn-"));
  const cert = spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem"), "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  assert.equal(cert.status, 0, String(cert.stderr));
  const port = await freePort();
  const tlsPort = await freePort();
  turn = startCoturn(port, tlsPort);
  await eventually("coturn listening", () => turn.log().includes("Total General servers") || turn.child.exitCode !== null);
  assert.equal(turn.child.exitCode, null, `coturn exited: ${turn.log()}`);
  const urls = [`turn:127.0.0.1:${port}?transport=udp`, `turns:127.0.0.1:${tlsPort}?transport=tcp`];
  server = await startServer({
    env: { CLASSROOM_TURN__URLS: JSON.stringify(urls), CLASSROOM_TURN__SECRET: SECRET },
  });
  people = await school(server);
  // The relay's certificate is self-signed for 127.0.0.1; a school's would come from a CA.
  browser = await launch({ args: ["--ignore-certificate-errors"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  turn?.child.kill("SIGKILL");
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

/**
 * A page whose peer connections may use only relay candidates, and only the relay URLs that
 * `keep` accepts out of those the web client passes in (from the join response).
 */
async function relayedPage(person, keep) {
  const page = await pageAs(browser, server.base, person);
  await page.addInitScript((pattern) => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function RelayOnly(config = {}) {
      const iceServers = (config.iceServers ?? [])
        .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => new RegExp(pattern).test(u)) }))
        .filter((s) => s.urls.length > 0);
      window.relayServers = iceServers;
      return new Native({ ...config, iceServers, iceTransportPolicy: "relay" });
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  }, keep.source);
  return page;
}

/** The selected pair's local candidate: its type and how it reaches the relay. */
const selectedLocal = (page) =>
  page.evaluate(async () => {
    const stats = await window.classroom.media.pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    const local = pair && stats.get(pair.localCandidateId);
    return local ? { type: local.candidateType, relayProtocol: local.relayProtocol } : null;
  });

const decodedFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "video" && r.participant === participant).reduce((n, r) => n + r.framesDecoded, 0);

for (const [name, keep, relayProtocol] of [
  ["UDP", /^turn:.*transport=udp/, "udp"],
  ["TLS", /^turns:/, "tls"],
]) {
  test(`a lesson through a TURN relay over ${name} only`, async () => {
    const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
    const teacher = await relayedPage(people.teacher, keep);
    await teacher.goto(live);
    await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
    await eventually(`the teacher's connection through the relay (coturn: ${turn.log().slice(-2000)})`, () =>
      teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"),
    );
    const teacherId = await teacher.evaluate(() => window.classroom.me);
    const servers = await teacher.evaluate(() => window.relayServers);
    assert.equal(servers.length, 1, JSON.stringify(servers));
    assert.match(servers[0].username, /^\d+:\d+$/, "coturn's `<expiry>:<user>` username");

    const sam = await relayedPage(people.sam, keep);
    await sam.goto(live);
    await eventually("the student decoding the teacher through the relay", async () =>
      decodedFrom(await inbound(sam), teacherId) > 10,
    );
    for (const [who, page] of [["teacher", teacher], ["student", sam]]) {
      assert.deepEqual(await selectedLocal(page), { type: "relay", relayProtocol }, `${who}'s selected pair`);
    }
    await teacher.close();
    await sam.close();
  });
}
