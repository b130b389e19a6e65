#include "agent/config/settings_table.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cmath>
#include <set>

#include "agent/core/text.hpp"

namespace pha {

namespace {

constexpr int kProxmoxPort = 8006;

std::string allowed_text(const SettingSpec& spec);

Error not_allowed(const SettingSpec& spec) {
  return Error{ErrorKind::invalid, "expected " + allowed_text(spec)};
}

template <auto Member>
Result<std::string> apply_int(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto v = parse_int(raw);
  if (!v || ((static_cast<double>(*v) < spec.min || static_cast<double>(*v) > spec.max) &&
             !(spec.zero_allowed && *v == 0))) {
    return not_allowed(spec);
  }
  using T = std::remove_reference_t<decltype(out.*Member)>;
  out.*Member = static_cast<T>(*v);
  return std::to_string(*v);
}

template <auto Member>
Result<std::string> apply_decimal(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto v = parse_decimal(raw);
  if (!v || ((*v < spec.min || *v > spec.max) && !(spec.zero_allowed && *v == 0))) {
    return not_allowed(spec);
  }
  out.*Member = *v;
  return format_decimal(*v);
}

template <auto Member>
Result<std::string> apply_bool(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto v = parse_bool(raw);
  if (!v) {
    return not_allowed(spec);
  }
  out.*Member = *v;
  return std::string(*v ? "true" : "false");
}

template <auto Member>
Result<std::string> apply_text(const SettingSpec&, std::string_view raw, Settings& out) {
  out.*Member = std::string(raw);
  return std::string(raw);
}

// A path to a file; whether it is readable is checked with the filesystem.
template <auto Member>
Result<std::string> apply_path(const SettingSpec&, std::string_view raw, Settings& out) {
  if (raw.find('\n') != std::string_view::npos) {
    return Error{ErrorKind::invalid, "expected a file path on one line"};
  }
  out.*Member = std::string(raw);
  return std::string(raw);
}

std::optional<std::string> match_choice(const SettingSpec& spec, std::string_view raw) {
  for (const auto& c : split_list(spec.choices)) {
    if (iequals(c, raw)) {
      return c;
    }
  }
  return std::nullopt;
}

Result<std::string> apply_proxmox_host(const SettingSpec&, std::string_view raw, Settings& out) {
  auto url = parse_url(raw, {"https", kProxmoxPort});
  if (!url) {
    return Error{ErrorKind::invalid,
                 "expected a URL or host[:port]; this one " + url.error().message};
  }
  out.proxmox_host = *url;
  return url->str();
}

Result<std::string> apply_proxmox_hosts(const SettingSpec&, std::string_view raw, Settings& out) {
  out.proxmox_hosts.clear();
  std::string normal;
  for (const auto& item : split_list(raw)) {
    auto url = parse_url(item, {"https", kProxmoxPort});
    if (!url) {
      return Error{ErrorKind::invalid, "expected comma-separated URLs or host[:port]; '" + item +
                                           "' " + url.error().message};
    }
    if (std::find(out.proxmox_hosts.begin(), out.proxmox_hosts.end(), *url) !=
        out.proxmox_hosts.end()) {
      return Error{ErrorKind::invalid, "lists " + url->str() + " twice"};
    }
    out.proxmox_hosts.push_back(*url);
    normal += (normal.empty() ? "" : ",") + url->str();
  }
  return normal;
}

bool valid_user_realm(std::string_view s) {
  const auto at = s.find('@');
  return at != std::string_view::npos && at > 0 && at + 1 < s.size() &&
         s.find('@', at + 1) == std::string_view::npos &&
         std::none_of(s.begin(), s.end(),
                      [](char c) { return c == ' ' || c == '!' || c == ':' || c < 0x20; });
}

Result<std::string> apply_proxmox_user(const SettingSpec& spec, std::string_view raw,
                                       Settings& out) {
  if (!valid_user_realm(raw)) {
    return not_allowed(spec);
  }
  out.proxmox_user = std::string(raw);
  return std::string(raw);
}

Result<std::string> apply_token_id(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto bang = raw.find('!');
  if (!raw.empty() &&
      (bang == std::string_view::npos || !valid_user_realm(raw.substr(0, bang)) ||
       bang + 1 == raw.size() || raw.find_first_of("!= ", bang + 1) != std::string_view::npos)) {
    return not_allowed(spec);
  }
  out.proxmox_token_id = std::string(raw);
  return std::string(raw);
}

Result<std::string> apply_fingerprints(const SettingSpec& spec, std::string_view raw,
                                       Settings& out) {
  out.proxmox_fingerprints.clear();
  std::string normal;
  for (const auto& item : split_list(raw)) {
    // 32 bytes as colon-separated hex pairs: 95 characters.
    bool ok = item.size() == 95;
    for (std::size_t i = 0; ok && i < item.size(); ++i) {
      ok = (i % 3 == 2) ? item[i] == ':' : std::isxdigit(static_cast<unsigned char>(item[i])) != 0;
    }
    if (!ok) {
      return Error{ErrorKind::invalid,
                   "'" + item + "' is not a SHA-256 fingerprint; " + std::string(spec.allowed)};
    }
    std::string upper = item;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) {
      return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    });
    out.proxmox_fingerprints.push_back(upper);
    normal += (normal.empty() ? "" : ",") + upper;
  }
  return normal;
}

