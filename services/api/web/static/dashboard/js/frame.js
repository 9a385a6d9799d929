// One DOM update per animation frame. Events only change the store and mark views dirty; each
// dirty view renders once in the next frame, however many events arrived since the last one.

export class Frame {
  constructor() {
    this.dirty = new Set();
    this.scheduled = false;
  }

  /** Asks for `view.render()` in the next animation frame. */
  request(view) {
    this.dirty.add(view);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.scheduled = false;
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
