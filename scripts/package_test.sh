#!/usr/bin/env bash
# Checks the Debian package (packaging.md, "Checks the project runs on the
# package"); scripts/test.sh runs it last. Needs root (debootstrap, chroot).
#
#  1. scripts/package.sh builds it, and the same package with a bumped version;
#  2. dpkg-deb -c lists exactly the expected paths, modes and owners;
#  3. lintian: no errors, and no warnings but the known ones (KNOWN_WARNINGS);
#  4. the man page renders without a warning;
#  5. systemd-analyze verify accepts the unit, and systemd-analyze security
#     rates its exposure below 3.0;
#  6. in a throw-away Debian 12 root (debootstrap --variant=minbase, cached in
#     PHA_DEBOOTSTRAP_CACHE) the maintainer scripts run for real: install
#     (Depends from the archive), upgrade with a locally edited conffile,
#     remove, purge -- and nothing is left behind.
#
#   PHA_PKG_DIR             build directory (default build-pkg)
#   PHA_DEBOOTSTRAP_CACHE   default /var/cache/pha-debootstrap
#   PHA_DEBIAN_MIRROR       default: the first Debian mirror in this machine's apt sources
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

cache=${PHA_DEBOOTSTRAP_CACHE:-/var/cache/pha-debootstrap}
pkg=proxmox-host-agent
unit=$pkg.service

# lintian warnings the package keeps on purpose (README, "The Debian package").
KNOWN_WARNINGS=(
  # Not a Debian upload: there is no ITP bug to close.
  initial-upload-closes-no-bugs
  # agent.env holds secrets: 0640, group proxmox-host-agent (set by postinst).
  non-standard-file-perm
)

fail() {
  echo "package_test: FAILED: $*" >&2
  exit 1
}
if ((EUID != 0)); then
  exec sudo --preserve-env=PHA_PKG_DIR,PHA_DEBOOTSTRAP_CACHE,PHA_DEBIAN_MIRROR,PHA_JOBS bash "$0" "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pha-package-test.XXXXXX")
root=$work/root
cleanup() {
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc"; fi
  if grep -q " $work/" /proc/mounts; then
    echo "package_test: something is still mounted under $work; not removing it" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

declare -A took
t_start=$SECONDS
stage() {
  stage_name=$1
  stage_started=$SECONDS
}
stage_done() {
  took[$stage_name]=$((SECONDS - stage_started))
}

# ---- 1. build -----------------------------------------------------------
stage build
deb=$(bash scripts/package.sh | sed -n 's/^package: //p')
[[ -f $deb ]] || fail "scripts/package.sh did not say which package it built"
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}
# A newer version whose agent.env also changed (as when a setting is added),
# so that the upgrade meets a conffile changed on both sides.
new_version=$version+upgradetest1
deb2=$(PHA_DEB_VERSION=$new_version bash scripts/package.sh | sed -n 's/^package: //p')
[[ -f $deb2 ]] || fail "scripts/package.sh did not build $new_version"
dpkg-deb -R "$deb2" "$work/deb2"
echo "# (upgrade test: a line the new version adds)" >>"$work/deb2/etc/$pkg/agent.env"
(cd "$work/deb2" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
deb2=$work/${pkg}_${new_version}_amd64.deb
dpkg-deb --root-owner-group --build "$work/deb2" "$deb2" >/dev/null
stage_done

# ---- 2. contents --------------------------------------------------------
stage contents
expected=$(
  cat <<EOF
drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/$pkg/
-rw-r----- root/root ./etc/$pkg/agent.env
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/$unit
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/$pkg
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/$pkg/
-rw-r--r-- root/root ./usr/share/doc/$pkg/README.md.gz
-rw-r--r-- root/root ./usr/share/doc/$pkg/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/$pkg/copyright
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man8/
-rw-r--r-- root/root ./usr/share/man/man8/$pkg.8.gz
EOF
)
actual=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}')
if [[ $actual != "$expected" ]]; then
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  fail "dpkg-deb -c: the package's files differ from the expected ones (< expected, > actual)"
fi
[[ $(dpkg-deb -I "$deb" conffiles) == "/etc/$pkg/agent.env" ]] ||
  fail "the conffile list is not just /etc/$pkg/agent.env"
