#!/usr/bin/env bash
# contrib/prometheus/check.sh [PROMTOOL] — validates the alerting rules and
# runs their unit tests (tests/*.test.yaml). ctest runs it as
# contrib_prometheus_rules; `make promtool` provides promtool when missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROMTOOL=${1:-$(command -v promtool || echo "$HERE/../../build-tools/usr/bin/promtool")}
[ -x "$PROMTOOL" ] || { echo "promtool not found (run: make promtool)" >&2; exit 1; }
"$PROMTOOL" check rules "$HERE/usersd-alerts.yaml"
"$PROMTOOL" test rules "$HERE"/tests/*.test.yaml
