#include "agent/app/explain.hpp"

#include <cstdio>
#include <ctime>

#include "agent/app/local_api.hpp"

namespace pha {

namespace {

using nlohmann::json;

// j[key], or null when j is no object or has no such key (a const json's
// operator[] must not be asked for a missing key).
const json& field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) {
    return kNull;
  }
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string time_text(const json& t) {
  if (!t.is_number_integer()) {
    return "unknown";
  }
  const std::time_t at = t.get<std::int64_t>();
  std::tm tm{};
  gmtime_r(&at, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string text_of(const json& j, const char* key, const char* none = "none") {
  const auto& v = field(j, key);
  if (v.is_null()) {
    return none;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string last_write_text(const json& w) {
  if (!w.is_object()) {
    return "none since the agent started";
  }
  std::string s = time_text(field(w, "at")) + ", " + text_of(w, "result") + " (" +
                  text_of(w, "kind") + ": " + text_of(w, "reason") + ")";
  if (field(w, "error").is_string()) {
    s += ", error: " + text_of(w, "error");
  }
  return s;
}

std::string missing_text(const json& m) {
  if (field(m, "marked").is_string()) {
    return "marked " + text_of(m, "marked") + " (at " + time_text(field(m, "marked_at")) + ")";
  }
  const auto& reads = field(m, "reads");
  if (reads.is_number_integer() && reads.get<std::int64_t>() > 0) {
    return "absent from " + reads.dump() + " complete read(s), since " +
           time_text(field(m, "since"));
  }
  return "no";
}

}  // namespace

std::string explain_text(const json& answer) {
  const auto vmid = text_of(answer, "vmid", "?");
  std::string out = "VM " + vmid;
  if (field(answer, "name").is_string()) {
    out += " (" + text_of(answer, "name") + ")";
  }
  out += field(answer, "in_proxmox") != false ? " on " + text_of(answer, "node", "this node")
                                              : ": not in the last Proxmox read";
  out += "\n";
  const auto& a = field(answer, "accountdb");
  if (!a.is_object()) {
    return out + "  no sync cycle has planned it yet: ask again after the next cycle\n";
  }
  out += "  " + text_of(a, "summary", "") + "\n";
  out += "  in AccountDB:   " + std::string(field(a, "in_accountdb") == true ? "yes" : "no") + "\n";
  out += "  row id:         " + text_of(a, "row_id") + "\n";
  out += "  whitelisted:    " + text_of(a, "whitelisted", "unknown (no usable whitelist)") + "\n";
  out += "  kept out by:    " + text_of(a, "kept_out_by") + "\n";
  out += "  last write:     " + last_write_text(field(a, "last_write")) + "\n";
  const auto& retry = field(a, "retry");
  out += "  retry pending:  " +
         std::string(field(retry, "pending") == true
                         ? "yes, next cycle at " + time_text(field(retry, "at"))
                         : "no") +
         "\n";
  out += "  missing:        " + missing_text(field(a, "missing")) + "\n";
  std::string fields;
  const auto& pending = field(a, "pending_fields");
  for (const auto& f : pending.is_array() ? pending : json::array()) {
    fields += (fields.empty() ? "" : ", ") + (f.is_string() ? f.get<std::string>() : f.dump());
  }
  out += "  waiting to send: " + (fields.empty() ? std::string("nothing") : fields) + "\n";
  return out;
}

int run_explain(const Settings& s, std::int64_t vmid) {
  const auto& token = !s.agent_read_token.empty() ? s.agent_read_token : s.agent_api_token;
  const auto a = ask_local_agent(s, "GET", "/vms/" + std::to_string(vmid), token);
  if (a.status == 200 && a.body.is_object()) {
    std::fputs(explain_text(a.body).c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "proxmox-host-agent: %s\n", a.why_not().c_str());
  return 1;
}

}  // namespace pha
