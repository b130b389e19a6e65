#include "tests/sim/adb_store.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

const Clock& system_clock_instance() {
  static const SystemClock clock;
  return clock;
}

std::string iso_from_us(long long us) {
  const long long secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  const long long frac = us - secs * 1000000;
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

// The server's keys: 43 characters of URL-safe base64.
std::string generated_key(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string key;
  for (int i = 0; i < 43; ++i) {
    key += kAlphabet[rng() % 64];
  }
  return key;
}

// PostgreSQL's NUMERIC(n,1) of the value psycopg2 sends (Python's repr):
// decimal rounding, half away from zero. std::round(v * 10) would turn 12.35
// into 12.3 because 123.5 is not exact in binary.
double round_to_tenth(double v) {
  if (!std::isfinite(v) || std::fabs(v) >= 1e15) {
    return std::round(v * 10) / 10;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  std::string s(buf, r.ptr);
  const bool negative = !s.empty() && s.front() == '-';
  if (negative) {
    s.erase(0, 1);
  }
  const auto dot = s.find('.');
  if (dot == std::string::npos) {
    return v;
  }
  long long scaled = std::stoll(s.substr(0, dot)) * 10;
  if (dot + 1 < s.size()) {
    scaled += s[dot + 1] - '0';
  }
  if (dot + 2 < s.size() && s[dot + 2] >= '5') {
    ++scaled;
  }
  const double rounded = static_cast<double>(scaled) / 10.0;
  return negative ? -rounded : rounded;
}

// COALESCE(sent, stored) for every nullable field; vmid, name and status
// are never null after validation (a missing status is "stopped").
void update_row(AdbRow& r, const AdbVmFields& vm) {
  r.vmid = vm.vmid;
  r.name = vm.name;
  r.status = vm.status;
  const auto keep = [](auto& stored, const auto& sent) {
    if (sent) {
      stored = sent;
    }
  };
  keep(r.cpu_cores, vm.cpu_cores);
  if (vm.cpu_usage_percent) {
    r.cpu_usage_percent = round_to_tenth(*vm.cpu_usage_percent);
  }
  keep(r.memory_mb, vm.memory_mb);
  keep(r.disk_gb, vm.disk_gb);
  keep(r.ip_address, vm.ip_address);
  keep(r.template_id, vm.template_id);
  keep(r.notes, vm.notes);
}

}  // namespace

AdbStore::AdbStore(AdbSettings settings, const Clock* clock)
    : clock_(clock != nullptr ? clock : &system_clock_instance()),
      settings_(std::move(settings)),
      rng_(std::random_device{}()) {}

void AdbStore::advance(Clock::Duration d) {
  std::lock_guard lock(mutex_);
  offset_ += d;
}

Clock::TimePoint AdbStore::now() const {
  std::lock_guard lock(mutex_);
  return clock_->now() + offset_;
}

AdbSettings AdbStore::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

void AdbStore::set_settings(const AdbSettings& settings) {
  std::lock_guard lock(mutex_);
  settings_ = settings;
}

std::string AdbStore::stamp_locked() {
  const auto wall =
      clock_->wall_now() + std::chrono::duration_cast<Clock::WallTime::duration>(offset_);
  long long us =
      std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
  // Writes to a real database never share a timestamp, even when a fake
  // clock stands still: the recording's created_at and updated_at differ.
  us = std::max(us, last_stamp_us_ + 1);
  last_stamp_us_ = us;
  return iso_from_us(us);
}

std::string AdbStore::request_id() {
  std::lock_guard lock(mutex_);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng_()));
  return buf;
}

// --- nodes ---

void AdbStore::add_node(AdbNode n) {
  if (n.id <= 0) {
    throw std::invalid_argument("a node id is a positive integer");
  }
  std::lock_guard lock(mutex_);
  if (nodes_.count(n.id) != 0) {
    throw std::invalid_argument("node " + std::to_string(n.id) + " exists");
  }
  if (n.name.empty()) {
    n.name = "pha-node-" + std::to_string(n.id);
  }
  if (n.api_key.empty()) {
    n.api_key = generated_key(rng_);
  }
  if (n.created_at.empty()) {
    n.created_at = stamp_locked();
  }
  if (n.updated_at.empty()) {
    n.updated_at = n.created_at;
  }
  const auto id = n.id;
  nodes_.emplace(id, std::move(n));
}

