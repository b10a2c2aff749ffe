// The whiteboard in a real Chromium: the teacher shows the blank board and draws; a student
// sees the stroke at the same spot of the page on a screen of another size (pixels read back
// from the canvas), a student joining late sees the whole board, a student without the pen is
// refused by the server, and with the pen the teacher gives can draw for the class. Then the
// teacher writes on the pages of a PDF: each page keeps its own drawing.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs } from "./lib/browser.mjs";
import { pdf } from "./lib/documents.mjs";

let server;
let browser;
let school;

before(async () => {
  server = await startServer();
  browser = await launch();
  school = await makeSchool(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const RED = [0xe0, 0x31, 0x31];
const BLUE = [0x19, 0x71, 0xc2];

/** The pixels of `colour` on the page's board canvas, and their centre as fractions of it. */
const ink = (page, colour) => page.evaluate(([r, g, b]) => {
  const canvas = document.getElementById("board-canvas");
  if (!canvas || canvas.hidden || !canvas.width) return { count: 0 };
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40) {
      count++;
      sx += (i / 4) % canvas.width;
      sy += Math.floor(i / 4 / canvas.width);
    }
  }
  return { count, x: sx / count / canvas.width, y: sy / count / canvas.height };
}, colour);

/** Drags the mouse across the board from (x0, y0) to (x1, y1), fractions of the canvas. */
async function drag(page, [x0, y0], [x1, y1]) {
  const box = await page.locator("#board-canvas").boundingBox();
  await page.mouse.move(box.x + box.width * x0, box.y + box.height * y0);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * x1, box.y + box.height * y1, { steps: 25 });
  await page.mouse.up();
}

/** A `draw` sent as `person` over a WebSocket of their own: the server's reply. */
const drawAs = (page, lessonId) => page.evaluate(async (lesson) => {
  const session = JSON.parse(localStorage.getItem("classroom.session"));
  const response = await fetch(`/api/v1/lessons/${lesson}/join`, { method: "POST", headers: { authorization: `Bearer ${session.token}` } });
  const join = await response.json();
  const socket = new WebSocket(`ws://${location.host}${join.signaling_path}`);
  const replies = [];
  await new Promise((resolve, reject) => {
    socket.onerror = reject;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      replies.push(message);
      if (message.type === "ok" && message.id === 1) {
        socket.send(JSON.stringify({ v: 1, id: 2, type: "draw", tool: "pen", colour: "#000000", width: 30, points: [[10, 10]] }));
      }
      if (message.id === 2) resolve();
    };
    socket.onopen = () => socket.send(JSON.stringify({ v: 1, id: 1, type: "join", token: join.token }));
  });
  socket.close();
  return replies.find((m) => m.id === 2);
}, lessonId);

test("the teacher draws on the blank board, the class sees it, and the pen is the teacher's to give", async () => {
  const live = `${server.base}/live.html?lesson=${school.lesson.id}`;
  const teacher = await pageAs(browser, server.base, school.teacher);
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click({ timeout: 20_000 });
  // Sam's screen is smaller than the teacher's: the stroke must land on the same spot anyway.
  const sam = await pageAs(browser, server.base, school.sam, { width: 1000, height: 700 });
  await sam.goto(live);

  await teacher.getByRole("tab", { name: "Stream" }).click();
  await teacher.getByRole("button", { name: "Show blank board" }).click();
  await teacher.locator("#board-canvas:not([hidden])").waitFor();
  await sam.locator("#board-canvas:not([hidden])").waitFor({ timeout: 20_000 });
  assert.equal(await sam.locator("#board-tools").isHidden(), true, "no tools without the pen");

  await drag(teacher, [0.2, 0.3], [0.6, 0.35]);
  const drawn = Date.now();
  await eventually("Sam sees the teacher's red stroke", async () => (await ink(sam, RED)).count > 100);
  console.log(`a stroke was on the student's canvas ${Date.now() - drawn} ms after the pen was lifted (polled)`);
  const there = await ink(teacher, RED);
  const here = await ink(sam, RED);
  assert.ok(Math.abs(there.x - here.x) < 0.02 && Math.abs(there.y - here.y) < 0.02,
    `the same spot of the page: teacher ${JSON.stringify(there)}, Sam ${JSON.stringify(here)}`);

  // Kim, without the pen, is refused by the server itself (whatever her client shows).
  const kim = await pageAs(browser, server.base, school.kim, { width: 900, height: 800 });
  const refused = await drawAs(kim, school.lesson.id);
  assert.equal(refused?.type, "error", JSON.stringify(refused));
  assert.equal(refused.code, "missing_grant");
  assert.equal(refused.grant, "draw");
  // Joining late, she sees the whole board.
  await kim.goto(live);
  await eventually("Kim sees the board drawn before she came", async () => (await ink(kim, RED)).count > 100);

  // The teacher gives Sam the pen; Sam draws in blue and the class sees it.
  await teacher.getByRole("tab", { name: /People/ }).click();
  await teacher.getByRole("button", { name: "Give pen to Sam Student" }).click();
  await sam.locator("#board-tools:not([hidden])").waitFor();
  await sam.getByLabel("Colour").selectOption("#1971c2");
  await drag(sam, [0.2, 0.6], [0.5, 0.7]);
  await eventually("the teacher sees Sam's blue stroke", async () => (await ink(teacher, BLUE)).count > 100);
  await eventually("Kim sees it too", async () => (await ink(kim, BLUE)).count > 100);

  // Sam undoes it; then the teacher takes the pen back.
  await sam.getByRole("button", { name: "Undo" }).click();
  await eventually("Sam's stroke is gone for Kim", async () => (await ink(kim, BLUE)).count === 0);
  assert.ok((await ink(kim, RED)).count > 100, "the teacher's stroke stays");
  await teacher.getByRole("button", { name: "Take pen from Sam Student" }).click();
  await sam.locator("#board-tools").waitFor({ state: "hidden" });
  // The next test joins as the same people: these pages would take their places back.
  await Promise.all([teacher, sam, kim].map((page) => page.close()));
});

