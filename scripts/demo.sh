#!/usr/bin/env bash
# The demo: the agent's main job against the bundled simulators.
#
# Sets up the machine, builds the agent and the simulators, starts a 3-node
# Proxmox VE simulator (HTTPS, a test CA, an API token) and an AccountDB
# simulator with a whitelist for node pve1, runs the agent's first sync and
# shows its report (a new node: the change brake holds the creates), starts
# the agent as a daemon, shows what it holds and confirms it as an operator
# would (--confirm), shows what AccountDB now holds, then keeps the agent
# running (a cycle every 30 s) until Ctrl-C, and cleans up everything it
# started.
#
#   ./scripts/demo.sh            the demo
#   ./scripts/demo.sh --smoke    up to the confirmed first sync, checked, then exit (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [[ ${1:-} == "--smoke" ]]; then smoke=1; fi
build=${PHA_BUILD_DIR:-build-demo}

if [[ -z ${PHA_BUILD_DIR:-} ]]; then
  bash scripts/setup.sh
  echo "== building the agent and the simulators ($build)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target proxmox-host-agent pve-sim adb-sim
fi
agent="$build/agent/proxmox-host-agent"
pve_sim="$build/tests/sim/pve-sim"
adb_sim="$build/tests/sim/adb-sim"

work=$(mktemp -d /tmp/pha-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "== stopping"; exit 0' INT TERM

# Waits for the one-line JSON "ready" event a simulator prints on stdout.
wait_ready() {
  local file=$1
  for _ in $(seq 1 200); do
    if grep -q '"ready"' "$file" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "demo: a simulator did not start; its log:" >&2
  cat "${file%.out}.log" >&2 || true
  exit 1
}
# The value of a string member of the one-line JSON in a file.
json_string() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -1 | sed 's/.*":"\(.*\)"/\1/'; }

token_id='agent@pve!demo'
token_secret='4c2a1f0e-7d3b-4e5f-9a8b-1c2d3e4f5a6b'
api_key='DemoKeyDemoKeyDemoKeyDemoKeyDemoKeyDemoKey'

echo "== starting the Proxmox VE simulator: 3 nodes, 90 guests"
"$pve_sim" --nodes 3 --guests 90 --seed 7 --dir "$work/pve" --token "$token_id=$token_secret" \
  --auth-delay-ms 200 >"$work/pve.out" 2>"$work/pve.log" &
pids+=($!)
wait_ready "$work/pve.out"
pve1=$(json_string "$work/pve.out" pve1)
ca_file=$(json_string "$work/pve.out" ca_file)
pve_control=$(json_string "$work/pve.out" control)
echo "   pve1 at $pve1, cluster CA $ca_file"

# Whitelist every other guest of pve1, as a customer database would.
common_env=(PROXMOX_HOST="$pve1" PROXMOX_TOKEN_ID="$token_id" PROXMOX_TOKEN_SECRET="$token_secret"
  PROXMOX_CA_FILE="$ca_file")
env "${common_env[@]}" "$agent" --list-guests >"$work/guests.json" 2>"$work/list.log"
vmids=$(grep -o '"vmid": [0-9]*' "$work/guests.json" | awk '{print $2}')
whitelist=$(echo "$vmids" | awk 'NR % 2 == 1' | paste -sd, -)
echo "   pve1 has $(echo "$vmids" | wc -l) guests; whitelisted: $whitelist"

echo "== starting the AccountDB simulator (node 1, pve1)"
"$adb_sim" --node-id 1 --api-key "$api_key" --whitelist "$whitelist" --node-name pve1 \
  >"$work/adb.out" 2>"$work/adb.log" &
pids+=($!)
wait_ready "$work/adb.out"
adb_url=$(json_string "$work/adb.out" url)
adb_control=$(json_string "$work/adb.out" control)
echo "   AccountDB at $adb_url"

mkdir -p "$work/state"
cat >"$work/agent.env" <<ENV
PROXMOX_HOST=$pve1
PROXMOX_TOKEN_ID=$token_id
PROXMOX_TOKEN_SECRET=$token_secret
PROXMOX_CA_FILE=$ca_file
ACCOUNTDB_URL=$adb_url
ACCOUNTDB_API_KEY=$api_key
ACCOUNTDB_NODE_ID=1
UPDATE_INTERVAL=30
STATE_DIR=$work/state
PORT=0
BIND_ADDRESS=127.0.0.1
ENV