info=$(dpkg-deb -I "$deb")
for script in postinst prerm postrm; do
  grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " <<<"$info" ||
    fail "DEBIAN/$script is missing or not executable"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in adduser libc6 libcurl4 libssl3 libsystemd0; do
  [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
dpkg-deb -x "$deb" "$work/files"
cmp -s "$work/files/etc/$pkg/agent.env" .env.example || fail "agent.env is not .env.example"
if grep -Eq '\.(symtab|debug_info)' <<<"$(readelf -S "$work/files/usr/bin/$pkg")"; then
  fail "/usr/bin/$pkg is not stripped"
fi
stage_done

# ---- 3. lintian ---------------------------------------------------------
stage lintian
lintian_out=$(lintian "$deb" 2>&1 | grep -v '^running with root privileges' || true)
if grep -q '^E:' <<<"$lintian_out"; then
  echo "$lintian_out" >&2
  fail "lintian reports errors"
fi
unknown=$(grep '^W:' <<<"$lintian_out" | awk '{print $3}' | sort -u |
  grep -vxF -f <(printf '%s\n' "${KNOWN_WARNINGS[@]}" | grep -v '^#') || true)
if [[ -n $unknown ]]; then
  echo "$lintian_out" >&2
  fail "new lintian warnings: $(tr '\n' ' ' <<<"$unknown")- fix them, or add them with a reason to KNOWN_WARNINGS"
fi
lintian_warnings=$(grep -c '^W:' <<<"$lintian_out" || true)
stage_done

# ---- 4. the man page ----------------------------------------------------
stage man
man_err=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$work/files/usr/share/man/man8/$pkg.8.gz" 2>&1 >"$work/man.txt") ||
  fail "man cannot render the man page: $man_err"
[[ -z $man_err ]] || fail "the man page has warnings: $man_err"
grep -q 'ACCOUNTDB_URL' "$work/man.txt" || fail "the rendered man page lacks the settings"
stage_done

# ---- 5. the unit --------------------------------------------------------
stage unit
# verify resolves the unit's dependencies, its ExecStart binaries and its
# Documentation= man page inside --root: the package's files plus systemd's units.
cp -a /lib/systemd/system/. "$work/files/lib/systemd/system/"
mkdir "$work/unit"
cp -a "$work/files/lib/systemd/system/$unit" "$work/unit/$unit"
verify_out=$(MANPATH=$work/files/usr/share/man systemd-analyze verify --root="$work/files" "$unit" 2>&1) ||
  fail "systemd-analyze verify: $verify_out"
[[ -z $verify_out ]] || fail "systemd-analyze verify complains: $verify_out"
exposure_line=$(systemd-analyze security --offline=true --no-pager "$work/unit/$unit" 2>&1 |
  grep 'Overall exposure level') || fail "systemd-analyze security gave no exposure level"
exposure=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$exposure_line")
awk -v e="$exposure" 'BEGIN { exit !(e < 3.0) }' ||
  fail "systemd-analyze security: exposure $exposure, not below 3.0"
stage_done

# ---- 6. install, upgrade, purge in a Debian 12 root ---------------------
# The first Debian (and security) mirror this machine's apt uses.
apt_uris() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]]+' | sed 's:/*$::' || true
}
mirror=${PHA_DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian$' | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
security=$(apt_uris | grep -E '/debian-security$' | head -n 1)

in_root() {
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LC_ALL=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
}
# Every path of the root but the package manager's state, caches, logs and
# temporary files: what purge must restore.
snapshot() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./tmp -o -path ./run -o -path ./dev \
    -o -path ./var/log -o -path ./var/cache -o -path ./var/lib/apt -o -path ./var/lib/dpkg \) \
    -prune -o -print | LC_ALL=C sort)
}

stage debootstrap
base=$cache/bookworm-minbase
if [[ ! -d $base ]]; then
  echo "package_test: creating the Debian 12 base root in $base (once, from $mirror)"
  rm -rf "$base.new"
  mkdir -p "$cache"
  debootstrap --variant=minbase bookworm "$base.new" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 30 "$cache/debootstrap.log" >&2; fail "debootstrap failed (log: $cache/debootstrap.log)"; }
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    if [[ -n $security ]]; then echo "deb $security bookworm-security main"; fi
  } >"$base.new/etc/apt/sources.list"
  mv "$base.new" "$base"
fi
cp -a "$base" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mkdir -p "$cache/archives"
find "$cache/archives" -name '*.deb' -exec cp -t "$root/var/cache/apt/archives/" {} +
in_root apt-get update -qq >"$work/apt-update.log" 2>&1 ||
  { cat "$work/apt-update.log" >&2; fail "apt-get update in the Debian 12 root failed"; }
before=$(snapshot)
cp "$deb" "$deb2" "$root/tmp/"
stage_done

stage chroot
# install: Depends come from the archive; postinst says what to set.
install_out=$(in_root apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "/tmp/${deb##*/}" 2>&1) ||
  { echo "$install_out" >&2; fail "installing $version failed"; }
