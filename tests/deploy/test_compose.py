"""docker-compose.yml and its nginx entry proxy, checked offline (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
APP_SERVICES = {"api": "api", "gateway-1": "gateway", "gateway-2": "gateway", "worker": "worker"}
DEFAULT_PORTS = {"api": 8000, "gateway": 8001, "worker": 8002}
CLUSTER_NODES = {f"redis-node-{n}" for n in range(1, 7)}
CLUSTER_SERVICES = {*CLUSTER_NODES, "redis-cluster-init"}
ALL_SERVICES = {"mongo", "redis", "proxy", *APP_SERVICES, *CLUSTER_SERVICES}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any], variables: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment as compose resolves it, with these shell variables set:
    `${X:-default}` is X or its default (other forms stay as written)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)

    def resolve(value: str) -> str:
        def substitute(m: re.Match[str]) -> str:
            return (variables or {}).get(m.group(1)) or m.group(2)

        return re.sub(r"\$\{(\w+):-([^}]*)\}", substitute, value)

    return {k: resolve(str(v)) for k, v in env.items()}


def duration(value: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", value):
        total += float(amount) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    assert total > 0, f"bad duration {value!r}"
    return total


def host_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts: container path -> host path (relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith("."):
            mounts[parts[1]] = parts[0]
    return mounts


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------


def test_services(services) -> None:
    assert set(services) == ALL_SERVICES


def test_every_service_has_a_healthcheck(services) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert (
            check and isinstance(check["test"], list) and check["test"][0] in ("CMD", "CMD-SHELL")
        )
        assert not check.get("disable"), name


def test_app_services_share_one_image(services) -> None:
    builds = {
        name: (services[name].get("build"), services[name].get("image")) for name in APP_SERVICES
    }
    first = next(iter(builds.values()))
    assert all(b == first for b in builds.values()), builds
    build, image = first
    assert image, "one tagged image, built once"
    context = REPO / build["context"]
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    for name in ("mongo", "redis", "proxy", *CLUSTER_SERVICES):
        assert "build" not in services[name]


@pytest.mark.parametrize("name", list(APP_SERVICES))
def test_app_service(services, name: str) -> None:
    service = services[name]
    command = APP_SERVICES[name]
    port = DEFAULT_PORTS[command]
    assert service["command"] == [command]
    env = env_of(service)
    assert env["PORT"] == str(port)

    mongo = urlsplit(env["MONGODB_URI"])
    assert (mongo.scheme, mongo.hostname, mongo.port) == ("mongodb", "mongo", 27017)
    assert parse_qs(mongo.query)["replicaSet"] == ["rs0"]
    redis = urlsplit(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    # No usable default: compose refuses to start until the user sets SECRET_KEY.
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", env["SECRET_KEY"]), env["SECRET_KEY"]
    assert env["ENVIRONMENT"] == "production"

    # Healthcheck probes /health on the port the service listens on.
    check = " ".join(service["healthcheck"]["test"])
    m = re.search(r"http://127\.0\.0\.1:(\d+)/health", check)
    assert m and int(m.group(1)) == port, check

    # Stores first, healthy.
    depends = service["depends_on"]
    assert depends == {
        "mongo": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # Docker's stop timeout leaves room for the graceful drain.
    assert duration(service["stop_grace_period"]) > float(env["DRAIN_SECONDS"])
    assert not service.get("ports"), "app services are reached through the proxy"


def test_depends_on_conditions_target_healthchecked_services(services) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert spec["condition"] == "service_healthy", f"{name} -> {target}"
            assert "healthcheck" in services[target]
            # A service always started never waits for one of an optional profile.
            assert set(services[target].get("profiles", [])) <= set(service.get("profiles", []))
    proxy = services["proxy"]["depends_on"]
    assert set(proxy) == {"api", "gateway-1", "gateway-2"}


def test_mongo_is_a_single_node_replica_set(services) -> None:
    mongo = services["mongo"]
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command
    mounts = host_mounts(mongo)
    check = mongo["healthcheck"]["test"]
    scripts = [arg for arg in check if arg.endswith(".js")]
    assert len(scripts) == 1 and scripts[0] in mounts, "healthcheck runs the mounted init script"
    script = (REPO / mounts[scripts[0]]).read_text()
    assert "rs.initiate" in script and '_id: "rs0"' in script
    assert "isWritablePrimary" in script and "quit(" in script
    # The member host the set is initiated with is the one the app services connect to.
    host = env_of(mongo)["RS_HOST"]
    api_uri = urlsplit(env_of(services["api"])["MONGODB_URI"])
    assert host == f"{api_uri.hostname}:{api_uri.port}"
    assert any(v.endswith("/data/db") for v in mongo["volumes"]), "data in a volume"


def test_redis(services) -> None:
    redis = services["redis"]
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_proxy_is_the_only_published_service(services) -> None:
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"proxy"}
    (mapping,) = services["proxy"]["ports"]
    assert str(mapping).rsplit(":", 1)[-1] == "80"


# --------------------------------------------------------------------------------------------
# nginx.conf
# --------------------------------------------------------------------------------------------

Directive = tuple[str, list[str], list[Any] | None]


def parse_nginx(text: str) -> list[Directive]:
    """A small nginx config parser: directives with args and optional blocks."""
    tokens = re.findall(r"""\#[^\n]*|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};'"]+""", text)
    tokens = [t for t in tokens if not t.startswith("#")]
    pos = 0

    def block() -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        words: list[str] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ";":
                out.append((words[0], words[1:], None))
                words = []
            elif tok == "{":
                out.append((words[0], words[1:], block()))
                words = []
            elif tok == "}":
                assert not words, f"unterminated directive {words}"
                return out
            else:
                words.append(tok[1:-1] if tok[0] in "'\"" else tok)
        assert not words
        return out

    tree = block()
    assert pos == len(tokens), "unbalanced braces"
    return tree