echo "== the first sync (proxmox-host-agent --once)"
set +e
"$agent" --env-file "$work/agent.env" --once >"$work/first.json" 2>"$work/first.log"
rc=$?
set -e
grep -E '^  "(status|message)"' "$work/first.json"
sed -n '/"stats"/,/}/p' "$work/first.json"
rows=$(curl -s "$adb_control/control/rows" | jq '.rows | length')
echo "   AccountDB now holds $rows rows for node 1"
if ((rc != 0)); then
  echo "demo: the first sync failed (exit $rc); the agent's log:" >&2
  cat "$work/first.log" >&2
  exit 1
fi
# A new node: AccountDB has no row for it and the agent knows none, so the
# change brake holds the creates (more than CHANGE_BRAKE_MIN) until they are
# corroborated over MISSING_AFTER_CYCLES cycles or an operator confirms them.
held=$(grep -c '"path": "/vms/agent/-' "$work/first.json" || true)
echo "   the change brake holds $held creates: AccountDB has no row of this new node"
if ((smoke)) && [[ $held -eq 0 || $rows -ne 0 ]]; then
  echo "demo smoke: expected held creates and no row (held=$held rows=$rows)" >&2
  exit 1
fi

echo
echo "== the agent as a daemon, with its HTTP API"
"$agent" --env-file "$work/agent.env" 2> >(tee "$work/agent.log" >&2) &
pids+=($!)
port=""
for _ in $(seq 1 200); do
  port=$(grep -o 'http_listening.*port=[0-9]*' "$work/agent.log" 2>/dev/null | grep -o 'port=[0-9]*' | cut -d= -f2 || true)
  if [[ -n $port ]]; then break; fi
  sleep 0.05
done
if [[ -z $port ]]; then
  echo "demo: the agent's HTTP API did not start" >&2
  exit 1
fi
api="http://127.0.0.1:$port"
cycles() { curl -s "$api/status" | grep -o '"cycle_count":[0-9]*' | cut -d: -f2; }
for _ in $(seq 1 400); do
  [[ $(cycles) -ge 1 ]] && break
  sleep 0.05
done

echo
echo "== what is held, and the operator's confirmation (proxmox-host-agent --confirm)"
"$agent" --env-file "$work/agent.env" --port "$port" --confirm | sed 's/^/   /'
hold=$(curl -s "$api/status" | jq -r '.sync.held.id // empty')
if [[ -z $hold ]]; then
  echo "demo: the daemon's first cycle held nothing" >&2
  exit 1
fi
before=$(cycles)
"$agent" --env-file "$work/agent.env" --port "$port" --confirm "$hold" | sed 's/^/   /'
state=""
for _ in $(seq 1 400); do
  status=$(curl -s "$api/status")
  state=$(grep -o '"current":{[^}]*}' <<<"$status" || true)
  # "starting" until the first cycle ended and every upstream's state is known
  if [[ $(jq .sync.cycle_count <<<"$status") -gt $before && $state != *'"status":"starting"'* ]]; then break; fi
  sleep 0.05
done
rows=$(curl -s "$adb_control/control/rows" | jq '.rows | length')
echo "   AccountDB now holds $rows rows for node 1"
echo "   /status current: $state"
echo "   /health: $(curl -s "$api/health")"
if ((smoke)); then
  if [[ $state != *'"status":"ok"'* || $rows -ne $held ]]; then
    echo "demo smoke: expected the confirmed cycle to be ok and $held rows (rows=$rows)" >&2
    exit 1
  fi
  echo "demo smoke: OK"
  exit 0
fi

echo
echo "== the agent keeps running (a cycle every 30 s; Ctrl-C stops everything)"
echo "   status page:  $api/"
echo "   try, in another terminal:"
echo "     curl -s $api/status          # state, history, hosts, endpoints, last sync"
echo "     curl -s $api/metrics         # Prometheus"
echo "     curl -X POST $api/sync/trigger"
echo "     curl -X POST $pve_control/control/guests/$(echo "$vmids" | head -1)/stop   # a guest stops; the next cycle sends it"
echo "     curl -s $adb_control/control/rows   # what AccountDB holds"
wait "${pids[-1]}"
