// Every event the page receives, newest first, filtered by kind and by drone serial, with a
// pause button. Memory is bounded however long the page stays open: the newest RETAINED events
// are kept and the newest ROWS matching the filters are in the DOM.
import { clock, h, kindOf } from "../dom.js";

const RETAINED = 2000;
const ROWS = 100; // in the DOM

function short(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** One line about what an event says. */
export function summary(envelope) {
  const data = envelope.data ?? {};
  const name = envelope.event;
  if (name === "drone.updated" && data.changes) {
    return Object.entries(data.changes)
      .map(([field, change]) => `${field}: ${short(change.old)} → ${short(change.new)}`)
      .join(", ");
  }
  if (name === "drone.created") return `registered${data.full?.deviceName ? `: ${data.full.deviceName}` : ""}`;
  if (name === "drone.deleted") return "deleted";
  if (name === "drone.online" || name === "drone.offline") return data.reason ?? "";
  if (name.startsWith("drone.") && data.changes) {
    const [field, change] = Object.entries(data.changes)[0] ?? [];
    return field ? `${field}: ${short(change.new)}` : "";
  }
  if (name.startsWith("alert.") && data.full) {
    const alert = data.full;
    return `${alert.severity} ${alert.alert_type} ${alert.alert_id} · ${alert.status}`;
  }
  if (name.startsWith("task.") && data.task) {
    const task = data.task;
    return `${task.task_type} ${task.task_id} · ${task.status}${data.reason ? ` · ${data.reason}` : ""}`;
  }
  if (name === "telemetry.anomaly") return data.resolved ? `acknowledged: ${data.message}` : data.message ?? "";
  return short(data);
}

export class EventLogView {
  constructor(frame, openDrawer) {
    this.frame = frame;
    this.list = document.getElementById("event-log");
    this.count = document.querySelector("#log-title .count");
    this.pauseButton = document.getElementById("log-pause");
    this.serialInput = document.getElementById("log-serial");
    this.kindBoxes = [...document.querySelectorAll("#log-kinds input")];
    this.retained = []; // newest last
    this.fresh = []; // arrived since the last render
    this.received = 0;
    this.paused = false;
    this.missedWhilePaused = 0;
    this.full = true;
    this.readFilters();
    const refilter = () => {
      this.readFilters();
      this.full = true;
      frame.request(this);
    };
    for (const box of this.kindBoxes) box.addEventListener("change", refilter);
    this.serialInput.addEventListener("input", refilter);
    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    this.list.addEventListener("click", (event) => {
      if (event.target.classList.contains("s") && event.target.textContent) openDrawer(event.target.textContent);
    });
  }

  readFilters() {
    this.kinds = new Set(this.kindBoxes.filter((box) => box.checked).map((box) => box.value));
    this.serial = this.serialInput.value.trim().toLowerCase();
  }

  matches(envelope) {
    if (!this.kinds.has(kindOf(envelope.event))) return false;
    return !this.serial || (envelope.serial ?? "").toLowerCase().includes(this.serial);
  }

  add(envelope) {
    this.received += 1;
    this.retained.push(envelope);
    if (this.retained.length > RETAINED + RETAINED / 10) this.retained.splice(0, this.retained.length - RETAINED);
    if (this.paused) {
      this.missedWhilePaused += 1;
      this.pauseButton.textContent = `Resume (${this.missedWhilePaused} new)`;
      return;
    }
    this.fresh.push(envelope);
    if (this.fresh.length > ROWS) this.fresh.splice(0, this.fresh.length - ROWS);
    this.frame.request(this);
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume" : "Pause";
    this.missedWhilePaused = 0;
    if (!paused) {
      this.full = true;
      this.frame.request(this);
    }
  }

  render() {
    if (this.full) {
      this.full = false;
      this.fresh = [];
      const rows = [];
      for (let i = this.retained.length - 1; i >= 0 && rows.length < ROWS; i -= 1) {
        if (this.matches(this.retained[i])) rows.push(this.row(this.retained[i]));
      }
      this.list.replaceChildren(...rows);
    } else if (this.fresh.length) {
      const fragment = document.createDocumentFragment();
      for (let i = this.fresh.length - 1; i >= 0; i -= 1) {
        if (this.matches(this.fresh[i])) fragment.append(this.row(this.fresh[i]));
      }
      this.fresh = [];
      this.list.prepend(fragment);
      let extra = this.list.children.length - ROWS;
      while (extra-- > 0) this.list.lastElementChild.remove();
    }
    this.count.textContent = `${this.received} received`;
  }

  row(envelope) {
    return h(
      "li",
      { dataset: { kind: kindOf(envelope.event), eventId: envelope.id, serial: envelope.serial ?? "" }, title: envelope.id },
      h("time", { class: "t", datetime: envelope.timestamp }, clock(envelope.timestamp)),
      h("span", { class: "n" }, envelope.event),
      h("span", { class: "s" }, envelope.serial ?? ""),
      h("span", { class: "d" }, summary(envelope))
    );
  }
}
