#include "agent/config/live_settings.hpp"

namespace pha {

LiveSettings::LiveSettings(LoadedConfig config)
    : current_(std::make_shared<const LoadedConfig>(std::move(config))) {}

LiveSettings::LiveSettings(Settings settings) : LiveSettings(LoadedConfig{std::move(settings)}) {}

std::shared_ptr<const LoadedConfig> LiveSettings::config() const {
  std::lock_guard lock(mutex_);
  return current_;
}

std::shared_ptr<const Settings> LiveSettings::get() const {
  auto config = this->config();
  const auto* settings = &config->settings;
  return {std::move(config), settings};  // shares the snapshot's lifetime
}

void LiveSettings::replace(LoadedConfig config) {
  {
    std::lock_guard lock(mutex_);
    current_ = std::make_shared<const LoadedConfig>(std::move(config));
  }
  std::lock_guard lock(listeners_mutex_);
  for (const auto& [id, listener] : listeners_) {
    listener();
  }
}

LiveSettings::Subscription LiveSettings::on_replace(std::function<void()> listener) const {
  std::lock_guard lock(listeners_mutex_);
  listeners_.emplace_back(++next_id_, std::move(listener));
  return {*this, next_id_};
}

LiveSettings::Subscription::~Subscription() {
  std::lock_guard lock(owner_->listeners_mutex_);
  std::erase_if(owner_->listeners_, [this](const auto& l) { return l.first == id_; });
}

}  // namespace pha
