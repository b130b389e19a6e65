#include "agent/upstream/settings_transport.hpp"

namespace pha {

SettingsTransport::SettingsTransport(const LiveSettings& settings, Build build)
    : settings_(settings), build_(std::move(build)) {
  built_from_ = settings_.get();
  transport_ = build_(*built_from_);
  builds_ = 1;
}

std::shared_ptr<HttpClient> SettingsTransport::current() {
  std::lock_guard lock(mutex_);
  // Read under the lock, so that the transport only ever moves to a newer snapshot.
  auto snapshot = settings_.get();
  if (snapshot != built_from_) {
    // A reload: the old transport serves only what it already sends.
    std::erase_if(retired_, [](const auto& t) { return t.expired(); });
    retired_.push_back(transport_);
    transport_ = build_(*snapshot);
    built_from_ = std::move(snapshot);
    ++builds_;
    if (cancelled_) {
      transport_->cancel();
    }
  }
  return transport_;
}

HttpOutcome SettingsTransport::send(const HttpRequest& request) {
  const auto transport = current();  // held until the request ends
  return transport->send(request);
}

void SettingsTransport::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
  transport_->cancel();
  for (const auto& retired : retired_) {
    if (const auto t = retired.lock()) {
      t->cancel();
    }
  }
}

std::size_t SettingsTransport::builds() const {
  std::lock_guard lock(mutex_);
  return builds_;
}

}  // namespace pha
