// The fleet at a glance: drones online, open alerts by severity, tasks queued and running, tasks
// failed and anomalies in the last hour, telemetry readings per second.
import { h, setText } from "../dom.js";

const HOUR_MS = 3_600_000;
const POLL_MS = 5000;
const SEVERITIES = ["critical", "high", "medium", "low"];
// Counts that change faster than this cannot be read anyway; recounting is not free.
const MIN_RENDER_INTERVAL_MS = 250;

export class KpiView {
  constructor(store, frame, api) {
    this.store = store;
    this.frame = frame;
    this.api = api;
    this.tiles = {};
    for (const tile of document.querySelectorAll("#kpis .kpi")) {
      this.tiles[tile.dataset.kpi] = { value: tile.querySelector(".value"), sub: tile.querySelector(".sub") };
    }
    const severities = this.tiles.alerts.sub;
    this.severity = {};
    for (const name of SEVERITIES) {
      this.severity[name] = h("span", { class: `sev ${name}`, title: name }, "0");
      severities.append(this.severity[name], " ");
    }
    this.readings = null; // {total, at}
    this.rate = null;
    this.renderedAt = -Infinity;
    this.deferred = false;
    const dirty = () => this.request();
    for (const topic of ["drone", "alert", "anomaly", "task", "reset"]) store.on(topic, dirty);
  }

  start() {
    this.poll();
    setInterval(() => this.poll(), POLL_MS);
  }

  /** Readings per second: no event is published for a normal reading, so the count is polled. */
  async poll() {
    try {
      const stats = await this.api.get("/api/v1/monitoring/stats");
      const now = performance.now();
      if (this.readings && now > this.readings.at) {
        const delta = stats.sensor_data_total - this.readings.total;
        this.rate = Math.max(0, (delta * 1000) / (now - this.readings.at));
      }
      this.readings = { total: stats.sensor_data_total, at: now };
      this.activeSensors = stats.active_sensors_count;
    } catch (error) {
      this.rate = null;
      console.warn("monitoring stats unavailable", error.message);
    }
    this.request();
  }

  request() {
    const wait = this.renderedAt + MIN_RENDER_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.frame.request(this);
    } else if (!this.deferred) {
      this.deferred = true;
      setTimeout(() => {
        this.deferred = false;
        this.frame.request(this);
      }, wait);
    }
  }

  render() {
    this.renderedAt = performance.now();
    const store = this.store;
    let online = 0;
    for (const drone of store.drones.values()) if (drone.online) online += 1;
    setText(this.tiles.drones.value, `${online} / ${store.drones.size}`);
    setText(this.tiles.drones.sub, `${store.drones.size - online} offline`);

    const open = store.openAlertCounts();
    const total = SEVERITIES.reduce((sum, name) => sum + open[name], 0);
    setText(this.tiles.alerts.value, store.truncated.openAlerts ? `${total}+` : String(total));
    for (const name of SEVERITIES) setText(this.severity[name], `${open[name]} ${name}`);

    const tasks = store.taskCounts();
    const plus = store.truncated.activeTasks ? "+" : "";
    setText(this.tiles.tasks.value, `${tasks.pending}${plus} · ${tasks.dispatched + tasks.processing}${plus}`);
    setText(this.tiles.tasks.sub, `${tasks.dispatched} dispatched, ${tasks.processing} processing`);

    const hourAgo = Date.now() - HOUR_MS;
    setText(this.tiles.failed.value, String(store.failedSince(hourAgo)));
    setText(this.tiles.anomalies.value, String(store.anomaliesSince(hourAgo)));
    setText(this.tiles.readings.value, this.rate === null ? "–" : this.rate.toFixed(this.rate < 10 ? 1 : 0));
    setText(this.tiles.readings.sub, this.activeSensors === undefined ? "" : `${this.activeSensors} sensors active (5 min)`);
  }
}
