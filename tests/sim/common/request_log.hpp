#pragma once
// What a simulated server received: how many requests under each key, and
// the first kRequestLogLimit requests in arrival order. Thread-safe.

#include <cstddef>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pha::sim {

constexpr std::size_t kRequestLogLimit = 100000;

// Request counts in one or more tallies: each request counts once in the
// total and under one key in every tally (say its path pattern in tally 0
// and its exact path in tally 1).
class RequestTally {
 public:
  explicit RequestTally(std::size_t tallies = 1) : by_key_(tallies) {}

  // keys[i] goes to tally i.
  void add(std::initializer_list<std::string> keys) {
    std::lock_guard lock(mutex_);
    std::size_t i = 0;
    for (const auto& key : keys) {
      ++by_key_.at(i++)[key];
    }
    ++total_;
  }
  std::map<std::string, std::size_t> counts(std::size_t tally = 0) const {
    std::lock_guard lock(mutex_);
    return by_key_.at(tally);
  }
  std::size_t count(const std::string& key, std::size_t tally = 0) const {
    std::lock_guard lock(mutex_);
    const auto& counts = by_key_.at(tally);
    const auto it = counts.find(key);
    return it == counts.end() ? 0 : it->second;
  }
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    for (auto& counts : by_key_) {
      counts.clear();
    }
    total_ = 0;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::map<std::string, std::size_t>> by_key_;
  std::size_t total_ = 0;
};

template <typename Entry>
class RequestLog {
 public:
  explicit RequestLog(std::size_t tallies = 1) : tally_(tallies) {}

  void record(Entry entry, std::initializer_list<std::string> keys) {
    tally_.add(keys);
    std::lock_guard lock(mutex_);
    if (entries_.size() < kRequestLogLimit) {
      entries_.push_back(std::move(entry));
    }
  }
  const RequestTally& tally() const { return tally_; }
  std::vector<Entry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  void clear() {
    tally_.clear();
    std::lock_guard lock(mutex_);
    entries_.clear();
  }

 private:
  RequestTally tally_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace pha::sim
