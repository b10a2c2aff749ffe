// Sign-in and the user's courses. `?next=` returns the user where they were going (after a
// session expired, `&reason=expired` says so).

import { api, saveSession, session } from "./api.js";
import { t } from "./i18n.js";
import { $, banner, el, report, requireSession } from "./page.js";

const params = new URLSearchParams(location.search);

/**
 * Where `next` leads, when that is a page of this site; else null. Resolved the way the browser
 * will resolve it, because prefix checks miss what URL parsing does: `/\evil.example` and
 * `/<TAB>/evil.example` (tabs and newlines are dropped, `\` counts as `/`) leave the site.
 */
function sameOriginTarget(next) {
  if (!next) return null;
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return null;
  }
  if (url.origin !== location.origin) return null;
  return url.pathname + url.search + url.hash;
}

function showSignIn() {
  $("title").textContent = t("home.signIn");
  $("sign-in").hidden = false;
  $("courses").hidden = true;
  $("account").hidden = true;
  if (params.get("reason") === "expired") banner(t("home.sessionEnded"));
  if (params.get("reason") === "password_changed") banner(t("home.passwordChanged"));
  $("email").focus();
}

async function showCourses() {
  if (!requireSession()) return;
  $("title").textContent = t("home.myCourses");
  $("sign-in").hidden = true;
  $("account").hidden = false;
  $("courses").hidden = false;
  const courses = await api("/api/v1/courses?per_page=200");
  $("course-list").replaceChildren(...courses.items.map((course) =>
    el("li", {}, el("a", { href: `/course.html?id=${course.id}`, text: course.title }),
      course.description ? el("span", { class: "muted", text: t("home.courseDescription", { description: course.description }) }) : null)));
  $("no-courses").hidden = courses.items.length > 0;
}

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  banner("");
  try {
    const body = await api("/api/v1/auth/login", {
      method: "POST",
      token: null,
      body: { email: $("email").value, password: $("password").value },
    });
    saveSession(body.token, body.user);
    const next = sameOriginTarget(params.get("next"));
    if (next) location.href = next;
    else {
      history.replaceState(null, "", "/");
      await showCourses();
    }
  } catch (error) {
    banner(error.message);
    $("password").select();
  }
});

if (session()?.token) showCourses().catch(report);
else showSignIn();
