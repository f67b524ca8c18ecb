#!/usr/bin/env bash
# Makes doumi's base images locally, with no container registry: everything comes from a Debian
# mirror through debootstrap/apt and enters Docker through `docker import` / `docker build`.
#
#   doumi-base:bookworm     Debian 12 "minbase" root + ca-certificates, trimmed (no docs, man pages,
#                           locales or apt lists). Has a shell and apt: the base for the Redis image
#                           and for anything that needs a package installed.
#   doumi-runtime:bookworm  A distroless-style root cut out of the same tree: glibc, libgcc, the CA
#                           bundle, passwd/group with user doumi (10001). No shell, no package
#                           manager. The RUNTIME_BASE of deploy/docker/Dockerfile.
#   doumi-redis:7.0         doumi-base plus Debian's redis-server (7.0.x for all of bookworm),
#                           added as one layer on top of doumi-base.
#
# Images that already exist are reused; --rebuild makes all three again. Needs root (debootstrap,
# chroot) and Docker. Installs debootstrap and rsync with apt-get when they are missing.
#
# Usage: deploy/docker/base-image.sh [--rebuild]
# Env:   DOUMI_DEBIAN_MIRROR  Debian mirror URL (default: debootstrap's own default mirror)
#        DOUMI_DEBIAN_SECURITY_MIRROR  security archive URL (default: <mirror>/../debian-security)
#        DOUMI_BASE_WORKDIR   scratch dir for the roots (default <repo>/target/base-image)
set -euo pipefail

SUITE=bookworm
MIRROR=${DOUMI_DEBIAN_MIRROR:-} # empty: debootstrap's default
BASE_IMAGE=doumi-base:bookworm
RUNTIME_IMAGE=doumi-runtime:bookworm
REDIS_IMAGE=doumi-redis:7.0
APP_UID=10001 # the services' user; the manifests' runAsUser

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
work=${DOUMI_BASE_WORKDIR:-$repo_root/target/base-image}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'base-image: %s\n' "$*" >&2; exit 1; }

rebuild=0
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=1 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "needs root (debootstrap and chroot); run it as root"
  exec sudo --preserve-env=DOUMI_DEBIAN_MIRROR,DOUMI_DEBIAN_SECURITY_MIRROR,DOUMI_BASE_WORKDIR "$0" "$@"
fi
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running?)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if [[ $rebuild -eq 0 ]] && image_exists "$BASE_IMAGE" && image_exists "$RUNTIME_IMAGE" &&
  image_exists "$REDIS_IMAGE"; then
  log "reusing $BASE_IMAGE, $RUNTIME_IMAGE and $REDIS_IMAGE (--rebuild to make them again)"
  exit 0
fi

# With --rebuild, the images being replaced; removed at the end so they do not pile up untagged.
superseded=()
if [[ $rebuild -eq 1 ]]; then
  for image in "$REDIS_IMAGE" "$RUNTIME_IMAGE" "$BASE_IMAGE"; do
    id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) && superseded+=("$id")
  done
fi

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v rsync >/dev/null || missing+=(rsync)
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rootfs=$work/rootfs            # doumi-base
runtime_rootfs=$work/runtime   # doumi-runtime
redis_rootfs=$work/redis       # doumi-base + redis-server
redis_layer=$work/redis-layer  # what redis-server added, as a build context
mkdir -p "$work"

# Run a command in a root with /proc mounted (some maintainer scripts want it) and the host's DNS.
in_root() {
  local root=$1
  shift
  mount -t proc proc "$root/proc"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  local rc=0
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    LC_ALL=C "$@" || rc=$?
  : >"$root/etc/resolv.conf" # the runtime mounts its own; never ship the build host's
  umount "$root/proc"
  return $rc
}

# Remove a build root left by an earlier run, even one interrupted inside in_root (never descending
# into a still-mounted /proc).
remove_root() {
  umount "$1/proc" 2>/dev/null || true
  rm -rf --one-file-system "$1"
}

# Drop what a container never reads. Copyright files stay (they go with the binaries).
trim() {
  local root=$1
  in_root "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian \
    "$root"/usr/share/locale/* "$root"/usr/share/bug "$root"/usr/share/linda \
    "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
  find "$root"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
}

