#!/usr/bin/env bash
# The gRPC contracts under proto/ checked with Buf (configuration in proto/buf.yaml):
#
#   1. `buf lint`: the STANDARD rules, with the exceptions buf.yaml records (and the protos explain).
#   2. `buf breaking` against proto/baseline/catalog-v1.binpb, the image of the contracts as last
#      released (both doumi.catalog.v1 and doumi.bot.v1), with the FILE rules: no field renumbered,
#      renamed or retyped, nothing removed, no generated-code package moved.
#   3. Self-test: a copy of the protos with one field renumbered must fail step 2, and one with a
#      camelCase field must fail step 1, so a green run means something.
#
# Re-cutting the baseline after a release (commit the result with the release):
#   scripts/check-proto.sh --rebaseline v1.2.0     # any git ref; the image is built from its proto/
#
# The Buf CLI comes from PyPI (buf-bin) into a venv under ~/.cache/doumi (made once, then reused);
# after that the check needs no network: the well-known types are built into buf.
#
# Env: DOUMI_BUF_VENV  where the venv lives
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
buf_version=1.75.0
venv=${DOUMI_BUF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/doumi/buf-$buf_version}
proto=$repo_root/proto
baseline=$proto/baseline/catalog-v1.binpb

die() { printf 'check-proto: %s\n' "$*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is not installed (it installs the Buf CLI from PyPI)"

if [[ ! -x $venv/bin/buf ]]; then
  printf '==> installing buf %s into %s\n' "$buf_version" "$venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "buf-bin==$buf_version" ||
    die "pip install buf-bin failed"
fi
buf=$venv/bin/buf

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [[ ${1:-} == --rebaseline ]]; then
  ref=${2:?usage: check-proto.sh --rebaseline GIT_REF}
  git -C "$repo_root" archive "$ref" proto | tar -x -C "$scratch" || die "no proto/ at $ref"
  (cd "$scratch/proto" && "$buf" build --exclude-source-info -o "$baseline") ||
    die "the protos at $ref do not build"
  printf '==> baseline %s rebuilt from %s; drop the waivers in buf.yaml that it makes moot\n' \
    "${baseline#"$repo_root"/}" "$ref"
  exit 0
fi

[[ -f $baseline ]] || die "${baseline#"$repo_root"/} is missing (see --rebaseline)"

# --- 1. lint -------------------------------------------------------------------------------------
(cd "$proto" && "$buf" lint) || die "buf lint found problems (rules: proto/buf.yaml)"
printf '==> lint ok      (STANDARD)\n'

# --- 2. breaking ---------------------------------------------------------------------------------
(cd "$proto" && "$buf" breaking --against "$baseline") ||
  die "the protos break the released contract (${baseline#"$repo_root"/})"
printf '==> breaking ok  (FILE, against %s)\n' "${baseline#"$repo_root"/}"

# --- 3. self-test --------------------------------------------------------------------------------
# mutate FILE SED_EXPR NAME: a copy of proto/ with one edit that must be caught.
mutate() {
  local dir=$scratch/$3
  cp -R "$proto" "$dir"
  sed -i "$2" "$dir/$1"
  cmp -s "$proto/$1" "$dir/$1" && die "self-test '$3': the edit did not apply"
  printf '%s\n' "$dir"
}

renumbered=$(mutate doumi/catalog/v1/catalog.proto \
  '/^message GetBookByIsbnRequest/,/^}/s/string isbn = 1;/string isbn = 5;/' renumbered)
if (cd "$renumbered" && "$buf" breaking --against "$baseline" >/dev/null 2>&1); then
  die "self-test: a renumbered field passed buf breaking"
fi
camel=$(mutate doumi/catalog/v1/catalog.proto \
  '/^message SearchBooksRequest/,/^}/s/int32 page_size = 2;/int32 pageSize = 2;/' camel)
if (cd "$camel" && "$buf" lint >/dev/null 2>&1); then
  die "self-test: a camelCase field passed buf lint"
fi
printf '==> self-test ok (a renumbered field breaks, a camelCase field fails lint)\n'
