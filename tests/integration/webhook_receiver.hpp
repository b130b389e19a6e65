#pragma once
// A webhook receiver for the integration tests: POST /hook/s3cr3t-path on
// loopback, port 0, that records every call and answers 204.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace pha::test {

struct Call {
  std::map<std::string, std::string> headers;
  std::string body;
  nlohmann::json json;
};

// `hang` keeps every request unanswered until the receiver stops.
class Receiver {
 public:
  explicit Receiver(bool hang = false) : hang_(hang) {
    server_.Post("/hook/s3cr3t-path", [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock lock(mutex_);
      Call c;
      for (const auto& [k, v] : req.headers) {
        c.headers[k] = v;
      }
      c.body = req.body;
      c.json = nlohmann::json::parse(req.body, nullptr, false);
      calls_.push_back(std::move(c));
      cv_.notify_all();
      if (hang_) {
        cv_.wait_for(lock, std::chrono::seconds(60), [this] { return stopping_; });
      }
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    // Bound and listening already: a connection waits in the backlog until
    // the accept loop runs.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hook/s3cr3t-path";
  }

  std::vector<Call> calls(const std::string& event = "") const {
    std::lock_guard lock(mutex_);
    std::vector<Call> out;
    for (const auto& c : calls_) {
      if (event.empty() || (c.json.is_object() && c.json.value("event", "") == event)) {
        out.push_back(c);
      }
    }
    return out;
  }
  // Waits (bounded) for `n` calls of `event`.
  bool wait_for(const std::string& event, std::size_t n,
                std::chrono::seconds timeout = std::chrono::seconds(40)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      std::size_t k = 0;
      for (const auto& c : calls_) {
        k += c.json.is_object() && c.json.value("event", "") == event ? std::size_t{1} : 0;
      }
      return k >= n;
    });
  }

 private:
  bool hang_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  bool stopping_ = false;
};

}  // namespace pha::test
