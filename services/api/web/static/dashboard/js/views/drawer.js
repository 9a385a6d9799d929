// One drone up close: its configuration (editable by roles that manage drones: the edit goes
// through REST, and the change comes back as an event), its telemetry as sparklines with the
// anomalies marked, and its recent events.
import { ApiError } from "../api.js";
import { ago, clock, h, setData, setText } from "../dom.js";
import { sparkline } from "../sparkline.js";
import { summary } from "./eventlog.js";

const POINTS_PER_SENSOR = 200;
// Normal readings publish no event, so an open drawer asks for new ones this often.
const TELEMETRY_POLL_MS = 3000;

function formValues(form) {
  const classes = form.elements.detectionClasses.value
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  return {
    deviceName: form.elements.deviceName.value,
    deviceCategory: form.elements.deviceCategory.value,
    streamIsOn: form.elements.streamIsOn.checked,
    aiDetectionEnabled: form.elements.aiDetectionEnabled.checked,
    detectionClasses: classes,
  };
}

function droneValues(drone) {
  return {
    deviceName: drone.deviceName ?? "",
    deviceCategory: drone.deviceCategory ?? "",
    streamIsOn: Boolean(drone.streamIsOn),
    aiDetectionEnabled: Boolean(drone.aiDetectionEnabled),
    detectionClasses: drone.detectionClasses ?? [],
  };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export class DrawerView {
  constructor(store, frame, api, auth) {
    this.store = store;
    this.frame = frame;
    this.api = api;
    this.auth = auth;
    this.root = document.getElementById("drawer");
    this.title = document.getElementById("drawer-title");
    this.presence = this.root.querySelector("header .presence");
    this.form = document.getElementById("drone-form");
    this.status = this.form.querySelector(".form-status");
    this.sparklines = this.root.querySelector(".sparklines");
    this.recent = this.root.querySelector(".recent ol");
    this.serial = null;
    this.shownValues = null; // what the form showed when last filled from the drone
    this.awaiting = null; // a saved edit whose event has not arrived yet
    this.series = new Map(); // sensor_id -> {type, unit, points: [...], ids: Set}
    this.latestReading = null; // the newest reading polled: the next poll asks for what follows
    this.loading = null; // the serial whose readings are being fetched
    this.poller = null;
    this.dirty = { drone: false, events: false, telemetry: false };
    this.root.querySelector(".close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.root.hidden && !document.querySelector("dialog[open]")) this.close();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    document.getElementById("delete-drone").addEventListener("click", () => this.remove());
    store.on("drone", (serial) => serial === this.serial && this.mark("drone"));
    store.on("event", (envelope) => envelope.serial === this.serial && this.eventArrived(envelope));
    store.on("anomaly", (id) => this.anomalyArrived(id));
    store.on("reset", () => this.serial && this.mark("drone"));
  }

  mark(part) {
    this.dirty[part] = true;
    this.frame.request(this);
  }

  open(serial) {
    if (!serial) return;
    this.serial = serial;
    this.shownValues = null;
    this.awaiting = null;
    this.series = new Map();
    this.latestReading = null;
    this.root.hidden = false;
    this.root.dataset.serial = serial;
    setText(this.title, serial);
    this.setStatus("", "");
    this.sparklines.replaceChildren(h("p", { class: "muted" }, "Loading telemetry…"));
    this.dirty = { drone: true, events: true, telemetry: false };
    this.frame.request(this);
    clearInterval(this.poller);
    this.loadTelemetry(serial);
    this.poller = setInterval(() => this.loadTelemetry(serial), TELEMETRY_POLL_MS);
  }

  close() {
    this.root.hidden = true;
    this.serial = null;
    clearInterval(this.poller);
    this.poller = null;
  }

  render() {
    if (!this.serial) return;
    if (this.dirty.drone) this.renderDrone();
    if (this.dirty.events) this.renderEvents();
    if (this.dirty.telemetry) this.renderTelemetry();
    this.dirty = { drone: false, events: false, telemetry: false };
  }

  // --- configuration -------------------------------------------------------------------------

  renderDrone() {
    const drone = this.store.drones.get(this.serial);
    const editable = this.auth.can("manage_drones") && Boolean(drone);
    for (const element of this.form.elements) if (element.name) element.disabled = !editable;
    if (!drone) {
      setText(this.presence, "not registered");
      setData(this.presence, "online", this.store.isOnline(this.serial));
      return;
    }
    setData(this.presence, "online", Boolean(drone.online));
    setText(this.presence, `${drone.online ? "online" : "offline"} · last seen ${ago(drone.lastSeenAt)}`);
    const values = droneValues(drone);
    const edited = this.shownValues && !same(formValues(this.form), this.shownValues);
    if (!edited) {
      this.fill(values);
    } else if (!same(values, this.shownValues)) {
      this.setStatus("warn", "This drone changed while you were editing; saving sends only the fields you changed.");
    }
  }

  fill(values) {
    const elements = this.form.elements;
    elements.deviceName.value = values.deviceName;
    elements.deviceCategory.value = values.deviceCategory;
    elements.streamIsOn.checked = values.streamIsOn;
    elements.aiDetectionEnabled.checked = values.aiDetectionEnabled;
    elements.detectionClasses.value = values.detectionClasses.join(", ");
    this.shownValues = formValues(this.form);
  }

  setStatus(kind, text) {
    this.status.dataset.kind = kind;
    setText(this.status, text);
  }

  async save() {
    const drone = this.store.drones.get(this.serial);
    if (!drone) return;
    const wanted = formValues(this.form);
    if (wanted.detectionClasses.some((value) => !Number.isInteger(value) || value < 0)) {
      this.setStatus("error", "Detection classes are whole numbers of 0 or more, separated by commas.");
      return;
    }
    // Only what the user edited: a field someone else changed meanwhile is left as they set it.
    const base = this.shownValues ?? droneValues(drone);
    const changes = {};
    for (const [field, value] of Object.entries(wanted)) {
      if (!same(value, base[field])) changes[field] = value;
    }
    if (!Object.keys(changes).length) {
      this.setStatus("", "Nothing to save.");
      return;
    }
    const serial = this.serial;
    // The event can arrive before the response does: it is noted either way.
    const pending = { sent: false, event: null };
    this.awaiting = pending;
    this.setStatus("", "Saving…");
    try {
      await this.api.request("PATCH", `/api/v1/drones/sn/${encodeURIComponent(serial)}`, changes);
    } catch (error) {
      if (this.awaiting === pending) this.awaiting = null;
      this.setStatus("error", error instanceof ApiError ? `${error.error}: ${error.detail}` : error.message);
      return;
    }
    pending.sent = true;
    if (serial !== this.serial || this.awaiting !== pending) return;
    this.shownValues = null; // the event fills the form
    if (pending.event) this.applied(pending.event);
    else this.setStatus("", "Saved; waiting for its event…");
  }

  applied(envelope) {
    this.awaiting = null;
    this.shownValues = null;
    this.mark("drone");
    this.setStatus("ok", `Applied: event ${envelope.id} (${summary(envelope)}).`);
  }

  async remove() {
    const drone = this.store.drones.get(this.serial);
    if (!drone || !window.confirm(`Delete drone ${drone.deviceSerialNumber}? Its events stop.`)) return;
    try {
      await this.api.request("DELETE", `/api/v1/drones/${encodeURIComponent(drone.id)}`);
      this.setStatus("ok", "Deleted.");
    } catch (error) {
      this.setStatus("error", error.message);
    }
  }

  // --- events --------------------------------------------------------------------------------

  eventArrived(envelope) {
    if (this.awaiting && envelope.event === "drone.updated") {
      if (this.awaiting.sent) this.applied(envelope);
      else this.awaiting.event = envelope;
    }
    this.mark("events");
  }

  renderEvents() {
    const events = this.store.droneEvents.get(this.serial) ?? [];
    const rows = [];
    for (let i = events.length - 1; i >= 0; i -= 1) {
      const envelope = events[i];
      rows.push(
        h(
          "li",
          { dataset: { eventId: envelope.id }, title: envelope.id },
          h("time", { class: "t" }, clock(envelope.timestamp)),
          h("span", { class: "n" }, envelope.event),
          h("span", { class: "d" }, summary(envelope))
        )
      );
    }
    this.recent.replaceChildren(...(rows.length ? rows : [h("li", { class: "muted" }, "No events since this page opened.")]));
  }

  // --- telemetry -----------------------------------------------------------------------------

  async loadTelemetry(serial) {
    if (this.loading === serial) return;
    this.loading = serial;
    let page;
    try {
      page = await this.api.get("/api/v1/sensors/data", {
        drone_serial: serial,
        since: this.latestReading ?? undefined,
        limit: 500,
      });
    } catch (error) {
      if (serial === this.serial) this.sparklines.replaceChildren(h("p", { class: "muted" }, `Telemetry unavailable: ${error.message}`));
      return;
    } finally {
      if (this.loading === serial) this.loading = null;
    }
    if (serial !== this.serial) return;
    // Newest first from the API; oldest first here.
    for (const reading of page.readings.slice().reverse()) {
      this.addReading(reading);
      if (!this.latestReading || reading.timestamp > this.latestReading) this.latestReading = reading.timestamp;
    }
    this.mark("telemetry");
  }

  addReading(reading) {
    let series = this.series.get(reading.sensor_id);
    if (!series) {
      series = { type: reading.sensor_type, unit: reading.unit, points: [], ids: new Set() };
      this.series.set(reading.sensor_id, series);
    }
    if (series.ids.has(reading.id)) {
      // Already here (an anomaly event can come before the poll): keep what the event said.
      return;
    }
    series.ids.add(reading.id);
    const at = Date.parse(reading.timestamp);
    const point = {
      at,
      value: reading.value,
      anomaly: Boolean(reading.is_anomaly ?? reading.severity),
      label: reading.message ?? `${reading.value} ${reading.unit ?? ""}`,
    };
    const points = series.points;
    let index = points.length;
    while (index > 0 && points[index - 1].at > at) index -= 1;
    points.splice(index, 0, point);
    if (points.length > POINTS_PER_SENSOR) points.splice(0, points.length - POINTS_PER_SENSOR);
  }

  anomalyArrived(id) {
    const anomaly = this.store.anomalies.get(id);
    if (!anomaly || anomaly.drone_serial !== this.serial) return;
    this.addReading({ ...anomaly, is_anomaly: true });
    this.mark("telemetry");
    // The readings around it published nothing: fetch them now rather than at the next poll.
    this.loadTelemetry(this.serial);
  }

  renderTelemetry() {
    if (!this.series.size) {
      this.sparklines.replaceChildren(h("p", { class: "muted" }, "No readings from this drone."));
      return;
    }
    const blocks = [];
    for (const [sensorId, series] of [...this.series].sort(([a], [b]) => a.localeCompare(b))) {
      const last = series.points[series.points.length - 1];
      const anomalies = series.points.filter((point) => point.anomaly).length;
      blocks.push(
        h(
          "div",
          { class: "sparkline", dataset: { sensorId, anomalies } },
          h(
            "div",
            { class: "head" },
            h("span", { class: "name" }, sensorId),
            h("span", { class: "muted" }, series.type ?? ""),
            anomalies ? h("span", { class: "sev high" }, `${anomalies} anomal${anomalies === 1 ? "y" : "ies"}`) : null,
            h("span", { class: "last" }, last ? `${last.value} ${series.unit ?? ""}` : "")
          ),
          sparkline(series.points)
        )
      );
    }
    this.sparklines.replaceChildren(...blocks);
  }
}
