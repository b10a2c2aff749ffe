// Sign-in and the user's courses with their lessons. The session (token and user) is kept in
// localStorage (api.js); `?next=` returns the user where they were going.

import { api, clearSession, saveSession, session } from "./api.js";

const $ = (id) => document.getElementById(id);

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

async function showCourses(session) {
  $("sign-in").hidden = true;
  $("courses").hidden = false;
  $("who").textContent = `Signed in as ${session.user.name} (${session.user.role}).`;
  const courses = await api("/api/v1/courses", { token: session.token });
  const items = await Promise.all(courses.items.map(async (course) => {
    const li = document.createElement("li");
    li.textContent = course.title;
    const lessons = await api(`/api/v1/courses/${course.id}/lessons`, { token: session.token });
    const list = document.createElement("ul");
    for (const lesson of lessons.items) {
      const item = document.createElement("li");
      if (lesson.state === "scheduled" || lesson.state === "live") {
        const link = document.createElement("a");
        link.href = `/live.html?lesson=${lesson.id}`;
        link.textContent = `${lesson.title} — ${lesson.state === "live" ? "live now: join" : "join"}`;
        item.append(link);
      } else {
        item.textContent = `${lesson.title} — ${lesson.state}`;
      }
      list.append(item);
    }
    li.append(list);
    return li;
  }));
  $("course-list").replaceChildren(...items);
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
    const next = new URLSearchParams(location.search).get("next");
    if (next && next.startsWith("/")) location.href = next;
    else await showCourses(body);
  } catch (error) {
    banner(error.message);
  }
});

$("sign-out").addEventListener("click", () => {
  clearSession();
  location.href = "/";
});

const saved = session();
if (saved?.token) {
  showCourses(saved).catch((error) => {
    if (error.status === 401) clearSession();
    $("sign-in").hidden = false;
    $("courses").hidden = true;
    banner(error.status === 401 ? "Your session has ended; sign in again." : error.message);
  });
}
