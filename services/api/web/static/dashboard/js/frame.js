// DOM updates are batched: events only change the store and mark views dirty, and each dirty
// view renders once, in an animation frame, however many events arrived since its last render.
//
// Under a steady stream the batches are paced: a frame that renders costs style, layout and
// paint whatever the batch size, so rendering 60 times a second for 100 events a second would
// keep the page's main thread busy. After a render the next one waits at least
// MIN_INTERVAL_MS; the first change after a quiet spell still shows in the very next frame.
const MIN_INTERVAL_MS = 100;

export class Frame {
  constructor() {
    this.dirty = new Set();
    this.scheduled = false;
    this.renderedAt = -Infinity;
  }

  /** Asks for `view.render()` in an animation frame soon. */
  request(view) {
    this.dirty.add(view);
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.renderedAt + MIN_INTERVAL_MS - performance.now();
    if (wait <= 0) requestAnimationFrame(() => this.flush());
    else setTimeout(() => requestAnimationFrame(() => this.flush()), wait);
  }

  flush() {
    this.scheduled = false;
    this.renderedAt = performance.now();
    const views = [...this.dirty];
    this.dirty.clear();
    for (const view of views) {
      try {
        view.render();
      } catch (error) {
        console.error("dashboard view failed to render", error);
      }
    }
  }
}
