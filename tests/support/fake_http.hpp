#pragma once
// A scripted HTTP peer for logic tests: answers by "METHOD path" (the URL's
// path without scheme, host and query), records every request.

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/net/http.hpp"

namespace pha::test {

inline HttpOutcome http_answer(int status, std::string body, std::string reason = "") {
  HttpOutcome o;
  o.status = status;
  o.kind = classify_status(status);
  o.body = std::move(body);
  o.reason = std::move(reason);
  o.maybe_sent = true;
  return o;
}

inline HttpOutcome http_failure(FailureKind kind, std::string error) {
  HttpOutcome o;
  o.kind = kind;
  o.error = std::move(error);
  return o;
}

class FakeHttp {
 public:
  using Handler = std::function<HttpOutcome(const HttpRequest&)>;

  // The path part of a URL: "https://h:8006/api2/json/x?y=1" -> "/api2/json/x".
  static std::string path_of(const std::string& url) {
    auto start = url.find("://");
    start = url.find('/', start == std::string::npos ? 0 : start + 3);
    if (start == std::string::npos) {
      return "/";
    }
    return url.substr(start, url.find('?', start) - start);
  }

  // Answers every request to "METHOD path" with `handler` (the last set wins).
  void on(const std::string& method_path, Handler handler) {
    std::lock_guard lock(mutex_);
    handlers_[method_path] = std::move(handler);
  }
  void on(const std::string& method_path, HttpOutcome answer) {
    on(method_path, [answer](const HttpRequest&) { return answer; });
  }

  HttpOutcome send(const HttpRequest& req) {
    Handler h;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
      const auto it = handlers_.find(req.method + " " + path_of(req.url));
      if (it == handlers_.end()) {
        return http_answer(501, "{\"data\":null}",
                           "Method '" + req.method + " " + path_of(req.url) + "' not implemented");
      }
      h = it->second;
    }
    return h(req);
  }

  std::vector<HttpRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t count(const std::string& method_path) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : requests_) {
      if ((r.method + " " + path_of(r.url)) == method_path) {
        ++n;
      }
    }
    return n;
  }
  void clear_requests() {
    std::lock_guard lock(mutex_);
    requests_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Handler> handlers_;
  std::vector<HttpRequest> requests_;
};

}  // namespace pha::test
