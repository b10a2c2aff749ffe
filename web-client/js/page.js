// What every signed-in page shares: the header (who is signed in, sign out), the banner, and
// a guard that sends visitors without a session to sign in.

import { clearSession, session, signInUrl } from "./api.js";
import { dateTime, t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

/** Shows `text` in the page's alert banner; empty hides it. */
export function banner(text) {
  const element = $("banner");
  element.textContent = text;
  element.hidden = !text;
}

/** Reports an API error in the banner, unless it already sent the user to sign in. */
export function report(error) {
  if (!error.redirected) banner(error.message);
}

/** The session, or null after sending the visitor to sign in. Fills the header. */
export function requireSession() {
  const saved = session();
  if (!saved?.token) {
    location.replace(signInUrl());
    return null;
  }
  const who = $("who");
  // The name leads to the account page (change one's own password).
  if (who) who.replaceChildren(el("a", { href: "/account.html", text: t("common.whoWithRole", { name: saved.user.name, role: roleName(saved.user.role) }), title: t("common.yourAccount") }));
  $("sign-out")?.addEventListener("click", signOut);
  if (saved.user.role === "admin") {
    const admin = $("admin-link");
    if (admin) admin.hidden = false;
  }
  return saved;
}

export function signOut() {
  clearSession();
  location.href = "/";
}

/** `<tag class=...>text</tag>` with children. */
export function el(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") element.className = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "text") element.textContent = value;
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value);
  }
  element.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** A readable date and time of an RFC 3339 string, in the visitor's language and time zone. */
export function when(iso) {
  return iso ? dateTime(new Date(iso)) : "";
}

const ROLES = {
  admin: () => t("role.admin"),
  teacher: () => t("role.teacher"),
  student: () => t("role.student"),
};

const LESSON_STATES = {
  scheduled: () => t("lessonState.scheduled"),
  live: () => t("lessonState.live"),
  ended: () => t("lessonState.ended"),
  cancelled: () => t("lessonState.cancelled"),
};

/** A lesson's state (scheduled, live, ended, cancelled) in the visitor's language. */
export function lessonState(state) {
  return LESSON_STATES[state]?.() ?? state;
}

/** A school role (admin, teacher, student) in the visitor's language. */
export function roleName(role) {
  return ROLES[role]?.() ?? role;
}

/** The value for `<input type="datetime-local">` of a Date, in local time. */
export function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * Installs the service worker that shows our own offline page (offline.html, with a retry)
 * when a page of ours cannot be loaded, instead of the browser's error page. Best effort:
 * browsers without service workers, or pages not served from a secure origin, go without.
 */
export function registerOfflinePage() {
  navigator.serviceWorker?.register("/sw.js").catch(() => {});
}
