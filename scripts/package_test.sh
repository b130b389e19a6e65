#!/usr/bin/env bash
# Tests the Debian package the way an operator runs it, for each suite
# (bookworm = Proxmox VE 8, trixie = Proxmox VE 9); scripts/test.sh runs it
# last. Needs root.
#
#   ./scripts/package_test.sh [SUITE...]     default: bookworm trixie
#
# For each suite:
#  1. scripts/package.sh builds 0.2.0-1+debNN and 0.2.0-2+debNN natively in a
#     clean root of the suite (both cached by content; the unit tests run in
#     the build of the suite this machine does not run);
#  2. in that root: lintian (no errors; warnings only the known ones, each
#     with its reason below and in docs/packaging.md), the man page renders without
#     a warning, and the file list is the expected one;
#  3. scripts/repo.sh publishes -1 in a signed apt repository (throw-away
#     key), served over HTTP on the host's loopback;
#  4. a root of the suite boots as a container with systemd as PID 1, sharing
#     the host's network, with the Proxmox VE and AccountDB simulators on the
#     host's loopback. In it, as an operator would:
#     - add the repository with a signed-by keyring, apt install: not started,
#       not failed, and told what to set;
#     - the required settings in a drop-in; systemctl start: AccountDB gets
#       the rows;
#     - systemctl reload applies a new UPDATE_INTERVAL (/status); a broken
#       edit fails the reload, names the file and line, and the agent keeps
#       running on the old settings (also on a bare SIGHUP);
#     - systemctl restart keeps the sync state: no creates;
#     - a secret from a systemd credential (LoadCredential=, *_FILE);
#     - agent.env edited locally, -2 published, apt upgrade: no prompt, the
#       edit survives, the service runs the new version;
#     - systemd-analyze verify, and security: exposure below 2;
#     - apt purge: no file, user, group or directory left;
#     - migration from the old Python agent: its unit running, its .env
#       copied unchanged into agent.env.d by the README's own commands; the
#       old unit ends stopped and disabled, the new agent syncs without
#       creating a duplicate row; purge again leaves nothing.
#
#   PHA_BUILD_DIR   a configured build of the simulators (default build)
#   PHA_KEEP=1      keep the work directory (and say where it is)
set -euo pipefail
# (A "producer | grep -q" fails under pipefail when grep quits early: use grep -c.)
cd "$(dirname "$0")/.."
umask 022
source scripts/lib/roots.sh
source scripts/lib/container.sh

if ((EUID != 0)); then
  exec sudo --preserve-env=PHA_BUILD_DIR,PHA_KEEP,PHA_ROOT_CACHE,PHA_PKG_CACHE,PHA_DEBIAN_MIRROR,PHA_JOBS \
    bash "$0" "$@"
fi

pkg=proxmox-host-agent
unit=$pkg.service
build=${PHA_BUILD_DIR:-build}
suites=("$@")
((${#suites[@]})) || suites=("${pha_suites[@]}")

# lintian warnings kept on purpose (docs/packaging.md "Checks").
KNOWN_WARNINGS=(
  # agent.env holds secrets once configured: 0640 (tmpfiles.d gives it the group).
  non-standard-file-perm
)

fail() {
  echo "package_test: FAILED${suite:+ ($suite)}: $*" >&2
  exit 1
}
note() { echo "package_test${suite:+ ($suite)}: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pha-package-test.XXXXXX")
pids=() # background programs: the simulators and the repository's web server
cleanup() {
  ct_stop
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${PHA_KEEP:-0} == 1 ]]; then
    echo "package_test: kept $work"
  elif grep -q " $work/" /proc/mounts; then
    echo "package_test: something is still mounted under $work; not removing it" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

declare -A took
stage() {
  stage_name=$1
  stage_started=$SECONDS
}
stage_done() { took[$stage_name]=$((${took[$stage_name]:-0} + SECONDS - stage_started)); }

# Waits until "$@" succeeds, at most $1 seconds; the last try's output on failure.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      "$@" >&2 || true
      fail "waited ${limit}s for: $what"
    fi
    sleep 0.5
  done
}

# ---- the host side: simulators and the repository's web server ----------
stage tools
bash scripts/setup.sh >/dev/null
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target pve-sim adb-sim pha-file-server proxmox-host-agent >/dev/null
pve_sim=$build/tests/sim/pve-sim
adb_sim=$build/tests/sim/adb-sim
file_server=$build/tests/sim/pha-file-server
host_agent=$build/agent/proxmox-host-agent
stage_done

# Starts a simulator in the background (its pid last in pids) and waits for
# its one-line "ready" JSON, which ready_of prints.
start_sim() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  local deadline=$((SECONDS + 30))
  until grep -q '"ready"' "$work/$name.out" 2>/dev/null; do
    ((SECONDS < deadline)) || { cat "$work/$name.log" >&2; fail "$name did not start"; }
    sleep 0.1
  done
}
ready_of() { head -n 1 "$work/$1.out"; }

