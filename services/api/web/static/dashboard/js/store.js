// What the page knows about the fleet: loaded over REST, then kept current by events. Views
// subscribe to the keys that changed ("drone" SN1, "task" t-9, ...) and render in the next frame.
// Everything is bounded: a page left open for hours holds the fleet, the open alerts and
// active tasks, and only the most recent of everything else.
import { kindOf } from "./dom.js";

const MAX_ALERTS = 500; // newest alerts kept for the feed (open ones are counted separately)
const MAX_ANOMALIES = 2000;
const MAX_FINISHED_TASKS = 600;
const MAX_ACTIVE_TASKS = 20_000;
const DRONE_EVENTS = 30; // recent events kept per drone, for its drawer
const HOUR_MS = 3_600_000;
// Collections are trimmed back to their bound once they are this far over it, not on every event.
const SLACK = 100;

export const ACTIVE_TASK = new Set(["pending", "dispatched", "processing"]);
const OPEN_ALERT = new Set(["pending", "responded"]);

// Timeouts the worker enforces (README "Processing tasks"): how a failure says it was one.
const TIMEOUT_REASON = /not acknowledged|no status update|still pending at its deadline/i;

/** The task board's column for a task. */
export function columnOf(task) {
  switch (task.status) {
    case "pending":
      return "queued";
    case "dispatched":
      return "dispatched";
    case "processing":
      return "running";
    case "completed":
      return "done";
    default:
      return TIMEOUT_REASON.test(task.error_message ?? "") ? "timed-out" : "failed";
  }
}

function newest(a, b) {
  return (b.timestamp ?? "").localeCompare(a.timestamp ?? "");
}

export class Store {
  constructor() {
    this.drones = new Map(); // serial -> drone (seed 001's JSON)
    this.alerts = new Map(); // alert_id -> alert, the newest MAX_ALERTS
    this.openAlerts = new Map(); // alert_id -> severity, every open alert the page knows of
    this.anomalies = new Map(); // id -> anomaly alert (telemetry.anomaly's data)
    this.tasks = new Map(); // task_id -> task
    this.failedAt = new Map(); // task_id -> when it failed (ms), for the last hour's count
    this.droneEvents = new Map(); // serial -> its recent event envelopes, newest last
    this.presence = new Map(); // serial -> online, from presence events (registered or not)
    this.truncated = { openAlerts: false, activeTasks: false };
    this.finishedSinceTrim = 0;
    this.listeners = new Map();
  }

