# Sourced by the scripts that need a tool from the distribution's packages: one way to install it.
#
#   need_tool TOOL PACKAGE [SERVICE]   installs PACKAGE when TOOL is not on the PATH; SERVICE, the
#                                      package's own system-wide server (redis-server, prometheus),
#                                      is stopped and disabled: the scripts start what they need.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_tool() {
  local tool=$1 package=$2 service=${3:-}
  command -v "$tool" >/dev/null 2>&1 && return 0
  echo "installing $package from the distribution's packages (for $tool)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  if [ -n "$service" ]; then
    as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
}
