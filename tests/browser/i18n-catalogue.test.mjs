// The two catalogues of the web client (web-client/i18n/en.json, zh-CN.json) against each
// other and against the code: the same keys, the same placeholders in every form, every key
// used in the pages or modules exists, every key exists for a reason (is used), and no English
// is left hard-coded in the pages' HTML. No browser and no server: files only.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

const WEB = resolve(import.meta.dirname, "../../web-client");
const LANGUAGES = ["en", "zh-CN"];

const catalogue = (lang) => JSON.parse(readFileSync(join(WEB, "i18n", `${lang}.json`), "utf8"));
const files = (dir, ext) => readdirSync(join(WEB, dir)).filter((f) => f.endsWith(ext)).map((f) => join(dir, f));
const HTML = files(".", ".html");
const JS = files("js", ".js");
const read = (file) => readFileSync(join(WEB, file), "utf8");

/** The forms of an entry: a string, or the plural forms (`one`, `other`, …). */
const forms = (entry) => (typeof entry === "string" ? [entry] : Object.values(entry));
const placeholders = (entry) => new Set(forms(entry).flatMap((text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1])));

/** Keys the code asks for: `t("key"` in the modules, `data-i18n…="key"` in the pages and modules. */
export function usedKeys() {
  const used = new Map();
  const note = (key, where) => used.set(key, [...(used.get(key) ?? []), where]);
  for (const file of JS) {
    for (const m of read(file).matchAll(/\bt\(\s*["'`]([^"'`$]+)["'`]/g)) note(m[1], file);
    // A key built at run time (`t(\`x.${y}\`)`) would escape both checks: none may exist.
    for (const m of read(file).matchAll(/\bt\(\s*`[^`]*\$\{/g)) note(`<dynamic key at ${m.index}>`, file);
  }
  for (const file of [...HTML, ...JS]) {
    for (const m of read(file).matchAll(/data-i18n(?:-[a-z-]+)?["']?\s*[=:]\s*["']([^"']+)["']/g)) note(m[1], file);
  }
  return used;
}

test("both catalogues have the same keys", () => {
  const [en, zh] = LANGUAGES.map((lang) => Object.keys(catalogue(lang)));
  assert.deepEqual(en.filter((k) => !zh.includes(k)), [], "keys only in en.json");
  assert.deepEqual(zh.filter((k) => !en.includes(k)), [], "keys only in zh-CN.json");
});

test("every entry has the same placeholders in both languages and in every plural form", () => {
  const en = catalogue("en");
  const zh = catalogue("zh-CN");
  const differ = [];
  for (const key of Object.keys(en)) {
    if (!(key in zh)) continue;
    const a = [...placeholders(en[key])].sort().join();
    const b = [...placeholders(zh[key])].sort().join();
    if (a !== b) differ.push(`${key}: en {${a}} zh-CN {${b}}`);
    for (const entry of [en[key], zh[key]]) {
      if (typeof entry === "object" && (!("other" in entry) || !("count" in Object.fromEntries([...placeholders(entry)].map((p) => [p, 1]))))) {
        differ.push(`${key}: a plural entry needs an "other" form and a {count}`);
      }
      for (const text of forms(entry)) if (typeof text !== "string" || !text.trim()) differ.push(`${key}: an empty text`);
    }
  }
  assert.deepEqual(differ, []);
});

test("no Chinese entry is left in English", () => {
  const en = catalogue("en");
  const zh = catalogue("zh-CN");
  // Names and formats that read the same in both languages.
  const same = new Set(["home.pageTitle", "course.documentTitle"]);
  const untranslated = Object.keys(zh).filter((key) => !same.has(key) && forms(zh[key]).some((text) => forms(en[key] ?? "").includes(text) && /[A-Za-z]{3}/.test(text.replace(/\{\w+\}/g, ""))));
  assert.deepEqual(untranslated, [], "zh-CN.json entries identical to English");
});

test("every key the pages and modules use is in the catalogue, and every catalogue key is used", () => {
  const en = catalogue("en");
  const used = usedKeys();
  const missing = [...used].filter(([key]) => !(key in en)).map(([key, where]) => `${key} (${[...new Set(where)].join(", ")})`);
  assert.deepEqual(missing, [], "keys used but missing from the catalogue");
  const unused = Object.keys(en).filter((key) => !used.has(key));
  assert.deepEqual(unused, [], "catalogue keys no page or module uses");
});

/**
 * The text nodes and translatable attributes of a page that no `data-i18n` covers. A small
 * tokenizer is enough for our hand-written pages: it keeps the stack of open elements.
 */
export function hardCodedText(html) {
  const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "path", "circle", "rect"]);
  const found = [];
  const stack = [];
  const source = html.replace(/<!doctype[^>]*>/i, "").replace(/<!--[\s\S]*?-->/g, "").replace(/<script[\s\S]*?<\/script>/g, "").replace(/<svg[\s\S]*?<\/svg>/g, "");
  const attr = (tag, name) => tag.match(new RegExp(`\\s${name}="([^"]*)"`))?.[1];
  for (const m of source.matchAll(/<(\/?)([a-zA-Z0-9]+)([^>]*?)(\/?)>|([^<]+)/g)) {
    const [, closing, name, attrs, selfClosing, text] = m;
    if (text !== undefined) {
      if (!/\p{L}/u.test(text)) continue;
      const parent = stack.at(-1);
      const exempt = stack.some((open) => open.noTranslate);
      if (!exempt && !(parent?.i18n && !parent.hasChildren)) found.push(`text "${text.trim()}" in <${parent?.name}>`);
      continue;
    }
    if (closing) {
      while (stack.length) {
        const open = stack.pop();
        // `data-i18n` replaces the element's whole content: children would be lost.
        if (open.i18n && open.hasChildren) found.push(`<${open.name} data-i18n> has child elements`);
        if (open.name === name.toLowerCase()) break;
      }
      continue;
    }
    if (stack.length) stack.at(-1).hasChildren = true;
    for (const attribute of ["aria-label", "placeholder", "title", "alt"]) {
      const value = attr(attrs, attribute);
      if (value && /\p{L}/u.test(value) && !value.includes("://") && !attrs.includes(`data-i18n-${attribute}=`)) {
        found.push(`${attribute}="${value}" on <${name}>`);
      }
    }
    if (name.toLowerCase() === "!doctype" || VOID.has(name.toLowerCase()) || selfClosing) continue;
    stack.push({ name: name.toLowerCase(), i18n: /\sdata-i18n="/.test(attrs), noTranslate: /\stranslate="no"/.test(attrs) });
  }
  return found;
}

test("the pages' HTML has no hard-coded English: every text and label comes from the catalogue", () => {
  const found = HTML.flatMap((file) => hardCodedText(read(file)).map((what) => `${file}: ${what}`));
  assert.deepEqual(found, []);
});

test("the pages' English fallback text is the catalogue's English", () => {
  // What the HTML shows before the catalogue loads must say the same as the catalogue, so the
  // two cannot drift apart.
  const en = catalogue("en");
  const differ = [];
  for (const file of HTML) {
    for (const m of read(file).matchAll(/data-i18n="([^"]+)"[^>]*>([^<]*)</g)) {
      const text = m[2].replace(/\s+/g, " ").trim();
      if (typeof en[m[1]] === "string" && text !== en[m[1]]) differ.push(`${file}: ${m[1]}: "${text}" vs "${en[m[1]]}"`);
    }
  }
  assert.deepEqual(differ, []);
});

test("the hard-coded text check catches what it should", () => {
  assert.deepEqual(hardCodedText('<p data-i18n="a">Hello</p><span translate="no">classroom</span>'), []);
  assert.equal(hardCodedText("<p>Hello</p>").length, 1);
  assert.deepEqual(hardCodedText('<button data-i18n="a">Go <span class="badge"></span></button>'), ["<button data-i18n> has child elements"]);
  assert.equal(hardCodedText('<input placeholder="Write here">').length, 1);
  assert.deepEqual(hardCodedText('<input placeholder="Write here" data-i18n-placeholder="a">'), []);
});

/**
 * String literals with English words that a module hands to what people see: an element's
 * `text`, `title`, `placeholder`, `alt` or `aria-label`, a `textContent`, the banner, a note, a
 * confirmation, an error's message. Heuristic (it reads the source, it does not run it), but
 * it catches the usual way a new text slips past the catalogue.
 */
export function hardCodedInModule(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const sink = /(?:\b(?:text|title|placeholder|alt|label)\s*:|"aria-label"\s*:|\.(?:textContent|title|placeholder|alt)\s*\+?=|\b(?:banner|note|confirm|alert|say|onProblem)\(|new (?:Api)?Error\()\s*(?:[^,;()]*?\?\s*)?(["'`])((?:\\.|(?!\1).)*)\1/g;
  return [...code.matchAll(sink)]
    .filter((m) => /[A-Za-z]{2,}/.test(m[2].replace(/\$\{[^}]*\}/g, "")))
    .map((m) => m[0].slice(0, 100));
}

test("the modules hand no hard-coded English to the page", () => {
  const found = JS.filter((file) => !file.endsWith("i18n.js")).flatMap((file) => hardCodedInModule(read(file)).map((what) => `${file}: ${what}`));
  assert.deepEqual(found, []);
});

test("the module check catches what it should", () => {
  assert.equal(hardCodedInModule('el("button", { text: "Send" })').length, 1);
  assert.equal(hardCodedInModule('el("a", { "aria-label": `Open ${title}` })').length, 1);
  assert.equal(hardCodedInModule('$("x").textContent = on ? "Unpin" : "Pin";').length, 1);
  assert.equal(hardCodedInModule('banner(`${n} joined`)').length, 1);
  assert.equal(hardCodedInModule('if (!confirm("End the lesson?")) return;').length, 1);
  assert.deepEqual(hardCodedInModule('el("button", { text: t("people.mute"), class: "button primary" }); banner(""); // text: "x"'), []);
});
