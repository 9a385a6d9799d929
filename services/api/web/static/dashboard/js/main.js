// The operations dashboard: plain ES modules, no build step, no framework. It talks to DroneCast
// only as any outside client does: REST under /api/v1 and Socket.IO at /ws/events.
//
// Start-up: sign in (when auth is on), connect and subscribe to every drone, then read the whole
// state over REST while the events that arrive meanwhile are held, and apply them after it. From
// then on events change the store, and each view redraws what changed once per animation frame.
import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { EventStream } from "./events.js";
import { Frame } from "./frame.js";
import { Store } from "./store.js";
import { AlertsView } from "./views/alerts.js";
import { Banner } from "./views/banner.js";
import { ConnectionView } from "./views/connection.js";
import { DrawerView } from "./views/drawer.js";
import { DronesView } from "./views/drones.js";
import { EventLogView, summary } from "./views/eventlog.js";
import { KpiView } from "./views/kpis.js";
import { TasksView } from "./views/tasks.js";

// How long the first load waits for the subscription, so that no event falls between the two.
const FIRST_ACK_WAIT_MS = 2000;

const config = JSON.parse(document.getElementById("dronecast-config").textContent);

function wireRegister(api, openDrawer) {
  const dialog = document.getElementById("register-dialog");
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".error");
  document.getElementById("register-drone").addEventListener("click", () => {
    form.reset();
    error.textContent = "";
    dialog.showModal();
  });
  dialog.querySelector(".cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { deviceSerialNumber: form.elements.deviceSerialNumber.value.trim() };
    for (const field of ["deviceName", "deviceCategory"]) {
      const value = form.elements[field].value.trim();
      if (value) body[field] = value;
    }
    try {
      await api.request("POST", "/api/v1/drones/register", body);
      dialog.close();
      openDrawer(body.deviceSerialNumber);
    } catch (problem) {
      error.textContent = problem.message;
    }
  });
}

async function main() {
  const auth = new Auth(config);
  const frame = new Frame();
  const store = new Store();
  const banner = new Banner();
  const notify = (kind, text) => banner.show(kind, text);
  const connection = new ConnectionView(auth);
  document.getElementById("graphiql-link").hidden = !config.graphiql;

  await auth.ensure();
  const api = new Api(auth);
  const drawer = new DrawerView(store, frame, api, auth);
  const openDrawer = (serial) => drawer.open(serial);
  const kpis = new KpiView(store, frame, api);
  new DronesView(store, frame, openDrawer);
  new AlertsView(store, frame, api, notify, openDrawer);
  new TasksView(store, frame, api, notify, openDrawer);
  const log = new EventLogView(frame, openDrawer);
  wireRegister(api, openDrawer);
  store.on("event", (envelope) => log.add(envelope));
  store.on("system", (envelope) => notify("info", `System broadcast: ${summary(envelope)}`));

  const load = async () => {
    try {
      await store.load(api);
      document.body.dataset.loaded = new Date().toISOString();
      if (!banner.root.hidden && banner.root.dataset.kind === "error") banner.root.hidden = true;
    } catch (error) {
      banner.show("error", `Could not load the fleet: ${error.message}`, { label: "Retry", run: () => stream.reload() });
    }
  };

  const stream = new EventStream({
    url: config.eventsUrl,
    path: config.eventsPath,
    auth,
    handlers: {
      event: (envelope) => store.apply(envelope),
      snapshot: (snapshot) => store.applySnapshot(snapshot),
      state: (name, detail) => connection.show(name, detail),
      reload: load,
      refused: async (refusal) => {
        if (auth.enabled && (refusal.error === "Unauthorized" || refusal.error === "Forbidden")) {
          await auth.rejected(`The event gateway refused the token: ${refusal.detail}`);
          return true;
        }
        notify("error", `The event gateway refused this page: ${refusal.error} ${refusal.detail ?? ""}`);
        return false;
      },
    },
  });
  stream.start();
  const subscribed = await Promise.race([
    stream.firstAck,
    new Promise((resolve) => setTimeout(() => resolve(false), FIRST_ACK_WAIT_MS)),
  ]);
  await stream.hold(load);
  // The gateway answered late: what happened between the load and the subscription is read again.
  if (!subscribed) stream.firstAck.then(() => stream.reload());
  kpis.start();
}

main().catch((error) => {
  console.error("the dashboard failed to start", error);
  new Banner().show("error", `The dashboard failed to start: ${error.message}`);
});