  on(topic, listener) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, []);
    this.listeners.get(topic).push(listener);
  }

  emit(topic, value) {
    for (const listener of this.listeners.get(topic) ?? []) listener(value);
  }

  // --- loading -------------------------------------------------------------------------------

  /** The whole state over REST (at start, and after events were lost). */
  async load(api) {
    const since = new Date(Date.now() - HOUR_MS).toISOString();
    const tasks = (status) => api.all("/api/v1/processing-tasks", "tasks", { status }, 5000);
    const [drones, recent, pending, responded, anomalies, queued, dispatched, running, latest, failed] =
      await Promise.all([
        api.all("/api/v1/drones", "drones"),
        api.get("/api/v1/alerts", { limit: 100 }),
        api.all("/api/v1/alerts", "alerts", { status: "pending" }, 5000),
        api.all("/api/v1/alerts", "alerts", { status: "responded" }, 5000),
        api.all("/api/v1/sensors/alerts", "alerts", { since }, MAX_ANOMALIES),
        tasks("pending"),
        tasks("dispatched"),
        tasks("processing"),
        api.get("/api/v1/processing-tasks", { limit: 200 }),
        api.all("/api/v1/processing-tasks", "tasks", { status: "failed", since }, 2000),
      ]);
    this.drones = new Map(drones.items.map((drone) => [drone.deviceSerialNumber, drone]));
    this.alerts = new Map();
    this.openAlerts = new Map();
    for (const alert of [...pending.items, ...responded.items, ...recent.alerts]) this.putAlert(alert);
    this.trimAlerts();
    this.truncated.openAlerts = pending.items.length < pending.total || responded.items.length < responded.total;
    this.anomalies = new Map(anomalies.items.map((anomaly) => [anomaly.id, anomaly]));
    this.tasks = new Map();
    this.failedAt = new Map();
    for (const task of [...queued.items, ...dispatched.items, ...running.items, ...latest.tasks, ...failed.items]) {
      this.putTask(task);
    }
    this.truncated.activeTasks = [queued, dispatched, running].some((page) => page.items.length < page.total);
    this.finishedSinceTrim = SLACK;
    this.trimTasks();
    this.emit("reset");
  }

  // --- events --------------------------------------------------------------------------------

  apply(envelope) {
    const name = envelope.event;
    const data = envelope.data ?? {};
    switch (kindOf(name)) {
      case "drone":
        this.applyDrone(name, envelope.serial, data);
        break;
      case "alert":
        if (data.full) this.upsertAlert(data.full);
        break;
      case "telemetry":
        if (data.id) this.upsertAnomaly(data);
        break;
      case "task":
        if (data.task) this.upsertTask(data.task, data.reason);
        break;
      case "system":
        this.emit("system", envelope);
        break;
      default:
        break;
    }
    if (envelope.serial) this.rememberEvent(envelope);
    this.emit("event", envelope);
  }

  applyDrone(name, serial, data) {
    if (name === "drone.deleted") {
      if (this.drones.delete(serial)) this.emit("drone", serial);
    } else if (name === "drone.online" || name === "drone.offline") {
      // Any drone may connect; only a registered one has a row.
      this.presence.set(serial, Boolean(data.online));
      this.emit("presence", serial);
      const drone = this.drones.get(serial);
      if (drone) {
        this.drones.set(serial, { ...drone, online: Boolean(data.online), lastSeenAt: data.lastSeenAt ?? drone.lastSeenAt });
        this.emit("drone", serial);
      }
    } else if (data.full) {
      this.drones.set(serial, data.full);
      this.emit("drone", serial);
    }
  }

  /** `subscribe {snapshot: true}`: a drone's current state (null: it does not exist). */
  applySnapshot(snapshot) {
    if (!snapshot || !snapshot.serial) return;
    if (snapshot.state) this.drones.set(snapshot.serial, snapshot.state);
    else this.drones.delete(snapshot.serial);
    this.emit("drone", snapshot.serial);
  }

  rememberEvent(envelope) {
    let events = this.droneEvents.get(envelope.serial);
    if (!events) {
      events = [];
      this.droneEvents.set(envelope.serial, events);
    }
    events.push(envelope);
    if (events.length > DRONE_EVENTS) events.splice(0, events.length - DRONE_EVENTS);
  }

  // --- alerts and anomalies ------------------------------------------------------------------

  putAlert(alert) {
    this.alerts.set(alert.alert_id, alert);
    if (OPEN_ALERT.has(alert.status)) this.openAlerts.set(alert.alert_id, alert.severity);
    else this.openAlerts.delete(alert.alert_id);
  }

  upsertAlert(alert) {
    this.putAlert(alert);
    if (this.alerts.size > MAX_ALERTS + SLACK) this.trimAlerts();
    this.emit("alert", alert.alert_id);
  }

  trimAlerts() {
    if (this.alerts.size <= MAX_ALERTS) return;
    const keep = [...this.alerts.values()].sort(newest).slice(0, MAX_ALERTS);
    const kept = new Set(keep.map((alert) => alert.alert_id));
    for (const id of this.alerts.keys()) {
      if (!kept.has(id)) {
        this.alerts.delete(id);
        this.emit("alert", id);
      }
    }
  }

  upsertAnomaly(anomaly) {
    this.anomalies.set(anomaly.id, anomaly);
    if (this.anomalies.size > MAX_ANOMALIES + SLACK) {
      const oldest = [...this.anomalies.values()].sort(newest).slice(MAX_ANOMALIES);
      for (const stale of oldest) {
        this.anomalies.delete(stale.id);
        this.emit("anomaly", stale.id);
      }
    }
    this.emit("anomaly", anomaly.id);
  }

  /** Whether a drone is connected: its presence events, else its registered state. */
  isOnline(serial) {
    return this.presence.get(serial) ?? Boolean(this.drones.get(serial)?.online);
  }

  openAlertCounts() {
    const counts = { critical: 0, high: 0, medium: 0, low: 0 };
    for (const severity of this.openAlerts.values()) counts[severity] = (counts[severity] ?? 0) + 1;
    return counts;
  }

  anomaliesSince(ms) {
    let count = 0;
    for (const anomaly of this.anomalies.values()) if (Date.parse(anomaly.timestamp) >= ms) count += 1;
    return count;
  }

  // --- tasks ---------------------------------------------------------------------------------

  putTask(task, reason = undefined) {
    const known = this.tasks.get(task.task_id);
    // The reason travels with the event; the task's own error_message says the same once set.
    const failure = reason ?? task.error_message ?? known?.error_message ?? null;
    this.tasks.set(task.task_id, failure ? { ...task, error_message: failure } : task);
    if (!ACTIVE_TASK.has(task.status) && (!known || ACTIVE_TASK.has(known.status))) this.finishedSinceTrim += 1;
    if (task.status === "failed") {
      this.failedAt.set(task.task_id, Date.parse(task.finished_at ?? task.updated_at) || Date.now());
    }
  }

  upsertTask(task, reason) {
    this.putTask(task, reason);
    this.trimTasks();
    this.emit("task", task.task_id);
  }

  trimTasks() {
    if (this.finishedSinceTrim < SLACK) return;
    this.finishedSinceTrim = 0;
    const finished = [];
    let active = 0;
    for (const task of this.tasks.values()) {
      if (ACTIVE_TASK.has(task.status)) active += 1;
      else finished.push(task);
    }
    const excess = finished.length - MAX_FINISHED_TASKS;
    if (excess > 0) {
      finished.sort((a, b) => (a.updated_at ?? "").localeCompare(b.updated_at ?? ""));
      for (const task of finished.slice(0, excess)) {
        this.tasks.delete(task.task_id);
        this.emit("task", task.task_id);
      }
    }
    this.truncated.activeTasks ||= active > MAX_ACTIVE_TASKS;
  }

  taskCounts() {
    const counts = { pending: 0, dispatched: 0, processing: 0 };
    for (const task of this.tasks.values()) if (task.status in counts) counts[task.status] += 1;
    return counts;
  }

  failedSince(ms) {
    let count = 0;
    for (const [id, at] of this.failedAt) {
      if (at >= ms) count += 1;
      else this.failedAt.delete(id);
    }
    return count;
  }
}