for f in "$root"/var/cache/apt/archives/*.deb; do
  if [[ -f $f && ! -e $cache/archives/${f##*/} ]]; then cp "$f" "$cache/archives/"; fi
done
grep -q "$pkg: not started: set these in /etc/$pkg/agent.env" <<<"$install_out" ||
  { echo "$install_out" >&2; fail "postinst did not say what to set"; }
grep -q "ACCOUNTDB_URL" <<<"$install_out" || fail "postinst did not name ACCOUNTDB_URL"
user=$(in_root getent passwd $pkg) || fail "install created no user $pkg"
[[ $user == *":/var/lib/$pkg:/usr/sbin/nologin" ]] || fail "the user $pkg: $user"
in_root getent group $pkg >/dev/null || fail "install created no group $pkg"
[[ $(in_root stat -c '%a %U %G' /etc/$pkg/agent.env) == "640 root $pkg" ]] ||
  fail "agent.env is $(in_root stat -c '%a %U %G' /etc/$pkg/agent.env), not 640 root $pkg"
[[ -L $root/etc/systemd/system/multi-user.target.wants/$unit ]] || fail "the unit is not enabled"
[[ $(in_root $pkg --version) == "$pkg $upstream" ]] || fail "the installed binary does not run"
# The agent can read its env file (group) and says what is missing: exit 78.
set +e
check_out=$(in_root chroot --userspec=$pkg:$pkg / $pkg --env-file /etc/$pkg/agent.env --check-config 2>&1)
rc=$?
set -e
[[ $rc -eq 78 && $check_out == *ACCOUNTDB_URL* ]] ||
  fail "--check-config as $pkg on the fresh agent.env: exit $rc, not 78 naming ACCOUNTDB_URL: $check_out"

# A local edit that configures the agent; it must survive the upgrade.
cat >>"$root/etc/$pkg/agent.env" <<'EOF'
ACCOUNTDB_URL=https://accountdb.example.net/api
ACCOUNTDB_API_KEY=local-edit-api-key
ACCOUNTDB_NODE_ID=7
PROXMOX_TOKEN_ID=agent@pve!sync
PROXMOX_TOKEN_SECRET=0b0e6f6e-3c4b-4f51-9a8c-2d7e5f1a9b3c
EOF
check_out=$(in_root chroot --userspec=$pkg:$pkg / $pkg --env-file /etc/$pkg/agent.env --check-config 2>&1) ||
  fail "--check-config on the configured agent.env: $check_out"

# From here systemd "runs": the maintainer scripts see /run/systemd/system,
# and a stand-in systemctl records what they (and deb-systemd-invoke) ask.
[[ ! -e $root/usr/bin/systemctl ]] || fail "the Debian 12 root has a systemctl of its own"
mkdir -p "$root/run/systemd/system"
cat >"$root/usr/bin/systemctl" <<EOF
#!/bin/sh
echo "systemctl \$*" >>/tmp/systemd-calls
case " \$* " in
*" is-enabled "*)
  if [ -L /etc/systemd/system/multi-user.target.wants/$unit ]; then echo enabled; else echo disabled; exit 1; fi ;;