# A root as a tar stream with numeric owners. The device nodes debootstrap made in /dev stay in the
# build root (chroot'ed apt needs /dev/null) but not in images: Docker and the kubelet mount /dev.
tar_root() {
  local root=$1
  shift
  tar --numeric-owner --xattrs --exclude='./dev/*' "$@" -C "$root" -cf - .
}

# --- doumi-base -----------------------------------------------------------------------------------
if [[ $rebuild -eq 1 || ! -f $rootfs/.doumi-complete ]]; then
  remove_root "$rootfs"
  log "debootstrap $SUITE (minbase + ca-certificates)${MIRROR:+ from $MIRROR}, with security updates"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" ${MIRROR:+"$MIRROR"} \
    >"$work/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $work/debootstrap.log"

  # debootstrap knows only the release itself; add its point updates and security fixes.
  mirror_url=$(awk '$1 == "deb" { print $2; exit }' "$rootfs/etc/apt/sources.list")
  security_url=${DOUMI_DEBIAN_SECURITY_MIRROR:-${mirror_url%/debian}/debian-security}
  printf 'deb %s %s main\n' "$mirror_url" "$SUITE" "$mirror_url" "$SUITE-updates" \
    "$security_url" "$SUITE-security" >"$rootfs/etc/apt/sources.list"
  in_root "$rootfs" apt-get update -qq >>"$work/debootstrap.log" 2>&1 ||
    die "apt-get update failed (set DOUMI_DEBIAN_SECURITY_MIRROR?); see $work/debootstrap.log"
  in_root "$rootfs" apt-get upgrade -y -qq >>"$work/debootstrap.log" 2>&1 ||
    die "apt-get upgrade failed; see $work/debootstrap.log"

  # Packages installed later (the Redis image) skip docs and locales too, like Debian's slim images.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90-doumi-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/90-doumi-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  # Never start daemons from maintainer scripts inside a build root.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

  in_root "$rootfs" groupadd --gid "$APP_UID" doumi
  in_root "$rootfs" useradd --uid "$APP_UID" --gid "$APP_UID" --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin doumi
  trim "$rootfs"
  touch "$rootfs/.doumi-complete"
fi

if [[ $rebuild -eq 1 ]] || ! image_exists "$BASE_IMAGE"; then
  log "importing $BASE_IMAGE"
  tar_root "$rootfs" --exclude=./.doumi-complete | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE + ca-certificates, trimmed" \
    - "$BASE_IMAGE" >/dev/null
fi

