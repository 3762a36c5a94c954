#!/usr/bin/env bash
# Static checks of the Prometheus and Alertmanager files: config and rule syntax, and every
# promtool rule unit test. Fails on the first error. Run from anywhere (deploy/check.sh runs it).
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "$1 not found: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager" >&2
    exit 1
  }
}
need promtool
need amtool

promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
amtool check-config deploy/alertmanager/alertmanager.yml
shopt -s nullglob
tests=(deploy/prometheus/tests/*.yml)
if [ "${#tests[@]}" -eq 0 ]; then
  echo "no promtool unit tests in deploy/prometheus/tests/" >&2
  exit 1
fi
promtool test rules "${tests[@]}"
