// The top bar's connection state (connecting, live, reconnecting, resumed, lost, refused), with
// what happened in words, and the sign-in state.
import { setData, setText } from "../dom.js";

export class ConnectionView {
  constructor(auth) {
    this.root = document.getElementById("connection");
    this.stateText = this.root.querySelector(".state");
    this.detail = this.root.querySelector(".detail");
    this.who = document.querySelector("#identity .who");
    this.signOut = document.getElementById("sign-out");
    this.auth = auth;
    this.signOut.addEventListener("click", () => {
      auth.signOut();
      window.location.reload();
    });
    auth.onChange(() => this.showIdentity());
    this.showIdentity();
  }

  /** Shown at once, not in the next frame: state changes are rare and tests wait on them. */
  show(state, detail) {
    setData(this.root, "state", state);
    setText(this.stateText, state);
    setText(this.detail, detail ? `· ${detail}` : "");
    this.root.title = detail;
  }

  showIdentity() {
    setText(this.who, this.auth.describe());
    this.signOut.hidden = !this.auth.enabled;
    document.body.dataset.can = this.auth.actions().join(" ");
  }
}