// A receiver's URL: http or https, a host, an optional port, path and query
// (many receivers put their own secret in the path, so the URL is shown only
// as its origin). No user info: the token goes in WEBHOOK_TOKEN.
Result<std::string> apply_webhook_urls(const SettingSpec&, std::string_view raw, Settings& out) {
  out.webhook_urls.clear();
  std::string normal;
  for (const auto& item : split_list(raw)) {
    const auto query = item.find('?');
    auto url = parse_url(std::string_view(item).substr(0, query), {});
    if (!url) {
      return Error{ErrorKind::invalid, "expected comma-separated http or https URLs; " +
                                           url_display(item) + " " + url.error().message};
    }
    auto full = url->str() + (query == std::string::npos ? "" : item.substr(query));
    if (std::find(out.webhook_urls.begin(), out.webhook_urls.end(), full) !=
        out.webhook_urls.end()) {
      return Error{ErrorKind::invalid, "lists " + url_display(full) + " twice"};
    }
    normal += (normal.empty() ? "" : ",") + url_display(full);
    out.webhook_urls.push_back(std::move(full));
  }
  return normal;
}

std::string show_webhook_urls(std::string_view raw) {
  std::string out;
  for (const auto& item : split_list(raw)) {
    out += (out.empty() ? "" : ",") + url_display(item);
  }
  return out;
}

Result<std::string> apply_webhook_events(const SettingSpec& spec, std::string_view raw,
                                         Settings& out) {
  std::set<std::string> chosen;
  for (const auto& item : split_list(raw)) {
    const auto known = std::find_if(kWebhookEventNames.begin(), kWebhookEventNames.end(),
                                    [&](std::string_view n) { return iequals(n, item); });
    if (known == kWebhookEventNames.end()) {
      return Error{ErrorKind::invalid,
                   "'" + item + "' is not an event; expected " + std::string(spec.allowed)};
    }
    chosen.insert(std::string(*known));
  }
  if (chosen.empty()) {
    return Error{ErrorKind::invalid, "names no event; leave WEBHOOK_URLS empty to send none"};
  }
  out.webhook_events.clear();
  std::string normal;
  for (const auto n : kWebhookEventNames) {  // table order, whatever the order given
    if (chosen.contains(std::string(n))) {
      out.webhook_events.emplace_back(n);
      normal += (normal.empty() ? "" : ",") + std::string(n);
    }
  }
  return normal;
}

Result<std::string> apply_node_name(const SettingSpec& spec, std::string_view raw, Settings& out) {
  if (raw.empty() || iequals(raw, "auto")) {
    out.node_name.clear();
    return std::string("auto");
  }
  // Proxmox node names are DNS labels.
  const bool ok = raw.size() <= 63 &&
                  std::all_of(raw.begin(), raw.end(),
                              [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
                              }) &&
                  raw.front() != '-' && raw.back() != '-';
  if (!ok) {
    return not_allowed(spec);
  }
  out.node_name = std::string(raw);
  return std::string(raw);
}

Result<std::string> apply_guest_types(const SettingSpec& spec, std::string_view raw,
                                      Settings& out) {
  const auto items = split_list(raw);
  out.sync_qemu = out.sync_lxc = false;
  for (const auto& item : items) {
    if (iequals(item, "qemu")) {
      out.sync_qemu = true;
    } else if (iequals(item, "lxc")) {
      out.sync_lxc = true;
    } else {
      return not_allowed(spec);
    }
  }
  if (!out.sync_qemu && !out.sync_lxc) {
    return not_allowed(spec);
  }
  std::string normal = out.sync_qemu ? "qemu" : "";
  if (out.sync_lxc) {
    normal += normal.empty() ? "lxc" : ",lxc";
  }
  return normal;
}

Result<std::string> apply_endpoints(const SettingSpec&, std::string_view raw, Settings& out) {
  out.accountdb_endpoints.clear();
  std::string normal;
  for (const auto& item : split_list(raw)) {
    auto parts = split_list(item, ';');
    auto url = parse_url(parts.front(), {"", 0});
    if (!url) {
      return Error{ErrorKind::invalid, "expected URL[;priority=N][;weight=W], comma-separated; '" +
                                           parts.front() + "' " + url.error().message};
    }
    AccountDbEndpoint ep{*url, 1, 1};
    std::set<std::string> seen;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const auto eq = parts[i].find('=');
      const auto key = to_lower(trim(std::string_view(parts[i]).substr(0, eq)));
      const auto value = eq == std::string::npos ? std::string_view{}
                                                 : trim(std::string_view(parts[i]).substr(eq + 1));
      const auto n = parse_int(value);
      if (!seen.insert(key).second) {
        return Error{ErrorKind::invalid, "endpoint " + url->str() + " sets '" + key + "' twice"};
      }
      if (key == "priority") {
        if (!n || *n < 0 || *n > 1000) {
          return Error{ErrorKind::invalid,
                       "endpoint " + url->str() + ": priority must be an integer from 0 to 1000"};
        }
        ep.priority = static_cast<int>(*n);
      } else if (key == "weight") {
        if (!n || *n < 0 || *n > 256) {
          return Error{ErrorKind::invalid,
                       "endpoint " + url->str() + ": weight must be an integer from 0 to 256"};
        }
        ep.weight = static_cast<int>(*n);
      } else {
        return Error{ErrorKind::invalid, "endpoint " + url->str() + ": unknown parameter '" + key +
                                             "' (allowed: priority, weight)"};
      }
    }
    for (const auto& other : out.accountdb_endpoints) {
      if (other.url == ep.url) {
        return Error{ErrorKind::invalid, "lists " + ep.url.str() + " twice"};
      }
    }
    out.accountdb_endpoints.push_back(ep);
    if (!normal.empty()) {
      normal += ", ";
    }
    normal += ep.url.str() + ";priority=" + std::to_string(ep.priority) +
              ";weight=" + std::to_string(ep.weight);
  }
  if (out.accountdb_endpoints.empty() && !trim(raw).empty()) {
    return Error{ErrorKind::invalid, "lists no endpoint"};
  }
  return normal;
}

