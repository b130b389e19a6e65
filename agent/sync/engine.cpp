#include "agent/sync/engine.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "agent/platform/files.hpp"
#include "agent/platform/logging.hpp"
#include "agent/sync/sync_state.hpp"

namespace pha {

namespace {

constexpr std::size_t kMaxInFlight = 4;  // docs/sync.md "Sending and retries"

PlanSettings plan_settings(const Settings& s) {
  return {s.create_stopped_vms,  s.cpu_change_threshold, s.full_resync_interval,
          s.mark_missing_vms,    s.missing_after_cycles, s.change_brake_min,
          s.change_brake_percent};
}

// One line per write, so that a guest's history is in the log (docs/sync.md
// "Sending and retries"): guest_written, or sync_request_failed with the kind
// of failure.
void log_write(const PlannedRequest& req, const Error* failure) {
  const std::string what =
      "VMID " + std::to_string(req.vmid) + " (" + std::string(to_string(req.kind)) + ")";
  log::Fields fields = {{"vmid", req.vmid},
                        {"request", to_string(req.kind)},
                        {"reason", req.reason},
                        {"upstream", "accountdb"}};
  if (req.id > 0) {
    fields.push_back({"row_id", req.id});
  }
  if (failure == nullptr) {
    log::info("guest_written", what + ": written", fields);
    return;
  }
  fields.push_back({"kind", to_string(failure->kind)});
  fields.push_back({"status", failure->status});
  log::warn("sync_request_failed", what + ": " + failure->message, fields);
}

std::string state_path(const Settings& s, const char* name) {
  return s.state_dir.empty() ? std::string() : s.state_dir + "/" + name;
}

}  // namespace

nlohmann::json to_json(const CycleStats& s) {
  return {{"created", s.created},
          {"updated", s.updated},
          {"unchanged", s.unchanged},
          {"filtered", s.filtered},
          {"marked_missing", s.marked_missing},
          {"errors", s.errors},
          {"total_proxmox_vms", s.total_proxmox_vms},
          {"total_vms_before_filter", s.total_vms_before_filter},
          {"total_vms_after_filter", s.total_vms_after_filter},
          {"filtered_out", s.filtered_out},
          {"whitelist_enabled", s.whitelist_enabled},
          {"whitelist_count", s.whitelist_count},
          {"whitelist_last_updated", s.whitelist_last_updated == 0
                                         ? nlohmann::json(nullptr)
                                         : nlohmann::json(s.whitelist_last_updated)},
          {"used_cached_whitelist", s.used_cached_whitelist},
          {"online_vms", s.online_vms},
          {"duration_ms", s.duration_ms},
          {"requests_sent", s.requests_sent},
          {"accountdb_requests", s.accountdb_requests},
          {"proxmox_requests", s.proxmox_requests}};
}

nlohmann::json to_json(const CycleReport& r) {
  auto guests = guests_json(r.guests);
  nlohmann::json planned = nlohmann::json::array();
  for (const auto& p : r.planned) {
    planned.push_back({{"method", "PUT"},
                       {"path", "/vms/agent/" + std::to_string(p.id)},
                       {"vmid", p.vmid},
                       {"kind", to_string(p.kind)},
                       {"reason", p.reason}});
  }
  return {
      {"status", r.status},        {"message", r.message},        {"dry_run", r.dry_run},
      {"stats", to_json(r.stats)}, {"guests", std::move(guests)}, {"planned", std::move(planned)},
      {"held", to_json(r.held)},   {"errors", r.errors},          {"warnings", r.warnings}};
}

SyncEngine::SyncEngine(const LiveSettings& settings, ProxmoxClient& proxmox,
                       AccountDbClient& accountdb, Clock& clock)
    : settings_(settings),
      proxmox_(proxmox),
      accountdb_(accountdb),
      clock_(clock),
      node_id_(settings.get()->accountdb_node_id),
      whitelist_(
          settings.read([](const Settings& s) -> std::int64_t { return s.whitelist_ttl; }),
          settings.read([](const Settings& s) -> std::int64_t { return s.whitelist_max_stale; }),
          state_path(*settings.get(), "whitelist.json"), node_id_),
      memory_file_(state_path(*settings.get(), "sync-state.json")) {}

std::vector<std::string> SyncEngine::load_state() {
  std::lock_guard lock(mutex_);
  std::vector<std::string> notes;
  {
    std::lock_guard wl(whitelist_mutex_);
    if (auto note = whitelist_.load(); !note.empty()) {
      notes.push_back(note);
    }
  }
  if (!memory_file_.empty()) {
    auto text = read_text_file(memory_file_, 64 << 20);
    if (text) {
      const auto doc = nlohmann::json::parse(*text, nullptr, false);
      SyncMemory m;
      if (!doc.is_discarded() && doc.value("node_id", std::int64_t{0}) == node_id_ &&
          memory_from_json(doc, m)) {
        memory_ = m;
        persisted_memory_ = m;
        notes.push_back("loaded the sync state of " + std::to_string(m.last_sent.size()) +
                        " guests from " + memory_file_);
      } else {
        notes.push_back(memory_file_ + " is not a sync state file of this node; ignored");
      }
    }
  }
  return notes;
}

WhitelistStatus SyncEngine::whitelist_status() const {
  std::lock_guard lock(whitelist_mutex_);
  return whitelist_.status(clock_.unix_now());
}

std::vector<std::int64_t> SyncEngine::whitelist_vmids() const {
  std::lock_guard lock(whitelist_mutex_);
  const auto view = whitelist_.view(clock_.unix_now());
  return {view.vmids.begin(), view.vmids.end()};
}

WhitelistFetch SyncEngine::fetch_whitelist(std::int64_t now) {
  auto c = accountdb_.whitelist();  // no lock is held while the request runs
  std::lock_guard lock(whitelist_mutex_);
  WhitelistFetch f;
  if (!c.ok()) {
    whitelist_.fetch_failed();
    f.error = c.error();
  } else if (auto err = whitelist_.store(std::move(c->vmids), c->source, now)) {
    f.persist_error = *err;
  }
  f.status = whitelist_.status(now);
  return f;
}

Result<WhitelistStatus> SyncEngine::refresh_whitelist() {
  auto f = fetch_whitelist(clock_.unix_now());
  if (f.persist_error) {
    log::warn("state_write_failed", "cannot persist the whitelist", {{"error", *f.persist_error}});
  }
  if (f.error) {
    return *f.error;
  }
  return f.status;
}

CycleReport SyncEngine::fail(CycleReport r, const std::string& message) {
  r.success = false;
  r.status = Severity::error;
  r.message = message;
  r.finished_at = clock_.unix_now();
  return r;
}

void SyncEngine::persist_memory() {
  if (memory_file_.empty() || memory_ == persisted_memory_) {
    return;
  }
  auto doc = memory_json(memory_);
  doc["node_id"] = node_id_;
  if (auto written = write_file_atomic(memory_file_, doc.dump() + "\n"); !written) {
    log::warn("state_write_failed", "cannot persist the sync state",
              {{"error", written.error().message}});
    return;
  }
  persisted_memory_ = memory_;
}

void SyncEngine::send(const std::vector<PlannedRequest>& requests, CycleReport& report) {
  struct Outcome {
    bool ok = false;
    std::optional<std::int64_t> row_id;
    std::string error;
  };
  std::vector<Outcome> outcomes(requests.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < requests.size(); i = next++) {
      const auto r = accountdb_.put_vm(requests[i].id, requests[i].body);
      log_write(requests[i], r.ok() ? nullptr : &r.error());
      outcomes[i] = {r.ok(), r.ok() ? r.value() : std::nullopt,
                     r.ok() ? std::string() : r.error().message};
    }
  };
  const std::size_t threads = std::min(kMaxInFlight, requests.size());
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) {
    pool.emplace_back([&worker, context = log::scoped_fields()] {
      const log::ScopedFields scope(context);  // the cycle's fields on the senders' lines
      worker();
    });
  }
  if (threads > 0) {
    worker();  // this thread is one of the senders
  }
  for (auto& t : pool) {
    t.join();
  }
  const auto now = clock_.unix_now();
  const auto secrets = settings_.get()->secrets();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& req = requests[i];
    report.stats.requests_sent++;
    ledger_.written(req, outcomes[i].ok, outcomes[i].row_id,
                    log::mask_secrets(outcomes[i].error, secrets), now);
    if (!outcomes[i].ok) {
      report.stats.errors++;
      report.errors.push_back("VMID " + std::to_string(req.vmid) + " (" +
                              std::string(to_string(req.kind)) + "): " + outcomes[i].error);
      continue;
    }
    landed(req, outcomes[i].row_id, now, report);
  }
}

