// ICE over TCP in real browsers: the server announces only its TCP candidate (as a network
// that blocks UDP leaves a browser nothing else), the teacher goes live and both students
// decode the teacher's video and receive audio, every peer connection over TCP as its
// selected candidate pair says. A screenshot of a student is kept in tests/artifacts.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { school, startServer } from "./lib/server.mjs";
import { ARTIFACTS, eventually, inbound, launch, pageAs } from "./lib/browser.mjs";

let server;
let people;
let browser;

before(async () => {
  server = await startServer({ env: { CLASSROOM_MEDIA__ADVERTISE_UDP: "false" } });
  people = await school(server);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const decodedFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "video" && r.participant === participant).reduce((n, r) => n + r.framesDecoded, 0);
const audioFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "audio" && r.participant === participant).reduce((n, r) => n + r.packetsReceived, 0);

/** The transport of the page's selected ICE candidate pair ("udp" or "tcp"), and the remote's type. */
const selectedPair = (page) =>
  page.evaluate(async () => {
    const stats = await window.classroom.media.pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { protocol: local?.protocol, remoteProtocol: remote?.protocol, tcpType: remote?.tcpType ?? null };
  });

test("a lesson over ICE-TCP only: browsers connect to the TCP port and decode", async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(browser, server.base, people.teacher);
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  const teacherId = await teacher.evaluate(() => window.classroom.me);

  const sam = await pageAs(browser, server.base, people.sam, { width: 390, height: 844 });
  const kim = await pageAs(browser, server.base, people.kim);
  for (const page of [sam, kim]) await page.goto(live);
  for (const [name, page] of [["sam", sam], ["kim", kim]]) {
    const first = await eventually(`${name} decoding the teacher over TCP`, async () => {
      const rows = await inbound(page);
      return decodedFrom(rows, teacherId) > 10 && audioFrom(rows, teacherId) > 0 ? rows : null;
    });
    await new Promise((r) => setTimeout(r, 1000));
    const later = await inbound(page);
    assert.ok(decodedFrom(later, teacherId) > decodedFrom(first, teacherId), `${name}: frames keep being decoded`);
    assert.ok(audioFrom(later, teacherId) > audioFrom(first, teacherId), `${name}: audio keeps arriving`);
  }
  for (const [name, page] of [["teacher", teacher], ["sam", sam], ["kim", kim]]) {
    const pair = await selectedPair(page);
    assert.deepEqual(pair, { protocol: "tcp", remoteProtocol: "tcp", tcpType: "passive" }, `${name}'s selected pair`);
  }
  await sam.screenshot({ path: join(ARTIFACTS, "student-over-ice-tcp.png"), fullPage: true });

  // The server counts the connections: at least one per browser (Chromium checks a pair per
  // local address, each on its own connection), and the students' joins.
  const metrics = await (await fetch(`${server.base}/metrics`)).text();
  const value = (name) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? -1);
  assert.ok(value("classroom_media_tcp_connections") >= 3, metrics);
  assert.equal(value("classroom_media_join_seconds_count"), 2, "the students' joins were timed");
  const joinMs = (1000 * value("classroom_media_join_seconds_sum")) / value("classroom_media_join_seconds_count");
  console.log(`join time over ICE-TCP (WebSocket open to first media packet), mean of 2: ${joinMs.toFixed(0)} ms`);
});
