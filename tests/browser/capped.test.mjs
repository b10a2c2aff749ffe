// Simulcast under real kernel shaping: two students, each in a network namespace of the
// test's own (lib/netns.mjs), reach the server over veth pairs. `tc` caps one student's
// downlink at 300 kbit/s: that student drops to a lower layer and keeps decoding; when the cap
// is lifted they climb back to the top layer. The other student stays on the top layer all
// along. Needs root, and runs only when CLASSROOM_TEST_NETNS=1: in about one run in four the
// teacher's page (on the bridge address, made a secure context by a Chromium flag) never
// offered "Go live" within 30 s, a cause not yet found; until it is, the test is not part of
// the CI run. Run it alone with `sudo CLASSROOM_TEST_NETNS=1 node --test capped.test.mjs`.
// Four runs on 2026-12-07 with the page's console, WebSocket and state logged (the machine at
// load 7-17 from other builds): "Go live" came 0.3-3 s after the page loaded every time; all
// four failed later, at the layer steps, with the pacer's burst at 250 ms and at str0m's 40 ms
// alike (a student held below the top layer before the cap, the free one at 640 during it, or
// the capped one not back on top within 90 s): on a busy two-core machine three Chromiums'
// delay-based estimates sag. A quiet machine is needed to tell whether the "Go live" stall is
// still there.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { join } from "node:path";

import { ARTIFACTS, eventually, launch, pageAs, videoFrom } from "./lib/browser.mjs";
import { canMakeNetworks, makeNetwork } from "./lib/netns.mjs";

const root = canMakeNetworks() && process.env.CLASSROOM_TEST_NETNS === "1";
let network;
let server;
let people;
const browsers = [];

before(async () => {
  if (!root) return;
  network = makeNetwork(2);
  const host = network.serverIp;
  server = await startServer({
    host,
    env: {
      CLASSROOM_MEDIA__UDP_ADDR: `${host}:0`,
      CLASSROOM_MEDIA__TCP_ADDR: `${host}:0`,
      CLASSROOM_MEDIA__ADVERTISED_IP: host,
    },
  });
  people = await school(server);
  // Camera and microphone need a secure context: http://127.0.0.1 is one, our bridge address
  // is not, unless Chromium is told to treat it as one.
  const args = [`--unsafely-treat-insecure-origin-as-secure=${server.base}`];
  browsers.push(await launch({ args })); // the teacher, on this side of the bridge
  for (const h of network.hosts) browsers.push(await launch({ args, executablePath: h.chromium }));
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  await server?.stop();
  network?.destroy();
});


/**
 * Samples both students every 250 ms for `ms`: the longest time the `watch`ed one went without
 * a new decoded frame, and every width each decoded at.
 */
async function observe(capped, free, teacherId, ms) {
  const widths = { capped: new Set(), free: new Set() };
  const freeSamples = [];
  let longestFreeze = 0;
  let last = await videoFrom(capped, teacherId);
  let lastChange = Date.now();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 250));
    const [c, f] = [await videoFrom(capped, teacherId), await videoFrom(free, teacherId)];
    widths.capped.add(c.width);
    widths.free.add(f.width);
    freeSamples.push(f.width);
    if (c.frames > last.frames) lastChange = Date.now();
    longestFreeze = Math.max(longestFreeze, Date.now() - lastChange);
    last = c;
  }
  const freeOnTop = freeSamples.filter((w) => w === 1280).length / Math.max(1, freeSamples.length);
  return { widths, longestFreeze, last, freeOnTop, freeLast: freeSamples.at(-1) };
}

test("a student on a capped link drops to a lower layer, keeps watching and climbs back", { skip: !root && "needs root and CLASSROOM_TEST_NETNS=1 (network namespaces)" }, async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(browsers[0], server.base, people.teacher);
  const said = [];
  teacher.on("console", (m) => said.push(`${m.type()}: ${m.text()}`));
  teacher.on("pageerror", (e) => said.push(`pageerror: ${e.message}`));
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click().catch(async (error) => {
    // The "Go live" stall seen on some runs: keep what the page showed and said.
    await teacher.screenshot({ path: join(ARTIFACTS, "capped-teacher-stall.png") }).catch(() => {});
    const text = await teacher.evaluate(() => document.body.innerText).catch((e) => String(e));
    console.log(`capped: the teacher's page without its Go live button:\n${text.slice(0, 800)}\n${said.join("\n")}`);
    throw error;
  });
  await eventually("the teacher's connection", () =>
    teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"),
  );
  const teacherId = await teacher.evaluate(() => window.classroom.me);
  const view = { width: 1366, height: 768 };
  const capped = await pageAs(browsers[1], server.base, people.sam, view);
  const free = await pageAs(browsers[2], server.base, people.kim, view);
  for (const page of [capped, free]) await page.goto(live);
  for (const [who, page] of [["capped", capped], ["free", free]]) {
    await eventually(`the ${who} student on the top layer`, async () => (await videoFrom(page, teacherId))?.width === 1280, 90_000);
  }

  network.cap(0, "300kbit");
  // The student goes down to a layer that fits (the middle one when the picture is simple
  // enough to fit 300 kbit/s, else the lowest), maybe through the middle one. Once the layer
  // has held for two seconds, the student must keep decoding.
  const capAt = Date.now();
  let layer = { width: 0, since: Date.now() };
  await eventually("the capped student settled on a lower layer", async () => {
    const width = (await videoFrom(capped, teacherId))?.width ?? 0;
    if (width !== layer.width) layer = { width, since: Date.now() };
    return width > 0 && width < 1280 && Date.now() - layer.since >= 2000;
  }, 40_000);
  console.log(`capped: settled at ${layer.width} wide ${layer.since - capAt} ms after the cap`);
  const settled = await observe(capped, free, teacherId, 6_000);
  console.log(`capped: widths ${[...settled.widths.capped]}, longest freeze ${settled.longestFreeze} ms`);
  assert.ok(settled.longestFreeze <= 1000, `the capped student keeps decoding: froze ${settled.longestFreeze} ms`);
  assert.ok(![...settled.widths.capped].includes(1280), `stays below the top layer while capped: ${[...settled.widths.capped]}`);
  // The other student's layer is chosen from their own link, which nobody capped: the cap
  // never drags them to the bottom layer, and they are on the top one when it is measured
  // last. (On a two-core machine running three Chromiums, the uncapped student's own
  // delay-based estimate can dip for a moment when its Chromium is short of CPU, so the
  // share of samples on the top layer is printed, not required.)
  console.log(`free: on the top layer in ${Math.round(settled.freeOnTop * 100)}% of samples (${[...settled.widths.free]})`);
  assert.ok(!settled.widths.free.has(320) && settled.freeLast === 1280, `the other student stays up: ${JSON.stringify({ ...settled, widths: { free: [...settled.widths.free] } })}`);

  network.uncap(0);
  await eventually("the capped student back on the top layer", async () => (await videoFrom(capped, teacherId))?.width === 1280, 90_000);
  assert.equal((await videoFrom(free, teacherId)).width, 1280, "the other student still on the top layer");
});