# ---- 1. build ----------------------------------------------------------
stage build
upstream=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${upstream%-*}
# The unit tests run in the build of the other suite's -1 only: the test
# command has run them on this machine's suite already, and -2 is the same
# source as -1.
for suite in "${suites[@]}"; do
  check=
  [[ $suite == "$(pha_host_suite)" ]] && check=nocheck
  DEB_BUILD_OPTIONS=$check bash scripts/package.sh "$suite" | sed "s/^/  /"
  DEB_BUILD_OPTIONS=nocheck PHA_DEB_REVISION=2 PHA_PKG_DIR=$work/pkg2 bash scripts/package.sh "$suite" | sed "s/^/  /"
done
suite=
stage_done

# ---- 2. the packages' static checks, in the suite's own root ------------
# Runs a command in the suite's build root (read-only, no network, as nobody)
# with the built packages at /pkgs and the main package's files at /files.
# (On a host without systemd, /run is no tmpfs and nspawn says so at exit
# when it leaves its propagation directory: noise, filtered out.)
in_build_root() {
  local s=$1
  shift
  systemd-nspawn --quiet --register=no --keep-unit --console=pipe --read-only --private-network --resolv-conf=off \
    --timezone=off --link-journal=no -D "$(pha_root "$s" build)" --tmpfs=/tmp:mode=1777 \
    --bind-ro="$PWD/build-pkg/$s":/pkgs --bind-ro="$work/$s-files":/files --chdir=/tmp --setenv=HOME=/tmp --setenv=LC_ALL=C.UTF-8 \
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$@" \
    2> >(grep -v '^Attempted to remove disk file system under' >&2)
}

# The package's files (dpkg-deb -c: mode, owner, path), sorted by path. The
# unit is in /lib on bookworm and /usr/lib from trixie on (the /usr merge).
expected_files() {
  local s=$1
  {
    cat <<EOF
drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/$pkg/
-rw-r----- root/root ./etc/$pkg/agent.env
drwxr-xr-x root/root ./etc/$pkg/agent.env.d/
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/$pkg
drwxr-xr-x root/root ./usr/lib/
drwxr-xr-x root/root ./usr/lib/sysusers.d/
-rw-r--r-- root/root ./usr/lib/sysusers.d/$pkg.conf
drwxr-xr-x root/root ./usr/lib/tmpfiles.d/
-rw-r--r-- root/root ./usr/lib/tmpfiles.d/$pkg.conf
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/$pkg/
-rw-r--r-- root/root ./usr/share/doc/$pkg/README.md.gz
-rw-r--r-- root/root ./usr/share/doc/$pkg/agent.env.example
-rw-r--r-- root/root ./usr/share/doc/$pkg/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/$pkg/copyright
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man8/
-rw-r--r-- root/root ./usr/share/man/man8/$pkg.8.gz
drwxr-xr-x root/root ./usr/share/$pkg/
drwxr-xr-x root/root ./usr/share/$pkg/monitoring/
-rw-r--r-- root/root ./usr/share/$pkg/monitoring/alerts.test.yml
-rw-r--r-- root/root ./usr/share/$pkg/monitoring/alerts.yml
-rw-r--r-- root/root ./usr/share/$pkg/monitoring/dashboard.json
drwxr-xr-x root/root ./usr/share/$pkg/monitoring/file_sd/
-rw-r--r-- root/root ./usr/share/$pkg/monitoring/file_sd/proxmox-host-agent.example.yml
-rw-r--r-- root/root ./usr/share/$pkg/monitoring/prometheus.yml
EOF
    local unitdir=usr/lib/systemd/system
    if [[ $s == bookworm ]]; then
      unitdir=lib/systemd/system
      echo "drwxr-xr-x root/root ./lib/"
    fi
    echo "drwxr-xr-x root/root ./${unitdir%/system}/"
    echo "drwxr-xr-x root/root ./$unitdir/"
    echo "-rw-r--r-- root/root ./$unitdir/$unit"
  } | LC_ALL=C sort -k3
}

