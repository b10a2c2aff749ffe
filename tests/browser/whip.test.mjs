// WHIP ingest and WHEP playback with third-party clients from npm, in Chromium, from a page
// on another origin (so the server's CORS answers count): `@eyevinn/whip-web-client` publishes
// the fake camera and microphone with the lesson's stream key; a student's lesson page decodes
// it as the encoder's video, shown large, and hears it; the teacher's page shows the encoder
// live. A second publisher on the key (`whip-whep`'s WHIPClient) is refused with 409 and the
// teacher reads why. `whip-whep`'s WHEPClient, with a student's join token, receives the
// lesson's main view (video and audio) without becoming a participant. Deleting the WHIP
// session ends the encoder on the teacher's page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { school, startServer } from "./lib/server.mjs";
import { ARTIFACTS, eventually, inbound, launch, pageAs, personPage } from "./lib/browser.mjs";
import { servePlayers } from "./lib/players.mjs";

let server;
let browser;
let players;

before(async () => {
  server = await startServer();
  browser = await launch();
  players = await servePlayers();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await players?.stop();
});

const fromEncoder = (rows, kind) => rows.filter((r) => r.kind === kind && r.source === "encoder");
const decoded = (rows) => fromEncoder(rows, "video").reduce((n, r) => n + r.framesDecoded, 0);
const audioPackets = (rows) => fromEncoder(rows, "audio").reduce((n, r) => n + r.packetsReceived, 0);

/** What a plain RTCPeerConnection (`window.pc`) on a player page receives. */
async function received(page) {
  return page.evaluate(async () => {
    const totals = { framesDecoded: 0, audioPackets: 0 };
    if (!window.pc) return totals;
    (await window.pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") totals.framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === "audio") totals.audioPackets += s.packetsReceived ?? 0;
    });
    return totals;
  });
}

test("a WHIP publisher streams into the lesson and a WHEP player watches it", { timeout: 180_000 }, async () => {
  const people = await school(server);
  const lesson = people.lesson.id;
  const { stream_key: key } = await server.request("POST", `/api/v1/lessons/${lesson}/stream-key`, people.teacher.token);
  const whip = `${server.base}/whip`;

  const teacher = await pageAs(browser, server.base, people.teacher, { width: 1280, height: 800 });
  await teacher.goto(`${server.base}/live.html?lesson=${lesson}`);
  await teacher.getByRole("tab", { name: "Stream" }).click();
  // The panel names the WHIP URL beside the RTMP server.
  await teacher.getByRole("heading", { name: "Stream from OBS or an encoder" }).waitFor();
  assert.equal(await teacher.locator("#encoder-whip-url").textContent(), whip);
  const student = await pageAs(browser, server.base, people.sam, { width: 1024, height: 700 });
  await student.goto(`${server.base}/live.html?lesson=${lesson}`);
  await eventually("the student's connection", () => student.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));

  // The Eyevinn client: OPTIONS (it learns there is no trickle on the endpoint), then the offer.
  const publisher = await personPage(browser, { width: 640, height: 480 }, "whip publisher");
  await publisher.goto(players.url);
  await publisher.evaluate(async ({ endpoint, key }) => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    // No STUN server: nothing leaves the machine (the SFU is ICE-lite and needs none).
    window.whip = new window.EyevinnWHIPClient({ endpoint, opts: { authkey: key, iceServers: [] } });
    await window.whip.ingest(stream);
  }, { endpoint: whip, key });
  await eventually("the publisher's connection", () => publisher.evaluate(() => window.whip.peer?.connectionState === "connected"), 20_000);

  const first = await eventually("the student decoding the WHIP encoder", async () => {
    const rows = await inbound(student);
    return decoded(rows) > 30 && audioPackets(rows) > 0 ? rows : null;
  }, 30_000);
  await eventually("frames and audio going on", async () => {
    const later = await inbound(student);
    return decoded(later) > decoded(first) && audioPackets(later) > audioPackets(first);
  });
  const large = await student.locator("#main-tile figure").getAttribute("data-tile");
  assert.match(large, /:encoder$/, "the encoder's video is the large one");
  await eventually("the teacher seeing the encoder live", async () =>
    /live/.test(await teacher.locator("#encoder-state").textContent()));

  // A second publisher on the same key: 409, and the teacher reads why.
  const second = await personPage(browser, { width: 640, height: 480 }, "second publisher");
  await second.goto(players.url);
  const refusal = await second.evaluate(async ({ endpoint, key }) => {
    const { WHIPClient } = await import("/whip.js");
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    try {
      await new WHIPClient().publish(pc, endpoint, key);
      return "published";
    } catch (e) {
      return e.message;
    } finally {
      pc.close();
    }
  }, { endpoint: whip, key });
  assert.match(refusal, /409/);
  await eventually("the teacher reading the refusal", async () =>
    /already streaming/.test(await teacher.locator("#encoder-reason").textContent()));
  await second.close();

  // A WHEP player with Kim's join token: the main view, and Kim is no participant.
  const { token } = await server.request("POST", `/api/v1/lessons/${lesson}/join`, people.kim.token);
  const player = await personPage(browser, { width: 640, height: 480 }, "whep player");
  await player.goto(players.url);
  const resource = await player.evaluate(async ({ endpoint, token }) => {
    const { WHEPClient } = await import("/whep.js");
    window.pc = new RTCPeerConnection();
    window.pc.addTransceiver("video", { direction: "recvonly" });
    window.pc.addTransceiver("audio", { direction: "recvonly" });
    window.pc.ontrack = (event) => {
      if (event.track.kind === "video") document.querySelector("video").srcObject = event.streams[0] ?? new MediaStream([event.track]);
    };
    window.whep = new WHEPClient();
    await window.whep.view(window.pc, endpoint, token);
    return String(window.whep.resourceURL);
  }, { endpoint: `${server.base}/whep`, token });
  assert.match(resource, /\/whep\/sessions\/[0-9a-f]{32}$/);
  const watched = await eventually("the player decoding the main view", async () => {
    const now = await received(player);
    return now.framesDecoded > 30 && now.audioPackets > 0 ? now : null;
  }, 30_000);
  await eventually("the player's frames going on", async () => (await received(player)).framesDecoded > watched.framesDecoded);
  const names = await teacher.locator("#people").textContent();
  assert.ok(!names.includes("Kim"), "a WHEP player is audience, not a participant");
  await player.screenshot({ path: join(ARTIFACTS, "whep-player.png") });
  await student.screenshot({ path: join(ARTIFACTS, "whip-student.png") });

  // The publisher stops (DELETE on its session): the encoder leaves; the player stops too.
  await publisher.evaluate(() => window.whip.destroy());
  await eventually("the teacher seeing the encoder stop", async () =>
    /No encoder/.test(await teacher.locator("#encoder-state").textContent()));
  await player.evaluate(() => window.whep.stop());
  for (const page of [publisher, player, student, teacher]) await page.close();
});