Result<std::string> apply_strategy(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto c = match_choice(spec, raw);
  if (!c) {
    return not_allowed(spec);
  }
  for (auto s : {Strategy::priority, Strategy::round_robin, Strategy::weighted,
                 Strategy::least_connections}) {
    if (to_string(s) == *c) {
      out.accountdb_strategy = s;
    }
  }
  return *c;
}

Result<std::string> apply_bind(const SettingSpec& spec, std::string_view raw, Settings& out) {
  if (!is_ip_literal(raw)) {
    return not_allowed(spec);
  }
  out.bind_address = std::string(raw);
  return std::string(raw);
}

Result<std::string> apply_log_level(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto c = match_choice(spec, raw);
  if (!c) {
    return not_allowed(spec);
  }
  out.log_level = *c;
  return *c;
}

Result<std::string> apply_log_format(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto c = match_choice(spec, raw);
  if (!c) {
    return not_allowed(spec);
  }
  out.log_format = *c == "json" ? LogFormat::json : LogFormat::text;
  return *c;
}

// A choice kept as the text of the choice.
template <auto Member>
Result<std::string> apply_choice(const SettingSpec& spec, std::string_view raw, Settings& out) {
  const auto c = match_choice(spec, raw);
  if (!c) {
    return not_allowed(spec);
  }
  out.*Member = *c;
  return *c;
}

Result<std::string> apply_secret(const SettingSpec& spec, std::string_view raw, Settings& out);