static_checks() {
  local s=$1 deb=$2
  local actual
  actual=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' | LC_ALL=C sort -k3)
  if [[ $actual != "$(expected_files "$s")" ]]; then
    diff <(expected_files "$s") <(echo "$actual") >&2 || true
    fail "dpkg-deb -c: the package's files differ from the expected ones (< expected, > actual)"
  fi
  [[ $(dpkg-deb -I "$deb" conffiles) == "/etc/$pkg/agent.env" ]] ||
    fail "the conffiles are not just /etc/$pkg/agent.env: $(dpkg-deb -I "$deb" conffiles)"
  local depends
  depends=$(dpkg-deb -f "$deb" Depends)
  for d in libc6 libcurl4 libssl3 libsystemd0; do
    [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
  done
  [[ $depends != *spdlog* || $s != trixie || $depends == *libspdlog1.15* ]] ||
    fail "Depends names another suite's spdlog: $depends"
  dpkg-deb -x "$deb" "$work/$s-files"
  cmp -s "$work/$s-files/etc/$pkg/agent.env" debian/agent.env || fail "agent.env is not debian/agent.env"
  cmp -s "$work/$s-files/usr/share/doc/$pkg/agent.env.example" .env.example ||
    fail "agent.env.example is not .env.example"
  if readelf -S "$work/$s-files/usr/bin/$pkg" | grep -Ec '\.(symtab|debug_info)' >/dev/null; then
    fail "/usr/bin/$pkg is not stripped"
  fi
  local dbgsym=${deb/$pkg\_/$pkg-dbgsym_}
  [[ -f $dbgsym ]] || fail "no dbgsym package beside $deb"
  dpkg-deb -c "$dbgsym" | grep -c '/usr/lib/debug/.build-id/.*\.debug$' >/dev/null ||
    fail "the dbgsym package has no debug symbols"

  local out
  out=$(in_build_root "$s" lintian --color=never "/pkgs/${deb##*/}" "/pkgs/${dbgsym##*/}" 2>&1) || true
  echo "$out" >"$work/$s-lintian.txt"
  if grep -q '^E:' <<<"$out"; then
    echo "$out" >&2
    fail "lintian reports errors"
  fi
  local unknown
  unknown=$(grep '^W:' <<<"$out" | awk '{print $3}' | sort -u |
    grep -vxF -f <(printf '%s\n' "${KNOWN_WARNINGS[@]}") || true)
  if [[ -n $unknown ]]; then
    echo "$out" >&2
    fail "new lintian warnings: $(tr '\n' ' ' <<<"$unknown")- fix them, or add them with a reason to KNOWN_WARNINGS and docs/packaging.md"
  fi
  note "lintian: $(grep -c '^E:' <<<"$out" || true) errors, $(grep -c '^W:' <<<"$out" || true) warnings ($(grep '^W:' <<<"$out" | awk '{print $3}' | sort -u | tr '\n' ' '))"

  local man_err
  man_err=$(in_build_root "$s" sh -c \
    "MANWIDTH=80 man --warnings -E UTF-8 -l /files/usr/share/man/man8/$pkg.8.gz 2>&1 >/tmp/man.txt; grep -c ACCOUNTDB_URL /tmp/man.txt >/dev/null || echo 'the rendered man page lacks the settings'") ||
    fail "man cannot render the man page: $man_err"
  [[ -z $man_err ]] || fail "the man page: $man_err"
}

# ---- 3. the repository ---------------------------------------------------
repo=$work/repo
publish() {
  bash scripts/repo.sh --test-key --out "$repo" "$@" | sed "s/^/  /"
}

# ---- 4. on a node ----------------------------------------------------------
token_id='agent@pve!sync'
token_secret='4c2a1f0e-7d3b-4e5f-9a8b-1c2d3e4f5a6b'
old_password='old-agent-password'
api_key='PackageTestKeyPackageTestKeyPackageTestKey'
node_id=7

adb_rows() { curl -fsS "$adb_control/control/rows" | jq "[.rows[] | select(.proxmox_node_id == $node_id)]"; }
adb_row_count() { adb_rows | jq length; }
adb_holds() { [[ $(adb_row_count) -eq $1 ]]; }
# PUT /vms/agent/-VMID is a create (accountdb's protocol).
adb_creates() {
  curl -fsS "$adb_control/control/requests" |
    jq '[.requests[] | select(.method == "PUT" and (.path | test("/vms/agent/-[0-9]+$")))] | length'
}
agent_port() {
  ct journalctl -u $unit -o cat --no-pager | sed -nE 's/.*http_listening.* port=([0-9]+).*/\1/p' | tail -n 1
}
agent_status() { curl -fsS "http://127.0.0.1:$(agent_port)/status"; }
status_has() { agent_status | jq -e "$1" >/dev/null; }
main_pid() { ct systemctl show -P MainPID $unit; }
# The unit's journal entries as JSON objects, one a line ("$@": matches, e.g. EVENT=failover).
journal_json() { ct journalctl -u $unit -o json --no-pager "$@"; }
# Whether an entry matching $1 satisfies the jq filter $2.
journal_has() { journal_json "$1" | jq -se "any(.[]; $2)" >/dev/null; }

# Journal-native logs (docs/packaging.md "Under systemd"): each event is an
# entry whose fields journalctl matches and prints as JSON, and no field
# holds a secret.
journal_test() {
  local vmid other
  wait_for 20 "an EVENT=guest_written entry with its fields" journal_has EVENT=guest_written \
    '.PRIORITY == "6" and .SYSLOG_IDENTIFIER == "'$pkg'" and (.VMID | test("^[0-9]+$"))
     and .REQUEST == "create" and .UPSTREAM == "accountdb" and (.CYCLE | test("^[0-9]+$"))
     and (.MESSAGE | startswith("guest_written: VMID "))'
  vmid=$(journal_json EVENT=guest_written | jq -rs '.[0].VMID')
  journal_json VMID="$vmid" | jq -se "length >= 1 and all(.[]; .VMID == \"$vmid\")" >/dev/null ||
    fail "VMID=$vmid does not find that guest's entries"
  journal_has EVENT=sync_cycle '.PRIORITY == "6" and (.CREATED | test("^[0-9]+$"))' ||
    fail "no sync_cycle entry with its counts"
  # A failover by hand, to a host other than the one in use, and back.
  other=$(agent_status | jq -r '.proxmox.host as $h | [.proxmox.hosts[] | select(.url != $h and .status == "healthy")][0].url')
  [[ $other != null ]] || { agent_status | jq .proxmox >&2; fail "no other healthy Proxmox host to fail over to"; }
  curl -fsS -X POST -d "{\"host\": \"$other\"}" "http://127.0.0.1:$(agent_port)/failover/proxmox" >/dev/null ||
    fail "POST /failover/proxmox failed"
  wait_for 20 "EVENT=failover with UPSTREAM, TARGET and FAILOVER_KIND" journal_has EVENT=failover \
    '.PRIORITY == "6" and .UPSTREAM == "proxmox" and .TARGET == "'"$other"'" and .FAILOVER_KIND == "manual"'
  curl -fsS -X POST "http://127.0.0.1:$(agent_port)/failover/reset" >/dev/null || fail "POST /failover/reset failed"
  # No secret in any field of any entry (the configured values are masked everywhere).
  if journal_json | grep -c -F -e "$api_key" -e "$token_secret" >/dev/null; then
    fail "a secret is in the journal"
  fi
  note "journal: EVENT=guest_written, VMID=$vmid, EVENT=failover (to $other) carry their fields; no secret"
}

# Every path of the node but package manager state, caches, logs, the
# journal and runtime files: what a purge must restore.
snapshot() {
  (cd "$croot" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run \
    -o -path ./tmp -o -path ./var/tmp -o -path ./var/log -o -path ./var/cache \
    -o -path ./var/lib/apt -o -path ./var/lib/dpkg -o -path ./var/lib/systemd \
    -o -path ./etc/ld.so.cache \) -prune -o -print | LC_ALL=C sort)
}
purge_leaves_nothing() {
  local before=$1 expected_gone=${2:-} out
  out=$(ct apt-get purge -y -q --autoremove $pkg 2>&1) || { echo "$out" >&2; fail "apt purge failed"; }
  if ct getent passwd $pkg >/dev/null; then fail "purge left the user $pkg"; fi
  if ct getent group $pkg >/dev/null; then fail "purge left the group $pkg"; fi
  [[ ! -e $croot/etc/$pkg ]] || fail "purge left /etc/$pkg"
  [[ ! -e $croot/var/lib/$pkg ]] || fail "purge left /var/lib/$pkg"
  [[ $(ct systemctl show -P LoadState $unit) == not-found ]] || fail "purge left the unit"
  local after left gone
  after=$(snapshot)
  # The account files' backups are the system's, not the package's.
  left=$(comm -13 <(echo "$before") <(echo "$after") | grep -vxE '\./etc/(passwd|group|shadow|gshadow)-' || true)
  gone=$(comm -23 <(echo "$before") <(echo "$after"))
  if [[ -n $expected_gone ]]; then gone=$(grep -vxF "$expected_gone" <<<"$gone" || true); fi
  [[ -z $left ]] || fail "purge left behind: $(tr '\n' ' ' <<<"$left")"
  [[ -z $gone ]] || fail "install and purge removed: $(tr '\n' ' ' <<<"$gone")"
}