void SyncEngine::landed(const PlannedRequest& req, std::optional<std::int64_t> row_id,
                        std::int64_t now, CycleReport& report) {
  memory_.last_sent[req.vmid] = now;
  if (const auto recreated = remember_write(req, row_id)) {
    note_handover_outcome(req, *recreated, report);
  }
  switch (req.kind) {
    case RequestKind::create:
      report.stats.created++;
      break;
    case RequestKind::update:
      report.stats.updated++;
      break;
    case RequestKind::mark:
      report.stats.marked_missing++;
      memory_.missing.erase(req.vmid);
      break;
  }
}

// The steps of a cycle, in the order of docs/sync.md "The cycle" (which
// defines them), to conclude() below.

// Connection: node_info, unless it succeeded within the last UPDATE_INTERVAL.
Status SyncEngine::connect(CycleReport& report, const Settings& settings, std::int64_t now) {
  report.owner_id = owner_id_;
  if (last_connect_ok_ && now - *last_connect_ok_ < settings.update_interval) {
    return {};
  }
  auto a = accountdb_.node_info();
  if (!a.ok()) {
    accountdb_down_ = true;
    last_connect_ok_.reset();
    report.accountdb_auth_failed = a.error().kind == ErrorKind::auth;
    report.accountdb_unreachable = !report.accountdb_auth_failed;
    return a.error();
  }
  accountdb_down_ = false;
  report.connected = true;
  last_connect_ok_ = now;
  owner_id_ = a->owner_id;
  report.owner_id = owner_id_;
  return {};
}

