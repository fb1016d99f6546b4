// ctx.api(method, path, body?): same-origin JSON calls with the session cookie; a
// state-changing call carries the CSRF token; a JSON error becomes a thrown Error.
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export function createApi(csrf, onUnauthorized) {
  return async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (!SAFE.has(method)) {
      const token = csrf();
      if (token) headers["X-R13-CSRF"] = token;
    }
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { error: text }; }
    }
    if (!resp.ok) {
      const message = (data && data.error) || `${resp.status} ${resp.statusText}`;
      const err = new Error(message);
      err.status = resp.status;
      if (resp.status === 401 && path !== "/_api/session") onUnauthorized();
      throw err;
    }
    return data;
  };
}
