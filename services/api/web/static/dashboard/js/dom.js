// Small DOM and formatting helpers. Text from the server only ever goes in as text nodes or
// attribute values, never as HTML.

/** Creates an element: h("li", {class: "x", dataset: {id}}, "text", child). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Sets text only when it changed: the common case (nothing changed) touches no DOM. */
export function setText(element, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (element.textContent !== value) element.textContent = value;
}

export function setData(element, name, value) {
  const text = String(value);
  if (element.dataset[name] !== text) element.dataset[name] = text;
}

/**
 * Makes `parent`'s children exactly `keys`, in order, reusing each key's element from
 * `elements` (key -> element). Only elements that are missing or out of place are moved.
 */
export function reconcile(parent, keys, elements) {
  let cursor = parent.firstChild;
  for (const key of keys) {
    const element = elements.get(key);
    if (element === cursor) {
      cursor = cursor.nextSibling;
    } else {
      parent.insertBefore(element, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextSibling;
    parent.removeChild(cursor);
    cursor = next;
  }
}

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

export function clock(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "" : clockFormat.format(moment);
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return "";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** Event ids are Redis stream ids, `<ms>-<seq>`: compared as two numbers. */
export function compareIds(a, b) {
  const [aMs, aSeq] = a.split("-");
  const [bMs, bSeq] = b.split("-");
  return Number(aMs) - Number(bMs) || Number(aSeq) - Number(bSeq);
}

/** The kind an event belongs to, for colours and the log's filters. */
export function kindOf(name) {
  if (name === "telemetry.anomaly") return "telemetry";
  return name.split(".", 1)[0];
}
