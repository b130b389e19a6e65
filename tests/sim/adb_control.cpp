#include "tests/sim/adb_control.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "tests/sim/adb_json.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;
using Request = httplib::Request;

// The endpoint a fault call is about: "endpoint" in the JSON body, else
// ?endpoint=N, else 0. 404 for an unknown one.
std::size_t endpoint_of(const AdbSim& sim, const Request& req, const json& body) {
  long long index = 0;
  if (body.is_object() && body.contains("endpoint") && !body["endpoint"].is_null()) {
    if (!body["endpoint"].is_number_integer()) {
      throw ControlError(400, "endpoint must be an endpoint index");
    }
    index = body["endpoint"].get<long long>();
  } else if (req.has_param("endpoint")) {
    const auto v = parse_int(req.get_param_value("endpoint"));
    if (!v) {
      throw ControlError(400, "endpoint must be an endpoint index");
    }
    index = *v;
  }
  if (index < 0 || static_cast<std::size_t>(index) >= sim.endpoints()) {
    throw ControlError(404, "no such endpoint: " + std::to_string(index));
  }
  return static_cast<std::size_t>(index);
}

const json kOk = {{"ok", true}};

}  // namespace

AdbControlApi::AdbControlApi(AdbSim& sim) : sim_(sim) {
  server_.get("/control/state", [this](const Request&) { return json::parse(sim_.state_json()); });
  add_row_routes();
  add_count_routes();
  add_fault_routes();
  add_node_routes();
  add_setting_routes();
}

void AdbControlApi::add_row_routes() {
  server_.get("/control/rows", [this](const Request&) {
    json rows = json::array();
    for (const auto& r : sim_.rows()) {
      rows.push_back(row_json(r));
    }
    return json{{"rows", rows}, {"count", rows.size()}};
  });
  server_.post("/control/rows", [this](const Request& req) {
    const auto nodes = sim_.nodes();
    const auto r = new_row_from_json(control_object(req), nodes.empty() ? 0 : nodes.front().id);
    try {
      return row_json(sim_.add_row(r));
    } catch (const std::invalid_argument& e) {
      throw ControlError(400, e.what());
    }
  });
  server_.put(R"(/control/rows/(-?\d+))", [this](const Request& req) {
    const auto id = control_id(req.matches[1]);
    const auto j = control_object(req);
    if (!sim_.edit_row(id, [&](AdbRow& r) { apply_row_json(j, r); })) {
      throw ControlError(404, "no such row: " + std::to_string(id));
    }
    return row_json(*sim_.row(id));
  });
  server_.del(R"(/control/rows/(-?\d+))", [this](const Request& req) {
    const auto id = control_id(req.matches[1]);
    if (!sim_.delete_row(id)) {
      throw ControlError(404, "no such row: " + std::to_string(id));
    }
    return kOk;
  });
}

void AdbControlApi::add_count_routes() {
  server_.get("/control/counts", [this](const Request&) {
    json per_endpoint = json::array();
    for (std::size_t i = 0, n = sim_.endpoints(); i < n; ++i) {
      per_endpoint.push_back(sim_.total_requests(i));
    }
    return json{{"total", sim_.total_requests()},
                {"counts", sim_.counts()},
                {"paths", sim_.path_counts()},
                {"endpoints", per_endpoint}};
  });
  server_.post("/control/counts/reset", [this](const Request&) {
    sim_.reset_counts();
    return kOk;
  });
  server_.get("/control/requests", [this](const Request&) {
    json out = json::array();
    for (const auto& r : sim_.requests()) {
      out.push_back(request_json(r));
    }
    return json{{"total", sim_.total_requests()}, {"requests", out}};
  });
}

void AdbControlApi::add_fault_routes() {
  server_.post("/control/fault", [this](const Request& req) {
    const auto j = control_object(req);
    sim_.set_fault(fault_from_json(j), endpoint_of(sim_, req, j));
    return kOk;
  });
  server_.get("/control/fault", [this](const Request& req) {
    return fault_json(sim_.fault(endpoint_of(sim_, req, json())));
  });
  server_.del("/control/fault", [this](const Request& req) {
    sim_.clear_fault(endpoint_of(sim_, req, control_body(req)));
    return kOk;
  });
}

void AdbControlApi::add_node_routes() {
  server_.get("/control/nodes", [this](const Request&) {
    json out = json::array();
    for (const auto& n : sim_.nodes()) {
      out.push_back(node_json(n));
    }
    return out;
  });
  server_.post("/control/nodes", [this](const Request& req) {
    const auto n = node_from_json(control_object(req));
    try {
      sim_.add_node(n);
    } catch (const std::invalid_argument& e) {
      throw ControlError(400, e.what());
    }
    return node_json(*sim_.node(n.id));
  });
  server_.put(R"(/control/nodes/(\d+)/whitelist)", [this](const Request& req) {
    const auto id = control_id(req.matches[1]);
    const auto j = control_body(req);
    if (!j.is_array()) {
      throw ControlError(400, "the body must be a JSON array of VMIDs");
    }
    if (!sim_.set_whitelist(id, j.get<std::vector<long long>>())) {
      throw ControlError(404, "no such node: " + std::to_string(id));
    }
    return json{{"ok", true}, {"whitelist", j}};
  });
  server_.post(R"(/control/nodes/(\d+)/rotate-key)", [this](const Request& req) {
    const auto id = control_id(req.matches[1]);
    const auto j = control_object(req);
    try {
      return json{{"api_key", sim_.rotate_key(id, j.value("api_key", std::string()))}};
    } catch (const std::out_of_range& e) {
      throw ControlError(404, e.what());
    }
  });
}

void AdbControlApi::add_setting_routes() {
  server_.post("/control/settings", [this](const Request& req) {
    const auto j = control_object(req);
    if (j.contains("whitelist_endpoint")) {
      sim_.set_whitelist_endpoint(j["whitelist_endpoint"].get<bool>());
    }
    if (j.contains("reject_float_disk")) {
      sim_.set_reject_float_disk(j["reject_float_disk"].get<bool>());
    }
    if (j.contains("rate_limit") || j.contains("rate_window")) {
      const auto now = sim_.settings();
      sim_.set_rate_limit(j.value("rate_limit", now.rate_limit),
                          std::chrono::seconds(j.value("rate_window", now.rate_window.count())));
    }
    return settings_json(sim_.settings());
  });
  server_.post("/control/rate-limits/reset", [this](const Request&) {
    sim_.reset_rate_limits();
    return kOk;
  });
  server_.post("/control/clock/advance", [this](const Request& req) {
    const double seconds = control_object(req).value("seconds", 0.0);
    sim_.advance(
        std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds)));
    return kOk;
  });
}

}  // namespace pha::sim
