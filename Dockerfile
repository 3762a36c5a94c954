# modelmeter, the whole stack in one container (collector, Prometheus, Alertmanager, dashboard),
# for a PaaS that runs one container with one public port (Render, Railway, Fly.io...).
# The dashboard listens on $PORT (default 8050); the collector on 8000 (reach it on the PaaS's
# private network). Data (SQLite store, Prometheus TSDB, Alertmanager state) lives in /data.
#
#   docker build -t modelmeter .
#   docker run -p 8050:8050 -p 8000:8000 -v modelmeter-data:/data modelmeter
#
# Write token: the collector listens on 0.0.0.0 and never starts open there. Set
# MODELMETER_WRITE_TOKENS (render.yaml generates it); unset, `modelmeter up` generates one at the
# first start into /data/write-token (mode 0600), prints it, and reuses it at every start:
#   docker exec <container> cat /data/write-token
# Model services send it as `Authorization: Bearer <token>` (SDK: MODELMETER_TOKEN).
#
# Not built here (no Docker engine on the machine that wrote it); hadolint-clean. See docs/deploy.md.

# Base image pinned by tag; pin the digest too for reproducible builds (docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE}
# Debian bookworm packages, the versions the rules are tested with (promtool 2.42).
# If a Debian point release replaces them, `apt-cache policy prometheus` in this image gives
# the new version: update both pins together.
ARG PROMETHEUS_VERSION=2.42.0+ds-5+deb12u1
ARG ALERTMANAGER_VERSION=0.25.0-1+b4
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prometheus="${PROMETHEUS_VERSION}" \
        prometheus-alertmanager="${ALERTMANAGER_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home modelmeter \
    && mkdir -p /data \
    && chown modelmeter:modelmeter /data

# Installed in place (editable) so that `modelmeter up` finds the Prometheus and Alertmanager
# configuration in /app/deploy exactly as in a checkout of the repository.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY deploy ./deploy
COPY docs/metrics.md ./docs/metrics.md
RUN python -m venv /opt/modelmeter \
    && /opt/modelmeter/bin/pip install --no-cache-dir -e '/app[server]'

ENV PATH="/opt/modelmeter/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8050

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8050 8000

# Healthy = the collector is ready and the dashboard answers on /healthz (open under basic auth).
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u\nu.urlopen('http://127.0.0.1:8000/readyz', timeout=4)\nu.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8050'), timeout=4)"]

CMD ["modelmeter", "up", "--host", "0.0.0.0", "--collector-host", "0.0.0.0", "--data-dir", "/data"]
