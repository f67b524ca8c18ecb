#!/usr/bin/env bash
# Offline checks of deploy/observability: no Prometheus server, no Grafana.
#
#   1. `promtool check rules`: alerts.yaml is a valid rules file (PromQL parses, templates compile).
#   2. `promtool test rules`: alerts.test.yaml's unit tests pass, and every alert has one.
#
# The dashboard is checked by the test suite (tests/tests/observability.rs: its import settings,
# and every query through promtool), beside the check that every series it queries is exposed.
#
# promtool comes from the distribution's `prometheus` package, installed when it is missing (the
# package's own server is stopped and disabled: only promtool is wanted).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=deploy/observability

die() { printf 'check-observability: %s\n' "$*" >&2; exit 1; }

. scripts/lib/packages.sh
need_tool promtool prometheus prometheus

# --- 1. rules --------------------------------------------------------------------------------------
promtool check rules "$dir/alerts.yaml" || die "$dir/alerts.yaml is not a valid rules file"

# --- 2. unit tests ---------------------------------------------------------------------------------
promtool test rules "$dir/alerts.test.yaml" || die "$dir/alerts.test.yaml: unit tests failed"
untested=()
while read -r alert; do
  grep -Eq "^\s*alertname:\s*$alert\s*$" "$dir/alerts.test.yaml" || untested+=("$alert")
done < <(sed -nE 's/^\s*- alert:\s*([A-Za-z0-9_]+)\s*$/\1/p' "$dir/alerts.yaml")
((${#untested[@]} == 0)) || die "alerts without a unit test in $dir/alerts.test.yaml: ${untested[*]}"

printf 'check-observability: rules and their unit tests passed\n'
