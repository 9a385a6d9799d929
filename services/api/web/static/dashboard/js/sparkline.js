// A sensor's recent readings as an SVG line, with a mark on each reading flagged as an anomaly.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 430;
const HEIGHT = 52;
const PAD = 5;

function svg(tag, attributes = {}) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/**
 * points: [{at (ms), value, anomaly, label}] in time order. Returns an <svg>.
 */
export function sparkline(points) {
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
  });
  if (!points.length) return root;
  let low = Infinity;
  let high = -Infinity;
  for (const point of points) {
    low = Math.min(low, point.value);
    high = Math.max(high, point.value);
  }
  const first = points[0].at;
  const span = Math.max(points[points.length - 1].at - first, 1);
  const range = high - low || 1;
  const x = (at) => PAD + ((at - first) / span) * (WIDTH - 2 * PAD);
  const y = (value) => HEIGHT - PAD - ((value - low) / range) * (HEIGHT - 2 * PAD);
  const line = points.map((point) => `${x(point.at).toFixed(1)},${y(point.value).toFixed(1)}`).join(" ");
  root.append(svg("polyline", { points: points.length > 1 ? line : `${line} ${line}` }));
  for (const point of points) {
    if (!point.anomaly) continue;
    const mark = svg("circle", { class: "anomaly-mark", cx: x(point.at).toFixed(1), cy: y(point.value).toFixed(1), r: 3.5 });
    const title = svg("title");
    title.textContent = point.label;
    mark.append(title);
    root.append(mark);
  }
  root.setAttribute("aria-label", `${points.length} readings from ${low} to ${high}`);
  return root;
}
