#include "agent/config/docs.hpp"

#include <span>

#include "agent/core/text.hpp"
#include "agent/core/version.hpp"

namespace pha {

namespace {

std::string shown_default(const SettingSpec& spec) {
  if (!spec.default_doc.empty()) {
    return std::string(spec.default_doc);
  }
  if (spec.required) {
    return "(required)";
  }
  return spec.default_value.empty() ? "(empty)" : std::string(spec.default_value);
}

// The example value written after "KEY=": the default, or nothing.
std::string example_value(const SettingSpec& spec) {
  if (!spec.default_doc.empty()) {
    return "";
  }
  return std::string(spec.default_value);
}

}  // namespace

std::string render_env_example() {
  std::string out =
      "# proxmox-host-agent: every setting, with its default and meaning.\n"
      "#\n"
      "# A template: copy the lines you need into /etc/proxmox-host-agent/agent.env\n"
      "# or a drop-in (or into ./.env outside the package), and uncomment them.\n"
      "# Syntax: KEY=value, # comments, optional \"export \", single or double quotes.\n"
      "# Precedence, lowest first: built-in default < the env file < its drop-ins <\n"
      "# process environment < command-line flag. Secrets have a *_FILE variant\n"
      "# that reads the value from a file instead.\n"
      "#\n"
      "# Files in agent.env.d/ (or ./.env.d/) whose names end in .env are read after\n"
      "# the env file in byte-wise order, each overriding the ones before it key by\n"
      "# key: e.g. a node's secrets in 10-node.env, shared settings in another file.\n"
      "#\n"
      "# Required: ACCOUNTDB_URL, ACCOUNTDB_API_KEY, ACCOUNTDB_NODE_ID, and Proxmox\n"
      "# credentials (PROXMOX_TOKEN_ID + PROXMOX_TOKEN_SECRET, or PROXMOX_PASSWORD).\n"
      "# Generated from the settings table: edit agent/config/settings_table.cpp.\n";
  std::string_view section;
  for (const auto& spec : settings_table()) {
    if (spec.section != section) {
      section = spec.section;
      out += "\n## " + std::string(section) + "\n";
    }
    out += "\n# " + std::string(spec.help) + "\n";
    out += "# Allowed: " + describe_allowed(spec) + ". Default: " + shown_default(spec) + ".";
    if (!spec.flag.empty()) {
      out += " Flag: " + std::string(spec.flag) + ".";
    }
    if (spec.secret) {
      out += " Secret (no flag).";
    }
    out += spec.start_only ? "\n#" + start_only_note(spec) : "";
    out += "\n#" + std::string(spec.env) + "=" + example_value(spec) + "\n";
    if (spec.secret) {
      out += "#" + file_variant(spec) + "=\n";
    }
  }
  out +=
      "\n## Accepted from the old agent and ignored (logs go to the journal):\n"
      "## LOG_FORWARDING_*, LOG_BATCH_SIZE, LOG_FLUSH_INTERVAL\n";
  return out;
}

std::string render_settings_markdown() {
  std::string out = "| env | flag | default | allowed | meaning |\n|---|---|---|---|---|\n";
  auto cell = [](std::string_view s) {
    std::string c;
    for (char ch : s) {
      c += ch == '|' ? std::string("\\|") : std::string(1, ch);
    }
    return c;
  };
  for (const auto& spec : settings_table()) {
    std::string env = "`" + std::string(spec.env) + "`";
    if (spec.secret) {
      env += " (secret; also `" + file_variant(spec) + "`)";
    }
    const std::string flag = spec.flag.empty() ? "–" : "`" + std::string(spec.flag) + "`";
    for (const auto& column :
         {env, flag, cell(shown_default(spec)), cell(describe_allowed(spec))}) {
      out.append("| ").append(column).append(" ");
    }
    out.append("| ").append(cell(spec.help)).append(start_only_note(spec)).append(" |\n");
  }
  return out;
}

namespace {

// ---- The man page beyond the settings table: the mode flags (unit-tested
// against --help), the HTTP endpoints (against docs/http-api.md), exit codes,
// signals and files.

struct FlagDoc {
  std::string_view flag;
  std::string_view arg;
  std::string_view meaning;
};
constexpr FlagDoc kModeFlags[] = {
    {"--env-file", "PATH",
     "Read settings from PATH instead of ./.env (which is read only when it exists), and then "
     "from every PATH.d/*.env drop-in file. A missing PATH is a configuration error."},
    {"--check-config", "",
     "Load and validate every setting exactly as the service does (files readable, URLs "
     "well-formed, the CA file parses), print \"config OK\" and on a second line the env files "
     "read, or every error found, and exit 0 or 78."},
    {"--check-required", "",
     "Load the settings as the service does and exit 0 when the required settings are set, "
     "whatever else is wrong (the start reports that, exit 78; so too a file that cannot be read "
     "or parsed); else print on standard error which are missing and where to put them, and exit "
     "1. For the unit's ExecCondition=, which skips the start on exit 1 and never sees 255."},
    {"--print-config", "",
     "Print the effective settings as JSON on standard output and nothing else: "
     "{\"settings\": {\"ENV\": {\"value\": V, \"source\": S, \"from\": W}}}, S one of default, "
     "env-file, env, cli, W the file and line, environment or flag, secrets as \"***\"; exit."},
    {"--once", "",
     "Run one sync cycle, print its report as JSON on standard output (logs go to standard "
     "error); exit 0 if it succeeded, 1 if not."},
    {"--dry-run", "",
     "Sync as usual but send nothing that writes to AccountDB; the report says "
     "what would have been sent."},
    {"--list-guests", "",
     "Read this node's guests from Proxmox VE once and print them as JSON in AccountDB's field "
     "names, with the number of requests it took; needs only the Proxmox settings; exit 0, or 1 "
     "with the failure."},
    {"--explain", "VMID",
     "Ask the running agent (GET /vms/VMID on 127.0.0.1 at PORT, https when TLS is on, with "
     "AGENT_READ_TOKEN or else AGENT_API_TOKEN as the bearer token) why that guest is or is not "
     "in AccountDB, and print the answer: whitelisted or not, the rule that keeps it out, its "
     "row id, its last write, a pending retry, its missing mark, the fields waiting to be sent. "
     "Exit 0 when answered, 1 when the agent cannot be reached, refuses or knows no such guest."},
    {"--confirm", "[HOLD]",
     "Show what the change brake holds, and with its id HOLD write exactly that now. Exit 0/1."},
    {"--reload", "PID",
     "Send SIGHUP to the agent PID and wait (at most 30 s) for its verdict, which the agent "
     "records in $RUNTIME_DIRECTORY/reload.json: exit 0 when it applied the new settings, 3 when "
     "all but start-only ones it names, 78 with its errors on standard error when it refused "
     "them and kept the old ones, 1 when it could not ask or got no answer. For ExecReload=."},
    {"--version", "", "Print the version and exit."},
    {"--help", "", "Print every flag with its environment variable and default, and exit."},
};

struct EndpointDoc {
  std::string_view method;
  std::string_view path;
  std::string_view meaning;
};
constexpr EndpointDoc kEndpoints[] = {
    {"GET", "/health",
     "200 {\"status\":\"ok\",\"timestamp\":T} while the sync loop and the HTTP workers move, 503 "
     "when one is stuck. Never needs the token."},
    {"GET", "/health/proxmox",
     "The latest health check or call of the Proxmox VE host: 200 when it was ok, 503 when not."},
    {"GET", "/status",
     "The current state and its recent history, the Proxmox hosts, the AccountDB endpoints, the "
     "sync loop and the whitelist."},
    {"GET", "/sync/status",
     "The last sync: its time and stats, whether one runs now, the interval and the whitelist."},
    {"POST", "/sync/trigger", "Run a sync cycle now (202)."},
    {"POST", "/sync/confirm",
     "Body {\"hold\": ID}: write the changes held under that id now; 404 or 409 if not held."},
    {"POST", "/whitelist/refresh",
     "Fetch the VMID whitelist from AccountDB now (200, or 502 with the reason)."},
    {"GET", "/vms",
     "The guests of the last Proxmox read, all of them, in AccountDB's field names."},
    {"GET", "/vms/{vmid}",
     "One of those guests (or a missing one AccountDB still has) and why it is or is not in "
     "AccountDB: whitelisted, the rule that keeps it out, row id, last write, pending retry, "
     "missing mark, fields waiting to be sent; or 404."},
    {"GET", "/config", "The --print-config JSON, secrets masked."},
    {"GET", "/failover/events",
     "The last 100 failover events, newest first, kept across restarts."},
    {"POST", "/failover/proxmox",
     "Body {\"host\": URL}: prefer that Proxmox host now; 409 if it cannot be."},
    {"POST", "/failover/accountdb",
     "Body {\"url\": URL}: prefer that AccountDB endpoint now; 409 if it cannot be."},
    {"POST", "/failover/reset",
     "Close every circuit breaker, zero the failure counts and prefer the primaries again."},
    {"GET", "/metrics", "Prometheus text format; the names start with proxmox_host_agent_."},
    {"GET", "/", "A small self-contained HTML status page that refreshes itself."},
};

struct TermDoc {
  std::string_view term;
  std::string_view meaning;
};
constexpr TermDoc kExitCodes[] = {
    {"0", "Normal stop (SIGTERM, SIGINT), or success of a one-shot mode."},
    {"1",
     "A runtime failure the agent cannot survive, a failed --once or --list-guests, "
     "--check-required with a required setting missing, or --explain or --confirm unanswered."},
    {"2", "Wrong command-line usage."},
    {"3", "--reload: applied, but for start-only settings it names (they wait for a start)."},
    {"78",
     "Configuration error (EX_CONFIG). Every error found is reported with the setting's name, "
     "where its value came from (file and line, environment, or flag), the value (*** for "
     "secrets) and what is allowed. The systemd unit does not restart the agent after it."},
};
constexpr TermDoc kSignals[] = {
    {"SIGTERM, SIGINT",
     "Stop accepting requests, let an in-flight AccountDB request finish (at most 10 s), persist "
     "the state and exit 0. Every wait and backoff ends at once."},
    {"SIGHUP",
     "Read the env file, its drop-ins and the environment again as the start does, and apply "
     "all but the start-only settings (reload_partial names them); systemctl reload sends it. "
     "An invalid configuration is rejected (config_reload_rejected, file and line); the old "
     "stays."},
};
constexpr TermDoc kFiles[] = {
    {"/etc/proxmox-host-agent/agent.env",
     "The settings of the packaged service (its --env-file), mode 0640, owner root, group "
     "proxmox-host-agent: the required settings. The agent is the only parser of it and of its "
     "drop-ins."},
    {"/usr/share/doc/proxmox-host-agent/agent.env.example",
     "The annotated template of every setting with its default, generated from the settings "
     "table."},
    {"/etc/proxmox-host-agent/agent.env.d/",
     "Drop-in env files, read after agent.env: every regular file (or symlink to one) whose name "
     "ends in .env and does not start with a dot, in byte-wise order, each overriding the ones "
     "before it key by key (e.g. a node's secrets in one small file, shared settings in another). "
     "Other names (README, *.dpkg-old, foo.env~) are ignored."},
    {"/var/lib/proxmox-host-agent",
     "STATE_DIR: the cached whitelist, the sync state and the failover events. The service's "
     "working directory."},
    {"proxmox-host-agent.service",
     "The unit (in /usr/lib/systemd/system, /lib on Debian 12): Type=notify with a watchdog; "
     "skips the start while the required settings are missing (ExecCondition= with "
     "--check-required); runs --check-config before it starts; reloads with --reload, so that "
     "systemctl reload fails when the agent refuses an edit; runs as the system user "
     "proxmox-host-agent with a read-only view of the system."},
    {"./.env", "Read when it exists and no --env-file is given (the old agent did this)."},
    {"/etc/pve/pve-root-ca.pem",
     "The cluster's CA on a Proxmox VE node, readable by group www-data: point PROXMOX_CA_FILE at "
     "it and add SupplementaryGroups=www-data to the unit with a drop-in (systemctl edit "
     "proxmox-host-agent), or at a copy the agent can read."},
};

// Text in a roff line: backslashes escaped, a leading control character
// guarded.
std::string roff(std::string_view s) {
  std::string out;
  for (char c : s) {
    out += c == '\\' ? std::string("\\e") : std::string(1, c);
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\'')) {
    out = "\\&" + out;
  }
  return out;
}

// A long list without spaces (WEBHOOK_EVENTS's default): a break point after
// each comma; its entry is set ragged right (.na), which groff 1.23 needs.
std::string roff_list(std::string_view s) {
  std::string out;
  for (char c : roff(s)) {
    out += c;
    if (c == ',') {
      out += "\\:";
    }
  }
  return out;
}

// Something typed as it is (a flag, a variable, a path) in bold, its hyphens
// as minus signs so that it can be copied and searched for.
std::string literal(std::string_view s) {
  std::string out = "\\fB";
  for (char c : s) {
    if (c == '-') {
      out += "\\-";
    } else if (c == '\\') {
      out += "\\e";
    } else {
      out += c;
    }
  }
  return out + "\\fR";
}

std::string term_list(std::span<const TermDoc> terms) {
  std::string out;
  for (const auto& t : terms) {
    out += ".TP\n" + literal(t.term) + "\n" + roff(t.meaning) + "\n";
  }
  return out;
}

// The tag of a setting: its variable, its _FILE variant or its flag(s).
std::string setting_tag(const SettingSpec& spec) {
  std::string tag = literal(spec.env);
  if (spec.secret) {
    tag += ", " + literal(file_variant(spec));
  } else if (spec.kind == ValueKind::boolean) {
    tag += ", " + literal(spec.flag) + ", " + literal("--no-" + std::string(spec.flag.substr(2)));
  } else if (!spec.flag.empty()) {
    tag += ", " + literal(spec.flag) + " \\fI" +
           (spec.kind == ValueKind::integer || spec.kind == ValueKind::decimal ? "N" : "VALUE") +
           "\\fR";
  }
  return tag;
}

}  // namespace

