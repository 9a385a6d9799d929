// The drone list: one row per drone, sorted by serial, updated in place. An event changes only
// its drone's row (and only the cells whose text changed), in the next animation frame.
import { ago, h, reconcile, setData, setText } from "../dom.js";

const MAX_ROWS = 1000; // rows in the DOM; a filter narrows a larger fleet
const TICK_MS = 5000; // "last seen" is relative: refreshed this often

function flag(on) {
  return on ? "on" : "off";
}

export class DronesView {
  constructor(store, frame, openDrawer) {
    this.store = store;
    this.frame = frame;
    this.tbody = document.querySelector("#drone-table tbody");
    this.count = document.querySelector("#drones-title .count");
    this.empty = document.querySelector(".panel.drones .empty");
    this.more = document.querySelector(".panel.drones .more");
    this.filterInput = document.getElementById("drone-filter");
    this.rows = new Map(); // serial -> {tr, cells}
    this.order = []; // serials that pass the filter, sorted
    this.dirty = new Set();
    this.full = true;
    this.tick = false;
    store.on("drone", (serial) => {
      this.dirty.add(serial);
      frame.request(this);
    });
    store.on("reset", () => this.rebuild());
    this.filterInput.addEventListener("input", () => this.rebuild());
    this.tbody.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) openDrawer(row.dataset.serial);
    });
    setInterval(() => {
      this.tick = true;
      frame.request(this);
    }, TICK_MS);
  }

  rebuild() {
    this.full = true;
    this.frame.request(this);
  }

  matches(drone) {
    const filter = this.filterInput.value.trim().toLowerCase();
    if (!filter) return true;
    return (
      drone.deviceSerialNumber.toLowerCase().includes(filter) ||
      (drone.deviceName ?? "").toLowerCase().includes(filter)
    );
  }

  render() {
    const now = Date.now();
    if (this.full) {
      this.full = false;
      this.dirty.clear();
      this.order = [...this.store.drones.values()]
        .filter((drone) => this.matches(drone))
        .map((drone) => drone.deviceSerialNumber)
        .sort();
      for (const serial of this.rows.keys()) {
        if (!this.store.drones.has(serial)) this.rows.delete(serial);
      }
      for (const serial of this.order.slice(0, MAX_ROWS)) this.update(serial, now);
      reconcile(this.tbody, this.order.slice(0, MAX_ROWS), new Map([...this.rows].map(([serial, row]) => [serial, row.tr])));
    } else {
      for (const serial of this.dirty) this.change(serial, now);
      this.dirty.clear();
    }
    if (this.tick) {
      this.tick = false;
      for (const [serial, row] of this.rows) {
        const drone = this.store.drones.get(serial);
        if (drone) setText(row.cells.seen, ago(drone.lastSeenAt, now));
      }
    }
    setText(this.count, `${this.store.drones.size}`);
    this.empty.hidden = this.store.drones.size > 0;
    this.more.hidden = this.order.length <= MAX_ROWS;
    if (!this.more.hidden) setText(this.more, `Showing ${MAX_ROWS} of ${this.order.length}: filter to narrow.`);
  }

  /** One drone changed: update, insert or remove its row. */
  change(serial, now) {
    const drone = this.store.drones.get(serial);
    const at = this.position(serial);
    const listed = at < this.order.length && this.order[at] === serial;
    if (!drone || !this.matches(drone)) {
      if (listed) this.order.splice(at, 1);
      this.rows.get(serial)?.tr.remove();
      this.rows.delete(serial);
      return;
    }
    if (!listed) this.order.splice(at, 0, serial);
    if (at >= MAX_ROWS) return; // past the rows shown
    const row = this.update(serial, now);
    if (!listed || !row.tr.isConnected) {
      const next = this.order.slice(at + 1, MAX_ROWS).find((other) => this.rows.get(other)?.tr.isConnected);
      this.tbody.insertBefore(row.tr, next ? this.rows.get(next).tr : null);
      if (this.tbody.children.length > MAX_ROWS) this.tbody.lastElementChild.remove();
    }
  }

  /** Where `serial` is, or would go, in the sorted order. */
  position(serial) {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.order[middle] < serial) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  update(serial, now) {
    const drone = this.store.drones.get(serial);
    let row = this.rows.get(serial);
    if (!row) {
      row = this.createRow(serial);
      this.rows.set(serial, row);
    }
    const { tr, cells } = row;
    setData(tr, "online", Boolean(drone.online));
    setText(cells.state, drone.online ? "online" : "offline");
    setText(cells.name, drone.deviceName ?? "");
    setText(cells.category, drone.deviceCategory ?? "");
    setText(cells.seen, ago(drone.lastSeenAt, now));
    setText(cells.stream, flag(drone.streamIsOn));
    cells.stream.classList.toggle("on", Boolean(drone.streamIsOn));
    setText(cells.ai, flag(drone.aiDetectionEnabled));
    cells.ai.classList.toggle("on", Boolean(drone.aiDetectionEnabled));
    setText(cells.classes, (drone.detectionClasses ?? []).join(", "));
    return row;
  }

  createRow(serial) {
    const cells = {
      state: h("span", { class: "state-text" }),
      name: h("td", { class: "name" }),
      category: h("td", { class: "category" }),
      seen: h("td", { class: "seen" }),
      stream: h("span", { class: "flag" }),
      ai: h("span", { class: "flag" }),
      classes: h("td", { class: "classes" }),
    };
    const tr = h(
      "tr",
      { dataset: { serial } },
      h("td", { class: "presence" }, h("span", { class: "presence-dot" }), cells.state),
      h("td", { class: "serial" }, serial),
      cells.name,
      cells.category,
      cells.seen,
      h("td", { class: "stream" }, cells.stream),
      h("td", { class: "ai" }, cells.ai),
      cells.classes
    );
    return { tr, cells };
  }
}
