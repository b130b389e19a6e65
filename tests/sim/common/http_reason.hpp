#pragma once
// The reason phrases the simulated servers put on their status lines.

#include <string>

namespace pha::sim {

// The usual phrase for `status` ("Not Found"), as uvicorn and pveproxy send
// it; "Error" for a status without one.
std::string reason_phrase(int status);

}  // namespace pha::sim
