// The web client in Simplified Chinese, in a real Chromium whose browser language is zh-CN:
// the sign-in page, home, the admin page, a course page, and the live page of a teacher and of
// a student show Chinese (no English left in what is visible, apart from names and data);
// dates are written the Chinese way; the language switch changes the language and remembers
// it; axe-core still finds no serious violation. Catalogue checks without a browser are in
// i18n-catalogue.test.mjs.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { ADMIN_EMAIL, PASSWORD, school, startServer } from "./lib/server.mjs";
import { accessibilityProblems, launch } from "./lib/browser.mjs";

let server;
let browser;
let people;

before(async () => {
  server = await startServer();
  browser = await launch();
  people = await school(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page in a fresh context whose browser language is `locale`, signed in as `person`. */
async function pageIn(locale, person) {
  const context = await browser.newContext({ locale, viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("dialog", (dialog) => dialog.accept());
  page.on("close", () => context.close().catch(() => {}));
  page.errors = errors;
  if (person) {
    await page.addInitScript((session) => {
      if (!localStorage.getItem("classroom.session")) localStorage.setItem("classroom.session", JSON.stringify(session));
    }, { token: person.token, user: person.user });
  }
  return page;
}

/**
 * Visible text of the page that still reads as English: runs of Latin letters outside the
 * names and data the school typed (people, courses, lessons, emails) and a few words that are
 * the same in Chinese (the product's name, file formats, services).
 */
async function englishLeft(page, data = []) {
  const allowed = [
    "classroom", "English", "CSV", "PDF", "PPTX", "ODP", "DOCX", "MP4", "OBS", "YouTube", "Twitch", "URL",
    "email,name[,password]", "A/B/C/D", "Biology 8a", "Cells, live", "Ada Admin", ...data,
    ...Object.values(people).flatMap((p) => [p?.name, p?.email, p?.user?.name, p?.user?.email, p?.title]).filter(Boolean),
  ];
  return page.evaluate((allowed) => {
    const left = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const visible = (node) => {
      const element = node.parentElement;
      if (!element || element.closest("[hidden], script, style, [translate=no], option:not(:checked)")) return false;
      const box = element.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && getComputedStyle(element).visibility !== "hidden";
    };
    const texts = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) if (visible(node)) texts.push(node.textContent);
    // What assistive technology reads too: labels and placeholders of visible elements.
    for (const element of document.querySelectorAll("[aria-label], [placeholder], [title]")) {
      if (element.closest("[hidden]")) continue;
      for (const name of ["aria-label", "placeholder", "title"]) if (element.getAttribute(name)) texts.push(element.getAttribute(name));
    }
    texts.push(document.title);
    for (let text of texts) {
      for (const known of [...allowed].sort((a, b) => b.length - a.length)) text = text.split(known).join(" ");
      text = text.replace(/\S+@\S+/g, " ").replace(/(https?|rtmp|wss?):\/\/\S+/g, " ");
      if (/[A-Za-z]{2,}/.test(text)) left.push(text.trim());
    }
    return [...new Set(left)];
  }, allowed);
}

async function assertChinese(page, what, data) {
  assert.equal(await page.evaluate(() => document.documentElement.lang), "zh-CN", `${what}: <html lang>`);
  assert.deepEqual(await englishLeft(page, data), [], `${what}: no English left`);
  assert.deepEqual(await accessibilityProblems(page), [], `${what}: no serious or critical axe violations`);
  assert.deepEqual(page.errors, [], `${what}: no script errors`);
}

test("the language follows the browser's, with Simplified Chinese for zh and English otherwise", async () => {
  const page = await pageIn("zh-CN");
  await page.goto(server.base + "/");
  const chosen = await page.evaluate(async () => {
    const { chooseLanguage } = await import("/js/i18n.js");
    return [
      chooseLanguage(null, ["zh-CN", "en"]),
      chooseLanguage(null, ["zh"]),
      chooseLanguage(null, ["zh-Hans-SG"]),
      chooseLanguage(null, ["zh-TW", "en-GB"]),
      chooseLanguage(null, ["fr-FR", "zh-CN"]),
      chooseLanguage(null, ["de"]),
      chooseLanguage("en", ["zh-CN"]),
      chooseLanguage("xx", ["zh-CN"]),
    ];
  });
  assert.deepEqual(chosen, ["zh-CN", "zh-CN", "zh-CN", "en", "zh-CN", "en", "en", "zh-CN"]);
  await page.close();
});

test("a school in Chinese: sign-in, home, admin, course and the live page, then the switch", { timeout: 180_000 }, async () => {
  // Sign-in, in Chinese labels; a wrong password says so in Chinese.
  const page = await pageIn("zh-CN");
  await page.goto(server.base + "/");
  await page.getByRole("heading", { name: "登录" }).waitFor();
  await assertChinese(page, "sign-in page");
  await page.getByLabel("电子邮箱").fill(ADMIN_EMAIL);
  await page.getByLabel("密码").fill("not the password");
  await page.getByRole("button", { name: "登录" }).click();
  await page.getByRole("alert").getByText("邮箱或密码错误。").waitFor();
  await page.getByLabel("密码").fill(PASSWORD);
  await page.getByRole("button", { name: "登录" }).click();
  await page.getByRole("heading", { name: "我的课程" }).waitFor();
  await assertChinese(page, "home");

  // The admin page, with its lists filled.
  await page.getByRole("link", { name: "学校管理" }).click();
  await page.getByRole("heading", { name: "用户", exact: true }).waitFor();
  await page.getByLabel("要管理的课程").selectOption({ label: "Biology 8a" });
  await page.getByRole("list", { name: "学生", exact: true }).getByText("Sam Student").waitFor();
  await page.getByText(/找到 \d+ 人。/).waitFor();
  await assertChinese(page, "admin page");
  await page.close();

  // The teacher's course page: the lesson with its date written the Chinese way.
  const teacher = await pageIn("zh-CN", people.teacher);
  await teacher.goto(`${server.base}/course.html?id=${people.course.id}`);
  const row = teacher.locator(`li[data-lesson="${people.lesson.id}"]`);
  await row.getByRole("link", { name: "开始上课：Cells, live" }).waitFor();
  assert.match(await row.textContent(), /\d{4}年\d{1,2}月\d{1,2}日/, "a Chinese date");
  await assertChinese(teacher, "course page");

  // A student who comes early waits for the teacher, in Chinese, with the start time.
  const sam = await pageIn("zh-CN", people.sam);
  await sam.goto(`${server.base}/live.html?lesson=${people.lesson.id}`);
  await sam.getByText(/^(正在等待老师。|老师正在准备。)$/).waitFor();
  assert.match(await sam.locator("#stage-note-detail").textContent(), /^课堂将于 .*\d{4}年.* 开始。$/);
  await sam.getByRole("button", { name: "举手" }).waitFor();
  await assertChinese(sam, "live page (student)");

  // The teacher's live page: the device check and the controls.
  await teacher.goto(`${server.base}/live.html?lesson=${people.lesson.id}`);
  await teacher.getByRole("heading", { name: "检查摄像头和麦克风" }).waitFor();
  await teacher.getByRole("button", { name: "开始上课" }).waitFor();
  await teacher.getByRole("tab", { name: /成员/ }).click();
  await teacher.locator("#people").getByText("Sam Student").waitFor();
  await assertChinese(teacher, "live page (teacher)");
  await sam.close();

  // The switch: English, remembered across pages, and back.
  await teacher.goto(`${server.base}/`);
  await teacher.getByRole("heading", { name: "我的课程" }).waitFor();
  await Promise.all([teacher.waitForEvent("load"), teacher.getByLabel(/语言/).selectOption("en")]);
  await teacher.getByRole("heading", { name: "My courses" }).waitFor();
  assert.equal(await teacher.evaluate(() => document.documentElement.lang), "en");
  await teacher.goto(`${server.base}/course.html?id=${people.course.id}`);
  await teacher.getByRole("heading", { name: "Upcoming lessons" }).waitFor();
  assert.deepEqual(await accessibilityProblems(teacher), [], "course page in English: no serious axe violations");
  await Promise.all([teacher.waitForEvent("load"), teacher.getByLabel("Language").selectOption("zh-CN")]);
  await teacher.getByRole("heading", { name: "即将开始的课堂" }).waitFor();
  assert.deepEqual(teacher.errors, []);
  await teacher.close();
});

test("the offline page is in Chinese too: the service worker keeps its catalogues", { timeout: 60_000 }, async () => {
  const sam = await pageIn("zh-CN", people.sam);
  await sam.goto(`${server.base}/live.html?lesson=${people.lesson.id}`);
  await sam.evaluate(() => navigator.serviceWorker.ready);
  await server.halt();
  try {
    await sam.reload();
    await sam.getByRole("heading", { name: "无法连接到课堂" }).waitFor();
    await sam.getByRole("button", { name: "重试" }).waitFor();
    assert.equal(await sam.evaluate(() => document.documentElement.lang), "zh-CN");
    assert.deepEqual(await englishLeft(sam), [], "the offline page: no English left");
  } finally {
    await server.start();
  }
  await sam.close();
});

test("a browser in English gets English, with the switch offering Chinese", async () => {
  const page = await pageIn("en-US");
  await page.goto(server.base + "/");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
  assert.deepEqual(await page.getByLabel("Language").locator("option").allTextContents(), ["English", "简体中文"]);
  assert.deepEqual(await accessibilityProblems(page), []);
  await page.close();
});