// Whitelist: cached while younger than WHITELIST_TTL; an error is never "empty".
WhitelistView SyncEngine::cycle_whitelist(CycleReport& report, std::int64_t now) {
  bool due = false;
  {
    std::lock_guard wl_lock(whitelist_mutex_);
    due = whitelist_.needs_fetch(now);
  }
  if (due) {
    const auto f = fetch_whitelist(now);
    if (f.error) {
      report.warnings.push_back("whitelist not fetched, using the last good copy if any: " +
                                f.error->message);
    }
    if (f.persist_error) {
      report.warnings.push_back("cannot persist the whitelist: " + *f.persist_error);
    }
  }
  WhitelistStatus wl;
  WhitelistView view;
  {
    std::lock_guard wl_lock(whitelist_mutex_);
    wl = whitelist_.status(now);
    view = whitelist_.view(now);
  }
  report.stats.whitelist_enabled = wl.enabled;
  report.stats.whitelist_count = static_cast<std::int64_t>(wl.count);
  report.stats.whitelist_last_updated = wl.last_updated;
  report.stats.used_cached_whitelist = wl.stale;
  if (!wl.known) {
    report.warnings.emplace_back(
        "the whitelist is unknown: only guests AccountDB already has are updated, none created");
  }
  return view;
}

// The Proxmox read: a failed read is never an empty node. First, when due, what
// the token may do (logged and shown; it never fails the cycle), so that
// a guest agent call it may not make is explained before it is refused.
Result<GuestRead> SyncEngine::cycle_guests(CycleReport& report) {
  proxmox_.check_permissions();
  auto guests = proxmox_.read_guests();
  if (!guests) {
    return guests;
  }
  const auto& read = *guests;
  report.proxmox_read = true;
  report.proxmox_read_at = clock_.unix_now();
  report.node = read.node;
  report.guests = read.guests;
  report.stats.total_proxmox_vms = static_cast<std::int64_t>(read.guests.size());
  for (const auto& r : read.rejected) {
    report.warnings.push_back("Proxmox entry skipped: " + r);
  }
  if (!read.hint.empty()) {
    report.warnings.push_back(read.hint);
  }
  report.read_counts_for_missing = read.complete && read.source == GuestSource::node;
  report.read_incomplete_reason = read.incomplete_reason;
  if (read.source == GuestSource::node && !read.complete) {
    report.warnings.push_back("guests missing from this read are not counted as gone: " +
                              read.incomplete_reason);
  }
  // Said when it changes, not every cycle.
  if (read.source == GuestSource::node && read.incomplete_reason != last_incomplete_reason_) {
    if (read.complete) {
      log::info("read_complete", "the node's read shows every guest again: gone guests count");
    } else {
      log::warn(
          "read_incomplete",
          "guests missing from the node's read are not counted as gone: " + read.incomplete_reason,
          {{"reason", read.incomplete_reason}, {"guests", read.guests.size()}});
    }
    last_incomplete_reason_ = read.incomplete_reason;
  }
  return guests;
}

// What AccountDB has: list_vms. (The filter is part of the plan.)
Result<std::vector<AccountDbRow>> SyncEngine::cycle_rows(CycleReport& report) {
  auto rows = accountdb_.list_vms();
  if (!rows.ok() && rows.error().kind == ErrorKind::auth) {
    accountdb_down_ = true;
    last_connect_ok_.reset();
    report.accountdb_auth_failed = true;
  }
  return rows;
}

