#pragma once
// The agent's effective settings, typed. Filled only by the config layer
// (settings_table.cpp describes every field); everything else reads it.

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/url.hpp"

namespace pha {

enum class Strategy { priority, round_robin, weighted, least_connections };
enum class LogFormat { text, json };

struct AccountDbEndpoint {
  Url url;
  int priority = 1;  // lower = preferred group
  int weight = 1;    // 0 = drain
  bool operator==(const AccountDbEndpoint&) const = default;
};

struct Settings {
  // Proxmox VE
  Url proxmox_host;
  std::string proxmox_user;
  std::string proxmox_password;  // secret
  std::string proxmox_token_id;
  std::string proxmox_token_secret;  // secret
  bool proxmox_verify_ssl = true;
  std::string proxmox_ca_file;
  std::vector<std::string> proxmox_fingerprints;  // upper-case colon hex
  std::string node_name;                          // empty = auto
  std::vector<Url> proxmox_hosts;
  bool proxmox_discover_hosts = true;
  int proxmox_timeout = 5;
  int proxmox_connect_timeout = 2;
  bool sync_qemu = true;
  bool sync_lxc = true;
  bool vm_details = true;
  int vm_details_ttl = 3600;

  // AccountDB
  std::vector<AccountDbEndpoint> accountdb_endpoints;
  std::string accountdb_api_key;  // secret
  long long accountdb_node_id = 0;
  int accountdb_timeout = 30;
  Strategy accountdb_strategy = Strategy::priority;

  // Sync
  int update_interval = 300;
  int heartbeat_interval = 60;
  int whitelist_ttl = 300;
  int whitelist_max_stale = 86400;
  bool create_stopped_vms = false;
  bool mark_missing_vms = true;
  int missing_after_cycles = 3;
  int full_resync_interval = 3600;  // 0 = never
  double cpu_change_threshold = 5;
  int change_brake_min = 3;            // CHANGE_BRAKE_MIN
  double change_brake_percent = 20;    // CHANGE_BRAKE_PERCENT
  std::string peer_handover = "auto";  // PEER_HANDOVER: auto, true, false
  int peer_port = 0;                   // 0: port
  std::string peer_scheme = "auto";    // auto, http, https
  int peer_timeout = 2;
  double change_poll_interval = 2;  // seconds; 0: no change-driven sync
  double change_settle = 1;         // seconds
  double change_min_interval = 5;   // seconds

  // Resilience
  int health_check_interval = 30;
  int health_check_peers = 2;
  int circuit_breaker_threshold = 3;
  int circuit_breaker_reset = 60;
  int healthy_threshold = 2;
  int host_cleanup_age = 300;
  int primary_bonus = 50;
  bool auto_failover = true;
  bool auto_recovery = true;
  int retry_max_attempts = 3;
  double retry_base_delay = 1;
  int retry_max_delay = 120;
  int hedge_delay_min = 50;         // milliseconds
  int hedge_delay_max = 400;        // milliseconds
  double hedge_budget_percent = 5;  // 0: no hedging

  // The agent's HTTP API
  std::string bind_address;
  int port = 8000;
  std::string agent_api_token;   // secret: control (POST)
  std::string agent_read_token;  // secret: customer data, and every GET under agent_read_auth
  bool agent_read_auth = false;
  bool agent_open_customer_data = false;  // 0.2.0's open /vms and /config
  std::string tls_cert_file;
  std::string tls_key_file;
  int status_history_size = 10;

  // Webhooks
  std::vector<std::string> webhook_urls;  // full URLs (a path may hold a receiver's secret)
  std::string webhook_token;              // secret
  int webhook_timeout = 5;
  std::vector<std::string> webhook_events;  // WebhookEvent names, in table order
  int webhook_queue_size = 100;
  int webhook_sync_failures = 3;

  // Logging and state
  std::string log_level;  // trace, debug, info, warning, error, critical
  bool debug = false;
  LogFormat log_format = LogFormat::text;
  std::string state_dir;  // empty = no state is persisted

  bool uses_token_auth() const { return !proxmox_token_id.empty(); }
  // Whether a guest that migrated here is handed its row by the agent of the
  // node it left (PEER_HANDOVER, auto: with a read token the agents share).
  bool handover_enabled() const {
    return peer_handover == "true" || (peer_handover == "auto" && !agent_read_token.empty());
  }
  // The base URL of the agent of the node at `ip` (an IPv4 or IPv6 literal).
  std::string peer_url(const std::string& ip) const;
  // Secret values, for the log masking filter.
  std::vector<std::string> secrets() const;
};

std::string_view to_string(Strategy s);

// The events a webhook receiver may get (WEBHOOK_EVENTS), in the order shown.
inline constexpr std::array<std::string_view, 8> kWebhookEventNames = {
    "failover",       "recovery",    "redundancy", "sync_failed",
    "sync_recovered", "auth_failed", "sync_held",  "guest_row_not_handed_over"};

}  // namespace pha
