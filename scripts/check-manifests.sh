#!/usr/bin/env bash
# Offline checks of deploy/k8s: no cluster, no API server, no network once the validator is cached.
#
#   1. Every kustomization (base and each overlay) renders with `kubectl kustomize`; the output goes
#      to target/manifests/<name>.yaml for review.
#   2. `kubernetes-validate --strict` checks every document against the Kubernetes OpenAPI schemas
#      of the oldest version doumi supports and of the newest the validator knows (unknown fields,
#      missing required fields, wrong types, APIs that are gone).
#   3. Self-test: a misspelled field must fail step 2, so a green run means something.
#   4. The manifests against the code and doumi's own rules: `cargo test -p doumi-tests --test
#      manifests` reads every render into k8s-openapi's typed structs (unknown fields fail), checks
#      env vars, ports, probes, Service URLs and NetworkPolicies against the binaries' own clap
#      definitions and start-up validation, and applies the project rules the schema cannot know
#      (labels, securityContext, pinned images and pull policy, resources, graceful termination,
#      default-deny NetworkPolicy, autoscalers and disruption budgets, only the gateway exposed);
#      it breaks the kind overlay in each of those ways to prove each check can fail
#      (tests/tests/manifests.rs). Skipped with DOUMI_CHECK_MANIFESTS_CARGO=0.
#
# kubernetes-validate comes from PyPI into a venv under ~/.cache/doumi (made once, then reused).
# Exits non-zero on the first failing step.
#
# Env: DOUMI_K8S_VERSIONS     schema versions to validate against (default "1.30.0 1.37.0"; 1.30
#                             is the oldest: the preStop `sleep` action is on by default from 1.30)
#      DOUMI_VALIDATE_VENV    where the venv lives
#      DOUMI_CHECK_MANIFESTS_CARGO=0  skip step 4 (e.g. right after scripts/test, which runs it too)
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

# --- 3. self-test: the schema check must be able to fail -----------------------------------------
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
kind_file=$out/kind.yaml
# A typo'd field (resourcez) must fail the schema check.
sed '0,/^    spec:$/s//    spec:\n      resourcez: {}/' "$kind_file" >"$scratch/typo.yaml"
cmp -s "$kind_file" "$scratch/typo.yaml" && die "self-test: could not plant the typo"
if validate "${k8s_versions[0]}" "$scratch/typo.yaml" >/dev/null 2>&1; then
  die "self-test: kubernetes-validate accepted an unknown field; the schema check proves nothing"
fi
printf '==> self-test ok (a typo is caught)\n'

# --- 4. the manifests against the code and doumi's rules -----------------------------------------
if [[ ${DOUMI_CHECK_MANIFESTS_CARGO:-1} != 0 ]]; then
  printf '==> cargo test -p doumi-tests --test suite manifests::\n'
  (cd "$repo_root" && cargo test --quiet --locked -p doumi-tests --test suite manifests::) ||
    die "the manifests disagree with the code or break doumi's rules (tests/tests/manifests.rs, above)"
fi
printf 'check-manifests: %d renders, all checks passed\n' "${#rendered[@]}"
