#!/usr/bin/env bash
# Offline checks of deploy/k8s: no cluster, no API server, no network once the validator is cached.
#
#   1. Every kustomization (base and each overlay) renders with `kubectl kustomize`; the output goes
#      to target/manifests/<name>.yaml for review.
#   2. `kubernetes-validate --strict` checks every document against the Kubernetes OpenAPI schemas
#      of the oldest version doumi supports and of the newest the validator knows (unknown fields,
#      missing required fields, wrong types, APIs that are gone).
#   3. Project rules the schema cannot know (this script's Python part): labels, resources,
#      securityContext, pinned images and pull policy, probes present, graceful termination,
#      default-deny NetworkPolicy, autoscalers and disruption budgets, only the gateway exposed.
#   4. Self-test: a broken manifest must fail steps 2 and 3, so a green run means something.
#   5. The manifests against the code: `cargo test -p doumi-tests --test manifests` reads every
#      render into k8s-openapi's typed structs (unknown fields fail) and checks env vars, ports,
#      probes, Service URLs and NetworkPolicies against the binaries' own clap definitions and
#      start-up validation (tests/tests/manifests.rs). Skipped with DOUMI_CHECK_MANIFESTS_CARGO=0.
#
# kubernetes-validate comes from PyPI into a venv under ~/.cache/doumi (made once, then reused).
# Exits non-zero on the first failing step.
#
# Env: DOUMI_K8S_VERSIONS     schema versions to validate against (default "1.30.0 1.37.0"; 1.30
#                             is the oldest: the preStop `sleep` action is on by default from 1.30)
#      DOUMI_VALIDATE_VENV    where the venv lives
#      DOUMI_CHECK_MANIFESTS_CARGO=0  skip step 5 (e.g. right after scripts/test, which runs it too)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
read -r -a k8s_versions <<<"${DOUMI_K8S_VERSIONS:-1.30.0 1.37.0}"
validator_version=1.37.0 # bundles schemas for Kubernetes 1.25 to 1.37
venv=${DOUMI_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/doumi/kubernetes-validate-$validator_version}
out=$repo_root/target/manifests

die() { printf 'check-manifests: %s\n' "$*" >&2; exit 1; }
command -v kubectl >/dev/null || die "kubectl is not installed (it renders the kustomizations)"
command -v python3 >/dev/null || die "python3 is not installed (it runs kubernetes-validate)"

if [[ ! -x $venv/bin/kubernetes-validate ]]; then
  printf '==> installing kubernetes-validate %s into %s\n' "$validator_version" "$venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$validator_version" ||
    die "pip install kubernetes-validate failed"
fi
python=$venv/bin/python # has PyYAML, a dependency of kubernetes-validate

# --- 1. render -----------------------------------------------------------------------------------
mkdir -p "$out"
rendered=()
for dir in "$repo_root"/deploy/k8s/base "$repo_root"/deploy/k8s/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  file=$out/$name.yaml
  kubectl kustomize "$dir" >"$file" || die "kubectl kustomize ${dir#"$repo_root"/} failed"
  printf '==> rendered %-12s %3d objects -> %s\n' "$name" "$(grep -c '^kind:' "$file")" "${file#"$repo_root"/}"
  rendered+=("$file")
done

# --- 2. schema -----------------------------------------------------------------------------------
validate() { "$venv/bin/kubernetes-validate" --strict --quiet -k "$1" "$2"; }
for file in "${rendered[@]}"; do
  for version in "${k8s_versions[@]}"; do
    validate "$version" "$file" || die "${file#"$repo_root"/} does not match the Kubernetes $version schema"
  done
  printf '==> schema ok  %s (Kubernetes %s, strict)\n' "$(basename "$file" .yaml)" "${k8s_versions[*]}"
done

