#!/usr/bin/env bash
# monitoring/prometheus.yml as an operator installs it, checked with
# promtool: the copy here reads the rule file and the file_sd list from the
# source tree instead of /usr/share/proxmox-host-agent/monitoring/ and
# /etc/prometheus/file_sd/, so `promtool check config` also checks
# alerts.yml and the file_sd example.
#   check_config.sh PROMTOOL MONITORING_DIR WORK_DIR
set -euo pipefail
promtool=$1 dir=$2 work=$3
installed=/usr/share/proxmox-host-agent/monitoring/
file_sd=/etc/prometheus/file_sd/proxmox-host-agent.yml
for path in "$installed" "$file_sd"; do
  grep -qF "$path" "$dir/prometheus.yml" || {
    echo "prometheus.yml does not name $path" >&2
    exit 1
  }
done
mkdir -p "$work"
sed -e "s#$installed#$dir/#g" -e "s#$file_sd#$dir/file_sd/proxmox-host-agent.example.yml#g" \
  "$dir/prometheus.yml" >"$work/prometheus.yml"
"$promtool" check config "$work/prometheus.yml"