*" is-active "*) exit 3 ;;
esac
EOF
chmod 0755 "$root/usr/bin/systemctl"
upgrade_out=$(in_root apt-get install -y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold "/tmp/${deb2##*/}" 2>&1) ||
  { echo "$upgrade_out" >&2; fail "upgrading to $new_version failed"; }
# shellcheck disable=SC2016 # dpkg-query's format
[[ $(in_root dpkg-query -W -f='${Version}' $pkg) == "$new_version" ]] || fail "the upgrade did not happen"
grep -q '^ACCOUNTDB_NODE_ID=7$' "$root/etc/$pkg/agent.env" || fail "the upgrade lost the local edit"
[[ -f $root/etc/$pkg/agent.env.dpkg-dist ]] || fail "the new agent.env was not kept as agent.env.dpkg-dist"
[[ $(in_root stat -c '%a %U %G' /etc/$pkg/agent.env) == "640 root $pkg" ]] ||
  fail "after the upgrade agent.env is $(in_root stat -c '%a %U %G' /etc/$pkg/agent.env)"
grep -qE "^systemctl .*restart $unit$" "$root/tmp/systemd-calls" ||
  fail "the upgrade did not restart the configured service: $(cat "$root/tmp/systemd-calls")"
if grep -q "not started" <<<"$upgrade_out"; then fail "postinst thinks the configured agent is not"; fi

# What StateDirectory= would have made while the service ran.
in_root install -d -o $pkg -g $pkg -m 0750 /var/lib/$pkg
in_root install -o $pkg -g $pkg -m 0600 /dev/null /var/lib/$pkg/state.json

remove_out=$(in_root apt-get remove -y -q -o Dpkg::Use-Pty=0 $pkg 2>&1) || { echo "$remove_out" >&2; fail "remove failed"; }
grep -qE "^systemctl .*stop $unit$" "$root/tmp/systemd-calls" || fail "remove did not stop the service"
[[ -f $root/etc/$pkg/agent.env ]] || fail "remove (not purge) deleted the conffile"
rm -rf "$root/run/systemd/system" "$root/usr/bin/systemctl"

purge_out=$(in_root apt-get purge -y -q -o Dpkg::Use-Pty=0 --autoremove $pkg 2>&1) || { echo "$purge_out" >&2; fail "purge failed"; }
if in_root getent passwd $pkg >/dev/null; then fail "purge left the user $pkg"; fi
if in_root getent group $pkg >/dev/null; then fail "purge left the group $pkg"; fi
[[ ! -e $root/etc/$pkg ]] || fail "purge left /etc/$pkg"
[[ ! -e $root/var/lib/$pkg ]] || fail "purge left /var/lib/$pkg"
if grep -q $pkg <<<"$(in_root dpkg-statoverride --list)"; then fail "purge left a statoverride"; fi
# The account files' backups (written by adduser and deluser) are the
# system's, not the package's.
after=$(snapshot)
left=$(comm -13 <(echo "$before") <(echo "$after") | grep -vxE '\./etc/(passwd|group|shadow|gshadow)-' ||
  true)
gone=$(comm -23 <(echo "$before") <(echo "$after"))
[[ -z $left ]] || fail "purge left behind: $(tr '\n' ' ' <<<"$left")"
[[ -z $gone ]] || fail "install and purge removed: $(tr '\n' ' ' <<<"$gone")"
stage_done

total=$((SECONDS - t_start))
echo "package_test: OK: $(basename "$deb") ($version; upgrade to $new_version), lintian $lintian_warnings known warnings, exposure $exposure"
echo "package_test: took ${total}s: build ${took[build]}s, contents ${took[contents]}s, lintian ${took[lintian]}s, man ${took[man]}s, unit ${took[unit]}s, debian root ${took[debootstrap]}s, install/upgrade/purge ${took[chroot]}s"
