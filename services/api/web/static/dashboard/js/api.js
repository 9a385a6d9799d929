// The REST API under /api/v1, as any client uses it: a bearer token, JSON bodies, and errors as
// {"error", "detail"}. A 401 asks for a new token and retries once with it.

export class ApiError extends Error {
  constructor(status, error, detail) {
    super(detail || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

const MAX_PAGE = 500;

export class Api {
  constructor(auth) {
    this.auth = auth;
  }

  async request(method, path, body = undefined, retried = false) {
    const headers = { Accept: "application/json" };
    if (this.auth.token) headers.Authorization = `Bearer ${this.auth.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, "NetworkError", `the API cannot be reached (${error.message})`);
    }
    if (response.status === 401 && this.auth.enabled && !retried) {
      const problem = await this.problem(response);
      await this.auth.rejected(`The server refused the token: ${problem.detail || problem.error}.`);
      return this.request(method, path, body, true);
    }
    if (response.status === 429 && method === "GET" && !retried) {
      const wait = Number(response.headers.get("Retry-After") || "1");
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 10) * 1000));
      return this.request(method, path, body, true);
    }
    if (!response.ok) {
      const problem = await this.problem(response);
      throw new ApiError(response.status, problem.error, problem.detail);
    }
    return response.status === 204 ? null : response.json();
  }

  async problem(response) {
    try {
      const body = await response.json();
      return { error: body.error ?? `HTTP ${response.status}`, detail: body.detail ?? "" };
    } catch {
      return { error: `HTTP ${response.status}`, detail: response.statusText };
    }
  }

  get(path, params = {}) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const suffix = query.toString();
    return this.request("GET", suffix ? `${path}?${suffix}` : path);
  }

  /** Every item of a list endpoint (`{key: [...], total}`), page by page, up to `cap` items. */
  async all(path, key, params = {}, cap = 10_000) {
    const items = [];
    let total = 0;
    for (let offset = 0; offset < cap; offset += MAX_PAGE) {
      const page = await this.get(path, { ...params, limit: Math.min(MAX_PAGE, cap - offset), offset });
      items.push(...page[key]);
      total = page.total ?? items.length;
      if (page[key].length === 0 || items.length >= total) break;
    }
    return { items, total };
  }
}
