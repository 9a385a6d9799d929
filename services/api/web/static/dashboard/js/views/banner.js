// One line across the page for what the operator must know now: a system broadcast, a token
// about to be refused, a request that failed.
export class Banner {
  constructor() {
    this.root = document.getElementById("banner");
    this.text = this.root.querySelector(".text");
    this.action = this.root.querySelector(".action");
    this.root.querySelector(".close").addEventListener("click", () => (this.root.hidden = true));
  }

  show(kind, text, action = null) {
    this.root.dataset.kind = kind;
    this.text.textContent = text;
    this.action.hidden = !action;
    if (action) {
      this.action.textContent = action.label;
      this.action.onclick = action.run;
    }
    this.root.hidden = false;
  }
}