// The plan; a cluster lookup only when some guest is gone long enough.
Plan SyncEngine::cycle_plan(PlanInput in, CycleReport& report) {
  recall_handovers(in);
  auto plan = make_plan(in);
  if (!plan.handover_candidates.empty() && look_up_handovers(plan, in, report)) {
    plan = make_plan(in);
  }
  if (!plan.mark_candidates.empty() && look_up_candidates(plan.mark_candidates, in, report)) {
    plan = make_plan(in);
  }
  record_holds(plan, report);
  report.warnings.insert(report.warnings.end(), plan.warnings.begin(), plan.warnings.end());
  ledger_.planned(plan, clock_.unix_now());
  report.planned = plan.requests;
  report.stats.unchanged = plan.stats.unchanged;
  report.stats.filtered = plan.stats.filtered;
  report.stats.filtered_out = plan.stats.filtered_out;
  report.stats.total_vms_before_filter = plan.stats.total_vms_before_filter;
  report.stats.total_vms_after_filter = plan.stats.total_vms_after_filter;
  report.stats.online_vms = plan.stats.online_vms;
  return plan;
}

// Send (or, in a dry run, only say what would be sent).
void SyncEngine::deliver(const Plan& plan, CycleReport& report) {
  if (report.dry_run) {
    for (const auto& p : plan.requests) {
      (p.kind == RequestKind::create   ? report.stats.created
       : p.kind == RequestKind::update ? report.stats.updated
                                       : report.stats.marked_missing)++;
    }
    return;
  }
  memory_ = plan.memory;
  send(plan.requests, report);
  persist_memory();
}

// Report: the status and the one-line message of a cycle that ran.
void SyncEngine::conclude(CycleReport& report) {
  report.success = true;
  report.finished_at = clock_.unix_now();
  const auto& s = report.stats;
  report.message = std::string(report.dry_run ? "dry run: would send " : "synced: ") +
                   std::to_string(s.created) + " created, " + std::to_string(s.updated) +
                   " updated, " + std::to_string(s.marked_missing) + " marked missing, " +
                   std::to_string(s.unchanged) + " unchanged, " + std::to_string(s.filtered) +
                   " filtered";
  if (s.errors > 0) {
    report.status = Severity::warning;
    report.message +=
        "; " + std::to_string(s.errors) + " request(s) failed: " + report.errors.front();
  } else {
    report.status = report.warnings.empty() ? Severity::ok : Severity::warning;
    if (!report.warnings.empty()) {
      report.message += "; " + report.warnings.front();
    }
  }
}

CycleReport SyncEngine::run_cycle(bool dry_run) {
  std::lock_guard lock(mutex_);
  const auto snapshot = settings_.get();  // one snapshot for the whole cycle
  const auto& settings = *snapshot;
  CycleReport report;
  report.dry_run = dry_run;
  report.started_at = clock_.unix_now();
  const auto start = clock_.now();
  const auto adb_before = accountdb_.requests();
  const auto pve_before = proxmox_.requests();
  auto finish = [&](CycleReport r) {
    r.stats.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - start).count();
    r.stats.accountdb_requests = static_cast<std::int64_t>(accountdb_.requests() - adb_before);
    r.stats.proxmox_requests = static_cast<std::int64_t>(proxmox_.requests() - pve_before);
    return r;
  };

  const auto now = clock_.unix_now();
  if (auto connected = connect(report, settings, now); !connected) {
    return finish(fail(std::move(report), "AccountDB: " + connected.error().message));
  }
  const auto whitelist = cycle_whitelist(report, now);
  auto guests = cycle_guests(report);
  if (!guests) {
    return finish(fail(std::move(report), "Proxmox: " + guests.error().message));
  }
  auto rows = cycle_rows(report);
  if (!rows.ok()) {
    return finish(fail(std::move(report), "AccountDB: " + rows.error().message));
  }
  PlanInput in;
  in.guests = std::move(guests->guests);
  in.read_counts_for_missing = report.read_counts_for_missing;
  in.unreadable = guests->rejected_vmids;
  in.whitelist = whitelist;
  in.rows = std::move(rows.value());
  in.node_id = node_id_;
  in.memory = memory_;
  in.settings = plan_settings(settings);
  {
    std::lock_guard held_lock(held_mutex_);
    in.confirmed = confirmed_;
  }
  in.now = now;
  in.node = guests->node;
  if (gone_by_task_) {
    in.gone_by_task = gone_by_task_();
  }
  deliver(cycle_plan(std::move(in), report), report);
  report.accounts = ledger_.snapshot();
  conclude(report);
  return finish(std::move(report));
}

}  // namespace pha