# --- 3. project rules ----------------------------------------------------------------------------
policy=$(
  cat <<'PY'
"""doumi's manifest rules. Usage: policy.py RENDERED.yaml... ; prints each violation, exits 1."""
import sys
import yaml

# Which env vars, ports and probe endpoints each binary has is checked against the code itself by
# tests/tests/manifests.rs (step 5), not against a copy of them here.
PUBLIC = {"doumi-gateway"}  # the only Service that may be other than ClusterIP


def selects(selector, labels):
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present, value = expr["key"] in labels, labels.get(expr["key"])
        ok = {"In": present and value in expr.get("values", []),
              "NotIn": not present or value not in expr.get("values", []),
              "Exists": present, "DoesNotExist": not present}[expr["operator"]]
        if not ok:
            return False
    return True


def check(docs):
    errors = []
    err = errors.append
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    policies = by_kind.get("NetworkPolicy", [])

    for dep in deployments:
        name = dep["metadata"]["name"]
        where = f"Deployment {name}"
        pod = dep["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        spec = pod["spec"]
        if labels.get("app.kubernetes.io/name") != name or labels.get("app.kubernetes.io/part-of") != "doumi":
            err(f"{where}: pods need app.kubernetes.io/name={name} and app.kubernetes.io/part-of=doumi")
        if not selects(dep["spec"]["selector"], labels):
            err(f"{where}: selector does not match its own pods")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            err(f"{where}: pod securityContext needs runAsNonRoot: true and seccompProfile RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            err(f"{where}: automountServiceAccountToken must be false")
        if spec.get("enableServiceLinks") is not False:
            err(f"{where}: enableServiceLinks must be false (link variables would enter DOUMI_*)")
        if not any(p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels) for p in policies):
            err(f"{where}: no NetworkPolicy selects its pods")
        for c in spec["containers"]:
            cw = f"{where} container {c['name']}"
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                err(f"{cw}: image {image!r} needs a fixed tag (never :latest)")
            if c.get("imagePullPolicy") not in ("IfNotPresent", "Never"):
                err(f"{cw}: imagePullPolicy must be IfNotPresent or Never")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        err(f"{cw}: resources.{part}.{r} missing")
            if "readinessProbe" not in c or "livenessProbe" not in c:
                err(f"{cw}: needs readinessProbe and livenessProbe")
            sc = c.get("securityContext", {})
            if (sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True
                    or "ALL" not in (sc.get("capabilities") or {}).get("drop", [])):
                err(f"{cw}: securityContext needs allowPrivilegeEscalation: false, "
                    "readOnlyRootFilesystem: true, capabilities.drop: [ALL]")
            if c.get("envFrom"):
                err(f"{cw}: envFrom would pass settings the binary does not read; list env explicitly")
            if c["name"] == "redis":
                continue
            # The issue's contract: /readyz (turns false on SIGTERM, so draining pods leave the
            # Service) for readiness, /healthz (only "the process is alive") for liveness.
            ready, live = c.get("readinessProbe", {}), c.get("livenessProbe", {})
            if c["name"] == "gateway" and ((ready.get("httpGet") or {}).get("path") != "/readyz"
                                           or (live.get("httpGet") or {}).get("path") != "/healthz"):
                err(f"{cw}: probes must be httpGet /readyz (readiness) and /healthz (liveness)")
            sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if not sleep or grace < sleep + 5:
                err(f"{cw}: needs a preStop sleep and a grace period at least 5 s longer than it")

    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        err("no default-deny NetworkPolicy (podSelector: {}, policyTypes Ingress and Egress, no rules)")

    for svc in by_kind.get("Service", []):
        name = svc["metadata"]["name"]
        if svc["spec"].get("type", "ClusterIP") != "ClusterIP" and name not in PUBLIC:
            err(f"Service {name}: only {sorted(PUBLIC)} may be reachable from outside the cluster")
        targets = [d for d in deployments if selects({"matchLabels": svc["spec"]["selector"]},
                                                      d["spec"]["template"]["metadata"].get("labels", {}))]
        if len(targets) != 1:
            err(f"Service {name}: selects {len(targets)} Deployments, expected 1")
            continue
        names = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
                err(f"Service {name}: targetPort {p['targetPort']!r} is no container port name")

    dep_names = {d["metadata"]["name"] for d in deployments}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if hpa["spec"]["scaleTargetRef"]["name"] not in dep_names:
            err(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: no such Deployment")
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        covered = {d["metadata"]["name"] for d in by_kind.get(kind, [])}
        for svc in ("doumi-gateway", "doumi-bot", "doumi-catalog"):
            if svc not in covered:
                err(f"{svc}: no {kind}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not any(selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"].get("labels", {}))
                   for d in deployments):
            err(f"PodDisruptionBudget {pdb['metadata']['name']}: selects no Deployment's pods")
    return errors


def main(paths):
    failed = False
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        errors = check(docs)
        for e in errors:
            print(f"{path}: {e}", file=sys.stderr)
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
PY
)
for file in "${rendered[@]}"; do
  "$python" -c "$policy" "$file" || die "${file#"$repo_root"/} breaks doumi's manifest rules (above)"
  printf '==> rules ok   %s\n' "$(basename "$file" .yaml)"
done

# --- 4. self-test: the checks above must be able to fail -----------------------------------------
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
kind_file=$out/kind.yaml
# A typo'd field (resourcez) must fail the schema check ...
sed '0,/^    spec:$/s//    spec:\n      resourcez: {}/' "$kind_file" >"$scratch/typo.yaml"
cmp -s "$kind_file" "$scratch/typo.yaml" && die "self-test: could not plant the typo"
if validate "${k8s_versions[0]}" "$scratch/typo.yaml" >/dev/null 2>&1; then
  die "self-test: kubernetes-validate accepted an unknown field; the schema check proves nothing"
fi
# ... and a container without a readiness probe, or with a :latest image, the rules.
sed '0,/readinessProbe:/s//startupProbe:/' "$kind_file" >"$scratch/noprobe.yaml"
sed '0,/image: doumi-gateway:0.1.0/s//image: doumi-gateway:latest/' "$kind_file" >"$scratch/latest.yaml"
for broken in noprobe latest; do
  cmp -s "$kind_file" "$scratch/$broken.yaml" && die "self-test: could not plant the $broken fault"
  if "$python" -c "$policy" "$scratch/$broken.yaml" 2>/dev/null; then
    die "self-test: the rules accepted a manifest with fault '$broken'"
  fi
done
printf '==> self-test ok (a typo, a missing probe and a :latest image are each caught)\n'

# --- 5. the manifests against the code -----------------------------------------------------------
if [[ ${DOUMI_CHECK_MANIFESTS_CARGO:-1} != 0 ]]; then
  printf '==> cargo test -p doumi-tests --test manifests\n'
  (cd "$repo_root" && cargo test --quiet --locked -p doumi-tests --test manifests) ||
    die "the manifests disagree with the code (tests/tests/manifests.rs, above)"
fi
printf 'check-manifests: %d renders, all checks passed\n' "${#rendered[@]}"
