// The REST API from the browser: the signed-in session kept in localStorage, and one fetch
// helper that turns the server's error body into an Error carrying its message and status.

export const SESSION_KEY = "classroom.session";

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

/** Calls the API; `token` defaults to the saved session's. Rejects with the server's message. */
export async function api(path, { method = "GET", body, token = session()?.token } = {}) {
  const response = await fetch(path, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(reply?.error?.message || `request failed (${response.status})`);
    error.status = response.status;
    error.code = reply?.error?.code;
    throw error;
  }
  return reply;
}
