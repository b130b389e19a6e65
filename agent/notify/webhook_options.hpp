#pragma once
// The webhooks' options and their libcurl client (the system's trust store),
// from the settings.

#include <memory>

#include "agent/config/settings.hpp"
#include "agent/net/http.hpp"
#include "agent/notify/webhook.hpp"

namespace pha {

WebhookOptions webhook_options(const Settings& s);
std::unique_ptr<HttpClient> webhook_http_client(const Settings& s);

}  // namespace pha
