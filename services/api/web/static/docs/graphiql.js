// GraphiQL for seed 004's queries at POST /api/v1/graphql. Queries need a bearer token: the one
// the dashboard keeps in this tab's session storage, if any, goes into the headers pane.
(function () {
  "use strict";
  var url = window.location.pathname;
  var token = null;
  try {
    token = window.sessionStorage.getItem("dronecast.token");
  } catch (error) {
    token = null;
  }
  var headers = token ? JSON.stringify({ Authorization: "Bearer " + token }, null, 2) : undefined;
  var example = [
    "# seed 004's queries; add an Authorization header when auth is on:",
    '#   {"Authorization": "Bearer <dronecast token --role viewer --drones \'*\'>"}',
    "{",
    '  anomalyAlerts(resolved: false, limit: 10) {',
    "    id sensorId severity message timestamp droneSerial",
    "  }",
    "  sensorData(limit: 10) {",
    "    sensorId sensorType value unit timestamp isAnomaly anomalyScore",
    "  }",
    "}",
    "",
  ].join("\n");
  var fetcher = GraphiQL.createFetcher({ url: url });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: example,
      defaultHeaders: headers,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: token ? "headers" : true,
    })
  );
})();
