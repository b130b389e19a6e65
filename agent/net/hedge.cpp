#include "agent/net/hedge.hpp"

#include <algorithm>
#include <cctype>

#include "agent/core/url.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

std::string request_kind(const HttpRequest& request) {
  std::string path = request.url;
  if (const auto scheme = path.find("://"); scheme != std::string::npos) {
    const auto slash = path.find('/', scheme + 3);
    path = slash == std::string::npos ? "/" : path.substr(slash);
  }
  path = path.substr(0, path.find('?'));
  // /nodes/{node}/..., and every number: the same kind of request.
  std::string out = request.method + " ";
  std::size_t i = 0;
  bool after_nodes = false;
  while (i < path.size()) {
    const auto next = path.find('/', i + 1);
    const auto segment = path.substr(i, next == std::string::npos ? std::string::npos : next - i);
    const bool number =
        segment.size() > 1 && std::all_of(segment.begin() + 1, segment.end(), [](unsigned char c) {
          return std::isdigit(c) != 0 || c == '-';
        });
    out += (number || after_nodes) ? std::string("/{}") : segment;
    after_nodes = segment == "/nodes";
    if (next == std::string::npos) {
      break;
    }
    i = next;
  }
  return out;
}

HttpOutcome HedgeObserver::send(const HttpRequest& request) {
  auto o = inner_->send(request);
  if (o.status != 0 && !abandoned()) {
    policy_.answered(request.url, request_kind(request), o.elapsed);
  }
  return o;
}

HedgePolicy::HedgePolicy(Live<HedgeSettings> settings) : settings_(std::move(settings)) {}

std::optional<std::chrono::milliseconds> HedgePolicy::delay(const std::string& target,
                                                            const std::string& kind) const {
  const auto s = settings_();
  if (s.budget_percent <= 0) {
    return std::nullopt;
  }
  std::vector<std::chrono::milliseconds> answers;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = windows_.find(url_origin(target) + " " + kind); it != windows_.end()) {
      answers = it->second.answers;
    }
  }
  if (answers.size() < kMinAnswers) {
    return s.delay_max;
  }
  // The 99th percentile: the answer that only 1 in 100 is slower than.
  const auto rank = (answers.size() * 99 + 99) / 100 - 1;
  std::nth_element(answers.begin(), answers.begin() + static_cast<std::ptrdiff_t>(rank),
                   answers.end());
  const auto p99 = answers[rank];
  if (p99 > s.delay_max) {
    std::unique_lock lock(mutex_);
    if (capped_.insert(url_origin(target) + " " + kind).second) {
      lock.unlock();
      log::warn("hedge_delay_capped",
                "answers of this kind take longer than HEDGE_DELAY_MAX at the 99th percentile: "
                "each one that slow is hedged, and its target loses its place as if it had timed "
                "out; raise HEDGE_DELAY_MAX above the p99 if the target is only slow",
                {{"target", url_origin(target)},
                 {"request", kind},
                 {"p99_ms", p99.count()},
                 {"hedge_delay_max_ms", s.delay_max.count()}});
    }
  }
  return std::clamp(p99, s.delay_min, std::max(s.delay_min, s.delay_max));
}

void HedgePolicy::answered(const std::string& target, const std::string& kind,
                           std::chrono::milliseconds elapsed) {
  std::lock_guard lock(mutex_);
  auto& w = windows_[url_origin(target) + " " + kind];
  if (w.answers.size() < kWindow) {
    w.answers.push_back(elapsed);
  } else {
    w.answers[w.next] = elapsed;
  }
  w.next = (w.next + 1) % kWindow;
}

void HedgePolicy::requested() {
  const auto share = std::max(0.0, settings_().budget_percent) / 100.0;
  std::lock_guard lock(mutex_);
  saved_ = std::min(kSavedHedges, saved_ + share);
}

bool HedgePolicy::take() {
  std::lock_guard lock(mutex_);
  if (saved_ < 1) {
    ++stats_.refused;
    return false;
  }
  saved_ -= 1;
  ++stats_.sent;
  return true;
}

void HedgePolicy::won() {
  std::lock_guard lock(mutex_);
  ++stats_.won;
}

HedgeStats HedgePolicy::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

Flights::~Flights() {
  std::vector<Flight> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(flights_);
  }
  for (auto& f : all) {
    f.thread.join();
  }
}

void Flights::reap_locked() {
  std::erase_if(flights_, [](Flight& f) {
    if (!f.done->load(std::memory_order_acquire)) {
      return false;
    }
    f.thread.join();
    return true;
  });
}

void Flights::launch(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(mutex_);
  reap_locked();
  flights_.push_back({std::thread([work = std::move(work), done] {
                        work();
                        done->store(true, std::memory_order_release);
                      }),
                      done});
}

}  // namespace pha