test("the teacher writes on a slide; each page keeps its own drawing", async () => {
  const teacher = await pageAs(browser, server.base, school.teacher);
  await teacher.goto(`${server.base}/course.html?id=${school.course.id}`);
  await teacher.getByLabel("Document (PDF, PPTX, ODP or DOCX)").setInputFiles({
    name: "Leaves.pdf",
    mimeType: "application/pdf",
    buffer: pdf(["Leaves", "Roots"]),
  });
  await teacher.getByRole("button", { name: "Upload" }).click();
  await teacher.getByText("2 pages").waitFor({ timeout: 30_000 });

  const live = `${server.base}/live.html?lesson=${school.lesson.id}`;
  await teacher.goto(live);
  const sam = await pageAs(browser, server.base, school.sam, { width: 1100, height: 760 });
  await sam.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click({ timeout: 20_000 });
  await teacher.getByRole("tab", { name: "Stream" }).click();
  await eventually("the picker lists the document", async () => (await teacher.locator("#slide-pick option").allTextContents()).some((t) => t.includes("Leaves")));
  await teacher.locator("#slide-pick").selectOption({ label: "Leaves (2 pages)" });
  await teacher.getByRole("button", { name: "Show to the class" }).click();
  // The canvas lies exactly over the page (the image is contained in its box), for both.
  const fits = (page) => page.evaluate(() => {
    const image = document.getElementById("slide-image");
    const canvas = document.getElementById("board-canvas");
    if (!image?.complete || !image.naturalWidth || canvas.hidden) return false;
    const i = image.getBoundingClientRect();
    const c = canvas.getBoundingClientRect();
    const inside = c.left >= i.left - 1 && c.right <= i.right + 1 && c.top >= i.top - 1 && c.bottom <= i.bottom + 1;
    return inside && Math.abs(c.width / c.height - 792 / 612) < 0.02;
  });
  await eventually("the teacher's canvas lies over the page", () => fits(teacher));
  await eventually("Sam's canvas lies over the page", () => fits(sam));

  await teacher.getByRole("button", { name: "Rectangle" }).click();
  await drag(teacher, [0.1, 0.15], [0.4, 0.35]);
  await eventually("Sam sees the rectangle on page 1", async () => (await ink(sam, RED)).count > 100);
  const there = await ink(teacher, RED);
  const here = await ink(sam, RED);
  assert.ok(Math.abs(there.x - here.x) < 0.02 && Math.abs(there.y - here.y) < 0.02,
    `the same spot of the page: teacher ${JSON.stringify(there)}, Sam ${JSON.stringify(here)}`);

  // Page 2 starts clean; page 1 still has its rectangle when the teacher turns back.
  await teacher.locator("#slide-next").click();
  await eventually("page 2 is clean for Sam", async () => (await ink(sam, RED)).count === 0);
  await teacher.locator("#slide-prev").click();
  await eventually("page 1's drawing comes back", async () => (await ink(sam, RED)).count > 100);
  // Clearing the page clears it for everyone.
  await teacher.getByRole("button", { name: "Clear page" }).click();
  await eventually("the page is clear for Sam", async () => (await ink(sam, RED)).count === 0);
});
