#!/usr/bin/env bash
# The platform's OCI image (deploy/Containerfile), built daemonless: Debian's buildah (vfs
# storage, chroot isolation) on a base image made locally from a debootstrap'd Debian bookworm
# rootfs with python3 + python3-venv. No Docker, no daemon, no base image pulled from a registry
# (`--pull=never`); only the Debian mirror of apt's sources and PyPI (the wheels uv.lock pins).
# Everything is cached under ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/image/: the rootfs
# tarball, buildah's storage (so unchanged layers are reused), the build logs. Needs root.
#
# Usage: .ci/image.sh build      base image if missing, then the image (prints timings)
#        .ci/image.sh base       only the base image
#        .ci/image.sh buildah ARGS...   buildah on the cached storage (e.g. `inspect`, `mount`)
#        .ci/image.sh name       the image's local name
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/image
mkdir -p "$cache"
SUITE=bookworm
BASE=localhost/emporium-base:$SUITE
IMAGE=${EMPORIUM_IMAGE:-localhost/emporium:ci}
# python3-venv for the builder stage's venv, ca-certificates for TLS to managed services.
PACKAGES=python3,python3-venv,ca-certificates,tzdata
log() { echo "[image] $(date +%H:%M:%S) $*" >&2; }

# TMPDIR: buildah's RUN --mount=type=cache directories (uv's wheel cache) live under it.
mkdir -p "$cache/tmp"
bah() { TMPDIR=$cache/tmp buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver vfs "$@"; }

# The Debian mirror apt already uses (deb822 `URIs:` or a one-line `deb` entry).
mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -m1 '/debian$' || true)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -m1 '/debian/\?$' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

need_tools() {
  [ "$(id -u)" = 0 ] || { echo "[image] needs root (buildah with chroot isolation)" >&2; exit 2; }
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1 \
      || { cat "$cache/apt.log" >&2; exit 1; }
  fi
}

fail_with() {  # log-file what
  echo "[image] $2 FAILED; last lines of $1:" >&2
  tail -n 60 "$1" >&2
  exit 1
}

base() {
  local tar=$cache/rootfs-$SUITE.tar t0=$SECONDS
  if [ ! -f "$tar" ]; then
    local root=$cache/rootfs.tmp
    rm -rf "$root"
    log "debootstrap --variant=minbase $SUITE from $(mirror) (+ $PACKAGES)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(mirror)" \
      >"$cache/debootstrap.log" 2>&1 || fail_with "$cache/debootstrap.log" debootstrap
    chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' >"$cache/rootfs-$SUITE.packages"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    tar --numeric-owner -C "$root" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$root"
    log "rootfs: $(du -h "$tar" | cut -f1), $(wc -l <"$cache/rootfs-$SUITE.packages") packages, $((SECONDS - t0)) s"
  fi
  if ! bah inspect --type image "$BASE" >/dev/null 2>&1; then
    local t1=$SECONDS ctr
    ctr=$(bah from --pull=never scratch)
    bah add "$ctr" "$tar" / >/dev/null
    bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash \
      --label org.opencontainers.image.title=emporium-base \
      --label org.opencontainers.image.description="Debian $SUITE minbase + $PACKAGES (debootstrap)" \
      "$ctr"
    bah commit --rm --quiet "$ctr" "$BASE" >/dev/null
    log "base image $BASE imported in $((SECONDS - t1)) s"
  fi
}

# vfs keeps a full copy of the tree per layer: superseded layers of earlier builds fill the
# disk (44 GB after a day of rebuilds once ended a build with "no space left on device").
# Below EMPORIUM_IMAGE_MIN_FREE_KB (15 GB) free, drop them (untagged images, stale build
# containers) before building; the tagged images stay.
prune_if_low() {
  local avail
  avail=$(df -Pk "$cache" | awk 'NR==2{print $4}')
  if [ "$avail" -lt "${EMPORIUM_IMAGE_MIN_FREE_KB:-15000000}" ]; then
    log "only $((avail / 1024 / 1024)) GB free: pruning superseded layers"
    bah rm --all >/dev/null 2>&1 || true
    bah rmi --prune >/dev/null 2>&1 || true
  fi
}

build() {
  local t0=$SECONDS
  prune_if_low
  base
  local t1=$SECONDS rev
  rev=$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)
  # The commit's time, not the clock's: the same commit builds the same labels (and hits the cache).
  local created
  created=$(git -C "$here" log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
  # The machine's CA bundle as a build secret (egress here re-signs TLS); never in a layer.
  local ca=${EMPORIUM_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}} secret=()
  [ -s "$ca" ] && secret=(--secret "id=ca,src=$ca")
  # The build's inputs (the context the Containerfile copies, the Containerfile, the commit):
  # when they match the last successful build and its image is still there, reuse it.
  local key
  key=$(cd "$here" && { echo "$rev"; find deploy/Containerfile pyproject.toml uv.lock README.md src \
      -type f -not -name '*.pyc' -not -path '*/__pycache__/*' -print0 | sort -z \
      | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$cache/image.key" 2>/dev/null)" = "$key" ] && bah inspect --type image "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE is up to date (inputs $key)"
    return
  fi
  log "buildah build $IMAGE (log: $cache/build.log)"
  ( cd "$here" && bah build --layers --force-rm --pull=never --isolation chroot \
      -f deploy/Containerfile --build-arg BASE_IMAGE="$BASE" \
      "${secret[@]}" --build-arg REVISION="$rev" --build-arg CREATED="$created" \
      -t "$IMAGE" . ) >"$cache/build.log" 2>&1 || fail_with "$cache/build.log" "buildah build"
  echo "$key" >"$cache/image.key"
  log "image $IMAGE built in $((SECONDS - t1)) s (base $((t1 - t0)) s, total $((SECONDS - t0)) s)"
}

# One caller at a time: concurrent builds on one vfs storage would race.
exec 9>"$cache/.lock"
case ${1:-build} in
  build) need_tools; flock 9; build ;;
  base) need_tools; flock 9; base ;;
  buildah) shift; bah "$@" ;;
  name) echo "$IMAGE" ;;
  *) echo "usage: $0 build|base|buildah ARGS...|name" >&2; exit 2 ;;
esac
