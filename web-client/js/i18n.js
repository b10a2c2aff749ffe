// The web client's two languages (English, Simplified Chinese): which one this visitor reads,
// its catalogue (web-client/i18n/LANG.json), `t(key, values)` for texts made in code, the
// `data-i18n` attributes filled in the pages' HTML, the language switch in every page's
// header, and the locale-aware formats of dates, times, durations and numbers.
//
// The catalogue is loaded before any module that imports this one runs (top-level await), so
// `t` is synchronous everywhere. Conventions: web-client/i18n/README.md.

export const STORAGE_KEY = "classroom.language";

/** The languages offered, each named in itself (the switch shows these). */
export const LANGUAGES = { en: "English", "zh-CN": "简体中文" };

/**
 * The language to show: the one saved by the switch, else the first of the browser's
 * preferred languages we have (`zh`, `zh-Hans`, `zh-SG` read Simplified Chinese), else English.
 */
export function chooseLanguage(saved, preferred = []) {
  if (saved && saved in LANGUAGES) return saved;
  for (const tag of preferred) {
    const lower = String(tag).toLowerCase();
    if (lower === "en" || lower.startsWith("en-")) return "en";
    // Traditional Chinese readers (zh-TW, zh-HK, zh-Hant) get English rather than a script
    // they did not ask for; everything else Chinese is Simplified.
    if (lower === "zh" || (lower.startsWith("zh-") && !/^zh-(tw|hk|mo|hant)/.test(lower))) return "zh-CN";
  }
  return "en";
}

function savedLanguage() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export const language = chooseLanguage(savedLanguage(), navigator.languages ?? [navigator.language]);

async function loadCatalogue(lang) {
  try {
    const response = await fetch(`/i18n/${lang}.json`);
    if (response.ok) return await response.json();
  } catch {
    // Offline without a cached catalogue: the keys show, the page still works.
  }
  return {};
}

const catalogue = await loadCatalogue(language);
const plurals = new Intl.PluralRules(language);

/**
 * The text of `key` in the visitor's language, with `{name}` placeholders replaced from
 * `values`. A plural entry (`{"one": …, "other": …}`) is chosen by `values.count`. Numbers
 * in `values` are formatted for the locale (grouped: pass an id as a string). A missing key shows as the key (a test keeps the
 * catalogues complete).
 */
export function t(key, values = {}) {
  let text = catalogue[key];
  if (text && typeof text === "object") text = text[plurals.select(Number(values.count))] ?? text.other;
  if (typeof text !== "string") return key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in values)) return whole;
    const value = values[name];
    return typeof value === "number" ? number(value) : String(value);
  });
}

/**
 * Fills the `data-i18n` texts of `root` and its descendants: a `data-i18n` attribute (a key)
 * sets the element's text, `data-i18n-ATTRIBUTE` sets that attribute (placeholder, aria-label,
 * title, alt, value …).
 */
export function translate(root = document) {
  const elements = root.querySelectorAll ? [...root.querySelectorAll("*")] : [];
  if (root.nodeType === 1) elements.unshift(root);
  for (const element of elements) {
    for (const attribute of [...element.attributes]) {
      if (!attribute.name.startsWith("data-i18n")) continue;
      if (attribute.name === "data-i18n") element.textContent = t(attribute.value);
      else element.setAttribute(attribute.name.slice("data-i18n-".length), t(attribute.value));
    }
  }
}

/**
 * Sets the language and reloads, so that every text (also those made in code) is in it. On
 * the live page the reload rejoins the lesson within the server's grace period, as any reload.
 */
export function switchLanguage(lang) {
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Storage refused (private mode): the browser's language stays.
  }
  location.reload();
}

/** The `<select>` that switches the language, labelled in the current language. */
export function languageSwitch() {
  const label = document.createElement("label");
  label.className = "language-switch";
  const caption = document.createElement("span");
  caption.className = "visually-hidden";
  caption.textContent = t("common.language");
  const select = document.createElement("select");
  select.id = "language";
  for (const [tag, name] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = tag;
    option.lang = tag;
    option.textContent = name;
    option.selected = tag === language;
    select.append(option);
  }
  select.addEventListener("change", () => switchLanguage(select.value));
  label.append(caption, select);
  return label;
}

// --- Formats in the visitor's locale -------------------------------------------------------

const numberFormat = new Intl.NumberFormat(language);
const dateTimeFormat = new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" });
const listFormat = new Intl.ListFormat(language, { style: "long", type: "conjunction" });

export const number = (value, options) => (options ? new Intl.NumberFormat(language, options) : numberFormat).format(value);
export const dateTime = (date) => dateTimeFormat.format(date);
export const list = (items) => listFormat.format(items);


// --- At load: the page in the chosen language ----------------------------------------------

document.documentElement.lang = language;
translate(document);
document.querySelector("header.bar")?.append(languageSwitch());
