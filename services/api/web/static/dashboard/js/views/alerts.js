// The alert feed: drones' alerts (seed 000) and telemetry anomalies (seed 004), newest first.
// An alert shows where it is in its life (raised → responded → command sent → image received →
// completed) and, once there is one, its image; operators respond to alerts and acknowledge
// anomalies here when their role may.
import { ApiError } from "../api.js";
import { clock, h, reconcile, setData, setText } from "../dom.js";

const FEED_SIZE = 100;
const STEPS = ["raised", "responded", "command", "image", "completed"];

function alertKey(id) {
  return `a:${id}`;
}

function anomalyKey(id) {
  return `t:${id}`;
}

/** Where an image the drone sent is: "here" (the product serves it: shown), "elsewhere" (an
 * http(s) URL of another site: a link the operator may open; the page itself requests nothing
 * from any other origin) or "unusable" (any other scheme, e.g. javascript:, is shown as text). */
function imagePlace(url) {
  let parsed;
  try {
    parsed = new URL(url, window.location.href);
  } catch {
    return "unusable";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "unusable";
  return parsed.origin === window.location.origin ? "here" : "elsewhere";
}

export class AlertsView {
  constructor(store, frame, api, notify, openDrawer) {
    this.store = store;
    this.frame = frame;
    this.api = api;
    this.notify = notify;
    this.openDrawer = openDrawer;
    this.list = document.getElementById("alert-feed");
    this.count = document.querySelector("#alerts-title .count");
    this.openOnly = document.getElementById("alerts-open-only");
    this.cards = new Map(); // key -> {li, parts, kind}
    this.keys = []; // every known key, newest first
    this.dirty = new Set();
    this.full = true;
    this.dialog = document.getElementById("respond-dialog");
    store.on("alert", (id) => this.touch(alertKey(id)));
    store.on("anomaly", (id) => this.touch(anomalyKey(id)));
    store.on("presence", (serial) => this.droneChanged(serial));
    store.on("reset", () => this.rebuild());
    this.openOnly.addEventListener("change", () => this.rebuild());
    this.list.addEventListener("click", (event) => this.clicked(event));
    this.wireDialog();
  }

  touch(key) {
    this.dirty.add(key);
    this.frame.request(this);
  }

  rebuild() {
    this.full = true;
    this.frame.request(this);
  }

  /** A responded alert's command goes out when its drone is connected: its step follows. */
  droneChanged(serial) {
    for (const [key, card] of this.cards) {
      if (card.kind === "alert" && card.serial === serial) this.touch(key);
    }
  }

  item(key) {
    const id = key.slice(2);
    return key.startsWith("a:") ? this.store.alerts.get(id) : this.store.anomalies.get(id);
  }

  isOpen(key) {
    const item = this.item(key);
    if (!item) return false;
    return key.startsWith("a:") ? item.status !== "completed" : !item.resolved;
  }

  render() {
    if (this.full) {
      this.full = false;
      this.dirty.clear();
      const items = [
        ...[...this.store.alerts.values()].map((alert) => [alertKey(alert.alert_id), alert.timestamp]),
        ...[...this.store.anomalies.values()].map((anomaly) => [anomalyKey(anomaly.id), anomaly.timestamp]),
      ];
      items.sort((a, b) => b[1].localeCompare(a[1]));
      this.keys = items.map(([key]) => key);
      this.cards.clear();
    } else {
      for (const key of this.dirty) this.place(key);
    }
    const shown = (this.openOnly.checked ? this.keys.filter((key) => this.isOpen(key)) : this.keys).slice(0, FEED_SIZE);
    const showing = new Set(shown);
    for (const key of shown) {
      if (!this.cards.has(key) || this.dirty.has(key)) this.draw(key);
    }
    for (const key of this.cards.keys()) if (!showing.has(key)) this.cards.delete(key);
    this.dirty.clear();
    reconcile(this.list, shown, new Map(shown.map((key) => [key, this.cards.get(key).li])));
    setText(this.count, this.openOnly.checked ? `${shown.length} open` : `${this.keys.length}`);
  }

  /** Keeps `keys` sorted newest first as items arrive, change or leave the store. */
  place(key) {
    const at = this.keys.indexOf(key);
    if (at >= 0) this.keys.splice(at, 1);
    const item = this.item(key);
    if (!item) {
      this.cards.delete(key);
      return;
    }
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      const other = this.item(this.keys[middle]);
      if ((other?.timestamp ?? "") > item.timestamp) low = middle + 1;
      else high = middle;
    }
    this.keys.splice(low, 0, key);
  }

  draw(key) {
    let card = this.cards.get(key);
    const kind = key.startsWith("a:") ? "alert" : "anomaly";
    if (!card) {
      card = kind === "alert" ? this.alertCard(key) : this.anomalyCard(key);
      this.cards.set(key, card);
    }
    if (kind === "alert") this.drawAlert(card, this.item(key));
    else this.drawAnomaly(card, this.item(key));
  }

  alertCard(key) {
    const parts = {
      badge: h("span", { class: "sev-badge" }),
      what: h("span", { class: "what" }),
      serial: h("button", { type: "button", class: "serial-link" }),
      when: h("time", { class: "when" }),
      steps: h("ol", { class: "steps", "aria-label": "alert lifecycle" }),
      body: h("p", { class: "body" }),
      actions: h("p", { class: "body actions" }),
      image: h("div", { class: "image" }),
      respond: h("button", { type: "button", class: "respond", "data-requires": "respond" }, "Respond"),
    };
    parts.step = {};
    for (const step of STEPS) {
      parts.step[step] = h("li", { dataset: { step } });
      parts.steps.append(parts.step[step]);
    }
    const li = h(
      "li",
      { class: "card alert", dataset: { key, alertId: key.slice(2) } },
      h("div", { class: "top" }, parts.badge, parts.what, parts.serial, parts.when),
      parts.steps,
      parts.body,
      parts.actions,
      parts.image,
      h("div", { class: "row" }, parts.respond)
    );
    return { li, parts, kind: "alert", serial: null };
  }

  drawAlert(card, alert) {
    const { li, parts } = card;
    card.serial = alert.drone_id;
    setData(li, "severity", alert.severity);
    setData(li, "status", alert.status);
    setData(parts.badge, "severity", alert.severity);
    setText(parts.badge, alert.severity);
    setText(parts.what, alert.alert_type.replace(/_/g, " "));
    setText(parts.serial, alert.drone_id);
    parts.serial.dataset.serial = alert.drone_id;
    setText(parts.when, clock(alert.timestamp));
    parts.when.dateTime = alert.timestamp;
    const location = alert.location ? ` · ${alert.location.lat.toFixed(4)}, ${alert.location.lng.toFixed(4)}` : "";
    setText(parts.body, `${alert.description ? `${alert.description} · ` : ""}score ${alert.score}${location}`);
    setText(parts.actions, alert.actions?.length ? `actions: ${alert.actions.join(", ")}` : "");
    parts.actions.hidden = !alert.actions?.length;

    const responded = alert.status !== "pending";
    const completed = alert.status === "completed";
    const droneOnline = this.store.isOnline(alert.drone_id);
    // The command is delivered as soon as the drone is connected (kept until it is); an image
    // back from the drone means it had it.
    const sent = completed || alert.image_received === 1 || (responded && droneOnline);
    const steps = {
      raised: [true, "raised"],
      responded: [responded, "responded"],
      command: [sent, sent || !responded ? "command sent" : "command awaiting drone"],
      image: [alert.image_received === 1, "image received"],
      completed: [completed, "completed"],
    };
    let current = "raised";
    for (const step of STEPS) {
      const [done, label] = steps[step];
      setData(parts.step[step], "done", done);
      setText(parts.step[step], label);
      if (done) current = step;
    }
    for (const step of STEPS) setData(parts.step[step], "current", step === current);
    setData(li, "stage", current);

    this.drawImage(parts.image, alert.image_url);
    parts.respond.hidden = alert.status !== "pending";
  }

  drawImage(holder, url) {
    if ((holder.dataset.url ?? "") === (url ?? "")) return;
    holder.dataset.url = url ?? "";
    holder.replaceChildren();
    if (!url) return;
    const place = imagePlace(url);
    if (place === "here") {
      holder.append(h("img", { class: "evidence", src: url, alt: "image sent by the drone", loading: "lazy" }));
    } else if (place === "elsewhere") {
      holder.append(
        h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "image-link" }, "image (another site) ↗")
      );
    } else {
      holder.append(h("span", { class: "muted image-text" }, `image: ${url}`));
    }
  }

  anomalyCard(key) {
    const parts = {
      badge: h("span", { class: "sev-badge" }),
      what: h("span", { class: "what" }),
      serial: h("button", { type: "button", class: "serial-link" }),
      when: h("time", { class: "when" }),
      body: h("p", { class: "body" }),
      state: h("span", { class: "muted" }),
      acknowledge: h("button", { type: "button", class: "acknowledge", "data-requires": "respond" }, "Acknowledge"),
    };
    const li = h(
      "li",
      { class: "card anomaly", dataset: { key, anomalyId: key.slice(2) } },
      h("div", { class: "top" }, parts.badge, parts.what, parts.serial, parts.when),
      parts.body,
      h("div", { class: "row" }, parts.state, parts.acknowledge)
    );
    return { li, parts, kind: "anomaly", serial: null };
  }

  drawAnomaly(card, anomaly) {
    const { li, parts } = card;
    card.serial = anomaly.drone_serial;
    const severity = anomaly.severity ?? "low";
    setData(li, "severity", severity);
    setData(li, "resolved", Boolean(anomaly.resolved));
    setData(parts.badge, "severity", severity);
    setText(parts.badge, severity);
    setText(parts.what, `anomaly · ${anomaly.sensor_type ?? anomaly.sensor_id}`);
    setText(parts.serial, anomaly.drone_serial ?? "");
    parts.serial.hidden = !anomaly.drone_serial;
    parts.serial.dataset.serial = anomaly.drone_serial ?? "";
    setText(parts.when, clock(anomaly.timestamp));
    parts.when.dateTime = anomaly.timestamp;
    setText(parts.body, anomaly.message ?? `${anomaly.sensor_id}: ${anomaly.value} ${anomaly.unit ?? ""}`);
    setText(parts.state, anomaly.resolved ? `acknowledged ${clock(anomaly.resolved_at)}` : "unacknowledged");
    parts.acknowledge.hidden = Boolean(anomaly.resolved);
  }

  // --- actions -------------------------------------------------------------------------------

  clicked(event) {
    const target = event.target;
    const card = target.closest(".card");
    if (!card) return;
    if (target.classList.contains("serial-link") && target.dataset.serial) this.openDrawer(target.dataset.serial);
    else if (target.classList.contains("respond")) this.respond(card.dataset.alertId);
    else if (target.classList.contains("acknowledge")) this.acknowledge(card.dataset.anomalyId, target);
  }

  async acknowledge(id, button) {
    button.disabled = true;
    try {
      await this.api.request("PUT", `/api/v1/sensors/alerts/${encodeURIComponent(id)}/resolve`);
    } catch (error) {
      // Already acknowledged elsewhere: the event brings the new state.
      if (!(error instanceof ApiError && error.status === 409)) this.notify("error", `Could not acknowledge: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  wireDialog() {
    const form = this.dialog.querySelector("form");
    this.dialog.querySelector(".cancel").addEventListener("click", () => this.dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const actions = form.elements.actions.value
        .split(",")
        .map((action) => action.trim())
        .filter(Boolean);
      const error = this.dialog.querySelector(".error");
      if (!actions.length) {
        error.textContent = "Name at least one action.";
        return;
      }
      const id = this.dialog.dataset.alertId;
      try {
        await this.api.request("PUT", `/api/v1/alerts/${encodeURIComponent(id)}/response`, { actions });
        this.dialog.close();
      } catch (problem) {
        error.textContent = problem.message;
      }
    });
  }

  respond(id) {
    const alert = this.store.alerts.get(id);
    if (!alert) return;
    this.dialog.dataset.alertId = id;
    this.dialog.querySelector(".about").textContent = `${alert.severity} ${alert.alert_type} from ${alert.drone_id} (${id})`;
    this.dialog.querySelector(".error").textContent = "";
    this.dialog.showModal();
  }
}
