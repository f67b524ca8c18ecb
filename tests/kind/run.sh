#!/usr/bin/env bash
# doumi on a real Kubernetes cluster (kind), end to end:
#
#   1. builds the release binaries (cargo) and the images (deploy/docker/), including doumi-redis;
#   2. creates a kind cluster from tests/kind/kind-config.yaml and loads the images into it;
#   3. applies deploy/k8s/overlays/kind and waits for every rollout;
#   4. acts as WeChat through the mapped NodePort: URL verification, a forged signature, an ISBN
#      (浪潮之巅), a keyword (三体), the catalog scaled to zero (an apology, still HTTP 200) and
#      back (answers again);
#   5. checks the NetworkPolicies: the catalog talks to Redis; a pod in another namespace reaches
#      the gateway but neither the catalog nor Redis, even when it carries the bot's labels;
#   6. deletes the cluster (also on failure, after printing pods, events and logs).
#
# Needs docker (with a running daemon and access to kind's node image), kind >= v0.24 (kindnet
# enforces NetworkPolicy from then on), kubectl, curl, sha1sum, and cargo (or prebuilt binaries in
# target/release); building the base images needs root or sudo (debootstrap).
# Without them it says what is missing and exits 1, or 0 with "SKIPPED" when DOUMI_KIND_OPTIONAL=1.
#
# Env: DOUMI_KIND_OPTIONAL=1     skip (exit 0) instead of failing when a tool is missing
#      DOUMI_KIND_CLUSTER        cluster name (default doumi-e2e; must not exist yet)
#      DOUMI_KIND_HOST_PORT      host port mapped to the gateway (default 18080, on 127.0.0.1)
#      DOUMI_KIND_NODE_IMAGE     node image for `kind create cluster --image` (default: kind's own)
#      DOUMI_KIND_SKIP_BUILD=1   use the images already in Docker instead of building them
#      DOUMI_KIND_KEEP=1         keep the cluster afterwards (delete: kind delete cluster --name ...)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster=${DOUMI_KIND_CLUSTER:-doumi-e2e}
host_port=${DOUMI_KIND_HOST_PORT:-18080}
ctx=kind-$cluster
gateway=http://127.0.0.1:$host_port
token=doumiKindToken1  # the kind overlay's DOUMI_WECHAT_TOKEN
tag=0.1.0              # the tags in deploy/k8s/base/kustomization.yaml
images=("doumi-gateway:$tag" "doumi-bot:$tag" "doumi-catalog:$tag" "doumi-redis:7.0")
deployments=(doumi-redis doumi-catalog doumi-bot doumi-gateway)
services=(doumi-gateway doumi-bot doumi-catalog)

log() { printf '==> %s\n' "$*"; }
pass() { printf 'ok: %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
passed=0

# --- prerequisites -------------------------------------------------------------------------------
missing=()
for tool in docker kind kubectl curl sha1sum; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
have_binaries=1
for svc in "${services[@]}"; do [[ -x $repo_root/target/release/$svc ]] || have_binaries=0; done
if [[ ${DOUMI_KIND_SKIP_BUILD:-0} != 1 ]] && ! command -v cargo >/dev/null 2>&1 && [[ $have_binaries == 0 ]]; then
  missing+=("cargo (or prebuilt target/release binaries)")
fi
if command -v docker >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  missing+=("a running Docker daemon (docker info fails)")
fi
if command -v kind >/dev/null 2>&1; then
  kind_version=$(kind version | sed -n 's/^kind v\([0-9]*\.[0-9]*\).*/\1/p')
  if [[ -z $kind_version ]] || [[ $(printf '%s\n' "$kind_version" 0.24 | sort -V | head -1) != 0.24 ]]; then
    missing+=("kind >= v0.24 (found '$(kind version)'; older kindnet ignores NetworkPolicy)")
  fi
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "tests/kind/run.sh needs what is missing here:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  if [[ ${DOUMI_KIND_OPTIONAL:-0} == 1 ]]; then
    echo "SKIPPED: tests/kind/run.sh (DOUMI_KIND_OPTIONAL=1)"
    exit 0
  fi
  echo "FAILED: tests/kind/run.sh cannot run here (set DOUMI_KIND_OPTIONAL=1 to skip instead)" >&2
  exit 1
fi

k() { kubectl --context "$ctx" "$@"; } # never touch any other cluster

scratch=$(mktemp -d)
created=0
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && $created == 1 ]]; then
    echo "---- diagnostics (cluster $cluster) ----" >&2
    k get pods -A -o wide >&2 || true
    k -n doumi get events --sort-by=.lastTimestamp 2>/dev/null | tail -40 >&2 || true
    k -n doumi logs -l app.kubernetes.io/part-of=doumi --all-containers --prefix \
      --max-log-requests=20 --tail=80 >&2 || true
  fi
  if [[ $created == 1 ]]; then
    if [[ ${DOUMI_KIND_KEEP:-0} == 1 ]]; then
      log "keeping cluster $cluster (kind delete cluster --name $cluster)"
    else
      log "deleting cluster $cluster"
      kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$scratch"
  if [[ $rc -eq 0 ]]; then echo "$passed passed, 0 failed"; else echo "$passed passed, 1 failed"; fi
  exit $rc
}
trap cleanup EXIT

