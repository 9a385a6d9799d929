// Healthcheck for the compose "mongo" service (run by mongosh inside the container).
// First run: initiates the single-node replica set "rs0" with this member's host name
// (RS_HOST, default mongo:27017; clients connect with ?replicaSet=rs0 and must resolve it).
// Exit status 0 once this node is the writable primary, 1 before that.
const host = process.env.RS_HOST || "mongo:27017";
try {
  rs.status();
} catch (err) {
  if (err.codeName !== "NotYetInitialized" && err.code !== 94) {
    throw err;
  }
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: host }] });
}
quit(db.hello().isWritablePrimary ? 0 : 1);
