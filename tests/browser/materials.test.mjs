// Course materials and slides in a real Chromium: a teacher uploads a PDF on the course page,
// sees it prepared and pages through it; in the live room the teacher shows it to the class
// and turns a page, a student's stage follows, and a student joining late lands on the
// current page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";
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

/** The page number the slide image on `page` shows once loaded, or null. */
const shownPage = (page) => page.evaluate(() => {
  const image = document.getElementById("slide-image");
  return image && image.complete && image.naturalWidth > 0 && !image.closest("[hidden]") ? Number(image.dataset.page) : null;
});

test("a teacher uploads a PDF and shows it to the class page by page", async () => {
  const teacher = await pageAs(browser, server.base, school.teacher);
  await teacher.goto(`${server.base}/course.html?id=${school.course.id}`);
  await teacher.getByRole("heading", { name: "Materials" }).waitFor();
  await teacher.getByLabel("Document (PDF, PPTX, ODP or DOCX)").setInputFiles({
    name: "Cells.pdf",
    mimeType: "application/pdf",
    buffer: pdf(["The cell", "The nucleus", "Mitochondria"]),
  });
  await teacher.getByRole("button", { name: "Upload" }).click();
  await teacher.getByText("3 pages").waitFor({ timeout: 30_000 });
  assert.deepEqual(await accessibilityProblems(teacher), [], "course page with materials: no serious axe violations");

  // The page viewer: the first page, then the next, with the page's text as its description.
  await teacher.getByRole("button", { name: "Open Cells" }).click();
  await teacher.getByText("Page 1 of 3").waitFor();
  await teacher.getByRole("button", { name: "Next page" }).click();
  await teacher.getByText("Page 2 of 3").waitFor();
  const image = teacher.locator("#viewer-page");
  assert.match(await image.getAttribute("alt"), /The nucleus/);
  await eventually("the page image loads", () => image.evaluate((img) => img.complete && img.naturalWidth === 1600));

  // The live room: the teacher shows the document, a student follows.
  const live = `${server.base}/live.html?lesson=${school.lesson.id}`;
  await teacher.goto(live);
  const sam = await pageAs(browser, server.base, school.sam);
  await sam.goto(live);
  // The teacher goes live (the device check leaves the stage), then finds the picker in the
  // Stream tab; a page shown moves the controls onto the stage.
  await teacher.getByRole("button", { name: "Go live with camera and microphone" }).click({ timeout: 20_000 });
  await teacher.getByRole("tab", { name: "Stream" }).click();
  await teacher.getByRole("button", { name: "Show to the class" }).waitFor({ timeout: 20_000 });
  await eventually("the picker lists the document", async () => (await teacher.locator("#slide-pick option").allTextContents()).some((t) => t.includes("Cells")));
  await teacher.getByRole("button", { name: "Show to the class" }).click();
  await eventually("the student sees page 1", async () => (await shownPage(sam)) === 1);
  const turned = Date.now();
  await teacher.locator("#slide-next").click();
  await eventually("the student sees page 2", async () => (await shownPage(sam)) === 2);
  console.log(`a page turn reached the student's screen in ${Date.now() - turned} ms (click to loaded image)`);
  assert.equal(await teacher.locator(".stage.presenting").count(), 1, "the slide is the teacher's main view");

  // Kim joins late and lands on page 2.
  const kim = await pageAs(browser, server.base, school.kim);
  await kim.goto(live);
  await eventually("the late joiner sees page 2", async () => (await shownPage(kim)) === 2);
  assert.equal(await kim.locator("#slide-controls").isHidden(), true, "students get no controls");
  assert.equal(await kim.locator("#slide-browsing").isHidden(), true, "nor may they browse yet");

  // The teacher lets students browse: Kim looks ahead on her own, the class page stays 2.
  await teacher.getByRole("button", { name: "Students may browse" }).click();
  await kim.locator("#slide-browsing").waitFor();
  await kim.locator("#slide-own-next").click();
  await eventually("kim looks at page 3", async () => (await shownPage(kim)) === 3);
  await kim.getByText("(the class is on page 2)").waitFor();
  assert.equal(await shownPage(sam), 2, "sam stays on the class page");
  // The teacher turns to page 1: Kim keeps her page until she follows the class again.
  await teacher.locator("#slide-prev").click();
  await eventually("sam follows to page 1", async () => (await shownPage(sam)) === 1);
  assert.equal(await shownPage(kim), 3);
  await kim.getByRole("button", { name: "Back to the class page" }).click();
  await eventually("kim is back on page 1", async () => (await shownPage(kim)) === 1);
  // Browsing ends: everyone is on the class page.
  await kim.locator("#slide-own-next").click();
  await eventually("kim on page 2 again", async () => (await shownPage(kim)) === 2);
  await teacher.getByRole("button", { name: "Students may browse" }).click();
  await eventually("browsing over: kim back on page 1", async () => (await shownPage(kim)) === 1);
  assert.equal(await kim.locator("#slide-browsing").isHidden(), true);

  // The teacher stops showing it: the stage is the cameras' again.
  await teacher.getByRole("button", { name: "Stop showing" }).click();
  await eventually("the student's slide is gone", async () => (await sam.locator(".stage.presenting").count()) === 0);
});
