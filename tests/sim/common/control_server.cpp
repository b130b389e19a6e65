#include "tests/sim/common/control_server.hpp"

#include <chrono>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;

httplib::Server::Handler answering(ControlServer::Handler handler) {
  return [h = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    try {
      res.set_content(h(req).dump(), "application/json");
    } catch (const ControlError& e) {
      res.status = e.status;
      res.set_content(json{{"error", e.what()}}.dump(), "application/json");
    } catch (const std::exception& e) {
      res.status = 400;
      res.set_content(json{{"error", e.what()}}.dump(), "application/json");
    }
  };
}

}  // namespace

json control_body(const httplib::Request& req) {
  if (req.body.empty()) {
    return json::object();
  }
  auto j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) {
    throw ControlError(400, "the body must be JSON");
  }
  return j;
}

json control_object(const httplib::Request& req) {
  auto j = control_body(req);
  if (!j.is_object()) {
    throw ControlError(400, "the body must be a JSON object");
  }
  return j;
}

long long control_id(const std::string& text) {
  const auto v = parse_int(text);
  if (!v) {
    throw ControlError(400, "not an id: " + text);
  }
  return *v;
}

ControlServer::ControlServer() : server_(std::make_unique<httplib::Server>()) {}

ControlServer::~ControlServer() {
  stop();
}

void ControlServer::get(const std::string& pattern, Handler handler) {
  server_->Get(pattern, answering(std::move(handler)));
}

void ControlServer::post(const std::string& pattern, Handler handler) {
  server_->Post(pattern, answering(std::move(handler)));
}

void ControlServer::put(const std::string& pattern, Handler handler) {
  server_->Put(pattern, answering(std::move(handler)));
}

void ControlServer::del(const std::string& pattern, Handler handler) {
  server_->Delete(pattern, answering(std::move(handler)));
}

void ControlServer::start() {
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) {
    throw std::runtime_error("the control API cannot listen on 127.0.0.1");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running() && std::chrono::steady_clock::now() < end) {
    std::this_thread::yield();
  }
}

void ControlServer::stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace pha::sim
