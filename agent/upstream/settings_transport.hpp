#pragma once
// The transport of one upstream, built from the settings in force: a
// request after a reload goes out on a transport built from the new
// snapshot (its TLS verification, CA file read again, pins, timeouts), on
// new connections. A connection opened under one snapshot never carries a
// request sent under another, so a reload that turns verification on never
// lets a credential reach a peer that was not verified. Requests in flight
// at the reload finish on the transport they started on, which goes with
// the last of them. Thread-safe.

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/config/live_settings.hpp"
#include "agent/net/http.hpp"

namespace pha {

class SettingsTransport final : public HttpClient {
 public:
  using Build = std::function<std::unique_ptr<HttpClient>(const Settings&)>;

  // `settings` must outlive it; `build` makes a transport for one snapshot.
  SettingsTransport(const LiveSettings& settings, Build build);

  HttpOutcome send(const HttpRequest& request) override;
  // The transport in use and those still finishing requests; a transport
  // built later is cancelled from the start.
  void cancel() override;

  // How many transports it built (1 after construction).
  std::size_t builds() const;

 private:
  std::shared_ptr<HttpClient> current();

  const LiveSettings& settings_;
  const Build build_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Settings> built_from_;  // kept alive: its address names the snapshot
  std::shared_ptr<HttpClient> transport_;
  std::vector<std::weak_ptr<HttpClient>> retired_;  // replaced, maybe still in use
  std::size_t builds_ = 0;
  bool cancelled_ = false;
};

}  // namespace pha
