#!/usr/bin/env bash
# Static checks of everything under deploy/ and the container files: runs each deploy/checks/*.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for check in deploy/checks/*.sh; do
  [ -e "$check" ] || continue
  echo "== $check"
  bash "$check" || { echo "FAILED: $check"; status=1; }
done
exit "$status"
