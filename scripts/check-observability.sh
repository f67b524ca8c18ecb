#!/usr/bin/env bash
# Offline checks of deploy/observability: no Prometheus server, no Grafana.
#
#   1. `promtool check rules`: alerts.yaml is a valid rules file (PromQL parses, templates compile).
#   2. `promtool test rules`: alerts.test.yaml's unit tests pass, and every alert has one.
#   3. The Grafana dashboard is valid JSON, and every panel query parses as PromQL (each becomes
#      a recording rule in a scratch rules file that promtool checks).
#
# promtool comes from the distribution's `prometheus` package, installed when it is missing (the
# package's own server is stopped and disabled: only promtool is wanted).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=deploy/observability
dashboard=$dir/grafana/doumi-message-path.json

die() { printf 'check-observability: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  echo "installing $* from the distribution's packages" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
  # The package starts a system-wide Prometheus; nothing here needs it.
  as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v python3 >/dev/null || die "python3 is not installed (it reads the dashboard)"

# --- 1. rules --------------------------------------------------------------------------------------
promtool check rules "$dir/alerts.yaml" || die "$dir/alerts.yaml is not a valid rules file"

# --- 2. unit tests ---------------------------------------------------------------------------------
promtool test rules "$dir/alerts.test.yaml" || die "$dir/alerts.test.yaml: unit tests failed"
untested=()
while read -r alert; do
  grep -Eq "^\s*alertname:\s*$alert\s*$" "$dir/alerts.test.yaml" || untested+=("$alert")
done < <(sed -nE 's/^\s*- alert:\s*([A-Za-z0-9_]+)\s*$/\1/p' "$dir/alerts.yaml")
((${#untested[@]} == 0)) || die "alerts without a unit test in $dir/alerts.test.yaml: ${untested[*]}"

# --- 3. dashboard ----------------------------------------------------------------------------------
python3 -m json.tool "$dashboard" >/dev/null || die "$dashboard is not valid JSON"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# A rules file is YAML, and JSON is YAML: one recording rule per panel query, with Grafana's
# interval variables replaced by a fixed range.
python3 - "$dashboard" >"$scratch/dashboard-queries.rules.json" <<'PY' || die "$dashboard breaks the checks above"
import json, sys

with open(sys.argv[1]) as f:
    dashboard = json.load(f)
problems, rules = [], []
for key, want in (("uid", "doumi-message-path"), ("schemaVersion", 39)):
    if dashboard.get(key) != want:
        problems.append(f"{key} is {dashboard.get(key)!r}, expected {want!r}")
variables = dashboard.get("templating", {}).get("list", [])
if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
    problems.append("no datasource template variable of type prometheus")
for panel in dashboard["panels"]:
    if panel["type"] == "row":
        continue
    if not panel.get("targets"):
        problems.append(f"panel {panel['title']!r} has no query")
    for target in panel.get("targets", []):
        if (target.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"panel {panel['title']!r} query {target['refId']} ignores $datasource")
        expr = target["expr"]
        for var in ("$__rate_interval", "$__interval", "$__range"):
            expr = expr.replace(var, "5m")
        rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
if problems:
    sys.exit("\n".join(problems))
json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sys.stdout, indent=1)
PY
promtool check rules "$scratch/dashboard-queries.rules.json" >/dev/null ||
  die "a query in $dashboard is not valid PromQL (promtool's message above)"
printf '==> dashboard ok  %s (%d queries parse)\n' "$dashboard" \
  "$(grep -c '"record"' "$scratch/dashboard-queries.rules.json")"

printf 'check-observability: rules, unit tests and dashboard all passed\n'
