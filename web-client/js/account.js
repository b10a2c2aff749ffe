// Your account: who you are, and changing your own password (a temporary one an admin gave
// you, say). Changing it ends every session of the account, this one too: sign in again.

import { api, clearSession } from "./api.js";
import { $, banner, report, requireSession } from "./page.js";

const me = requireSession();
if (me) $("me").textContent = `${me.user.name} <${me.user.email}> · ${me.user.role}`;

$("change-password").addEventListener("submit", async (event) => {
  event.preventDefault();
  banner("");
  if ($("new-password").value !== $("repeat-password").value) {
    banner("The two new passwords differ. Type the same one twice.");
    return;
  }
  try {
    await api("/api/v1/me/password", {
      method: "PUT",
      body: { current_password: $("current-password").value, new_password: $("new-password").value },
    });
  } catch (error) {
    report(error);
    return;
  }
  clearSession();
  location.replace("/?reason=password_changed");
});
