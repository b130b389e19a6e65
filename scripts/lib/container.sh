# A Debian root booted as a container with systemd as PID 1, sharing the
# host's network (so the simulators on the host's loopback are the node's
# loopback too), for testing the package the way an operator runs it.
# Sourced by scripts/package_test.sh; needs root and systemd-nspawn.
#
#   ct_boot DIR NAME LOG [nspawn options...]   boot DIR, wait until systemd is up
#   ct CMD...                                  run CMD in it (nsenter, as root)
#   ct_stop                                    shut it down (and wait)

ct_nspawn_pid=
ct_pid=

# The container's PID 1 as the host sees it: the descendant of systemd-nspawn
# whose innermost PID is 1.
_ct_find_init() {
  local queue=("$ct_nspawn_pid") p c
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    if [[ $p != "$ct_nspawn_pid" ]] && grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$p/status" 2>/dev/null; then
      echo "$p"
      return 0
    fi
    for c in $(cat "/proc/$p/task/"*/children 2>/dev/null); do queue+=("$c"); done
  done
  return 1
}

ct_boot() {
  local dir=$1 name=$2 log=$3
  shift 3
  # --keep-unit and --register=no: this machine runs no systemd to register with.
  systemd-nspawn --quiet --register=no --keep-unit --boot --directory="$dir" --machine="$name" \
    --resolv-conf=replace-host --timezone=off --link-journal=no --console=read-only "$@" \
    </dev/null >"$log" 2>&1 &
  ct_nspawn_pid=$!
  local deadline=$((SECONDS + 60))
  until ct_pid=$(_ct_find_init); do
    if ! kill -0 "$ct_nspawn_pid" 2>/dev/null || ((SECONDS > deadline)); then
      tail -n 30 "$log" >&2
      echo "container: $name did not start" >&2
      return 1
    fi
    sleep 0.2
  done
  # systemctl reaches PID 1 through its private socket, which comes a moment
  # after PID 1 itself.
  until nsenter -t "$ct_pid" -a test -S /run/systemd/private 2>/dev/null; do
    if ((SECONDS > deadline)); then
      tail -n 30 "$log" >&2
      echo "container: $name: systemd did not come up" >&2
      return 1
    fi
    sleep 0.2
  done
  local state
  state=$(timeout 120 nsenter -t "$ct_pid" -a systemctl is-system-running --wait 2>&1) || true
  if [[ $state != running && $state != degraded ]]; then
    tail -n 30 "$log" >&2
    echo "container: $name did not finish booting: '$state'" >&2
    return 1
  fi
}

ct() {
  nsenter -t "$ct_pid" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive HOME=/root TERM=dumb "$@"
}

ct_stop() {
  [[ -n $ct_nspawn_pid ]] || return 0
  if kill -0 "$ct_nspawn_pid" 2>/dev/null; then
    # SIGTERM makes nspawn ask the container's systemd for a clean shutdown.
    kill -TERM "$ct_nspawn_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while kill -0 "$ct_nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$ct_nspawn_pid" 2>/dev/null || true
  fi
  wait "$ct_nspawn_pid" 2>/dev/null || true
  ct_nspawn_pid=
  ct_pid=
}