# --- 1. images -----------------------------------------------------------------------------------
cd "$repo_root"
if [[ ${DOUMI_KIND_SKIP_BUILD:-0} != 1 ]]; then
  if command -v cargo >/dev/null 2>&1; then
    log "cargo build --release"
    cargo build --release --locked -p doumi-gateway -p doumi-bot -p doumi-catalog
  else
    log "no cargo: using the binaries already in target/release"
  fi
  deploy/docker/base-image.sh # doumi-runtime and doumi-redis; reused when present
  DOUMI_IMAGE_TAG=$tag deploy/docker/build-images.sh
fi
for image in "${images[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || fail "image $image is missing (build it or unset DOUMI_KIND_SKIP_BUILD)"
done

# --- 2. cluster ----------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  fail "a kind cluster named $cluster already exists: delete it (kind delete cluster --name $cluster) or set DOUMI_KIND_CLUSTER"
fi
sed "s/hostPort: 18080/hostPort: $host_port/" tests/kind/kind-config.yaml >"$scratch/kind-config.yaml"
log "creating kind cluster $cluster (gateway on $gateway)"
created=1
kind create cluster --name "$cluster" --config "$scratch/kind-config.yaml" --wait 180s \
  ${DOUMI_KIND_NODE_IMAGE:+--image "$DOUMI_KIND_NODE_IMAGE"} ||
  fail "kind create cluster failed (it needs its kindest/node image: registry access, or a loaded image named by DOUMI_KIND_NODE_IMAGE; and host port $host_port free)"
server_minor=$(k version 2>/dev/null | sed -n 's/^Server Version: v1\.\([0-9]*\).*/\1/p')
[[ -n $server_minor && $server_minor -ge 30 ]] ||
  fail "the manifests need Kubernetes >= 1.30 (preStop sleep); the cluster runs 1.${server_minor:-?}"
log "loading images: ${images[*]}"
kind load docker-image --name "$cluster" "${images[@]}" >/dev/null

# --- 3. deploy -----------------------------------------------------------------------------------
log "kubectl apply -k deploy/k8s/overlays/kind"
k apply -k deploy/k8s/overlays/kind >/dev/null
for d in "${deployments[@]}"; do
  k -n doumi rollout status "deployment/$d" --timeout=180s >/dev/null || fail "deployment $d did not become ready"
done
pass "all four deployments rolled out"

# --- 4. WeChat through the NodePort --------------------------------------------------------------
# shellcheck source=SCRIPTDIR/wechat.sh
source "$repo_root/tests/kind/wechat.sh" # wechat_send, wechat_verify, ... (shared with scripts/container-test)
wechat_url=$gateway/wechat
wechat_token=$token
wechat_reply=$scratch/reply
expect_reply() { # NAME TEXT MUST_CONTAIN [MUST_NOT_CONTAIN]
  wechat_send "$2"
  [[ $wechat_status != 000 ]] || fail "$1: no answer from the gateway"
  [[ $wechat_status == 200 ]] || fail "$1: HTTP $wechat_status (want 200): $(cat "$wechat_reply")"
  grep -qF -- "$3" "$wechat_reply" || fail "$1: the reply lacks '$3': $(cat "$wechat_reply")"
  wechat_reply_is_addressed || fail "$1: the reply is not addressed back to $wechat_reader from gh_test: $(cat "$wechat_reply")"
  if [[ -n ${4:-} ]] && grep -qF -- "$4" "$wechat_reply"; then
    fail "$1: the reply contains '$4': $(cat "$wechat_reply")"
  fi
  pass "$1 (${wechat_secs}s)"
}

