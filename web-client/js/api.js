// The REST API from the browser: the signed-in session kept in localStorage, and one fetch
// helper that turns the server's error body into an Error carrying its message and status.
// A signed-in call answered 401 means the session expired: the user is sent to sign in, with
// `?next=` bringing them back to where they were.

export const SESSION_KEY = "classroom.session";

import { t } from "./i18n.js";

/** Shown whenever a request cannot reach the server at all. */
export const UNREACHABLE = t("common.unreachable");

/** The saved session `{token, user}`, or null. */
export function session() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

export function saveSession(token, user) {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ token, user }));
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

/** The sign-in page, returning to the current page afterwards. */
export function signInUrl(reason) {
  const next = encodeURIComponent(location.pathname + location.search);
  return `/?next=${next}${reason ? `&reason=${reason}` : ""}`;
}

/** Sends the user to sign in (their session ended); they come back here afterwards. */
export function sessionExpired() {
  clearSession();
  location.replace(signInUrl("expired"));
}

/**
 * The text of a REST error in the visitor's language: ours for the codes people meet, else
 * the server's own (English) message, which names the problem exactly.
 */
function restText(error, status) {
  const text = REST_ERRORS[error?.code]?.();
  return text ?? (error?.message || t("common.requestFailed", { status }));
}

const REST_ERRORS = {
  wrong_credentials: () => t("rest.wrongCredentials"),
  internal_error: () => t("rest.internalError"),
  rate_limited: () => t("rest.rateLimited"),
  database_busy: () => t("rest.databaseBusy"),
  token_expired: () => t("rest.tokenExpired"),
  wrong_password: () => t("rest.wrongPassword"),
  email_taken: () => t("rest.emailTaken"),
  already_member: () => t("rest.alreadyMember"),
  cannot_disable_self: () => t("rest.cannotDisableSelf"),
  lesson_over: () => t("rest.lessonOver"),
  lesson_changed: () => t("rest.lessonChanged"),
  job_not_failed: () => t("rest.jobNotFailed"),
  already_set_up: () => t("setup.alreadySetUp"),
};

/** An error of an API call: `status` 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(message, status, code, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * Calls the API; `token` defaults to the saved session's. Rejects with the server's message.
 * `body` is sent as JSON, or as is with `contentType` (CSV).
 */
export async function api(path, { method = "GET", body, token = session()?.token, contentType } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": contentType || "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined || contentType ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(UNREACHABLE, 0, "unreachable");
  }
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    // Proxies answer 502-504 while classroomd is down: the same as not reaching it.
    if (response.status >= 502 && response.status <= 504) throw new ApiError(UNREACHABLE, 0, "unreachable");
    const error = new ApiError(
      restText(reply?.error, response.status),
      response.status,
      reply?.error?.code,
      reply?.error?.field,
    );
    if (response.status === 401 && token) {
      sessionExpired();
      error.redirected = true;
    }
    throw error;
  }
  return reply;
}
