#pragma once
// Who may call what (docs/http-api.md "Authorisation"). Every route has one
// access class; the decision is a pure function of the class, the request
// (its bearer token and whether the client is on loopback) and the settings.
//
// - open: /health and the page, always.
// - monitoring: /status, /metrics and the other state; open unless
//   AGENT_READ_AUTH=true.
// - customer data: /vms, /vms/{vmid}, /config; AGENT_READ_TOKEN (or the
//   control token) from every client, or loopback clients only while it is unset.
// - control: every POST; AGENT_API_TOKEN from every client, or loopback
//   clients only while it is unset.
//
// Tokens are compared in constant time; the answers name the setting that
// would let the client in, never a token.

#include <optional>

#include "agent/config/settings.hpp"
#include "agent/http/server.hpp"

namespace pha::http {

enum class Access { open, monitoring, customer_data, control };

// nullopt: the request may go on; otherwise the 401 or 403 answer.
std::optional<Response> check_access(Access access, const Request& request,
                                     const Settings& settings);

}  // namespace pha::http
