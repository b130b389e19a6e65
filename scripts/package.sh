#!/usr/bin/env bash
# Builds the Debian packages of one suite, natively, in a clean root of that
# suite (scripts/lib/roots.sh), from debian/:
#
#   ./scripts/package.sh [SUITE]    SUITE: bookworm or trixie (default: this machine's)
#     -> build-pkg/SUITE/proxmox-host-agent_0.2.0-1+deb13_amd64.deb (and -dbgsym)
#
# The version is debian/changelog's top entry plus the suite's suffix
# (+deb12, +deb13), added as a changelog entry in the build's copy of the
# source. The source is what git sees in this checkout (tracked files and new
# ones not ignored, with their uncommitted changes). The build runs
# dpkg-buildpackage in systemd-nspawn on the read-only root, without network;
# unless DEB_BUILD_OPTIONS has nocheck it builds and runs the unit tests too.
# Compiler output is cached with ccache (per suite), and the packages by the
# content of their inputs: the same source, suite root and options build once.
#
#   PHA_DEB_REVISION=N   Debian revision N instead of the changelog's (the
#                        upgrade test builds 0.2.0-2 this way)
#   PHA_PKG_DIR=DIR      output directory (default build-pkg)
#   PHA_PKG_CACHE=DIR    built packages by input (default /var/cache/pha-packages)
#   PHA_JOBS=N           parallel compile jobs (default: nproc)
#   DEB_BUILD_OPTIONS    passed to the build (e.g. nocheck)
# Needs root (mmdebstrap, systemd-nspawn); re-runs itself with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
# shellcheck source=scripts/lib/roots.sh
source scripts/lib/roots.sh

fail() {
  echo "package: $*" >&2
  exit 1
}
if ((EUID != 0)); then
  exec sudo --preserve-env=PHA_DEB_REVISION,PHA_PKG_DIR,PHA_PKG_CACHE,PHA_JOBS,DEB_BUILD_OPTIONS,PHA_ROOT_CACHE,PHA_DEBIAN_MIRROR \
    bash "$0" "$@"
fi

suite=${1:-$(pha_host_suite)}
number=$(pha_suite_number "$suite") || fail "unknown suite '$suite' (bookworm or trixie)"
out=${PHA_PKG_DIR:-build-pkg}/$suite
pkg_cache=${PHA_PKG_CACHE:-/var/cache/pha-packages}
jobs=${PHA_JOBS:-$(nproc)}
pkg=proxmox-host-agent

# The version: the changelog's, the upstream part matching the project's.
base=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${base%-*}
project=$(sed -nE 's/^project\(proxmox-host-agent VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
[[ $upstream == "$project" ]] ||
  fail "debian/changelog's top entry is $base but CMakeLists.txt says $project:" \
    "add an entry for $project-1 (dch -v $project-1)"
revision=${PHA_DEB_REVISION:-${base##*-}}
[[ $revision =~ ^[0-9]+$ ]] || fail "PHA_DEB_REVISION must be a number, not '$revision'"
version=$upstream-$revision+deb$number

command -v mmdebstrap >/dev/null && command -v systemd-nspawn >/dev/null ||
  bash scripts/setup.sh >/dev/null
root=$(pha_root "$suite" build)

# The inputs, hashed: every source file, the root, the version and options.
mapfile -d '' files < <(git ls-files -z --cached --others --exclude-standard)
key=$(
  {
    echo "$version ${DEB_BUILD_OPTIONS:-} ${root##*/}"
    for f in "${files[@]}"; do [[ -f $f ]] && sha256sum "$f"; done
  } | sha256sum | cut -c1-16
)
cached=$pkg_cache/$suite-$key
if [[ ! -f $cached/done ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/pha-package.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src"
  tar -c --null -T <(printf '%s\0' "${files[@]}") 2>/dev/null | tar -x -C "$work/src"

  # The suite's changelog entry, dated a second after the entry it builds on
  # (reproducible, and newer, as a changelog entry must be).
  maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
  date=$(date -R -u -d "@$(($(dpkg-parsechangelog -l debian/changelog -S Timestamp) + 1))")
  {
    echo "$pkg ($version) $suite; urgency=medium"
    echo
    echo "  * Built for Debian $number ($suite)."
    echo
    echo " -- $maintainer  $date"
    echo
    cat debian/changelog
  } >"$work/src/debian/changelog"

  ccache_dir=$pkg_cache/ccache-$suite
  mkdir -p "$ccache_dir"
  echo "package: building $pkg $version in the $suite root (log: $out/build.log)"
  mkdir -p "$out"
  if ! systemd-nspawn --quiet --register=no --keep-unit --console=pipe --read-only --private-network \
    --resolv-conf=off --timezone=off --link-journal=no -D "$root" \
    --tmpfs=/tmp --bind="$work":/build --bind="$ccache_dir":/ccache --chdir=/build/src \
    --setenv=CMAKE_CXX_COMPILER_LAUNCHER=ccache --setenv=CCACHE_DIR=/ccache \
    --setenv=CCACHE_MAXSIZE=2G --setenv=LC_ALL=C.UTF-8 --setenv=HOME=/tmp \
    --setenv=DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -uc -us -j"$jobs" >"$out/build.log" 2>&1; then
    tail -n 60 "$out/build.log" >&2
    fail "dpkg-buildpackage failed in the $suite root (whole log: $out/build.log)"
  fi
  rm -rf "$cached.new"
  mkdir -p "$cached.new"
  find "$work" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.ddeb' -o -name '*.buildinfo' \
    -o -name '*.changes' \) -exec cp -t "$cached.new" {} +
  cp "$out/build.log" "$cached.new/build.log"
  touch "$cached.new/done"
  rm -rf "$cached"
  mv "$cached.new" "$cached"
  # Keep the newest few builds per suite.
  find "$pkg_cache" -maxdepth 1 -name "$suite-*" -printf '%T@ %p\n' | sort -rn | tail -n +7 |
    cut -d' ' -f2- | xargs -r rm -rf
fi

mkdir -p "$out"
find "$out" -maxdepth 1 -name "${pkg}*_${upstream}-${revision}+deb${number}_*" -delete
cp "$cached"/*.deb "$out/"
cp "$cached"/*.changes "$cached"/*.buildinfo "$out/" 2>/dev/null || true
for f in "$out/${pkg}_${version}"_*.deb; do
  echo "package: $f"
done
