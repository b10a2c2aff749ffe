// The offline page (served by the service worker in place of a page that could not load):
// "Try again" reloads the page that was asked for; it also retries by itself when the browser
// says it is back online, and every few seconds until the server answers.

import { t } from "./i18n.js";

const retry = document.getElementById("retry");
const status = document.getElementById("offline-state");

async function reachable() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    return response.status < 500;
  } catch {
    return false;
  }
}

async function tryAgain() {
  status.textContent = t("offline.tryingAgain");
  if (await reachable()) {
    location.reload();
    return;
  }
  status.textContent = t("offline.stillUnreachable");
}

retry.addEventListener("click", () => location.reload());
window.addEventListener("online", tryAgain);
setInterval(tryAgain, 10_000);
