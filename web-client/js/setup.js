// First run: the setup link the server printed (`/setup#<token>`) creates the school's first
// admin and signs them in. The token is in the fragment, so it is never sent in a URL; it
// goes in the request body once.

import { api, saveSession } from "./api.js";
import { t } from "./i18n.js";
import { $, banner, report } from "./page.js";

const token = location.hash.slice(1);

function finished(text) {
  $("setup").hidden = true;
  $("done").hidden = false;
  $("done-text").textContent = text;
}

async function start() {
  const status = await api("/api/v1/setup", { token: null });
  if (!status.needed) {
    finished(t("setup.alreadySetUp"));
    return;
  }
  if (!token) {
    finished(t("setup.openTheLink"));
    return;
  }
  $("setup").hidden = false;
  $("name").focus();
}

$("setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  banner("");
  if ($("password").value !== $("password-again").value) {
    banner(t("setup.passwordsDiffer"));
    $("password-again").select();
    return;
  }
  try {
    const body = await api("/api/v1/setup", {
      method: "POST",
      token: null,
      body: {
        token,
        name: $("name").value,
        email: $("email").value,
        password: $("password").value,
      },
    });
    saveSession(body.token, body.user);
    // The token is spent: keep it out of the history.
    history.replaceState(null, "", "/setup");
    location.href = "/admin.html";
  } catch (error) {
    if (error.code === "already_set_up") finished(t("setup.alreadySetUp"));
    else banner(error.message);
  }
});

start().catch(report);
