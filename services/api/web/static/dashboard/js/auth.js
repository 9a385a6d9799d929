// Who is looking: the bearer token (kept in this tab's session storage), what its role may do,
// and the sign-in dialog that asks for one when there is none, it expired, or it was refused.

const STORAGE_KEY = "dronecast.token";

export class TokenError extends Error {}

/** The JWT's claims (not verified here: the server verifies every request). */
export function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new TokenError("this is not a token (expected three dot-separated parts)");
  let claims;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    claims = JSON.parse(json);
  } catch {
    throw new TokenError("this token cannot be read (its payload is not base64url JSON)");
  }
  if (typeof claims !== "object" || claims === null || typeof claims.role !== "string") {
    throw new TokenError("this token has no role");
  }
  return claims;
}

export class Auth {
  constructor(config) {
    this.enabled = config.authEnabled;
    this.roles = config.roles;
    this.token = null;
    this.claims = null;
    this.listeners = new Set();
    this.dialog = document.getElementById("token-dialog");
    this.expiryTimer = null;
    this.pending = null;
  }

  /** What the principal may do: the role's actions (all of them with auth off). */
  actions() {
    if (!this.enabled) return this.roles.admin;
    return this.claims ? this.roles[this.claims.role] ?? [] : [];
  }

  can(action) {
    return this.actions().includes(action);
  }

  /** Serials the token is limited to, or null for every drone. */
  scope() {
    if (!this.enabled || !this.claims) return null;
    return this.claims.drones === "*" ? null : this.claims.drones ?? [];
  }

  describe() {
    if (!this.enabled) return "auth off · every request is trusted";
    if (!this.claims) return "signed out";
    const scope = this.scope();
    const drones = scope === null ? "all drones" : `${scope.length} drone${scope.length === 1 ? "" : "s"}`;
    return `${this.claims.role} · ${this.claims.sub ?? "?"} · ${drones}`;
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  /** A usable token: the stored one if it has not expired, otherwise whatever the user pastes. */
  async ensure() {
    if (!this.enabled) return null;
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) {
      try {
        this.accept(stored);
        return this.token;
      } catch (error) {
        return this.prompt(error.message);
      }
    }
    return this.prompt("");
  }

  /** Takes a token if it can be read and has not expired; throws TokenError otherwise. */
  accept(token) {
    const trimmed = token.trim().replace(/^Bearer\s+/i, "");
    const claims = claimsOf(trimmed);
    if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
      throw new TokenError(`This token expired at ${new Date(claims.exp * 1000).toLocaleString()}. Paste a new one.`);
    }
    this.token = trimmed;
    this.claims = claims;
    sessionStorage.setItem(STORAGE_KEY, trimmed);
    this.watchExpiry();
    for (const listener of this.listeners) listener(this);
    return trimmed;
  }

  signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    this.token = null;
    this.claims = null;
    clearTimeout(this.expiryTimer);
  }

  watchExpiry() {
    clearTimeout(this.expiryTimer);
    if (typeof this.claims?.exp !== "number") return;
    const due = this.claims.exp * 1000 - Date.now();
    // setTimeout cannot wait longer than ~24.8 days; a token that long-lived is checked daily.
    const wait = Math.min(Math.max(due, 0), 86_400_000);
    this.expiryTimer = setTimeout(() => {
      if (this.claims.exp * 1000 <= Date.now()) {
        this.rejected(`Your token expired at ${new Date(this.claims.exp * 1000).toLocaleTimeString()}. Paste a new one to keep working.`);
      } else {
        this.watchExpiry();
      }
    }, wait);
  }

  /** The server refused the token (401), or it expired: ask for a new one, once at a time. */
  rejected(reason) {
    sessionStorage.removeItem(STORAGE_KEY);
    return this.prompt(reason);
  }

  prompt(reason) {
    if (this.pending) return this.pending;
    const dialog = this.dialog;
    const form = dialog.querySelector("form");
    const input = form.elements.token;
    const error = dialog.querySelector(".error");
    dialog.querySelector(".reason").textContent = reason;
    error.textContent = "";
    input.value = "";
    this.pending = new Promise((resolve) => {
      const submit = (event) => {
        event.preventDefault();
        try {
          this.accept(input.value);
        } catch (problem) {
          error.textContent = problem.message;
          return;
        }
        form.removeEventListener("submit", submit);
        dialog.removeEventListener("cancel", refuseToClose);
        dialog.close();
        this.pending = null;
        resolve(this.token);
      };
      // Without a token nothing can be shown: Escape does not dismiss the dialog.
      const refuseToClose = (event) => event.preventDefault();
      form.addEventListener("submit", submit);
      dialog.addEventListener("cancel", refuseToClose);
      dialog.showModal();
      input.focus();
    });
    return this.pending;
  }
}
