// The task board: queued → dispatched → running → done, or failed / timed out with the reason.
// A task's card moves to its new column when its event arrives; each column shows its most
// recently changed tasks first.
import { clock, h, reconcile, setData, setText } from "../dom.js";
import { columnOf } from "../store.js";

const CARDS_PER_COLUMN = 50;
const CANCELLABLE = new Set(["pending", "dispatched"]);

export class TasksView {
  constructor(store, frame, api, notify, openDrawer) {
    this.store = store;
    this.frame = frame;
    this.api = api;
    this.notify = notify;
    this.columns = new Map(); // column -> {list, count, ids: task ids, most recent first}
    for (const column of document.querySelectorAll("#task-board .column")) {
      this.columns.set(column.dataset.column, {
        list: column.querySelector("ol"),
        count: column.querySelector(".count"),
        ids: [],
      });
    }
    this.placed = new Map(); // task id -> column
    this.cards = new Map(); // task id -> {li, parts}
    this.dirty = new Set();
    this.full = true;
    store.on("task", (id) => {
      this.dirty.add(id);
      frame.request(this);
    });
    store.on("reset", () => {
      this.full = true;
      frame.request(this);
    });
    document.getElementById("task-board").addEventListener("click", (event) => {
      const card = event.target.closest(".task");
      if (!card) return;
      if (event.target.classList.contains("cancel-task")) this.cancel(card.dataset.taskId, event.target);
      else if (event.target.classList.contains("drone")) openDrawer(event.target.textContent);
    });
  }

  render() {
    const touched = new Set();
    if (this.full) {
      this.full = false;
      this.dirty.clear();
      this.placed.clear();
      for (const column of this.columns.values()) column.ids = [];
      const tasks = [...this.store.tasks.values()].sort((a, b) => (b.updated_at ?? "").localeCompare(a.updated_at ?? ""));
      for (const task of tasks) {
        const name = columnOf(task);
        this.columns.get(name).ids.push(task.task_id);
        this.placed.set(task.task_id, name);
      }
      this.cards.clear();
      for (const name of this.columns.keys()) touched.add(name);
    } else {
      for (const id of this.dirty) this.move(id, touched);
    }
    for (const name of touched) {
      const column = this.columns.get(name);
      const shown = column.ids.slice(0, CARDS_PER_COLUMN);
      for (const id of shown) if (!this.cards.has(id) || this.dirty.has(id)) this.draw(id);
      reconcile(column.list, shown, new Map(shown.map((id) => [id, this.cards.get(id).li])));
      setText(column.count, String(column.ids.length));
    }
    this.dirty.clear();
    // Cards no column shows any more are let go.
    if (this.cards.size > CARDS_PER_COLUMN * this.columns.size * 2) {
      for (const [id, card] of this.cards) if (!card.li.isConnected) this.cards.delete(id);
    }
  }

  /** A task changed: to the front of its (maybe new) column. */
  move(id, touched) {
    const before = this.placed.get(id);
    if (before) {
      const ids = this.columns.get(before).ids;
      ids.splice(ids.indexOf(id), 1);
      touched.add(before);
    }
    const task = this.store.tasks.get(id);
    if (!task) {
      this.placed.delete(id);
      this.cards.delete(id);
      return;
    }
    const now = columnOf(task);
    this.columns.get(now).ids.unshift(id);
    this.placed.set(id, now);
    touched.add(now);
  }

  draw(id) {
    const task = this.store.tasks.get(id);
    let card = this.cards.get(id);
    if (!card) {
      const parts = {
        type: h("span", { class: "type" }),
        prio: h("span", { class: "prio" }),
        drone: h("button", { type: "button", class: "serial-link drone" }),
        when: h("time", { class: "when" }),
        attempts: h("span", { class: "attempts" }),
        reason: h("div", { class: "reason" }),
        cancel: h("button", { type: "button", class: "cancel-task", "data-requires": "manage_tasks" }, "cancel"),
      };
      const li = h(
        "li",
        { class: "task", dataset: { taskId: id } },
        h("div", {}, parts.type, " ", parts.prio),
        h("div", { class: "meta" }, parts.drone, parts.when, parts.attempts),
        parts.reason,
        parts.cancel
      );
      card = { li, parts };
      this.cards.set(id, card);
    }
    const { li, parts } = card;
    setData(li, "status", task.status);
    setText(parts.type, task.task_type);
    setText(parts.prio, `P${task.priority}`);
    parts.prio.title = `priority ${task.priority} (5 is the highest)`;
    setText(parts.drone, task.drone_id);
    setText(parts.when, clock(task.updated_at ?? task.created_at));
    setText(parts.attempts, task.attempts > 1 ? `${task.attempts} attempts` : "");
    const failed = task.status === "failed" || task.status === "cancelled";
    setText(parts.reason, failed ? task.error_message ?? task.status : "");
    parts.reason.hidden = !failed;
    parts.cancel.hidden = !CANCELLABLE.has(task.status);
    li.title = `${task.task_id} · app ${task.app_id}`;
  }

  async cancel(id, button) {
    button.disabled = true;
    try {
      await this.api.request("POST", `/api/v1/processing-tasks/${encodeURIComponent(id)}/cancel`);
    } catch (error) {
      this.notify("error", `Could not cancel: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }
}
