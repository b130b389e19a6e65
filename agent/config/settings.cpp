#include "agent/config/settings.hpp"

namespace pha {

std::vector<std::string> Settings::secrets() const {
  std::vector<std::string> out;
  for (const auto* s : {&proxmox_password, &proxmox_token_secret, &accountdb_api_key,
                        &agent_api_token, &agent_read_token, &webhook_token}) {
    if (!s->empty()) {
      out.push_back(*s);
    }
  }
  return out;
}

std::string Settings::peer_url(const std::string& ip) const {
  const bool https = peer_scheme == "https" || (peer_scheme == "auto" && !tls_cert_file.empty());
  return Url{https ? "https" : "http", ip, peer_port != 0 ? peer_port : port, ""}.str();
}

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::priority:
      return "priority";
    case Strategy::round_robin:
      return "round_robin";
    case Strategy::weighted:
      return "weighted";
    case Strategy::least_connections:
      return "least_connections";
  }
  return "priority";
}

}  // namespace pha
