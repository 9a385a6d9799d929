// The dashboard's Socket.IO connection to the gateway (/ws/events), as any outside client has it:
// the official socket.io-client, `subscribe {all, snapshot, lastEventId}`, and resume after a
// reconnect from the last event id it saw. Its state is what the page shows in the top bar:
//   connecting → live; reconnecting → resumed (missed events replayed) or lost (state reloaded).
import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { compareIds } from "./dom.js";

const EVENT_CHANNELS = ["drone:event", "alert:event", "task:event", "system:event"];
const SEEN_IDS = 4096; // recent ids kept to drop an event delivered twice
const HOLD_LIMIT = 50_000; // events held during a reload before giving up on them
const SUBSCRIBE_TIMEOUT_MS = 10_000;

export class EventStream {
  /**
   * handlers: event(envelope), snapshot({serial, eventId, state}), state(name, detail),
   * reload() -> Promise (fetch the whole state again), refused(error) -> Promise<token|null>.
   */
  constructor({ url, path, auth, handlers }) {
    this.handlers = handlers;
    this.auth = auth;
    this.lastEventId = null;
    this.seen = new Set();
    this.seenRing = new Array(SEEN_IDS);
    this.seenNext = 0;
    this.held = null; // events arriving while the state is (re)loaded, applied after it
    this.subscribedOnce = false;
    this.received = 0;
    this.socket = io(url || undefined, {
      path,
      autoConnect: false,
      auth: (send) => send(auth.token ? { token: auth.token } : {}),
      // WebSocket first (no sticky sessions needed behind a proxy); long-polling if it fails.
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    this.firstAck = new Promise((resolve) => (this.resolveFirstAck = resolve));
    this.wire();
  }

  start() {
    this.state("connecting", "");
    this.socket.connect();
  }

  wire() {
    const socket = this.socket;
    socket.on("connect", () => this.subscribe());
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") this.state("offline", "disconnected");
      else this.state("reconnecting", `connection lost (${reason})`);
    });
    socket.io.on("reconnect_attempt", (attempt) =>
      this.state("reconnecting", `attempt ${attempt}${this.lastEventId ? ` · will resume after ${this.lastEventId}` : ""}`)
    );
    socket.on("connect_error", (error) => this.connectError(error));
    for (const channel of EVENT_CHANNELS) socket.on(channel, (envelope) => this.receive(envelope));
    socket.on("drone:snapshot", (snapshot) => this.receiveSnapshot(snapshot));
    socket.on("error", (problem) => this.serverError(problem));
  }

  state(name, detail) {
    this.handlers.state(name, detail);
  }

  async connectError(error) {
    const refusal = error && error.data;
    if (!refusal || !refusal.error) {
      // The transport failed (gateway down, network): socket.io-client retries by itself.
      this.state("reconnecting", `cannot reach the gateway (${error.message})`);
      return;
    }
    // The gateway refused the handshake (a bad or expired token, too many connections): it
    // will not be retried until something changes.
    this.state("refused", `${refusal.error}: ${refusal.detail ?? ""}`);
    const retry = await this.handlers.refused(refusal);
    if (retry) this.socket.connect();
  }

  subscribe() {
    const request = { all: true, snapshot: true };
    const from = this.subscribedOnce ? this.lastEventId : null;
    if (from !== null) request.lastEventId = from;
    this.socket.timeout(SUBSCRIBE_TIMEOUT_MS).emit("subscribe", request, (timeout, ack) => {
      if (timeout) {
        this.state("reconnecting", "the gateway did not answer the subscription; reconnecting");
        this.socket.disconnect().connect();
        return;
      }
      this.subscribed(ack, from);
    });
  }

  async subscribed(ack, from) {
    const resuming = from !== null;
    if (!ack || !ack.ok) {
      this.state("refused", `subscribe refused: ${ack?.error ?? "?"} ${ack?.detail ?? ""}`);
      if (ack?.error === "ServiceUnavailable") setTimeout(() => this.socket.connected && this.subscribe(), 2000);
      return;
    }
    const first = !this.subscribedOnce;
    this.subscribedOnce = true;
    if (first) {
      this.state("live", "subscribed to every drone");
      this.resolveFirstAck(true);
    } else if (resuming && ack.recovered) {
      const replayed = ack.replayed ?? 0;
      this.state("resumed", `resumed after event ${from}: ${replayed} missed event${replayed === 1 ? "" : "s"} replayed`);
    } else if (resuming) {
      this.state("lost", "events were lost while disconnected (outside the replay window); reloading");
      await this.reload();
      this.state("live", "events were lost while disconnected; the state was reloaded");
    } else {
      // Reconnected before any event arrived: nothing to resume from, so read the state again.
      await this.reload();
      this.state("live", "reconnected; state reloaded");
    }
  }

  serverError(problem) {
    const name = problem?.error;
    if (name === "EventsLost") {
      this.state("lost", "the event bus lost events; reloading");
      this.reload().then(() => this.state("live", "the event bus lost events; the state was reloaded"));
    } else if (name === "SlowConsumer") {
      this.state("reconnecting", "this page fell behind; reconnecting to resume");
    } else if (name) {
      console.warn("gateway error", problem);
    }
  }

  /** Holds incoming events while `load` runs, then applies them in order. */
  async hold(load) {
    this.held = [];
    try {
      await load();
    } finally {
      const held = this.held;
      this.held = null;
      for (const envelope of held) this.apply(envelope);
    }
  }

  reload() {
    return this.hold(() => this.handlers.reload());
  }

  receive(envelope) {
    if (!envelope || typeof envelope.id !== "string") return;
    if (this.seen.has(envelope.id)) return;
    this.remember(envelope.id);
    this.received += 1;
    if (this.lastEventId === null || compareIds(envelope.id, this.lastEventId) > 0) {
      this.lastEventId = envelope.id;
    }
    if (this.held !== null) {
      if (this.held.length < HOLD_LIMIT) this.held.push(envelope);
      return;
    }
    this.apply(envelope);
  }

  receiveSnapshot(snapshot) {
    if (this.held !== null) {
      this.held.push({ snapshot });
      return;
    }
    this.handlers.snapshot(snapshot);
  }

  apply(item) {
    if (item.snapshot) this.handlers.snapshot(item.snapshot);
    else this.handlers.event(item);
  }

  remember(id) {
    const evicted = this.seenRing[this.seenNext];
    if (evicted !== undefined) this.seen.delete(evicted);
    this.seenRing[this.seenNext] = id;
    this.seenNext = (this.seenNext + 1) % SEEN_IDS;
    this.seen.add(id);
  }
}
