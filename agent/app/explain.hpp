#pragma once
// --explain VMID: asks the running agent (GET /vms/{vmid} on 127.0.0.1, the
// configured port, https when TLS is on) why a guest is or is not in
// AccountDB, and prints the answer for a person (docs/http-api.md "GET
// /vms/{vmid}", docs/operating.md).

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/config/settings.hpp"

namespace pha {

// The human answer to a /vms/{vmid} body: in AccountDB or not and why, the
// row id, the last write, a pending retry, the missing mark and the fields
// waiting to be sent.
std::string explain_text(const nlohmann::json& answer);

// Runs the mode; returns the exit code: 0 answered, 1 when the agent cannot
// be reached, refuses the request or knows no such guest.
int run_explain(const Settings& settings, std::int64_t vmid);

}  // namespace pha
