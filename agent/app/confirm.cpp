#include "agent/app/confirm.hpp"

#include <cstdio>

#include "agent/app/local_api.hpp"

namespace pha {

namespace {

using nlohmann::json;

std::string vmid_list(const json& vmids) {
  std::string out;
  for (const auto& v : vmids.is_array() ? vmids : json::array()) {
    out += (out.empty() ? "" : ", ") + v.dump();
  }
  return out;
}

}  // namespace

std::string held_text(const json& held) {
  if (!held.is_object() || !held.contains("id")) {
    return "nothing is held: every change the last cycle planned was written\n";
  }
  std::string out = "held changes " + held["id"].get<std::string>() + ":\n";
  for (const auto& h : held.value("holds", json::array())) {
    const auto kind = h.value("kind", std::string());
    const auto after = h.value("corroborate_after_cycles", 0);
    out += "  " + std::string(kind == "create" ? "creates" : "marks as deleted") + " of VMID " +
           vmid_list(h.value("vmids", json::array())) +
           "\n    why: " + h.value("reason", std::string()) +
           (after > 0 ? "\n    written by itself once planned in " + std::to_string(after) +
                            " cycles in a row\n"
                      : "\n    written only when confirmed\n");
  }
  return out;
}

int run_confirm(const Settings& s, const std::string& hold,
                const std::optional<std::string>& env_file) {
  const auto& reader = !s.agent_read_token.empty() ? s.agent_read_token : s.agent_api_token;
  const auto status = ask_local_agent(s, "GET", "/status", reader);
  if (status.status != 200 || !status.body.is_object()) {
    std::fprintf(stderr, "proxmox-host-agent: %s\n", status.why_not().c_str());
    return 1;
  }
  const auto held = status.body.value("sync", json::object()).value("held", json());
  std::fputs(held_text(held).c_str(), stdout);
  if (hold.empty()) {
    if (held.is_object() && held.contains("id")) {
      const auto from = env_file ? " --env-file " + *env_file : std::string();
      std::printf("to write them now: proxmox-host-agent%s --confirm %s\n", from.c_str(),
                  held["id"].get<std::string>().c_str());
    }
    return 0;
  }
  const auto a =
      ask_local_agent(s, "POST", "/sync/confirm", s.agent_api_token, json{{"hold", hold}}.dump());
  if (a.status != 200) {
    std::fprintf(stderr, "proxmox-host-agent: %s\n", a.why_not().c_str());
    return 1;
  }
  std::printf("confirmed %s: the agent writes them in the cycle it runs now\n", hold.c_str());
  return 0;
}

}  // namespace pha