std::optional<AdbNode> AdbStore::node(long long id) const {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<AdbNode> AdbStore::nodes() const {
  std::lock_guard lock(mutex_);
  std::vector<AdbNode> out;
  for (const auto& [id, n] : nodes_) {
    out.push_back(n);
  }
  return out;
}

bool AdbStore::set_whitelist(long long node_id, std::vector<long long> vmids) {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return false;
  }
  it->second.whitelist = std::move(vmids);
  it->second.updated_at = stamp_locked();
  return true;
}

std::string AdbStore::rotate_key(long long node_id, std::string new_key) {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    throw std::out_of_range("no such node: " + std::to_string(node_id));
  }
  it->second.api_key = new_key.empty() ? generated_key(rng_) : std::move(new_key);
  return it->second.api_key;
}

AdbKeyCheck AdbStore::check_key(long long node_id, const std::string& key) const {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return AdbKeyCheck::no_such_node;
  }
  return !key.empty() && constant_time_equals(it->second.api_key, key) ? AdbKeyCheck::ok
                                                                       : AdbKeyCheck::wrong_key;
}

std::optional<AdbNode> AdbStore::mark_connected(long long node_id) {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return std::nullopt;
  }
  auto before = it->second;
  it->second.status = "connected";
  it->second.last_seen = stamp_locked();
  return before;
}

// --- rows ---

AdbRow AdbStore::add_row(AdbRow r) {
  std::lock_guard lock(mutex_);
  if (r.id == 0) {
    r.id = next_row_id_;
  }
  if (rows_.count(r.id) != 0) {
    throw std::invalid_argument("row " + std::to_string(r.id) + " exists");
  }
  next_row_id_ = std::max(next_row_id_, r.id + 1);
  if (r.created_at.empty()) {
    r.created_at = stamp_locked();
  }
  if (r.updated_at.empty()) {
    r.updated_at = r.created_at;
  }
  row_writes_[r.id] = ++write_seq_;
  rows_[r.id] = r;
  return r;
}

bool AdbStore::edit_row(long long id, const std::function<void(AdbRow&)>& edit) {
  std::lock_guard lock(mutex_);
  const auto it = rows_.find(id);
  if (it == rows_.end()) {
    return false;
  }
  const auto before = it->second.updated_at;
  edit(it->second);
  it->second.id = id;
  if (it->second.updated_at == before) {
    it->second.updated_at = stamp_locked();
  }
  row_writes_[id] = ++write_seq_;
  return true;
}

bool AdbStore::delete_row(long long id) {
  std::lock_guard lock(mutex_);
  row_writes_.erase(id);
  return rows_.erase(id) != 0;
}

std::optional<AdbRow> AdbStore::row(long long id) const {
  std::lock_guard lock(mutex_);
  const auto it = rows_.find(id);
  if (it == rows_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<AdbRow> AdbStore::rows() const {
  std::lock_guard lock(mutex_);
  std::vector<AdbRow> out;
  for (const auto& [id, r] : rows_) {
    out.push_back(r);
  }
  return out;
}

std::vector<AdbRow> AdbStore::rows_of_node(long long node_id) const {
  std::lock_guard lock(mutex_);
  // list_vms has no ORDER BY: PostgreSQL returns a heap scan, where a row
  // that was just updated tends to come last. The order of the last write
  // stands in for it.
  std::vector<std::pair<unsigned long long, const AdbRow*>> picked;
  for (const auto& [id, r] : rows_) {
    if (r.proxmox_node_id == node_id) {
      picked.emplace_back(row_writes_.at(id), &r);
    }
  }
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<AdbRow> out;
  for (const auto& [seq, r] : picked) {
    out.push_back(*r);
  }
  return out;
}

AdbRow AdbStore::put_vm(long long id, long long node_id, const AdbVmFields& vm) {
  std::lock_guard lock(mutex_);
  auto it = rows_.find(id);
  if (it == rows_.end()) {
    // No such id: a new row with the next serial (a PUT to -vmid is a create).
    AdbRow r;
    r.id = next_row_id_++;
    r.owner_id = settings_.created_row_owner_id;
    r.created_at = stamp_locked();
    r.updated_at = r.created_at;
    it = rows_.emplace(r.id, std::move(r)).first;
  } else {
    it->second.updated_at = stamp_locked();
  }
  update_row(it->second, vm);
  it->second.proxmox_node_id = node_id;  // the row moves to the node of the request
  row_writes_[it->first] = ++write_seq_;
  return it->second;
}

}  // namespace pha::sim
