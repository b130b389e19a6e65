#include "agent/status/store.hpp"

namespace pha {

nlohmann::json to_json(const StatusEntry& e) {
  return {{"status", e.status}, {"message", e.message}, {"timestamp", e.timestamp}};
}

StatusEntry cycle_state(const CycleReport& r) {
  StatusEntry e;
  e.timestamp = r.finished_at;
  if (!r.success) {
    e.status = Severity::error;
    e.message = "sync failed: " + r.message;
  } else if (r.stats.errors > 0) {
    e.status = Severity::warning;
    e.message = "sync done but some writes to AccountDB failed";
  } else if (!r.held.empty()) {
    e.status = Severity::warning;
    e.message =
        "sync done but the change brake holds changes until they are corroborated or confirmed "
        "(/status sync.held)";
  } else if (!r.warnings.empty()) {
    e.status = Severity::warning;
    e.message = "sync done with a warning: " + r.warnings.front();
  } else {
    e.status = Severity::ok;
    e.message = r.dry_run ? "in sync (dry run: nothing is written)" : "in sync";
  }
  return e;
}

StatusStore::StatusStore(Clock& clock, Live<std::size_t> history_size)
    : clock_(clock), history_size_(std::move(history_size)) {}

std::size_t StatusStore::history_limit() const {
  return std::max<std::size_t>(1, history_size_());
}

void StatusStore::set_state(StatusComponent component, Severity status, std::string message) {
  std::unique_lock lock(mutex_);
  parts_[static_cast<int>(component)] = {status, std::move(message)};
  recompute(lock);
}

void StatusStore::clear_state(StatusComponent component) {
  std::unique_lock lock(mutex_);
  auto& part = parts_[static_cast<int>(component)];
  if (!part.status) {
    return;
  }
  part = {};
  recompute(lock);
}

void StatusStore::recompute(std::unique_lock<std::mutex>& /*lock*/) {
  const Part* worst = nullptr;
  for (const auto& p : parts_) {  // in component order: the sync wins ties
    if (p.status && (worst == nullptr || *p.status > *worst->status)) {
      worst = &p;
    }
  }
  if (worst == nullptr) {
    return;
  }
  if (!history_.empty() && history_.back().status == *worst->status &&
      history_.back().message == worst->message) {
    return;
  }
  history_.push_back({*worst->status, worst->message, clock_.unix_now()});
  while (history_.size() > history_limit()) {
    history_.pop_front();
  }
}

std::optional<StatusEntry> StatusStore::current() const {
  std::lock_guard lock(mutex_);
  if (history_.empty()) {
    return std::nullopt;
  }
  return history_.back();
}

std::vector<StatusEntry> StatusStore::history() const {
  std::lock_guard lock(mutex_);
  const auto keep = std::min(history_.size(), history_limit());  // a reload may have shrunk it
  return {history_.end() - static_cast<std::ptrdiff_t>(keep), history_.end()};
}

void StatusStore::record_cycle(const CycleReport& r) {
  durations_.observe(static_cast<double>(r.stats.duration_ms) / 1000.0);
  const auto state = cycle_state(r);
  std::unique_lock lock(mutex_);
  auto& s = sync_;
  s.cycle_count++;
  s.last_attempt_time = r.finished_at;
  s.last_stats = r.stats;
  s.last_status = r.status;
  s.last_message = r.message;
  if (r.success) {
    s.last_sync_time = r.finished_at;
    s.consecutive_failures = 0;
  } else {
    s.consecutive_failures++;
  }
  (r.status == Severity::ok        ? s.totals.cycles_ok
   : r.status == Severity::warning ? s.totals.cycles_warning
                                   : s.totals.cycles_error)++;
  if (!r.dry_run) {
    s.totals.created += static_cast<std::uint64_t>(r.stats.created);
    s.totals.updated += static_cast<std::uint64_t>(r.stats.updated);
    s.totals.marked_missing += static_cast<std::uint64_t>(r.stats.marked_missing);
  }
  s.totals.write_errors += static_cast<std::uint64_t>(r.stats.errors);
  if (r.connected) {
    s.last_heartbeat_ok = r.started_at;  // node_info marks the node connected, as heartbeat does
  }
  if (r.accounts) {  // the cycle planned
    s.held = r.held;
    s.held_cycles += r.held.empty() ? 0U : 1U;
  }
  if (r.proxmox_read) {
    s.read_counts_for_missing = r.read_counts_for_missing;
    s.read_incomplete_reason = r.read_incomplete_reason;
    s.hidden = r.hidden;
    auto v = std::make_shared<VmsSnapshot>();
    v->guests = r.guests;
    v->as_of = r.proxmox_read_at;
    v->node = r.node;
    // A cycle that failed after the read planned nothing: the last plan's answers stay.
    v->accounts = r.accounts ? r.accounts : (vms_ ? vms_->accounts : nullptr);
    vms_ = std::move(v);
  }
  parts_[static_cast<int>(StatusComponent::sync)] = {state.status, state.message};
  recompute(lock);
}

void StatusStore::record_heartbeat() {
  std::lock_guard lock(mutex_);
  sync_.last_heartbeat_ok = clock_.unix_now();
}

SyncInfo StatusStore::sync() const {
  std::lock_guard lock(mutex_);
  return sync_;
}

std::shared_ptr<const VmsSnapshot> StatusStore::vms() const {
  std::lock_guard lock(mutex_);
  return vms_;
}

}  // namespace pha
