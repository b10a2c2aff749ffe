// Your account: who you are, and changing your own password (a temporary one an admin gave
// you, say). Changing it ends every session of the account, this one too: sign in again.

import { api, clearSession } from "./api.js";
import { t } from "./i18n.js";
import { $, banner, report, requireSession, roleName } from "./page.js";

const me = requireSession();
if (me) $("me").textContent = t("account.me", { name: me.user.name, email: me.user.email, role: roleName(me.user.role) });

$("change-password").addEventListener("submit", async (event) => {
  event.preventDefault();
  banner("");
  if ($("new-password").value !== $("repeat-password").value) {
    banner(t("account.passwordsDiffer"));
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