node_test() {
  local s=$1 deb2_dir=$work/pkg2/$1 pve_version
  pve_version=8.4.1
  if [[ $s == trixie ]]; then pve_version=9.0.11; fi

  # The simulators: a 3-node cluster of that Proxmox VE, AccountDB for node 7 = pve1.
  local ready
  start_sim "$s-pve" "$pve_sim" --nodes 3 --guests 40 --seed "$(pha_suite_number "$s")" \
    --dir "$work/$s-pve" --token "$token_id=$token_secret" --password "agent@pve:$old_password" \
    --pve-version "$pve_version" --auth-delay-ms 100
  pve_pid=${pids[-1]}
  ready=$(ready_of "$s-pve")
  pve1=$(jq -r .hosts.pve1 <<<"$ready")
  ca_file=$(jq -r .ca_file <<<"$ready")
  PROXMOX_HOST=$pve1 PROXMOX_TOKEN_ID=$token_id PROXMOX_TOKEN_SECRET=$token_secret \
    PROXMOX_CA_FILE=$ca_file "$host_agent" --list-guests >"$work/$s-guests.json" 2>/dev/null ||
    fail "--list-guests against the simulator failed"
  local whitelist expected
  whitelist=$(jq -r '[.guests[].vmid] | map(select(. % 2 == 1)) | map(tostring) | join(",")' "$work/$s-guests.json")
  expected=$(jq "[.guests[] | select(.vmid % 2 == 1 and .status == \"running\")] | length" "$work/$s-guests.json")
  ((expected > 0)) || fail "the simulated node has no whitelisted running guest"
  start_sim "$s-adb" "$adb_sim" --node-id $node_id --api-key "$api_key" \
    --whitelist "$whitelist" --node-name pve1
  adb_pid=${pids[-1]}
  ready=$(ready_of "$s-adb")
  adb_url=$(jq -r .url <<<"$ready")
  adb_control=$(jq -r .control <<<"$ready")

  # The node.
  croot=$work/$s-node
  cp -a "$(pha_root "$s" run)" "$croot"
  mkdir -p "$PHA_ROOT_CACHE/apt-archives-$s"
  ct_boot "$croot" "pha-$s" "$work/$s-console.log" \
    --bind="$PHA_ROOT_CACHE/apt-archives-$s":/var/cache/apt/archives
  note "booted $(ct sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), systemd $(ct systemctl --version | awk 'NR==1 {print $2}')"

  # The repository, as the README's install section adds it.
  install -D -m 0644 "$repo/proxmox-host-agent-archive-keyring.gpg" \
    "$croot/etc/apt/keyrings/proxmox-host-agent.gpg"
  cat >"$croot/etc/apt/sources.list.d/proxmox-host-agent.sources" <<EOF
Types: deb
URIs: $repo_url
Suites: $s
Components: main
Signed-By: /etc/apt/keyrings/proxmox-host-agent.gpg
EOF
  ct apt-get update -q >"$work/$s-apt-update.log" 2>&1 ||
    { cat "$work/$s-apt-update.log" >&2; fail "apt-get update with the repository failed"; }
  install -m 0644 "$ca_file" "$croot/usr/local/share/pve-root-ca.pem"
  # The packages it depends on (and recommends) first: they are Debian's,
  # and a purge of ours rightly leaves those that other packages recommend
  # too (ca-certificates, openssl). What the purge must undo is ours.
  local deps
  deps=$(ct apt-get install -s -q $pkg | awk -v p=$pkg '$1 == "Inst" && $2 != p {print $2}')
  if [[ -n $deps ]]; then
    # shellcheck disable=SC2086 # a list of package names
    ct apt-get install -y -q $deps </dev/null >"$work/$s-deps.log" 2>&1 ||
      { cat "$work/$s-deps.log" >&2; fail "installing the dependencies failed"; }
  fi
  local before
  before=$(snapshot)

  # -- install: not started, not failed, told what to set.
  local out
  out=$(ct apt-get install -y -q $pkg </dev/null 2>&1) || { echo "$out" >&2; fail "apt install failed"; }
  grep -q "$pkg: not started: .*ACCOUNTDB_URL" <<<"$out" ||
    { echo "$out" >&2; fail "the install did not say what to set"; }
  [[ $(ct dpkg-query -W -f='${Version}' $pkg) == "$upstream-1+deb$(pha_suite_number "$s")" ]] ||
    fail "apt installed $(ct dpkg-query -W -f='${Version}' $pkg)"
  [[ $(ct systemctl is-enabled $unit) == enabled ]] || fail "the unit is not enabled"
  [[ $(ct systemctl show -P ActiveState $unit) == inactive ]] ||
    fail "the unconfigured unit is $(ct systemctl show -P ActiveState $unit), not inactive"
  [[ $(ct stat -c '%a %U %G' /etc/$pkg/agent.env) == "640 root $pkg" ]] ||
    fail "agent.env is $(ct stat -c '%a %U %G' /etc/$pkg/agent.env)"
  [[ $(ct stat -c '%a %U %G' /etc/$pkg/agent.env.d) == "750 root $pkg" ]] ||
    fail "agent.env.d is $(ct stat -c '%a %U %G' /etc/$pkg/agent.env.d)"
  [[ $(ct getent passwd $pkg | cut -d: -f6,7) == "/var/lib/$pkg:/usr/sbin/nologin" ]] ||
    fail "the user: $(ct getent passwd $pkg)"

  # -- the required settings in a drop-in; start; AccountDB gets the rows.
  install -m 0644 "$ca_file" "$croot/etc/$pkg/pve-root-ca.pem"
  local dropin=/etc/$pkg/agent.env.d/50-node.env
  cat >"$work/50-node.env" <<EOF
ACCOUNTDB_URL=$adb_url
ACCOUNTDB_API_KEY=$api_key
ACCOUNTDB_NODE_ID=$node_id
PROXMOX_TOKEN_ID=$token_id
PROXMOX_TOKEN_SECRET=$token_secret
PROXMOX_HOST=$pve1
PROXMOX_CA_FILE=/etc/$pkg/pve-root-ca.pem
# The host's loopback is the node's: a free port, never a fixed one.
BIND_ADDRESS=127.0.0.1
PORT=0
UPDATE_INTERVAL=60
EOF
  install -m 0640 -g "$(ct getent group $pkg | cut -d: -f3)" "$work/50-node.env" "$croot$dropin"
  ct systemctl start $unit || { ct journalctl -u $unit --no-pager | tail -n 30 >&2; fail "systemctl start failed"; }
  # A new node: the change brake holds the creates until an operator
  # confirms them (or MISSING_AFTER_CYCLES cycles agree): --confirm as the README says.
  ((expected > 3)) || fail "the simulator's node has $expected guests to create: not more than CHANGE_BRAKE_MIN"
  wait_for 60 "the first cycle holds the creates of the new node" status_has '.sync.held != null'
  local hold
  ct $pkg --env-file /etc/$pkg/agent.env --port "$(agent_port)" --confirm >"$work/$s-held.txt" ||
    fail "--confirm did not show what is held"
  hold=$(agent_status | jq -r .sync.held.id)
  grep -q "held changes $hold" "$work/$s-held.txt" || { cat "$work/$s-held.txt" >&2; fail "--confirm did not name $hold"; }
  ct $pkg --env-file /etc/$pkg/agent.env --port "$(agent_port)" --confirm "$hold" >/dev/null ||
    fail "--confirm $hold was not taken"
  wait_for 60 "AccountDB holds the $expected whitelisted running guests" \
    adb_holds "$expected"
  [[ $(adb_creates) -eq $expected ]] || fail "$(adb_creates) creates for $expected rows"
  note "start: $expected rows in AccountDB"
  journal_test

  # -- reload applies an edit.
  local pid
  pid=$(main_pid)
  sed -i 's/^UPDATE_INTERVAL=60$/UPDATE_INTERVAL=120/' "$croot$dropin"
  ct systemctl reload $unit || fail "systemctl reload failed"
  wait_for 20 "/status shows UPDATE_INTERVAL 120 after the reload" status_has '.sync.update_interval == 120'
  [[ $(main_pid) == "$pid" ]] || fail "the reload restarted the agent"

  # -- a broken edit: the reload fails and says where; the agent keeps the old settings.
  echo "UPDATE_INTERVAL=5 seconds" >>"$croot$dropin"
  local line
  line=$(wc -l <"$croot$dropin")
  if ct systemctl reload $unit 2>/dev/null; then fail "a reload with a broken drop-in succeeded"; fi
  ct journalctl -u $unit --no-pager -o cat | grep -c "$dropin:$line" >/dev/null ||
    fail "the journal does not name $dropin:$line"
  [[ $(ct systemctl show -P ActiveState $unit) == active && $(main_pid) == "$pid" ]] ||
    fail "the agent did not survive a broken reload"
  # A bare SIGHUP meets the same refusal in the agent itself.
  ct systemctl kill -s HUP --kill-who=main $unit
  wait_for 20 "config_reload_rejected naming $dropin:$line" \
    sh -c "nsenter -t $ct_pid -a journalctl -u $unit --no-pager -o cat | grep config_reload_rejected | grep -q '$dropin:$line'"
  status_has '.sync.update_interval == 120' || fail "the broken edit changed the settings"
  sed -i '$d' "$croot$dropin"
  ct systemctl reload $unit || fail "the reload after the fix failed"
  note "reload: applied; a broken edit refused with $dropin:$line"

  # -- restart keeps the sync state: no creates.
  local creates_before
  creates_before=$(adb_creates)
  ct systemctl restart $unit || fail "systemctl restart failed"
  wait_for 30 "a finished cycle after the restart" status_has '.sync.cycle_count >= 1 and .sync.is_syncing == false'
  [[ $(adb_creates) -eq $creates_before ]] || fail "the restart created rows again"
  [[ $(adb_row_count) -eq $expected ]] || fail "the restart changed the rows: $(adb_row_count)"
  [[ -f $croot/var/lib/$pkg/sync-state.json ]] || fail "no sync state in /var/lib/$pkg"
  note "restart: no creates, the sync state kept"

  # -- a secret as a systemd credential (the README's drop-in).
  install -D -m 0600 /dev/stdin "$croot/etc/credstore/$pkg.proxmox_token_secret" <<<"$token_secret"
  sed -i '/^PROXMOX_TOKEN_SECRET=/d' "$croot$dropin"
  mkdir -p "$croot/etc/systemd/system/$unit.d"
  cat >"$croot/etc/systemd/system/$unit.d/credentials.conf" <<EOF
[Service]
LoadCredential=proxmox_token_secret:/etc/credstore/$pkg.proxmox_token_secret
Environment=PROXMOX_TOKEN_SECRET_FILE=%d/proxmox_token_secret
EOF
  ct systemctl daemon-reload
  ct systemctl restart $unit || { ct journalctl -u $unit --no-pager | tail -n 20 >&2; fail "the restart with a credential failed"; }
  wait_for 30 "a good cycle with the token secret from a credential" \
    status_has '.sync.cycle_count >= 1 and .sync.last_result.status == "ok"'
  note "a secret from LoadCredential= works"

  # -- agent.env edited locally; upgrade to -2: no prompt, the edit survives.
  sed -i "s|^ACCOUNTDB_URL=\$|ACCOUNTDB_URL=$adb_url|" "$croot/etc/$pkg/agent.env"
  sed -i '/^ACCOUNTDB_URL=/d' "$croot$dropin"
  ct systemctl reload $unit || fail "the reload with ACCOUNTDB_URL in agent.env failed"
  publish "$deb2_dir"
  pid=$(main_pid)
  ct apt-get update -q >/dev/null 2>&1 || fail "apt-get update for the upgrade failed"
  # stdin is /dev/null and no --force-conf*: a conffile prompt would fail the upgrade.
  out=$(ct apt-get upgrade -y -q </dev/null 2>&1) || { echo "$out" >&2; fail "apt upgrade failed"; }
  if grep -qi 'configuration file' <<<"$out"; then echo "$out" >&2; fail "the upgrade asked about a conffile"; fi
  [[ $(ct dpkg-query -W -f='${Version}' $pkg) == "$upstream-2+deb$(pha_suite_number "$s")" ]] ||
    fail "the upgrade installed $(ct dpkg-query -W -f='${Version}' $pkg)"
  grep -qx "ACCOUNTDB_URL=$adb_url" "$croot/etc/$pkg/agent.env" || fail "the upgrade lost the local edit"
  if compgen -G "$croot/etc/$pkg/agent.env.dpkg-*" >/dev/null; then fail "the upgrade left $(ls "$croot/etc/$pkg/")"; fi
  [[ $(ct systemctl show -P ActiveState $unit) == active && $(main_pid) != "$pid" ]] ||
    fail "the upgrade did not restart the service"
  wait_for 30 "a good cycle after the upgrade" status_has '.sync.cycle_count >= 1 and .sync.last_result.status == "ok"'
  note "upgrade -1 -> -2: no prompt, the edit kept, restarted"

  # -- the unit, as this suite's systemd sees it.
  local unit_path verify
  unit_path=$(ct systemctl show -P FragmentPath $unit)
  verify=$(ct systemd-analyze verify "$unit_path" 2>&1) || fail "systemd-analyze verify: $verify"
  [[ -z $verify ]] || fail "systemd-analyze verify complains: $verify"
  exposure=$(ct systemd-analyze security --offline=true --no-pager "$unit_path" 2>&1 |
    sed -nE 's/.*Overall exposure level for .*: ([0-9.]+) .*/\1/p')
  [[ -n $exposure ]] || fail "systemd-analyze security gave no exposure level"
  awk -v e="$exposure" 'BEGIN { exit !(e < 2.0) }' || fail "systemd-analyze security: exposure $exposure, not below 2"
  note "systemd-analyze: verify clean, exposure $exposure"

  # -- purge leaves nothing.
  rm -rf "$croot/etc/systemd/system/$unit.d" "$croot/etc/credstore/$pkg.proxmox_token_secret"
  # systemd ships /etc/credstore from 256 on (trixie); on bookworm the test made it.
  grep -qx './etc/credstore' <<<"$before" || rmdir "$croot/etc/credstore"
  ct systemctl daemon-reload
  purge_leaves_nothing "$before"
  note "purge: nothing left"

  # -- migration from the old Python agent.
  mkdir -p "$croot/opt/proxmox-agent"
  sed -e "s|@PROXMOX_HOST@|${pve1#https://}|" -e "s|@PROXMOX_PASSWORD@|$old_password|" \
    -e "s|@ACCOUNTDB_URL@|$adb_url|" -e "s|@ACCOUNTDB_API_KEY@|$api_key|" \
    tests/package/old-agent.env >"$croot/opt/proxmox-agent/.env"
  install -m 0644 tests/package/proxmox-agent.service "$croot/etc/systemd/system/proxmox-agent.service"
  ct systemctl daemon-reload
  ct systemctl enable --now proxmox-agent.service 2>/dev/null
  before=$(snapshot)
  out=$(ct apt-get install -y -q $pkg </dev/null 2>&1) || { echo "$out" >&2; fail "apt install (migration) failed"; }
  grep -q "proxmox-agent.service is still enabled" <<<"$out" ||
    { echo "$out" >&2; fail "the install did not point at the old agent"; }
  # The test's own needs, in a later drop-in: a free port on the shared loopback.
  printf 'BIND_ADDRESS=127.0.0.1\nPORT=0\n' | install -m 0644 /dev/stdin "$croot/etc/$pkg/agent.env.d/90-test.env"
  creates_before=$(adb_creates)
  # The README's migration commands, as they stand.
  sed -n '/<!-- migration:begin -->/,/<!-- migration:end -->/p' README.md | sed '/^```/d; /^<!--/d' >"$work/migrate.sh"
  [[ -s $work/migrate.sh ]] || fail "the README has no migration commands"
  ct sh -e -s <"$work/migrate.sh" >"$work/$s-migrate.log" 2>&1 || { cat "$work/$s-migrate.log" >&2; fail "the README's migration failed"; }
  [[ $(ct systemctl show -P ActiveState proxmox-agent.service) == inactive ]] || fail "the old agent still runs"
  [[ $(ct systemctl is-enabled proxmox-agent.service 2>&1) == disabled ]] || fail "the old agent is still enabled"
  [[ $(ct systemctl show -P ActiveState $unit) == active ]] || fail "the agent did not start after the migration"
  wait_for 30 "a good cycle on the old agent's settings" \
    status_has '.sync.cycle_count >= 1 and .sync.last_result.status != "error"'
  [[ $(adb_creates) -eq $creates_before && $(adb_row_count) -eq $expected ]] ||
    fail "the migrated agent created rows: $(adb_creates) creates, $(adb_row_count) rows"
  note "migration: the old unit stopped and disabled, its .env works unchanged as a drop-in"
  purge_leaves_nothing "$before" ./etc/systemd/system/multi-user.target.wants/proxmox-agent.service

  ct_stop
  kill "$pve_pid" "$adb_pid" 2>/dev/null || true
  rm -rf "$croot"
}

t_start=$SECONDS
for suite in "${suites[@]}"; do
  stage "checks"
  static_checks "$suite" "build-pkg/$suite/${pkg}_${upstream}-1+deb$(pha_suite_number "$suite")_amd64.deb"
  stage_done
done
suite=
stage repo
rm -rf "$repo" "$repo.test-gnupg"
publish "${suites[@]/#/build-pkg/}"
start_sim repo "$file_server" --root "$repo"
repo_url=$(ready_of repo | jq -r .url)
stage_done
for suite in "${suites[@]}"; do
  stage "node"
  node_test "$suite"
  stage_done
done
suite=
echo "package_test: OK: ${suites[*]} (build ${took[build]}s, checks ${took[checks]}s, repository ${took[repo]}s, nodes ${took[node]}s; all $((SECONDS - t_start + took[build] + took[tools]))s)"
