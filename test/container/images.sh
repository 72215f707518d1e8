#!/usr/bin/env bash
# Makes the images of the container test (scripts/test-container.ts, which runs this first), each one
# reused when podman's store already holds it:
#
#   localhost/orch-test/debian:bookworm         debootstrap --variant=minbase bookworm, imported
#   localhost/orch-test/node:22-<hash>          Node 22 and npm 10 from their npm packages over it
#                                               (node.Containerfile): a stand-in for node:22-bookworm-slim
#   localhost/orch-test/postgres:15-<hash>      PostgreSQL 15 from Debian over it (postgres.Containerfile):
#                                               a stand-in for the official postgres image
#   localhost/aws-orchestrator:container-test   ./Dockerfile, BASE=the Node image (its layers cached)
#
# <hash> is that of the files the image is made from: an edited Containerfile makes a new image. No
# registry is needed: Debian's archive and the npm registry only. The app's build gets the host's CA
# bundle as the build secret `ca` (a TLS-intercepting proxy): ORCH_BUILD_CA, else NODE_EXTRA_CA_CERTS,
# else /etc/ssl/certs/ca-certificates.crt when it exists. .ci/run starts this early in the background
# (all the CPU and network work of the container test), and the test later finds everything made.
#
# Needs root, podman, runc and debootstrap. Uses CONTAINERS_CONF, or writes one (runc, file limits
# within `ulimit -Hn`). Prints progress, then `image <role> <name>` and `timing <what>: <value>` lines;
# any failure ends it with a non-zero status and the end of the failed step's log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
started=$EPOCHREALTIME
since() { awk -v now="$EPOCHREALTIME" -v then="$1" 'BEGIN { printf "%.1f s", now - then }'; }
say() { printf '[images %s] %s\n' "$(since "$started")" "$*"; }
fail() {
  printf '[images] FAILED: %s\n' "$*" >&2
  exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/orch-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

[[ $(id -u) == 0 ]] || fail "run as root (rootful podman; debootstrap)"
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install podman runc debootstrap podman-compose"
done
if [[ -z ${CONTAINERS_CONF:-} ]]; then
  # crun (podman's default) fails on this kind of host (cgroups v1 hybrid; root may not raise
  # RLIMIT_NOFILE): runc, and default file limits no higher than the hard limit here.
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] && hard=65536
  nofile=$((hard < 65536 ? hard : 65536))
  export CONTAINERS_CONF=$work/containers.conf
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' "$nofile" "$nofile" >"$CONTAINERS_CONF"
fi

hash_of() { (cd "$here" && cat "$@") | sha256sum | cut -c1-12; }
debian=localhost/orch-test/debian:bookworm
node=localhost/orch-test/node:22-$(hash_of node.Containerfile)
postgres=localhost/orch-test/postgres:15-$(hash_of postgres.Containerfile postgres-entrypoint.sh)
app=localhost/aws-orchestrator:container-test
exists() { podman image exists "$1"; }
# Runs a step with its output in a log; on failure, says so with the log's end.
logged() {
  local what=$1 log=$work/$2.log
  shift 2
  "$@" >"$log" 2>&1 || {
    tail -n 40 "$log" >&2
    fail "$what (the lines above are the end of its log)"
  }
}

t=$EPOCHREALTIME
if exists "$debian"; then
  debian_took=reused
else
  logged "debootstrap of Debian bookworm" debootstrap debootstrap --variant=minbase bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  logged "podman import of Debian bookworm" import bash -c 'set -o pipefail; tar -C "$1" -c . | podman import --change "CMD [\"bash\"]" - "$2"' - "$work/rootfs" "$debian"
  rm -rf "$work/rootfs"
  debian_took="made in $(since "$t")"
fi
say "$debian: $debian_took"

# PostgreSQL in the background: the app's image does not need it.
t_pg=$EPOCHREALTIME
if exists "$postgres"; then
  echo reused >"$work/postgres.took"
  pg_pid=
else
  (
    logged "podman build of $postgres" postgres podman build --format docker -f "$here/postgres.Containerfile" --build-arg "DEBIAN=$debian" -t "$postgres" "$here"
    echo "made in $(since "$t_pg")" >"$work/postgres.took"
  ) &
  pg_pid=$!
fi

t=$EPOCHREALTIME
if exists "$node"; then
  node_took=reused
else
  case $(uname -m) in x86_64 | amd64) cpu=x64 ;; aarch64 | arm64) cpu=arm64 ;; *) fail "no Node package for $(uname -m)" ;; esac
  mkdir -p "$work/node-context/node" "$work/node-context/npm"
  (cd "$work" && npm pack "node-linux-$cpu@22" npm@10 --loglevel=error >"$work/packed") || fail "could not fetch node-linux-$cpu@22 and npm@10 from the npm registry"
  tar -xzf "$work/$(sed -n 1p "$work/packed")" -C "$work/node-context/node" --strip-components=1
  tar -xzf "$work/$(sed -n 2p "$work/packed")" -C "$work/node-context/npm" --strip-components=1
  logged "podman build of $node" node podman build --format docker -f "$here/node.Containerfile" --build-arg "DEBIAN=$debian" -t "$node" "$work/node-context"
  rm -rf "$work/node-context" "$work"/*.tgz
  node_took="made in $(since "$t")"
fi
say "$node: $node_took"

ca=
for f in "${ORCH_BUILD_CA:-}" "${NODE_EXTRA_CA_CERTS:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n $f && -f $f ]]; then
    ca=$f
    break
  fi
done
say "building $app FROM $node${ca:+ with the build secret ca=$ca}"
t=$EPOCHREALTIME
# Each line stamped with the time it came, to say which steps took the time.
podman build --format docker --layers --build-arg "BASE=$node" ${ca:+--secret "id=ca,src=$ca"} -t "$app" "$root" 2>&1 |
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$work/app.log" || {
  cut -d' ' -f2- "$work/app.log" | tail -n 40 >&2
  fail "podman build of $app (the lines above are the end of its log)"
}
app_took=$(since "$t")
steps=$(awk -v end="$EPOCHREALTIME" '
  / STEP [0-9]+\/[0-9]+: / { if (name != "") report(); at = $1; name = $0; sub(/^[^ ]+ /, "", name); if (name !~ / FROM /) steps++ }
  / --> Using cache / { cached++ }
  function report() { if ($1 - at >= 5) { split(name, w, " "); n = w[3]; sub(/\/.*/, "", n); slow = slow sprintf("%s%s step %s (%s) %.0f s", slow == "" ? "" : ", ", w[1] == "[1/2]" ? "build" : "runtime", n, w[4], $1 - at) } }
  END { if (name != "") { $1 = end; report() } printf "%s from the layer cache%s", (cached == steps ? "every step" : cached + 0 " of " steps " steps"), (slow == "" ? "" : "; " slow) }
' "$work/app.log")
say "$app: built in $app_took ($steps)"

if [[ -n $pg_pid ]]; then wait "$pg_pid" || fail "podman build of $postgres"; fi
say "$postgres: $(cat "$work/postgres.took")"

echo "image node $node"
echo "image postgres $postgres"
echo "image app $app"
echo "timing base images: Debian $debian_took, Node $node_took, PostgreSQL $(cat "$work/postgres.took") (beside the app's build)"
echo "timing app image build: $app_took ($steps)"
echo "timing images, in all: $(since "$started")"
