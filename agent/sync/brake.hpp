#pragma once
// The change brake (docs/sync.md "The change brake"): the last step of the
// plan. A cycle whose plan would create, or mark deleted, more than
// max(CHANGE_BRAKE_MIN, CHANGE_BRAKE_PERCENT % of the node's rows), or mark
// any guest deleted after complete reads dropped from some guests to none,
// holds those requests: when everything is gone, or nothing is there, a
// fault of the answer is likelier than the change. A held request is written
// once an operator confirmed it, or once it has been planned and held in
// MISSING_AFTER_CYCLES cycles in a row, except the marks of a node whose
// reads dropped to none: those only when confirmed. A mark `migrated` is
// never held: the cluster itself places the guest elsewhere. Pure.

#include <cstdint>

#include "agent/sync/plan.hpp"

namespace pha {

// The most creates, or deleted marks, a cycle writes without corroboration,
// given the node's rows.
std::int64_t brake_threshold(const PlanSettings& s, std::int64_t rows);

// Moves what the brake holds from plan.requests to plan.held, with a Hold
// per kind and the decisions `held`, and counts the cycles in
// plan.memory.held. `rows`: the node's rows that are not marked.
void apply_brake(const PlanInput& in, std::int64_t rows, Plan& plan);

}  // namespace pha
