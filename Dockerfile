# syntax=docker/dockerfile:1
#
# DroneCast: one image for every service. The command picks the service:
#   docker run IMAGE api        (REST + device WebSockets, port 8000; the default)
#   docker run IMAGE gateway    (Socket.IO at /ws/events, port 8001)
#   docker run IMAGE worker     (background worker; probes/metrics on port 8002)
#   docker run IMAGE simulate --api http://api:8000 --drones 20 --duration 60 --seed 1
#                               (a simulated fleet, with the Python client the image carries)
# Settings come from the environment (MONGODB_URI, REDIS_URL, SECRET_KEY, ...).
# Set PORT for gateway/worker containers (docker-compose.yml and deploy/k8s do) so the
# HEALTHCHECK below probes the port the service actually listens on.

# ---- builder: build the wheel and install it (runtime dependencies only) into a venv ----
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY clients/python ./clients/python
RUN /opt/venv/bin/pip install --upgrade pip setuptools wheel \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . ./clients/python \
 && /opt/venv/bin/pip install /wheels/dronecast-*.whl /wheels/dronecast_client-*.whl

# ---- runtime: slim Python, the venv, a non-root user; no sources, no dev extras ----
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0
RUN groupadd --system --gid 10001 dronecast \
 && useradd --system --uid 10001 --gid dronecast --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin dronecast \
 && mkdir /app && chown dronecast:dronecast /app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${PORT:-8000}/health', timeout=4).status == 200 else 1)"
ENTRYPOINT ["dronecast"]
CMD ["api"]