# --- doumi-runtime --------------------------------------------------------------------------------
# Only what a glibc-linked Rust binary needs at run time: the files of libc6 and libgcc-s1 (minus
# docs and iconv's gconv modules, which Rust never loads), the CA bundle, passwd/group/nsswitch.
if [[ $rebuild -eq 1 ]] || ! image_exists "$RUNTIME_IMAGE"; then
  log "cutting $RUNTIME_IMAGE out of the base root"
  rm -rf "$runtime_rootfs"
  mkdir -p "$runtime_rootfs"
  # Keep bookworm's merged /usr layout: /lib, /lib64, /bin and /sbin are symlinks into /usr.
  for top in bin sbin lib lib64; do
    if [[ -L $rootfs/$top ]]; then
      cp -a "$rootfs/$top" "$runtime_rootfs/$top"
      mkdir -p "$runtime_rootfs/$(readlink "$rootfs/$top")"
    fi
  done
  pkgs=(libc6 libgcc-s1 gcc-12-base)
  dpkg-query --admindir="$rootfs/var/lib/dpkg" -L "${pkgs[@]}" |
    while IFS= read -r path; do
      # Through a /usr-merged root: write every path to its /usr location.
      case "$path" in
        /bin/* | /sbin/* | /lib/* | /lib64/*)
          top=${path#/}; top=${top%%/*}
          [[ -L $rootfs/$top ]] && path=/usr/$path ;;
      esac
      case "$path" in
        /bin | /sbin | /lib | /lib64) continue ;; # the symlinks made above
        */gconv/* | /usr/share/lintian/* | /usr/share/locale/* | /usr/share/man/*) continue ;;
        /usr/share/doc/*/copyright) ;;
        /usr/share/doc/*) continue ;;
      esac
      if [[ -L $rootfs$path || -f $rootfs$path ]]; then printf '%s\n' ".$path"; fi
    done >"$work/runtime-files"
  {
    cat "$work/runtime-files"
    printf '%s\n' ./etc/ssl/certs/ca-certificates.crt ./etc/ld.so.cache ./etc/ld.so.conf \
      ./etc/ld.so.conf.d ./etc/os-release ./usr/lib/os-release ./etc/debian_version \
      ./usr/share/doc/ca-certificates/copyright
  } | (cd "$rootfs" && xargs -d '\n' cp -a --parents --no-dereference -t "$runtime_rootfs")

  rt=$runtime_rootfs
  mkdir -p "$rt/tmp" "$rt/etc" "$rt/proc" "$rt/sys" "$rt/dev" "$rt/var/lib/dpkg/status.d"
  chmod 1777 "$rt/tmp"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ndoumi:x:%s:%s:doumi:/nonexistent:/usr/sbin/nologin\n' \
    "$APP_UID" "$APP_UID" >"$rt/etc/passwd"
  printf 'root:x:0:\ndoumi:x:%s:\n' "$APP_UID" >"$rt/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rt/etc/nsswitch.conf"
  : >"$rt/etc/resolv.conf"
  : >"$rt/etc/hosts"
  # Package records in distroless' layout, so image scanners know what is inside.
  for pkg in "${pkgs[@]}" ca-certificates; do
    dpkg-query --admindir="$rootfs/var/lib/dpkg" -s "$pkg" | grep -v '^Conffiles:\|^ /' \
      >"$rt/var/lib/dpkg/status.d/$pkg"
  done
  tar_root "$rt" | docker import \
    --change "USER $APP_UID:$APP_UID" \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --message "glibc + libgcc + CA bundle from debootstrap $SUITE; no shell" \
    - "$RUNTIME_IMAGE" >/dev/null
fi

# --- doumi-redis ----------------------------------------------------------------------------------
# redis-server is installed into a copy of the base root; the files it added or changed become one
# layer ADDed on top of doumi-base, so the image really is `FROM doumi-base`.
if [[ $rebuild -eq 1 ]] || ! image_exists "$REDIS_IMAGE"; then
  log "installing redis-server into a copy of the base root"
  remove_root "$redis_rootfs"
  rm -rf "$redis_layer"
  cp -a "$rootfs" "$redis_rootfs"
  in_root "$redis_rootfs" apt-get update -qq
  in_root "$redis_rootfs" apt-get install -y -qq redis-server >"$work/redis-apt.log" 2>&1 ||
    die "apt-get install redis-server failed; see $work/redis-apt.log"
  trim "$redis_rootfs"
  version=$(dpkg-query --admindir="$redis_rootfs/var/lib/dpkg" -W -f '${Version}' redis-server)

  mkdir -p "$redis_layer/rootfs"
  rsync -a --checksum --compare-dest="$rootfs/" "$redis_rootfs/" "$redis_layer/rootfs/"
  # rsync recreates every directory; keep only the ones redis-server made.
  (cd "$redis_layer/rootfs" && find . -depth -type d -empty) | while IFS= read -r d; do
    [[ -d $rootfs/$d ]] && rmdir "$redis_layer/rootfs/$d"
  done
  # Redis' working directory, writable by the doumi user when run without a volume.
  install -d -m 0750 -o "$APP_UID" -g "$APP_UID" "$redis_layer/rootfs/data"
  tar_root "$redis_layer/rootfs" >"$redis_layer/redis.tar"
  rm -rf "$redis_layer/rootfs"
  log "building $REDIS_IMAGE (redis-server $version) FROM $BASE_IMAGE"
  docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "REDIS_VERSION=$version" \
    -f "$here/redis.Dockerfile" -t "$REDIS_IMAGE" "$redis_layer" >/dev/null
fi

for id in "${superseded[@]}"; do
  docker image rm "$id" >/dev/null 2>&1 || true # still in use by a container or image: kept
done

docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
  grep -E "^($BASE_IMAGE|$RUNTIME_IMAGE|$REDIS_IMAGE)\b" >&2