namespace {

// NAME, SYNOPSIS, DESCRIPTION and the start of OPTIONS.
std::string man_head() {
  std::string out =
      ".\\\" proxmox-host-agent(8). Generated from the settings table by pha-gen-docs;\n"
      ".\\\" edit agent/config/settings_table.cpp or agent/config/docs.cpp instead.\n"
      ".TH PROXMOX\\-HOST\\-AGENT 8 \"\" \"proxmox\\-host\\-agent " +
      std::string(kVersion) +
      "\" \"System Administration\"\n"
      ".nh\n"
      ".ad l\n"
      ".SH NAME\n"
      "proxmox\\-host\\-agent \\- keep AccountDB's view of a Proxmox VE node's guests true\n"
      ".SH SYNOPSIS\n" +
      literal("proxmox-host-agent") + " [" + literal("--env-file") +
      " \\fIPATH\\fR] [\\fIOPTION\\fR]...\n" + ".br\n" + literal("proxmox-host-agent") + " [" +
      literal("--env-file") + " \\fIPATH\\fR] " + literal("--check-config") + " | " +
      literal("--check-required") + " | " + literal("--print-config") + " | " +
      literal("--list-guests") + " | " + literal("--once") + " [" + literal("--dry-run") + "]\n" +
      ".br\n" + literal("proxmox-host-agent") + " " + literal("--reload") + " \\fIPID\\fR\n" +
      ".br\n" + literal("proxmox-host-agent") + " " + literal("--explain") +
      " \\fIVMID\\fR\n"
      ".SH DESCRIPTION\n"
      "The agent runs on every node of a Proxmox VE cluster. It reads the node's QEMU virtual "
      "machines and LXC containers from the Proxmox VE API (with retries and failover to other "
      "cluster nodes), filters them with the node's VMID whitelist from AccountDB, sends AccountDB "
      "only what changed, and serves a small HTTP API for monitoring.\n"
      ".PP\n"
      "Under systemd it runs as the unit proxmox\\-host\\-agent.service: it reports READY once "
      "its configuration is loaded and its HTTP server listens, a one-line STATUS after each "
      "cycle, and STOPPING on shutdown, and pings the watchdog from its sync loop. Logs go to "
      "the journal (journalctl \\-u proxmox\\-host\\-agent), one entry per event with the "
      "fields EVENT, VMID, UPSTREAM, TARGET, CYCLE, REQUEST_ID, ERROR_KIND where they apply: "
      "journalctl \\-u proxmox\\-host\\-agent EVENT=failover lists the failovers, VMID=123 one "
      "guest's history.\n"
      ".SH OPTIONS\n"
      "Every setting below that has a flag can also be given on the command line; a boolean's "
      "flag sets it to true and its " +
      literal("--no-") +
      " form to false. Secrets have no flag because the command line is visible to every user.\n";
  return out;
}

// The mode flags.
std::string man_options() {
  std::string out;
  for (const auto& f : kModeFlags) {
    out += ".TP\n" + literal(f.flag) +
           (f.arg.empty() ? "" : " \\fI" + std::string(f.arg) + "\\fR") + "\n" + roff(f.meaning) +
           "\n";
  }
  return out;
}

// ENVIRONMENT: every setting of the table, by section.
std::string man_environment() {
  std::string out;
  out +=
      ".SH ENVIRONMENT\n"
      "Every setting is an environment variable. Precedence, lowest first: the built-in "
      "default, the env file, its drop-ins (PATH.d/*.env, in byte-wise order), the process "
      "environment, the command-line flag. An empty value means \"not set here\". Each secret "
      "has a _FILE variant that names a file to read it from (e.g. a systemd credential in "
      "$CREDENTIALS_DIRECTORY); a secret and its _FILE set in the same place (one file, or the "
      "environment) are a configuration error, from two places the higher one wins. Booleans "
      "accept true/false, 1/0, yes/no or on/off in any case; durations are whole "
      "seconds unless stated otherwise. Out-of-range or malformed values are configuration "
      "errors (exit 78).\n"
      ".PP\n"
      "Env file syntax: KEY=value lines, # comments, blank lines, an optional \"export \" prefix, "
      "single quotes (literal) or double quotes (\\en, \\e\", \\e\\e), an inline \" #\" comment "
      "after an unquoted value. Any other line is a configuration error naming the file and "
      "line. A key the agent does not know is a warning. The old agent's LOG_FORWARDING_*, "
      "LOG_BATCH_SIZE and LOG_FLUSH_INTERVAL are accepted and ignored with one warning.\n";
  std::string_view section;
  for (const auto& spec : settings_table()) {
    if (spec.section != section) {
      section = spec.section;
      out += ".SS " + roff(section) + "\n";
    }
    out += ".TP\n" + setting_tag(spec) + "\n" + roff(spec.help) + "\n.br\n";
    out += ".na\nAllowed: " + roff(describe_allowed(spec)) +
           ". Default: " + roff_list(shown_default(spec)) + ".";
    if (spec.required) {
      out += " Required.";
    }
    if (spec.secret) {
      out += " Secret: masked everywhere, no flag.";
    }
    out += start_only_note(spec) + "\n.ad\n";
  }
  return out;
}

// The required settings, then HTTP API: every endpoint.
std::string man_http_api() {
  std::string out;
  out +=
      ".PP\n"
      "Required: ACCOUNTDB_URL, ACCOUNTDB_API_KEY, ACCOUNTDB_NODE_ID, and Proxmox VE "
      "credentials: PROXMOX_TOKEN_ID with PROXMOX_TOKEN_SECRET, or PROXMOX_PASSWORD for "
      "PROXMOX_USER (root@pam by default).\n"
      ".SH HTTP API\n"
      "The agent listens on BIND_ADDRESS:PORT (0.0.0.0:8000 by default) and answers JSON, "
      "with an X\\-Request\\-ID header on every response. A GET never waits on Proxmox VE or "
      "AccountDB: it answers from what the agent already knows. POST endpoints need "
      "\"Authorization: Bearer\" with AGENT_API_TOKEN when the token is set (401 without, 403 "
      "wrong); without a token they accept only loopback clients. With AGENT_READ_AUTH=true "
      "every GET but /health needs the token too. Unknown paths answer 404, wrong methods 405, "
      "bodies over 64 KiB 413.\n";
  for (const auto& e : kEndpoints) {
    out += ".TP\n\\fB" + std::string(e.method) + " " + std::string(e.path) + "\\fR\n" +
           roff(e.meaning) + "\n";
  }
  return out;
}

// EXIT STATUS, SIGNALS, FILES, EXAMPLES and SEE ALSO.
std::string man_tail() {
  std::string out;
  out += ".SH EXIT STATUS\n" + term_list(kExitCodes);
  out += ".SH SIGNALS\n" + term_list(kSignals);
  out += ".SH FILES\n" + term_list(kFiles);
  out +=
      ".SH EXAMPLES\n"
      "Check the packaged configuration, start the service and ask it how it is:\n"
      ".PP\n"
      ".RS\n"
      ".nf\n"
      "proxmox\\-host\\-agent \\-\\-env\\-file /etc/proxmox\\-host\\-agent/agent.env "
      "\\-\\-check\\-config\n"
      "systemctl start proxmox\\-host\\-agent\n"
      "systemctl status proxmox\\-host\\-agent\n"
      "curl \\-s localhost:8000/health\n"
      ".fi\n"
      ".RE\n"
      ".SH SEE ALSO\n"
      ".BR systemctl (1),\n"
      ".BR journalctl (1),\n"
      ".BR systemd.exec (5),\n"
      ".BR pveum (1)\n";
  return out;
}

}  // namespace

std::string render_man_page() {
  return man_head() + man_options() + man_environment() + man_http_api() + man_tail();
}

nlohmann::json print_config_json(const LoadedConfig& config) {
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [name, value] : config.effective) {
    nlohmann::json v;
    if (value.secret) {
      v = value.text.empty() ? "" : "***";
    } else {
      // Typed where the table says so; text for the rest (and an empty value).
      const auto kind =
          value.spec == nullptr || value.text.empty() ? ValueKind::text : value.spec->kind;
      switch (kind) {
        case ValueKind::boolean:
          v = value.text == "true";
          break;
        case ValueKind::integer:
          v = parse_int(value.text).value_or(0);
          break;
        case ValueKind::decimal:
          v = parse_decimal(value.text).value_or(0.0);
          break;
        default:
          v = value.text;
      }
    }
    // "from": the file and line (or "environment", the flag), which "source"
    // alone does not tell once there are drop-ins.
    settings[name] = {
        {"value", v}, {"source", to_string(value.origin.source)}, {"from", value.origin.where}};
  }
  return {{"settings", settings}};
}

}  // namespace pha