// clang-format off
const std::array kTable = {
  // ---- Proxmox VE -------------------------------------------------------
  SettingSpec{.env = "PROXMOX_HOST", .flag = "--proxmox-host", .section = "Proxmox VE",
    .default_value = "https://localhost:8006", .allowed = "a URL or host[:port] (https and port 8006 by default)",
    .help = "The node's own Proxmox VE API.", .apply = apply_proxmox_host},
  SettingSpec{.env = "PROXMOX_USER", .flag = "--proxmox-user", .section = "Proxmox VE",
    .default_value = "root@pam", .allowed = "user@realm",
    .help = "User for password (ticket) login.", .apply = apply_proxmox_user},
  SettingSpec{.env = "PROXMOX_PASSWORD", .section = "Proxmox VE", .allowed = "any text",
    .help = "Password for ticket login.", .secret = true, .apply = apply_secret},
  SettingSpec{.env = "PROXMOX_TOKEN_ID", .flag = "--proxmox-token-id", .section = "Proxmox VE",
    .allowed = "user@realm!tokenname",
    .help = "API token id; when set, token auth is used instead of the password.", .apply = apply_token_id},
  SettingSpec{.env = "PROXMOX_TOKEN_SECRET", .section = "Proxmox VE", .allowed = "any text",
    .help = "API token secret (a UUID).", .secret = true, .apply = apply_secret},
  SettingSpec{.env = "PROXMOX_VERIFY_SSL", .flag = "--proxmox-verify-ssl", .section = "Proxmox VE",
    .default_value = "true", .help = "Verify the Proxmox TLS certificate; false logs a warning at every start.",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::proxmox_verify_ssl>},
  SettingSpec{.env = "PROXMOX_CA_FILE", .flag = "--proxmox-ca-file", .section = "Proxmox VE",
    .allowed = "a readable PEM file",
    .help = "CA bundle for the Proxmox certificates, e.g. a copy of /etc/pve/pve-root-ca.pem.",
    .apply = apply_path<&Settings::proxmox_ca_file>},
  SettingSpec{.env = "PROXMOX_FINGERPRINT", .flag = "--proxmox-fingerprint", .section = "Proxmox VE",
    .allowed = "SHA-256 fingerprints AA:BB:...:FF (32 hex pairs), comma-separated",
    .help = "Pinned leaf certificate fingerprint(s); a match is accepted even when self-signed.",
    .apply = apply_fingerprints},
  SettingSpec{.env = "PROXMOX_NODE_NAME", .flag = "--node-name", .section = "Proxmox VE",
    .default_value = "auto", .allowed = "a node name, or auto",
    .help = "This node's name; auto: the local entry of /cluster/status, else the short hostname.",
    .apply = apply_node_name},
  SettingSpec{.env = "PROXMOX_HOSTS", .flag = "--proxmox-hosts", .section = "Proxmox VE",
    .allowed = "comma-separated URLs or host[:port]", .help = "More Proxmox API endpoints for failover.",
    .apply = apply_proxmox_hosts},
  SettingSpec{.env = "PROXMOX_DISCOVER_HOSTS", .flag = "--proxmox-discover-hosts", .section = "Proxmox VE",
    .default_value = "true", .help = "Add the other online cluster nodes from /cluster/status as failover hosts.",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::proxmox_discover_hosts>},
  SettingSpec{.env = "PROXMOX_TIMEOUT", .flag = "--proxmox-timeout", .section = "Proxmox VE",
    .default_value = "5", .help = "Seconds a whole Proxmox request may take.",
    .kind = ValueKind::integer, .min = 1, .max = 120, .apply = apply_int<&Settings::proxmox_timeout>},
  SettingSpec{.env = "PROXMOX_CONNECT_TIMEOUT", .flag = "--proxmox-connect-timeout", .section = "Proxmox VE",
    .default_value = "2", .help = "Seconds to connect to a Proxmox host.",
    .kind = ValueKind::integer, .min = 1, .max = 60, .apply = apply_int<&Settings::proxmox_connect_timeout>},
  SettingSpec{.env = "SYNC_GUEST_TYPES", .flag = "--sync-guest-types", .section = "Proxmox VE",
    .default_value = "qemu,lxc", .allowed = "qemu, lxc or qemu,lxc",
    .help = "Which guests to sync (the old agent did qemu only).", .apply = apply_guest_types},
  SettingSpec{.env = "VM_DETAILS", .flag = "--vm-details", .section = "Proxmox VE",
    .default_value = "true", .help = "Also read each guest's notes and guest-agent IPs (cached).",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::vm_details>},
  SettingSpec{.env = "VM_DETAILS_TTL", .flag = "--vm-details-ttl", .section = "Proxmox VE",
    .default_value = "3600", .help = "Seconds before a guest's details are read again (sooner when its status changes).",
    .kind = ValueKind::integer, .min = 60, .max = 86400, .apply = apply_int<&Settings::vm_details_ttl>},

  // ---- AccountDB --------------------------------------------------------
  SettingSpec{.env = "ACCOUNTDB_URL", .flag = "--accountdb-url", .section = "AccountDB",
    .allowed = "a URL, or URL[;priority=N][;weight=W] endpoints, comma-separated",
    .help = "AccountDB base URL(s); several endpoints enable failover.", .required = true,
    .apply = apply_endpoints},
  SettingSpec{.env = "ACCOUNTDB_API_KEY", .section = "AccountDB", .allowed = "the node's API key",
    .help = "This node's AccountDB API key (there is no built-in key).", .secret = true, .required = true,
    .apply = apply_secret},
  // Start-only: the state files, the whitelist cache and the sync memory are
  // this node's; another id at run time would write one node's rows with
  // another node's whitelist and memory.
  SettingSpec{.env = "ACCOUNTDB_NODE_ID", .flag = "--accountdb-node-id", .section = "AccountDB",
    .help = "This node's id in AccountDB.", .kind = ValueKind::integer, .required = true,
    .start_only = true, .min = 1, .max = 2147483647, .apply = apply_int<&Settings::accountdb_node_id>,
    .field = field_of<&Settings::accountdb_node_id>},
  SettingSpec{.env = "ACCOUNTDB_TIMEOUT", .flag = "--accountdb-timeout", .section = "AccountDB",
    .default_value = "30", .help = "Seconds an AccountDB request may take.",
    .kind = ValueKind::integer, .min = 1, .max = 300, .apply = apply_int<&Settings::accountdb_timeout>},
  SettingSpec{.env = "ACCOUNTDB_STRATEGY", .flag = "--accountdb-strategy", .section = "AccountDB",
    .default_value = "priority", .help = "How to choose among several AccountDB endpoints.",
    .choices = "priority,round_robin,weighted,least_connections", .apply = apply_strategy},

  // ---- Sync -------------------------------------------------------------
  SettingSpec{.env = "UPDATE_INTERVAL", .flag = "--update-interval", .section = "Sync",
    .default_value = "300", .help = "Seconds between sync cycles (jittered by 10 %).",
    .kind = ValueKind::integer, .min = 10, .max = 86400, .apply = apply_int<&Settings::update_interval>},
  SettingSpec{.env = "HEARTBEAT_INTERVAL", .flag = "--heartbeat-interval", .section = "Sync",
    .help = "Seconds between heartbeats to AccountDB.", .kind = ValueKind::integer,
    .min = 5, .max = 3600, .apply = apply_int<&Settings::heartbeat_interval>,
    .default_doc = "min(60, UPDATE_INTERVAL)"},
  SettingSpec{.env = "WHITELIST_TTL", .flag = "--whitelist-ttl", .section = "Sync",
    .default_value = "300", .help = "Seconds a fetched VMID whitelist is used before it is fetched again.",
    .kind = ValueKind::integer, .min = 10, .max = 86400, .apply = apply_int<&Settings::whitelist_ttl>},
  SettingSpec{.env = "WHITELIST_MAX_STALE", .flag = "--whitelist-max-stale", .section = "Sync",
    .default_value = "86400", .help = "Seconds a stale whitelist may still be used while AccountDB cannot be read.",
    .kind = ValueKind::integer, .min = 0, .max = 604800, .apply = apply_int<&Settings::whitelist_max_stale>},
  SettingSpec{.env = "CREATE_STOPPED_VMS", .flag = "--create-stopped-vms", .section = "Sync",
    .default_value = "false", .help = "Also create AccountDB rows for stopped guests (the old agent did not).",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::create_stopped_vms>},
  SettingSpec{.env = "MARK_MISSING_VMS", .flag = "--mark-missing-vms", .section = "Sync",
    .default_value = "true", .help = "Mark guests that are gone as migrated or deleted.",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::mark_missing_vms>},
  SettingSpec{.env = "MISSING_AFTER_CYCLES", .flag = "--missing-after-cycles", .section = "Sync",
    .default_value = "3", .help = "Complete reads a guest must be absent from before it is marked.",
    .kind = ValueKind::integer, .min = 1, .max = 100, .apply = apply_int<&Settings::missing_after_cycles>},
  SettingSpec{.env = "FULL_RESYNC_INTERVAL", .flag = "--full-resync-interval", .section = "Sync",
    .default_value = "3600", .help = "Seconds after which an unchanged guest is sent again (0: never).",
    .kind = ValueKind::integer, .min = 60, .max = 604800, .zero_allowed = true,
    .apply = apply_int<&Settings::full_resync_interval>},
  SettingSpec{.env = "CPU_CHANGE_THRESHOLD", .flag = "--cpu-change-threshold", .section = "Sync",
    .default_value = "5", .help = "Percentage points of CPU change that alone re-send a guest (0: any change).",
    .kind = ValueKind::decimal, .min = 0, .max = 100, .apply = apply_decimal<&Settings::cpu_change_threshold>},
  SettingSpec{.env = "CHANGE_BRAKE_MIN", .flag = "--change-brake-min", .section = "Sync",
    .default_value = "3", .help = "Creates, or deleted marks, a cycle writes at once however few rows the node has; more wait (the change brake).",
    .kind = ValueKind::integer, .min = 1, .max = 100000, .apply = apply_int<&Settings::change_brake_min>},
  SettingSpec{.env = "CHANGE_BRAKE_PERCENT", .flag = "--change-brake-percent", .section = "Sync",
    .default_value = "20", .help = "Share of the node's rows a cycle may create, or mark deleted, at once when that is more than CHANGE_BRAKE_MIN; more wait for corroboration or POST /sync/confirm.",
    .kind = ValueKind::decimal, .min = 0, .max = 100, .apply = apply_decimal<&Settings::change_brake_percent>},

  // Change-driven sync (docs/sync.md "Changes seen between cycles").
  SettingSpec{.env = "CHANGE_POLL_INTERVAL", .flag = "--change-poll-interval", .section = "Sync",
    .default_value = "2", .help = "Seconds between reads of the cluster's task list (GET /cluster/tasks; and every 10 s of /cluster/resources): a guest change seen there starts a cycle (0: off, only UPDATE_INTERVAL).",
    .kind = ValueKind::decimal, .min = 0.5, .max = 300, .zero_allowed = true, .apply = apply_decimal<&Settings::change_poll_interval>},
  SettingSpec{.env = "CHANGE_SETTLE", .flag = "--change-settle", .section = "Sync",
    .default_value = "1", .help = "Seconds between the first change seen and the cycle it starts (changes seen meanwhile join it).",
    .kind = ValueKind::decimal, .min = 0, .max = 60, .apply = apply_decimal<&Settings::change_settle>},
  SettingSpec{.env = "CHANGE_MIN_INTERVAL", .flag = "--change-min-interval", .section = "Sync",
    .default_value = "5", .help = "Seconds at least between the start of the last cycle and one a change starts: a burst of changes is a few cycles.",
    .kind = ValueKind::decimal, .min = 1, .max = 3600, .apply = apply_decimal<&Settings::change_min_interval>},

  // A guest that moves between the nodes of a cluster keeps its row: the
  // agent of the node it left names the row (docs/sync.md "Guests that move").
  SettingSpec{.env = "PEER_HANDOVER", .flag = "--peer-handover", .section = "Sync",
    .default_value = "auto", .help = "Ask the agent of the node a guest migrated from for its row, and write that row (auto: when AGENT_READ_TOKEN is set, which the fleet's agents share).",
    .choices = "auto,true,false", .apply = apply_choice<&Settings::peer_handover>},
  SettingSpec{.env = "PEER_PORT", .flag = "--peer-port", .section = "Sync",
    .default_value = "0", .help = "Port of the other nodes' agents (0: this agent's PORT).",
    .kind = ValueKind::integer, .min = 0, .max = 65535, .apply = apply_int<&Settings::peer_port>},
  SettingSpec{.env = "PEER_SCHEME", .flag = "--peer-scheme", .section = "Sync",
    .default_value = "auto", .help = "Scheme of the other nodes' agents (auto: https when TLS_CERT_FILE is set, as this agent's).",
    .choices = "auto,http,https", .apply = apply_choice<&Settings::peer_scheme>},
  SettingSpec{.env = "PEER_TIMEOUT", .flag = "--peer-timeout", .section = "Sync",
    .default_value = "2", .help = "Seconds the agent of another node has to answer for a guest's row before the guest is created anew.",
    .kind = ValueKind::integer, .min = 1, .max = 30, .apply = apply_int<&Settings::peer_timeout>},

  // ---- Resilience -------------------------------------------------------
  SettingSpec{.env = "HEALTH_CHECK_INTERVAL", .flag = "--health-check-interval", .section = "Resilience",
    .default_value = "30", .help = "Seconds between health rounds (the probed Proxmox hosts, /cluster/status, AccountDB's recovery).",
    .kind = ValueKind::integer, .min = 10, .max = 300, .apply = apply_int<&Settings::health_check_interval>},
  SettingSpec{.env = "HEALTH_CHECK_PEERS", .flag = "--health-check-peers", .section = "Resilience",
    .default_value = "2", .help = "Failover candidates probed each round besides the host in use (and the primary while it is not); the other nodes' state comes from /cluster/status.",
    .kind = ValueKind::integer, .min = 0, .max = 1000, .apply = apply_int<&Settings::health_check_peers>},
  SettingSpec{.env = "CIRCUIT_BREAKER_THRESHOLD", .flag = "--circuit-breaker-threshold", .section = "Resilience",
    .default_value = "3", .help = "Consecutive failures that open a host's or endpoint's circuit breaker.",
    .kind = ValueKind::integer, .min = 1, .max = 10, .apply = apply_int<&Settings::circuit_breaker_threshold>},
  SettingSpec{.env = "CIRCUIT_BREAKER_RESET", .flag = "--circuit-breaker-reset", .section = "Resilience",
    .default_value = "60", .help = "Seconds of the first open period (doubled on each re-open, at most 300).",
    .kind = ValueKind::integer, .min = 5, .max = 3600, .apply = apply_int<&Settings::circuit_breaker_reset>},
  SettingSpec{.env = "HEALTHY_THRESHOLD", .flag = "--healthy-threshold", .section = "Resilience",
    .default_value = "2", .help = "Consecutive successes that make a host healthy again.",
    .kind = ValueKind::integer, .min = 1, .max = 10, .apply = apply_int<&Settings::healthy_threshold>},
  SettingSpec{.env = "HOST_CLEANUP_AGE", .flag = "--host-cleanup-age", .section = "Resilience",
    .default_value = "300", .help = "Seconds after which a discovered host that left the cluster is dropped.",
    .kind = ValueKind::integer, .min = 60, .max = 1800, .apply = apply_int<&Settings::host_cleanup_age>},
  SettingSpec{.env = "PRIMARY_BONUS", .flag = "--primary-bonus", .section = "Resilience",
    .default_value = "50", .help = "Score points that keep PROXMOX_HOST preferred while it is healthy.",
    .kind = ValueKind::integer, .min = 0, .max = 1000, .apply = apply_int<&Settings::primary_bonus>},
  SettingSpec{.env = "RETRY_MAX_ATTEMPTS", .flag = "--retry-max-attempts", .section = "Resilience",
    .default_value = "3", .help = "Attempts per request, the first included.",
    .kind = ValueKind::integer, .min = 1, .max = 10, .apply = apply_int<&Settings::retry_max_attempts>},
  SettingSpec{.env = "RETRY_BASE_DELAY", .flag = "--retry-base-delay", .section = "Resilience",
    .default_value = "1", .help = "Seconds before the first retry (doubled each retry, jittered by 20 %).",
    .kind = ValueKind::decimal, .min = 0.05, .max = 60, .apply = apply_decimal<&Settings::retry_base_delay>},
  SettingSpec{.env = "RETRY_MAX_DELAY", .flag = "--retry-max-delay", .section = "Resilience",
    .default_value = "120", .help = "Longest delay between retries, in seconds.",
    .kind = ValueKind::integer, .min = 1, .max = 3600, .apply = apply_int<&Settings::retry_max_delay>},
  SettingSpec{.env = "HEDGE_DELAY_MIN", .flag = "--hedge-delay-min", .section = "Resilience",
    .default_value = "50", .help = "Milliseconds a request waits at least before it is hedged: sent once more, beside it, to the next Proxmox host or AccountDB endpoint (the delay is the target's own 99th-percentile latency, between this and HEDGE_DELAY_MAX).",
    .kind = ValueKind::integer, .min = 1, .max = 60000, .apply = apply_int<&Settings::hedge_delay_min>},
  SettingSpec{.env = "HEDGE_DELAY_MAX", .flag = "--hedge-delay-max", .section = "Resilience",
    .default_value = "400", .help = "Milliseconds after which a request that has not answered is always hedged (the budget allowing): what a hung or silent host costs.",
    .kind = ValueKind::integer, .min = 1, .max = 60000, .apply = apply_int<&Settings::hedge_delay_max>},
  SettingSpec{.env = "HEDGE_BUDGET_PERCENT", .flag = "--hedge-budget-percent", .section = "Resilience",
    .default_value = "5", .help = "Hedges allowed, as a share of requests (at most 5 saved up); 0 turns hedging off.",
    .kind = ValueKind::decimal, .min = 0, .max = 50, .apply = apply_decimal<&Settings::hedge_budget_percent>},
  SettingSpec{.env = "AUTO_FAILOVER", .flag = "--auto-failover", .section = "Resilience",
    .default_value = "true",
    .help = "Fail over when the Proxmox host or AccountDB endpoint in use fails (false: only POST /failover/...).",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::auto_failover>},
  SettingSpec{.env = "AUTO_RECOVERY", .flag = "--auto-recovery", .section = "Resilience",
    .default_value = "true",
    .help = "Return to the primary host or a better endpoint once it is healthy again (false: only POST /failover/reset).",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::auto_recovery>},

  // ---- HTTP API ---------------------------------------------------------
  // Start-only: the listening socket is opened once; moving it at run time
  // would drop every client's connection (and a privileged port could not
  // be opened again after the start).
  SettingSpec{.env = "BIND_ADDRESS", .flag = "--bind", .section = "HTTP API",
    .default_value = "0.0.0.0", .allowed = "an IPv4 or IPv6 literal",
    .help = "Address the agent's HTTP API listens on.", .start_only = true, .apply = apply_bind,
    .field = field_of<&Settings::bind_address>},
  SettingSpec{.env = "PORT", .flag = "--port", .section = "HTTP API",
    .default_value = "8000", .help = "Port of the HTTP API; 0 picks a free port and logs it.",
    .kind = ValueKind::integer, .start_only = true, .min = 0, .max = 65535, .apply = apply_int<&Settings::port>,
    .field = field_of<&Settings::port>},
  SettingSpec{.env = "AGENT_API_TOKEN", .section = "HTTP API", .allowed = "any text",
    .help = "Bearer token for control: the POST endpoints (unset: loopback clients only).", .secret = true,
    .apply = apply_secret},
  SettingSpec{.env = "AGENT_READ_TOKEN", .section = "HTTP API", .allowed = "any text but AGENT_API_TOKEN",
    .help = "Bearer token for customer data: /vms, /vms/{vmid}, /config (unset: loopback clients only).",
    .secret = true, .apply = apply_secret},
  SettingSpec{.env = "AGENT_READ_AUTH", .flag = "--read-auth", .section = "HTTP API",
    .default_value = "false",
    .help = "Require a token (AGENT_READ_TOKEN or AGENT_API_TOKEN) for every GET endpoint but /health too.",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::agent_read_auth>},
  SettingSpec{.env = "AGENT_OPEN_CUSTOMER_DATA", .flag = "--open-customer-data", .section = "HTTP API",
    .default_value = "false",
    .help = "Serve /vms, /vms/{vmid} and /config to every client without a token, as 0.2.0 did (a warning at start).",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::agent_open_customer_data>},
  // Read again at every reload (a renewed certificate, or new paths); HTTPS
  // on or off only at a start, as the listener is (start_only.hpp).
  SettingSpec{.env = "TLS_CERT_FILE", .flag = "--tls-cert", .section = "HTTP API",
    .allowed = "a readable PEM certificate", .help = "Serve HTTPS with this certificate (with TLS_KEY_FILE).",
    .apply = apply_path<&Settings::tls_cert_file>, .field = field_of<&Settings::tls_cert_file>},
  SettingSpec{.env = "TLS_KEY_FILE", .flag = "--tls-key", .section = "HTTP API",
    .allowed = "a readable PEM private key", .help = "Private key of TLS_CERT_FILE.",
    .apply = apply_path<&Settings::tls_key_file>, .field = field_of<&Settings::tls_key_file>},
  SettingSpec{.env = "STATUS_HISTORY_SIZE", .flag = "--status-history-size", .section = "HTTP API",
    .default_value = "10", .help = "Status changes kept in /status history.",
    .kind = ValueKind::integer, .min = 1, .max = 1000, .apply = apply_int<&Settings::status_history_size>},

  // ---- Webhooks ---------------------------------------------------------
  // Start-only, the three of them: the receivers (one queue, one thread and
  // one breaker each) and the transport they share are built at start, and
  // the token is what those receivers check; events already queued for a
  // receiver must not go to another one.
  SettingSpec{.env = "WEBHOOK_URLS", .flag = "--webhook-urls", .section = "Webhooks",
    .allowed = "comma-separated http or https URLs",
    .help = "Receivers of the failover and sync events (empty: none are sent); shown by origin only.",
    .start_only = true, .apply = apply_webhook_urls, .show = show_webhook_urls,
    .field = field_of<&Settings::webhook_urls>},
  SettingSpec{.env = "WEBHOOK_TOKEN", .section = "Webhooks", .allowed = "any text",
    .help = "Sent as Authorization: Bearer, and the HMAC-SHA256 key of the X-Signature header.",
    .secret = true, .start_only = true, .apply = apply_secret, .field = field_of<&Settings::webhook_token>},
  SettingSpec{.env = "WEBHOOK_TIMEOUT", .flag = "--webhook-timeout", .section = "Webhooks",
    .default_value = "5", .help = "Seconds one delivery attempt may take.",
    .kind = ValueKind::integer, .start_only = true, .min = 1, .max = 60, .apply = apply_int<&Settings::webhook_timeout>,
    .field = field_of<&Settings::webhook_timeout>},
  SettingSpec{.env = "WEBHOOK_EVENTS", .flag = "--webhook-events", .section = "Webhooks",
    .default_value = "failover,recovery,redundancy,sync_failed,sync_recovered,auth_failed,sync_held,guest_row_not_handed_over",
    .allowed = "comma-separated: failover, recovery, redundancy, sync_failed, sync_recovered, auth_failed, sync_held, guest_row_not_handed_over",
    .help = "Which events are sent.", .apply = apply_webhook_events},
  SettingSpec{.env = "WEBHOOK_QUEUE_SIZE", .flag = "--webhook-queue-size", .section = "Webhooks",
    .default_value = "100", .help = "Events waiting per receiver; when full the oldest is dropped and counted.",
    .kind = ValueKind::integer, .min = 1, .max = 10000, .apply = apply_int<&Settings::webhook_queue_size>},
  SettingSpec{.env = "WEBHOOK_SYNC_FAILURES", .flag = "--webhook-sync-failures", .section = "Webhooks",
    .default_value = "3", .help = "Consecutive failed cycles before sync_failed is sent.",
    .kind = ValueKind::integer, .min = 1, .max = 1000, .apply = apply_int<&Settings::webhook_sync_failures>},

  // ---- Logging and state ------------------------------------------------
  SettingSpec{.env = "LOG_LEVEL", .flag = "--log-level", .section = "Logging and state",
    .default_value = "info", .help = "Least severe level that is logged.",
    .choices = "trace,debug,info,warning,error,critical", .apply = apply_log_level},
  SettingSpec{.env = "DEBUG", .flag = "--debug", .section = "Logging and state",
    .default_value = "false", .help = "Same as LOG_LEVEL=debug unless LOG_LEVEL is set.",
    .kind = ValueKind::boolean, .apply = apply_bool<&Settings::debug>},
  SettingSpec{.env = "LOG_FORMAT", .flag = "--log-format", .section = "Logging and state",
    .default_value = "text", .help = "text, or json: one JSON object per line.",
    .choices = "text,json", .apply = apply_log_format},
  // Start-only: the state files are read once, at start; another directory
  // at run time would hold a state the agent never loaded.
  SettingSpec{.env = "STATE_DIR", .flag = "--state-dir", .section = "Logging and state",
    .default_value = "/var/lib/proxmox-host-agent", .allowed = "a writable directory",
    .help = "Where the whitelist cache, sync state and failover events are kept (default: only if writable).",
    .start_only = true, .apply = apply_path<&Settings::state_dir>, .field = field_of<&Settings::state_dir>},
};
// clang-format on

