// Course materials and slides in a real Chromium: a teacher uploads a PDF on the course page,
// sees it prepared and pages through it; in the live room the teacher shows it to the class
// and turns a page, a student's stage follows, and a student joining late lands on the
// current page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";

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

/** A PDF with one page per text (Helvetica, so pdftotext reads it back). */
function pdf(texts) {
  const objects = ["<< /Type /Catalog /Pages 2 0 R >>"];
  const kids = texts.map((_, i) => `${4 + 2 * i} 0 R`).join(" ");
  objects.push(`<< /Type /Pages /Kids [${kids}] /Count ${texts.length} >>`);
  objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  texts.forEach((text, i) => {
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 792 612] /Contents ${5 + 2 * i} 0 R /Resources << /Font << /F1 3 0 R >> >> >>`);
    const stream = `BT /F1 48 Tf 72 300 Td (${text}) Tj ET`;
    objects.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
  });
  let out = "%PDF-1.4\n";
  const offsets = [];
  objects.forEach((object, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${object}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) out += `${String(offset).padStart(10, "0")} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}

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