def find(tree: list[Directive], name: str) -> list[Directive]:
    return [d for d in tree if d[0] == name]


@pytest.fixture(scope="module")
def nginx(services) -> list[Directive]:
    mounts = host_mounts(services["proxy"])
    assert "/etc/nginx/nginx.conf" in mounts
    return parse_nginx((REPO / mounts["/etc/nginx/nginx.conf"]).read_text())


@pytest.fixture(scope="module")
def http(nginx) -> list[Directive]:
    (http_block,) = find(nginx, "http")
    assert http_block[2] is not None
    return http_block[2]


@pytest.fixture(scope="module")
def locations(http) -> list[tuple[str, str, list[Directive]]]:
    (server,) = find(http, "server")
    assert find(server[2], "listen")[0][1] == ["80"]
    out = []
    for _, args, body in find(server[2], "location"):
        modifier, path = (args[0], args[1]) if len(args) == 2 else ("", args[0])
        assert modifier in ("", "="), "the routing check below models exact and prefix only"
        out.append((modifier, path, body))
    return out


def upstreams(http: list[Directive]) -> dict[str, list[Directive]]:
    return {args[0]: body for _, args, body in find(http, "upstream")}


def route(locations, path: str) -> list[Directive]:
    """nginx location selection for exact and prefix locations."""
    for modifier, loc, body in locations:
        if modifier == "=" and loc == path:
            return body
    prefixes = [
        (loc, body) for modifier, loc, body in locations if not modifier and path.startswith(loc)
    ]
    assert prefixes, f"no location for {path}"
    return max(prefixes, key=lambda p: len(p[0]))[1]


def upstream_of(body: list[Directive]) -> str | None:
    passes = find(body, "proxy_pass")
    if not passes:
        return None
    m = re.fullmatch(r"http://([\w.-]+)/?", passes[0][1][0])
    assert m, passes
    return m.group(1)


def headers(body: list[Directive]) -> dict[str, str]:
    return {args[0].lower(): " ".join(args[1:]) for _, args, _ in find(body, "proxy_set_header")}


API_REQUESTS = [
    "/",
    "/static/dashboard/js/main.js",
    "/static/vendor/socket.io/socket.io.esm.min.js",
    "/api/v1/drones",
    "/api/v1/drones/sn/SN-1",
    "/api/alerts",
    "/docs",
    "/docs/oauth2-redirect",
    "/openapi.json",
    "/health",
]
WS_API_REQUESTS = ["/ws/drone/d-1", "/ws/application/app-1"]
EVENTS_REQUESTS = ["/ws/events", "/ws/events/"]


def test_proxy_upstreams_match_compose_services(http, services) -> None:
    ups = upstreams(http)
    assert set(ups) == {"dronecast_api", "dronecast_gateway"}
    servers = {name: {args[0] for _, args, _ in find(body, "server")} for name, body in ups.items()}
    expected_api = {
        f"{n}:{env_of(services[n])['PORT']}" for n, c in APP_SERVICES.items() if c == "api"
    }
    expected_gw = {
        f"{n}:{env_of(services[n])['PORT']}" for n, c in APP_SERVICES.items() if c == "gateway"
    }
    assert servers["dronecast_api"] == expected_api == {"api:8000"}
    assert servers["dronecast_gateway"] == expected_gw == {"gateway-1:8001", "gateway-2:8001"}
    # Socket.IO long-polling needs a sticky gateway upstream.
    assert find(ups["dronecast_gateway"], "ip_hash"), "gateway upstream must be sticky"
    # Servers that re-resolve need a resolver and a shared-memory zone.
    for name, body in ups.items():
        if any("resolve" in args[1:] for _, args, _ in find(body, "server")):
            assert find(body, "zone"), name
            assert find(http, "resolver") or find(body, "resolver"), name


