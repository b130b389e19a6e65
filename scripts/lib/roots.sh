# Debian roots for building and testing the package, made with mmdebstrap from
# the Debian archive this machine's apt uses, and cached by their inputs.
# Sourced by scripts/package.sh and scripts/package_test.sh; needs root.
#
#   pha_root SUITE build   a clean build root: build-essential, the
#                          Build-Depends of debian/control, lintian, ccache
#   pha_root SUITE run     what a node has before our package: minbase with
#                          systemd as init, to boot with systemd-nspawn
#
# Each prints the root's path. A root is made once per distinct input (suite,
# kind, mirrors, package list, debian/control for build roots) under
# PHA_ROOT_CACHE (default /var/cache/pha-roots); an older root of the same
# suite and kind is removed when a new one is made. Delete the cache to pick
# up Debian's newest point release. PHA_DEBIAN_MIRROR overrides the mirror.

PHA_ROOT_CACHE=${PHA_ROOT_CACHE:-/var/cache/pha-roots}

pha_suites=(bookworm trixie)

# The Debian version of a suite: the package's version suffix (+deb12).
pha_suite_number() {
  case $1 in
    bookworm) echo 12 ;;
    trixie) echo 13 ;;
    *) return 1 ;;
  esac
}

pha_host_suite() {
  # shellcheck disable=SC1091 # the host's
  (. /etc/os-release && echo "${VERSION_CODENAME:-}")
}

# The first Debian mirror of this machine's apt sources.
pha_mirror() {
  if [[ -n ${PHA_DEBIAN_MIRROR:-} ]]; then
    echo "$PHA_DEBIAN_MIRROR"
    return
  fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]]+/debian/?$' |
    sed 's:/*$::' | head -n 1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# One-line apt sources of a suite: main, updates and security.
pha_sources() {
  local suite=$1 mirror
  mirror=$(pha_mirror)
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  echo "deb ${mirror%/debian}/debian-security $suite-security main"
}

pha_root() {
  local suite=$1 kind=$2 src=${PHA_SOURCE_DIR:-$PWD}
  local variant include
  case $kind in
    build)
      variant=buildd
      include=ccache,lintian,man-db
      ;;
    run)
      variant=minbase
      include=systemd,systemd-sysv,man-db
      ;;
    *)
      echo "pha_root: unknown kind $kind" >&2
      return 1
      ;;
  esac
  local key
  key=$(
    {
      echo "v1 $suite $kind $variant $include"
      pha_sources "$suite"
      # The build root depends on the Build-Depends only, not on the rest of
      # debian/control (a binary package's Depends, its description).
      if [[ $kind == build ]]; then
        awk '/^Build-Depends/ {on = 1; print; next} on && /^[ \t]/ {print; next} {on = 0}' \
          "$src/debian/control"
      fi
    } | sha256sum | cut -c1-12
  )
  local root=$PHA_ROOT_CACHE/$suite-$kind-$key
  if [[ -d $root ]]; then
    # Mount points for systemd-nspawn --read-only (scripts/package*.sh).
    if [[ $kind == build ]]; then mkdir -p "$root/build" "$root/ccache" "$root/pkgs" "$root/files"; fi
    echo "$root"
    return
  fi
  mkdir -p "$PHA_ROOT_CACHE"
  local log=$PHA_ROOT_CACHE/$suite-$kind.log
  echo "roots: making the $suite $kind root (once; log: $log)" >&2
  rm -rf "$root.new"
  local hooks=()
  if [[ $kind == build ]]; then
    # The Build-Depends, exactly as debian/control says (apt resolves them).
    hooks+=(--customize-hook='mkdir -p "$1/tmp/pha-src/debian"'
      --customize-hook="copy-in $src/debian/control /tmp/pha-src/debian"
      --customize-hook='chroot "$1" apt-get build-dep -y -q /tmp/pha-src'
      --customize-hook='rm -rf "$1/tmp/pha-src"')
  fi
  local sources=()
  mapfile -t sources < <(pha_sources "$suite")
  if ! mmdebstrap --variant="$variant" --include="$include" --aptopt='Acquire::Retries "3"' \
    "${hooks[@]}" "$suite" "$root.new" "${sources[@]}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "roots: mmdebstrap failed for $suite $kind (log: $log)" >&2
    return 1
  fi
  # Older roots of this suite and kind are of no further use.
  find "$PHA_ROOT_CACHE" -maxdepth 1 -name "$suite-$kind-*" ! -name "$suite-$kind-$key*" \
    -exec rm -rf {} +
  mv "$root.new" "$root"
  pha_root "$suite" "$kind"
}