Result<std::string> apply_secret(const SettingSpec& spec, std::string_view raw, Settings& out) {
  if (raw.find_first_of("\r\n") != std::string_view::npos) {
    return Error{ErrorKind::invalid, "must be a single line"};
  }
  std::string* target = nullptr;
  if (spec.env == "PROXMOX_PASSWORD") {
    target = &out.proxmox_password;
  } else if (spec.env == "PROXMOX_TOKEN_SECRET") {
    target = &out.proxmox_token_secret;
  } else if (spec.env == "ACCOUNTDB_API_KEY") {
    target = &out.accountdb_api_key;
  } else if (spec.env == "AGENT_API_TOKEN") {
    target = &out.agent_api_token;
  } else if (spec.env == "AGENT_READ_TOKEN") {
    target = &out.agent_read_token;
  } else if (spec.env == "WEBHOOK_TOKEN") {
    target = &out.webhook_token;
  }
  if (target == nullptr) {
    return Error{ErrorKind::invalid, "is not a known secret"};
  }
  *target = std::string(raw);
  return std::string(raw);
}

std::string allowed_text(const SettingSpec& spec) {
  if (!spec.allowed.empty()) {
    return std::string(spec.allowed);
  }
  if (!spec.choices.empty()) {
    std::string out = "one of ";
    for (const auto& c : split_list(spec.choices)) {
      out += (out.size() > 7 ? ", " : "") + c;
    }
    return out;
  }
  switch (spec.kind) {
    case ValueKind::boolean:
      return "true/false, 1/0, yes/no or on/off";
    case ValueKind::integer:
      return std::string(spec.zero_allowed ? "0 or " : "") + "an integer from " +
             format_decimal(spec.min) + " to " + format_decimal(spec.max);
    case ValueKind::decimal:
      return std::string(spec.zero_allowed ? "0 or " : "") + "a number from " +
             format_decimal(spec.min) + " to " + format_decimal(spec.max);
    case ValueKind::text:
      break;
  }
  return "text";
}

}  // namespace

std::span<const SettingSpec> settings_table() {
  return kTable;
}

const SettingSpec* find_setting(std::string_view env) {
  for (const auto& s : kTable) {
    if (s.env == env) {
      return &s;
    }
  }
  return nullptr;
}

std::string file_variant(const SettingSpec& spec) {
  return std::string(spec.env) + "_FILE";
}

std::string describe_allowed(const SettingSpec& spec) {
  return allowed_text(spec);
}

std::string start_only_note(const SettingSpec& spec) {
  return spec.start_only ? " Start-only: a reload keeps it until the next start." : "";
}

bool is_ignored_legacy_key(std::string_view key) {
  return key.starts_with("LOG_FORWARDING_") || key == "LOG_BATCH_SIZE" ||
         key == "LOG_FLUSH_INTERVAL";
}

}  // namespace pha
