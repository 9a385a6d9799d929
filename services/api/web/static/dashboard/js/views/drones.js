// The drone list: one row per drone, sorted by serial, updated in place. An event changes only
// its drone's row (and only the cells whose text changed), in the next rendered frame.
//
// Only the rows in view (and a margin around them) are in the DOM, between two spacer rows
// that keep the scroll height: painting a table costs what it has rows, and a fleet can have
// thousands of drones while a screen shows thirty.
import { ago, h, reconcile, setData, setText } from "../dom.js";

const ROW_HEIGHT = 25; // px; rows are one line (dashboard.css: #drone-table tbody tr)
const OVERSCAN = 20; // rows kept above and below the view
const TICK_MS = 5000; // "last seen" is relative: refreshed this often

function flag(on) {
  return on ? "on" : "off";
}

export class DronesView {
  constructor(store, frame, openDrawer) {
    this.store = store;
    this.frame = frame;
    this.tbody = document.querySelector("#drone-table tbody");
    this.scroller = this.tbody.closest(".scroll");
    this.count = document.querySelector("#drones-title .count");
    this.empty = document.querySelector(".panel.drones .empty");
    this.filterInput = document.getElementById("drone-filter");
    this.above = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: "8" }));
    this.below = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: "8" }));
    this.rows = new Map(); // serial -> {tr, cells}, the rows in the DOM
    this.order = []; // serials that pass the filter, sorted
    this.dirty = new Set();
    this.full = true;
    this.tick = false;
    const request = () => frame.request(this);
    store.on("drone", (serial) => {
      this.dirty.add(serial);
      request();
    });
    store.on("reset", () => this.rebuild());
    this.filterInput.addEventListener("input", () => this.rebuild());
    this.scroller.addEventListener("scroll", request, { passive: true });
    window.addEventListener("resize", request, { passive: true });
    this.tbody.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-serial]");
      if (row) openDrawer(row.dataset.serial);
    });
    this.tbody.addEventListener("keydown", (event) => {
      const row = event.target.closest("tr[data-serial]");
      if (row && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        openDrawer(row.dataset.serial);
      }
    });
    setInterval(() => {
      this.tick = true;
      request();
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
    const changed = new Set(this.dirty);
    this.dirty.clear();
    if (this.full) {
      this.full = false;
      this.order = [...this.store.drones.values()]
        .filter((drone) => this.matches(drone))
        .map((drone) => drone.deviceSerialNumber)
        .sort();
      this.rows.clear();
    } else {
      for (const serial of changed) this.place(serial);
    }
    // The window of rows in view, with a margin.
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.scroller.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const shown = this.order.slice(first, first + visible);
    const keep = new Set(shown);
    for (const serial of this.rows.keys()) if (!keep.has(serial)) this.rows.delete(serial);
    for (const serial of shown) {
      if (!this.rows.has(serial)) this.update(this.createRow(serial), now);
      else if (changed.has(serial)) this.update(this.rows.get(serial), now);
      else if (this.tick) setText(this.rows.get(serial).cells.seen, ago(this.store.drones.get(serial)?.lastSeenAt, now));
    }
    this.tick = false;
    this.above.firstChild.style.height = `${first * ROW_HEIGHT}px`;
    this.below.firstChild.style.height = `${(this.order.length - first - shown.length) * ROW_HEIGHT}px`;
    const elements = new Map([
      ["above", this.above],
      ["below", this.below],
      ...shown.map((serial) => [serial, this.rows.get(serial).tr]),
    ]);
    reconcile(this.tbody, ["above", ...shown, "below"], elements);
    setText(this.count, `${this.store.drones.size}`);
    this.empty.hidden = this.store.drones.size > 0;
  }

  /** Keeps `order` sorted and filtered as one drone arrives, changes or leaves. */
  place(serial) {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.order[middle] < serial) low = middle + 1;
      else high = middle;
    }
    const listed = this.order[low] === serial;
    const drone = this.store.drones.get(serial);
    const wanted = Boolean(drone) && this.matches(drone);
    if (listed && !wanted) this.order.splice(low, 1);
    else if (!listed && wanted) this.order.splice(low, 0, serial);
  }

  update(row, now) {
    const drone = this.store.drones.get(row.serial);
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
      { dataset: { serial }, tabindex: "0", title: `${serial}: open its drawer` },
      h("td", { class: "presence" }, h("span", { class: "presence-dot" }), cells.state),
      h("td", { class: "serial" }, serial),
      cells.name,
      cells.category,
      cells.seen,
      h("td", { class: "stream" }, cells.stream),
      h("td", { class: "ai" }, cells.ai),
      cells.classes
    );
    const row = { serial, tr, cells };
    this.rows.set(serial, row);
    return row;
  }
}
