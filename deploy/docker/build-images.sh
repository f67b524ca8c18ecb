#!/usr/bin/env bash
# Builds doumi-gateway, doumi-bot and doumi-catalog images from the release binaries in
# target/release/ (deploy/docker/Dockerfile), plus the local base and Redis images when the
# default offline runtime base is used. Needs no registry.
#
# DOUMI_IMAGE_PROFILE=dev takes the binaries of the dev profile (target/debug) instead: CI's
# container test checks how the images are made and run with the binaries the test suite built,
# not the optimiser (a release build with fat LTO takes six minutes on two cores). Images for a
# deployment are built from release.
#
# Usage: deploy/docker/build-images.sh
# Env:   DOUMI_IMAGE_TAG     tag of the three images (default 0.1.0, the tag deploy/k8s expects)
#        DOUMI_RUNTIME_BASE  runtime base image (default doumi-runtime:bookworm, made by
#                            base-image.sh when missing; e.g. gcr.io/distroless/cc-debian12 online)
#        DOUMI_IMAGE_PROFILE release (default) or dev: which build's binaries the images hold
#        DOUMI_CARGO_BUILD=1 run `cargo build` (of that profile) for the three binaries first
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
tag=${DOUMI_IMAGE_TAG:-0.1.0}
runtime_base=${DOUMI_RUNTIME_BASE:-doumi-runtime:bookworm}
services=(doumi-gateway doumi-bot doumi-catalog)
case ${DOUMI_IMAGE_PROFILE:-release} in
  release) binaries=target/release ;;
  dev) binaries=target/debug ;;
  *) printf 'build-images: DOUMI_IMAGE_PROFILE must be release or dev\n' >&2; exit 64 ;;
esac

die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }
command -v docker >/dev/null || die "docker is not installed"

cd "$repo_root"
build=(cargo build --profile "${DOUMI_IMAGE_PROFILE:-release}" --locked -p doumi-gateway -p doumi-bot -p doumi-catalog)
if [[ ${DOUMI_CARGO_BUILD:-0} == 1 ]]; then
  "${build[@]}"
fi
for svc in "${services[@]}"; do
  [[ -x $binaries/$svc ]] ||
    die "$binaries/$svc is missing: run '${build[*]}' (or set DOUMI_CARGO_BUILD=1)"
done

if [[ $runtime_base == doumi-runtime:bookworm ]]; then
  "$here/base-image.sh" # reuses the images it finds
fi

for svc in "${services[@]}"; do
  printf '==> %s:%s\n' "$svc" "$tag" >&2
  previous=$(docker image inspect --format '{{.Id}}' "$svc:$tag" 2>/dev/null || true)
  docker build --quiet -f deploy/docker/Dockerfile --target "$svc" \
    --build-arg "RUNTIME_BASE=$runtime_base" --build-arg "VERSION=$tag" \
    --build-arg "BINARIES=$binaries" \
    -t "$svc:$tag" . >/dev/null
  # The image this tag pointed at before, now untagged: removed, so rebuilds (every CI run of
  # scripts/container-test) do not pile up. Kept while a container still uses it.
  if [[ -n $previous && $previous != "$(docker image inspect --format '{{.Id}}' "$svc:$tag")" ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
done
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
  grep -E "^(doumi-(gateway|bot|catalog):$tag|doumi-redis:7\.0)\b" >&2
