#!/usr/bin/env bash
# Makes (or adds to) a signed apt repository of the built packages, one dist
# per suite (bookworm, trixie), component main, amd64:
#
#   ./scripts/repo.sh [--out DIR] (--key KEYID | --test-key) [PACKAGE_DIR...]
#
#   PACKAGE_DIR  directories of .deb files named by suite, as scripts/package.sh
#                writes them (default: every build-pkg/SUITE/ there is)
#   --out DIR    the repository (default build-repo); packages already in its
#                pool stay, so one directory can carry every version a fleet
#                may upgrade from
#   --key KEYID  the OpenPGP key (fingerprint) to sign with, from the gpg
#                keyring of $GNUPGHOME (the operator's own key, which may live
#                on a smartcard)
#   --test-key   sign with a throw-away key, made once in DIR.test-gnupg beside
#                the repository (never inside it, so publishing DIR cannot
#                leak it); for tests, nothing of it is ever committed
#
# Layout: pool/SUITE/main/*.deb; dists/SUITE/{InRelease,Release,Release.gpg};
# dists/SUITE/main/binary-amd64/Packages{,.gz}; and the public key, binary, as
# proxmox-host-agent-archive-keyring.gpg at the top, for a node's signed-by=.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/roots.sh
source scripts/lib/roots.sh

fail() {
  echo "repo: $*" >&2
  exit 1
}

out=build-repo
key=
test_key=0
dirs=()
while (($#)); do
  case $1 in
    --out) out=$2 && shift 2 ;;
    --key) key=$2 && shift 2 ;;
    --test-key) test_key=1 && shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
    -*) fail "unknown option $1" ;;
    *) dirs+=("$1") && shift ;;
  esac
done
if ((${#dirs[@]} == 0)); then
  for s in "${pha_suites[@]}"; do
    if [[ -d build-pkg/$s ]]; then dirs+=("build-pkg/$s"); fi
  done
fi
((${#dirs[@]})) || fail "no packages: run scripts/package.sh SUITE first"
command -v apt-ftparchive >/dev/null && command -v gpg >/dev/null ||
  fail "needs apt-ftparchive (apt-utils) and gpg (gnupg): scripts/setup.sh installs them"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# The suite of a package: its directory's name, cross-checked with +debNN.
for d in "${dirs[@]}"; do
  suite=$(basename "$d")
  number=$(pha_suite_number "$suite") || fail "$d: not named after a suite (bookworm, trixie)"
  shopt -s nullglob
  debs=("$d"/*.deb)
  shopt -u nullglob
  ((${#debs[@]})) || fail "$d has no .deb files"
  mkdir -p "$out/pool/$suite/main"
  for deb in "${debs[@]}"; do
    v=$(dpkg-deb -f "$deb" Version)
    [[ $v == *+deb$number ]] || fail "$deb is version $v, not a build for $suite (+deb$number)"
    cp "$deb" "$out/pool/$suite/main/"
  done
done

# The signing key: the operator's, or a throw-away one for tests.
if [[ -z $key ]]; then
  ((test_key)) || fail "say which key signs: --key FINGERPRINT (or --test-key for a throw-away one)"
  export GNUPGHOME=$out.test-gnupg
  if [[ ! -d $GNUPGHOME ]]; then
    mkdir -m 0700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-generate-key \
      "proxmox-host-agent test repository (throw-away) <test@proxmox-host-agent.invalid>" \
      ed25519 sign 1y 2>/dev/null
  fi
  key=$(gpg --batch --quiet --no-auto-check-trustdb --with-colons --list-secret-keys | awk -F: '/^fpr:/ {print $10; exit}')
fi
gpg --batch --quiet --list-secret-keys "$key" >/dev/null 2>&1 || fail "no secret key $key in the keyring"
gpg --batch --quiet --yes --export "$key" >"$out/proxmox-host-agent-archive-keyring.gpg"

cd "$out"
for dir in pool/*/; do
  suite=$(basename "$dir")
  dist=dists/$suite
  mkdir -p "$dist/main/binary-amd64"
  apt-ftparchive packages "pool/$suite" >"$dist/main/binary-amd64/Packages"
  gzip -9nkf "$dist/main/binary-amd64/Packages"
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=proxmox-host-agent \
    -o APT::FTPArchive::Release::Label=proxmox-host-agent \
    -o APT::FTPArchive::Release::Suite="$suite" \
    -o APT::FTPArchive::Release::Codename="$suite" \
    -o APT::FTPArchive::Release::Architectures=amd64 \
    -o APT::FTPArchive::Release::Components=main \
    -o APT::FTPArchive::Release::Description="proxmox-host-agent for Debian $(pha_suite_number "$suite")" \
    release "$dist" >"$dist/Release.new"
  mv "$dist/Release.new" "$dist/Release"
  rm -f "$dist/InRelease" "$dist/Release.gpg"
  gpg --batch --quiet --yes --local-user "$key" --digest-algo SHA512 --clearsign -o "$dist/InRelease" "$dist/Release"
  gpg --batch --quiet --yes --local-user "$key" --digest-algo SHA512 --detach-sign --armor -o "$dist/Release.gpg" "$dist/Release"
  echo "repo: $out/$dist: $(grep -c '^Package:' "$dist/main/binary-amd64/Packages") packages"
done
echo "repo: signed with $key; public key: $out/proxmox-host-agent-archive-keyring.gpg"
