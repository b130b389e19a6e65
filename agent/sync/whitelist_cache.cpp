#include "agent/sync/whitelist_cache.hpp"

#include "agent/platform/files.hpp"

namespace pha {

WhitelistCache::WhitelistCache(Live<std::int64_t> ttl_seconds, Live<std::int64_t> max_stale_seconds,
                               std::string state_file, std::int64_t node_id)
    : ttl_(std::move(ttl_seconds)),
      max_stale_(std::move(max_stale_seconds)),
      state_file_(std::move(state_file)),
      node_id_(node_id) {}

std::string WhitelistCache::load() {
  if (state_file_.empty()) {
    return "";
  }
  auto text = read_text_file(state_file_, 16 << 20);
  if (!text) {
    return text.error().kind == ErrorKind::not_found
               ? ""
               : "cannot read " + state_file_ + ": " + text.error().message;
  }
  const auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("vmids") ||
      !doc["vmids"].is_array() || !doc.contains("fetched_at") ||
      !doc["fetched_at"].is_number_integer()) {
    return state_file_ + " is not a whitelist state file; ignored";
  }
  if (doc.value("node_id", std::int64_t{0}) != node_id_) {
    return state_file_ + " was written for another node id; ignored";
  }
  WhitelistCopy copy;
  for (const auto& v : doc["vmids"]) {
    if (!v.is_number_integer()) {
      return state_file_ + " holds a value that is not a VMID; ignored";
    }
    copy.vmids.insert(v.get<std::int64_t>());
  }
  copy.fetched_at = doc["fetched_at"].get<std::int64_t>();
  copy.source = doc.value("source", std::string("accountdb"));
  copy_ = std::move(copy);
  from_state_file_ = true;
  // A copy from disk is not fresh news: fetch at once, and use it only as the stale fallback.
  last_fetch_failed_ = true;
  return "loaded " + std::to_string(copy_->vmids.size()) + " whitelisted VMIDs from " + state_file_;
}

bool WhitelistCache::needs_fetch(std::int64_t now) const {
  return !copy_ || from_state_file_ || last_fetch_failed_ || now - copy_->fetched_at >= ttl_();
}

std::optional<std::string> WhitelistCache::store(std::set<std::int64_t> vmids, std::string source,
                                                 std::int64_t now) {
  copy_ = WhitelistCopy{std::move(vmids), now, std::move(source)};
  from_state_file_ = false;
  last_fetch_failed_ = false;
  if (state_file_.empty()) {
    return std::nullopt;
  }
  const nlohmann::json doc = {{"node_id", node_id_},
                              {"fetched_at", copy_->fetched_at},
                              {"source", copy_->source},
                              {"vmids", copy_->vmids}};
  auto written = write_file_atomic(state_file_, doc.dump() + "\n");
  if (!written) {
    return written.error().message;
  }
  return std::nullopt;
}

void WhitelistCache::fetch_failed() {
  last_fetch_failed_ = true;
}

bool WhitelistCache::usable(std::int64_t now) const {
  if (!copy_) {
    return false;
  }
  const auto age = now - copy_->fetched_at;
  if (!last_fetch_failed_ && !from_state_file_) {
    return true;  // fresh enough by construction: a fetch is made when the TTL runs out
  }
  return age <= max_stale_();
}

WhitelistView WhitelistCache::view(std::int64_t now) const {
  if (!usable(now)) {
    return WhitelistView{false, {}};
  }
  return WhitelistView{true, copy_->vmids};
}

WhitelistStatus WhitelistCache::status(std::int64_t now) const {
  WhitelistStatus s;
  if (copy_) {
    s.last_updated = copy_->fetched_at;
  }
  if (!usable(now)) {
    return s;
  }
  s.known = true;
  s.stale = last_fetch_failed_ || from_state_file_;
  s.count = copy_->vmids.size();
  s.enabled = !copy_->vmids.empty();
  s.source = from_state_file_ ? "state-file" : copy_->source;
  return s;
}

}  // namespace pha