@pytest.mark.parametrize("path", API_REQUESTS + WS_API_REQUESTS)
def test_proxy_routes_api_paths(locations, path: str) -> None:
    assert upstream_of(route(locations, path)) == "dronecast_api"


@pytest.mark.parametrize("path", EVENTS_REQUESTS)
def test_proxy_routes_socketio_to_gateways(locations, path: str) -> None:
    assert upstream_of(route(locations, path)) == "dronecast_gateway"


@pytest.mark.parametrize("path", ["/metrics", "/ready", "/apix", "/staticx", "/index.html"])
def test_proxy_does_not_expose_internal_paths(locations, path: str) -> None:
    assert upstream_of(route(locations, path)) is None


@pytest.mark.parametrize("path", WS_API_REQUESTS + EVENTS_REQUESTS)
def test_websocket_locations_upgrade(http, locations, path: str) -> None:
    body = route(locations, path)
    assert find(body, "proxy_http_version")[0][1] == ["1.1"]
    h = headers(body)
    assert h["upgrade"] == "$http_upgrade"
    assert h["connection"] == "$connection_upgrade"
    (mapping,) = [d for d in find(http, "map") if d[1] == ["$http_upgrade", "$connection_upgrade"]]
    entries = {name: args for name, args, _ in mapping[2] or []}
    assert entries["default"] == ["upgrade"]
    read_timeout = find(body, "proxy_read_timeout")
    assert read_timeout and duration(read_timeout[0][1][0]) >= 600, "long-lived sockets"
    assert "x-forwarded-for" in h


@pytest.mark.parametrize("path", API_REQUESTS)
def test_plain_locations_forward_client_headers(locations, path: str) -> None:
    h = headers(route(locations, path))
    assert {"host", "x-forwarded-for", "x-forwarded-proto"} <= set(h)


def test_proxy_healthcheck_hits_a_proxy_location(services, locations) -> None:
    check = services["proxy"]["healthcheck"]["test"]
    url = next(arg for arg in check if arg.startswith("http://"))
    body = route(locations, urlsplit(url).path)
    assert find(body, "return")[0][1][0] == "200"


# --------------------------------------------------------------------------------------------
# Profile "cluster": the bus on a Redis Cluster
# --------------------------------------------------------------------------------------------


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_cluster_profile_is_optional_and_whole(services) -> None:
    """Off unless asked for (the default stack is unchanged), and then 3 masters + 3 replicas."""
    for name in CLUSTER_SERVICES:
        assert services[name].get("profiles") == ["cluster"], name
    for name in ALL_SERVICES - CLUSTER_SERVICES:
        assert not services[name].get("profiles"), name
    script = services["redis-cluster-init"]["command"][0]
    assert "--cluster-replicas 1" in script and "--cluster create" in script
    assert "for n in 1 2 3 4 5 6" in script
    assert "cluster_state:ok" in script, "forming the cluster again on a restart would fail"
    assert set(services["redis-cluster-init"]["depends_on"]) == CLUSTER_NODES


@pytest.mark.parametrize("name", sorted(CLUSTER_NODES))
def test_cluster_nodes(services, name: str) -> None:
    node = services[name]
    command = node["command"]
    assert command[0] == "redis-server"
    assert flag(command, "--cluster-enabled") == "yes"
    # CLUSTER SHARDS gives the services each node's name in this network, which they reach.
    assert flag(command, "--cluster-announce-hostname") == name
    assert flag(command, "--cluster-preferred-endpoint-type") == "hostname"
    assert flag(command, "--cluster-require-full-coverage") == "no"
    assert flag(command, "--cluster-config-file").startswith("/data/")
    assert any(v == f"{name}:/data" for v in node["volumes"]), "its own volume"
    assert "redis-cli" in node["healthcheck"]["test"]


def test_app_services_use_the_cluster_when_told(services) -> None:
    """The README's command line gives every service settings that start a ClusterBroker on a
    node of the profile; without it, the single Redis as before."""
    from shared.broker import ClusterBroker, RedisBroker, create_broker
    from shared.settings import Settings

    told = {"REDIS_URL": "redis://redis-node-1:6379/0", "REDIS_CLUSTER": "true"}
    for name in APP_SERVICES:
        for variables, kind in (({}, RedisBroker), (told, ClusterBroker)):
            env = env_of(services[name], variables)
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                redis_url=env["REDIS_URL"],
                redis_cluster=env["REDIS_CLUSTER"],
                secret_key="x" * 40,
            )
            assert isinstance(create_broker(settings), kind), (name, variables)
            if kind is ClusterBroker:
                assert urlsplit(settings.redis_url).hostname in CLUSTER_NODES
