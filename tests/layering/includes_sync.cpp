// Includes a header of agent/sync. Built twice by tests/layering: linked to
// pha_sync it compiles; linked to pha_core only (a layer below sync) it must
// not, because the layers' include roots are what the build enforces.
#include "agent/sync/plan.hpp"

namespace pha {

// Uses the header, so the object is not empty.
std::size_t layering_probe(const Plan& plan);
std::size_t layering_probe(const Plan& plan) {
  return plan.requests.size();
}

}  // namespace pha