# URL verification; retried while the NodePort path settles.
echostr=doumi-echo-$RANDOM
for attempt in $(seq 30); do
  verify=$(wechat_verify "$echostr" 2>/dev/null) && break
  [[ $attempt == 30 ]] && fail "the gateway does not answer on $gateway"
  sleep 1
done
[[ $verify == "$echostr" ]] || fail "URL verification: got '$verify', want '$echostr'"
pass "GET /wechat echoes echostr"

ts=$(date +%s)
status=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
  "$gateway/wechat?signature=0000000000000000000000000000000000000000&timestamp=$ts&nonce=1&echostr=x")
[[ $status == 4?? ]] || fail "a forged signature got HTTP $status (want 4xx)"
pass "a forged signature is refused (HTTP $status)"

expect_reply "ISBN 9787121139512 -> 浪潮之巅" 9787121139512 浪潮之巅 抱歉
expect_reply "keyword 三体 -> a book called 三体" 三体 三体 抱歉

# --- 5. NetworkPolicies --------------------------------------------------------------------------
# The catalog reached Redis through its policy: one of Redis' clients is a catalog pod.
catalog_ips=$(k -n doumi get pods -l app.kubernetes.io/name=doumi-catalog -o jsonpath='{.items[*].status.podIP}')
clients=$(k -n doumi exec deploy/doumi-redis -- redis-cli client list)
found=0
for ip in $catalog_ips; do grep -q "addr=$ip:" <<<"$clients" && found=1; done
[[ $found == 1 ]] || fail "no catalog pod ($catalog_ips) is connected to Redis: $clients"
pass "catalog -> redis allowed (catalog connected to Redis)"

# From another namespace, with the bot's labels: the gateway answers, the catalog and Redis don't.
k create namespace doumi-netcheck >/dev/null
# shellcheck disable=SC2016 # expanded by bash inside the pod
probe_script='
probe() { if timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "$3 open"; else echo "$3 closed"; fi; }
probe doumi-gateway.doumi.svc.cluster.local 8080 gateway
probe doumi-catalog.doumi.svc.cluster.local 50052 catalog
probe doumi-redis.doumi.svc.cluster.local 6379 redis'
k -n doumi-netcheck run netcheck --image=doumi-redis:7.0 --image-pull-policy=IfNotPresent \
  --restart=Never --labels=app.kubernetes.io/name=doumi-bot,app.kubernetes.io/part-of=doumi \
  --command -- bash -c "$probe_script" >/dev/null
for _ in $(seq 90); do
  phase=$(k -n doumi-netcheck get pod netcheck -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
[[ $phase == Succeeded ]] || fail "the netcheck pod ended as '$phase'"
netcheck=$(k -n doumi-netcheck logs netcheck)
grep -qx 'gateway open' <<<"$netcheck" ||
  fail "netcheck: the gateway should be reachable (control for DNS and the probe itself): $netcheck"
grep -qx 'catalog closed' <<<"$netcheck" || fail "netcheck: another namespace reaches the catalog: $netcheck"
grep -qx 'redis closed' <<<"$netcheck" || fail "netcheck: another namespace reaches Redis: $netcheck"
k delete namespace doumi-netcheck --wait=false >/dev/null
pass "another namespace reaches the gateway but not the catalog or Redis"

# --- 4b. the catalog down, then back -------------------------------------------------------------
# Scaled to zero, the autoscaler stands aside (it does not scale a Deployment up from 0).
k -n doumi scale deployment/doumi-catalog --replicas=0 >/dev/null
for attempt in $(seq 60); do # preStop (5 s) + drain: well under a minute
  [[ -z $(k -n doumi get pods -l app.kubernetes.io/name=doumi-catalog -o name) ]] && break
  [[ $attempt == 60 ]] && fail "the catalog pods did not go away"
  sleep 1
done
expect_reply "catalog down -> an apology, HTTP 200" 9787121139512 抱歉
k -n doumi scale deployment/doumi-catalog --replicas=1 >/dev/null
k -n doumi rollout status deployment/doumi-catalog --timeout=120s >/dev/null || fail "the catalog did not come back"
# The bot reconnects on its own; give it a few tries.
for attempt in $(seq 10); do
  wechat_send 9787121139512
  [[ $wechat_status == 200 ]] && grep -qF 浪潮之巅 "$wechat_reply" && break
  [[ $attempt == 10 ]] && fail "after the catalog came back the reply is still: $(cat "$wechat_reply")"
  sleep 2
done
pass "catalog back -> 浪潮之巅 again"
