#include "agent/upstream/endpoint_selector.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

namespace pha {

namespace {

// Pointers into the caller's vector, in configuration order.
using Endpoints = std::vector<const EndpointState*>;

bool usable(const EndpointState& e) {
  return e.circuit != CircuitState::open;
}

// The flag is not enough on its own: an open endpoint is never listed, whatever the caller says.
bool in_good_standing(const EndpointState& e) {
  return usable(e) && e.good_standing;
}

// The first entry of each URL: a URL listed twice is one endpoint (trying it twice in one
// request would only double the wait), and the strategies keep their state by URL.
Endpoints distinct(const std::vector<EndpointState>& endpoints) {
  Endpoints out;
  std::set<std::string_view> seen;
  for (const auto& e : endpoints) {
    if (seen.insert(e.url).second) {
      out.push_back(&e);
    }
  }
  return out;
}

std::optional<int> lowest_priority(const Endpoints& eps, bool (*keep)(const EndpointState&)) {
  std::optional<int> best;
  for (const auto* e : eps) {
    if (keep(*e) && (!best || e->priority < *best)) {
      best = e->priority;
    }
  }
  return best;
}

// The best group's priority number; none when no endpoint is usable.
std::optional<int> best_group(const Endpoints& eps) {
  if (auto good = lowest_priority(eps, in_good_standing)) {
    return good;
  }
  return lowest_priority(eps, usable);
}

Endpoints candidates(const Endpoints& eps, int group) {
  Endpoints good;
  Endpoints usable_ones;
  for (const auto* e : eps) {
    if (e->priority == group && usable(*e)) {
      usable_ones.push_back(e);
      if (in_good_standing(*e)) {
        good.push_back(e);
      }
    }
  }
  const auto& pool = good.empty() ? usable_ones : good;
  Endpoints weighted;
  std::copy_if(pool.begin(), pool.end(), std::back_inserter(weighted),
               [](const EndpointState* e) { return e->weight > 0; });
  return weighted.empty() ? pool : weighted;
}

// The next candidate configured after the last pick, wrapping around; the last pick need not be
// a candidate any more (it may have failed), its configuration position is enough.
const EndpointState* pick_round_robin(const Endpoints& eps, const Endpoints& cands,
                                      std::string& last_picked) {
  const auto last = std::find_if(eps.begin(), eps.end(),
                                 [&](const EndpointState* e) { return e->url == last_picked; });
  const EndpointState* pick = cands.front();
  if (last != eps.end()) {
    // Entries of one vector: address order is configuration order.
    const auto after =
        std::find_if(cands.begin(), cands.end(), [&](const EndpointState* c) { return c > *last; });
    if (after != cands.end()) {
      pick = *after;
    }
  }
  last_picked = pick->url;
  return pick;
}

// Smooth weighted round robin as nginx does it. A candidate that drops out (failure, drain) keeps
// its current weight, as in nginx, so that a short absence neither costs nor earns it turns when
// it comes back; a URL that is no longer configured at all is forgotten, so the state never
// outgrows the configuration.
const EndpointState* pick_weighted(const Endpoints& eps, const Endpoints& cands,
                                   std::map<std::string, std::int64_t>& current) {
  std::erase_if(current, [&](const auto& entry) {
    return std::none_of(eps.begin(), eps.end(),
                        [&](const EndpointState* e) { return e->url == entry.first; });
  });
  // Weight-0 candidates remain only when every candidate has weight 0: they share equally.
  const bool all_drained = cands.front()->weight <= 0;
  std::int64_t total = 0;
  const EndpointState* pick = nullptr;
  std::int64_t* pick_current = nullptr;
  for (const auto* c : cands) {
    const std::int64_t weight = all_drained ? 1 : c->weight;
    auto& cur = current[c->url];
    cur += weight;
    total += weight;
    if (pick == nullptr || cur > *pick_current) {  // strictly larger: ties go to config order
      pick = c;
      pick_current = &cur;
    }
  }
  *pick_current -= total;
  return pick;
}

const EndpointState* pick_least_connections(const Endpoints& cands) {
  // min_element returns the first of equal elements: ties in configuration order.
  return *std::min_element(
      cands.begin(), cands.end(),
      [](const EndpointState* a, const EndpointState* b) { return a->in_flight < b->in_flight; });
}

// Usable endpoints of one group, good standing first, each part in configuration order.
void append_group(const Endpoints& eps, int group, const EndpointState* skip,
                  std::vector<std::string>& out) {
  for (const bool good : {true, false}) {
    for (const auto* e : eps) {
      if (e != skip && e->priority == group && usable(*e) && in_good_standing(*e) == good) {
        out.push_back(e->url);
      }
    }
  }
}

std::set<int> usable_groups(const Endpoints& eps) {
  std::set<int> groups;
  for (const auto* e : eps) {
    if (usable(*e)) {
      groups.insert(e->priority);
    }
  }
  return groups;
}

// The design's fallback when nothing is usable: the first endpoint of the lowest priority number.
const EndpointState* fallback(const Endpoints& eps) {
  // min_element returns the first of equal elements: the first configured.
  return *std::min_element(
      eps.begin(), eps.end(),
      [](const EndpointState* a, const EndpointState* b) { return a->priority < b->priority; });
}

}  // namespace

std::vector<std::string> EndpointSelector::order(const std::vector<EndpointState>& endpoints) {
  const auto eps = distinct(endpoints);
  if (eps.empty()) {
    return {};
  }
  const auto group = best_group(eps);
  if (!group) {
    return {fallback(eps)->url};
  }
  const auto cands = candidates(eps, *group);
  const EndpointState* first = cands.front();
  switch (strategy_) {
    case Strategy::priority:
      break;
    case Strategy::round_robin:
      first = pick_round_robin(eps, cands, last_picked_);
      break;
    case Strategy::weighted:
      first = pick_weighted(eps, cands, current_);
      break;
    case Strategy::least_connections:
      first = pick_least_connections(cands);
      break;
  }
  std::vector<std::string> out{first->url};
  append_group(eps, *group, first, out);
  for (const int other : usable_groups(eps)) {
    if (other != *group) {
      append_group(eps, other, nullptr, out);
    }
  }
  return out;
}

void EndpointSelector::set_strategy(Strategy strategy) {
  strategy_ = strategy;
  reset();
}

void EndpointSelector::reset() {
  last_picked_.clear();
  current_.clear();
}

}  // namespace pha
