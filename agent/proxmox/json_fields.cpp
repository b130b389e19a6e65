#include "agent/proxmox/json_fields.hpp"

#include <cmath>

#include "agent/core/text.hpp"

namespace pha::pve_json {

namespace {

constexpr std::size_t kMaxShown = 80;

}  // namespace

using nlohmann::json;

std::string shown(const json& v) {
  auto s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > kMaxShown ? s.substr(0, kMaxShown) + "..." : s;
}

Result<json> envelope(std::string_view body) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) {
    return Error{ErrorKind::bad_reply, "the body is not JSON"};
  }
  if (!doc.is_object() || !doc.contains("data")) {
    return Error{ErrorKind::bad_reply, "the body has no \"data\" member"};
  }
  return std::move(doc["data"]);
}

Result<std::optional<std::int64_t>> int_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::int64_t>{};
  }
  if (it->is_number_integer()) {
    return std::optional<std::int64_t>{it->get<std::int64_t>()};
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      return std::optional<std::int64_t>{static_cast<std::int64_t>(d)};
    }
  } else if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty()) {
      return std::optional<std::int64_t>{};
    }
    if (auto v = parse_int(s)) {
      return std::optional<std::int64_t>{static_cast<std::int64_t>(*v)};
    }
  }
  return Error{ErrorKind::bad_reply,
               std::string("\"") + key + "\" is not an integer: " + shown(*it)};
}

Result<std::optional<double>> number_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<double>{};
  }
  if (it->is_number()) {
    return std::optional<double>{it->get<double>()};
  }
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty()) {
      return std::optional<double>{};
    }
    if (auto v = parse_decimal(s)) {
      return std::optional<double>{*v};
    }
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not a number: " + shown(*it)};
}

Result<std::optional<std::string>> string_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::string>{};
  }
  if (it->is_string()) {
    return std::optional<std::string>{it->get<std::string>()};
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not a string: " + shown(*it)};
}

Result<bool> flag_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return false;
  }
  if (it->is_boolean()) {
    return it->get<bool>();
  }
  auto v = int_field(obj, key);
  if (!v) {
    return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not 0 or 1: " + shown(*it)};
  }
  if (!v->has_value()) {
    return false;
  }
  if (**v == 0 || **v == 1) {
    return **v == 1;
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not 0 or 1: " + shown(*it)};
}

Result<json> data_array(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data;
  }
  if (!data->is_array()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not a list"};
  }
  return data;
}

}  // namespace pha::pve_json
