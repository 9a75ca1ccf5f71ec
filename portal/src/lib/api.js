// The node's documented HTTP API, nothing else. Errors arrive as {"error": {code, message, details}}: the
// pages branch on ``code`` and show a translated text for it (i18n key "error.<code>") or the node's message.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class NodeApi {
  /** ``base``: the node's origin ("" = the page's own); ``token``: a bearer token (staff or patient). */
  constructor(base = "", token = null) {
    this.base = base.replace(/\/$/, "");
    this.token = token;
  }

  async request(method, path, { body, query, raw = false, headers = {} } = {}) {
    const url = new URL(this.base + path, location.origin);
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      if (body instanceof Blob || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) init.body = body;
      else {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = "application/json";
      }
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError(0, "node_unreachable", `cannot reach ${url.origin}`);
    }
    if (!response.ok) {
      let error = {};
      try {
        error = (await response.json()).error || {};
      } catch {
        /* not JSON: keep the status */
      }
      throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText, error.details || {});
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  post(path, body) {
    return this.request("POST", path, { body });
  }

  delete(path) {
    return this.request("DELETE", path);
  }
}
