#include "tests/sim/adb_validation.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kRequired = "field required";
constexpr const char* kNone = "none is not an allowed value";
constexpr const char* kNotInt = "value is not a valid integer";
constexpr const char* kNotFloat = "value is not a valid float";
constexpr const char* kNotStr = "str type expected";
constexpr const char* kNotDict = "value is not a valid dict";
constexpr const char* kFraction =
    "Input should be a valid integer, got a number with a fractional part";

void add_error(ojson& errors, const std::string& field, const std::string& message) {
  if (!errors.contains(field)) {
    errors[field] = ojson::array();
  }
  errors[field].push_back(message);
}

// Python's repr() of a float, as str() of a number gives it.
std::string py_float(double v) {
  char buf[64];
  const auto r = std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e16
                     ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 1)
                     : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::size_t code_points(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// Python's json error message, near enough: "Expecting value: line 1 column 1 (char 0)".
std::pair<std::string, std::string> json_error(const std::string& text, std::size_t byte) {
  const std::size_t pos = byte > 0 ? std::min(byte - 1, text.size()) : 0;
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {std::to_string(pos), "Expecting value: line " + std::to_string(line) + " column " +
                                   std::to_string(column) + " (char " + std::to_string(pos) + ")"};
}

bool is_json_type(const std::string& content_type) {
  if (content_type.empty()) {
    return true;
  }
  const auto type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
  if (!type.starts_with("application/")) {
    return false;
  }
  const auto sub = type.substr(12);
  return sub == "json" || sub.ends_with("+json");
}

// The fields of a JSON object, read the way pydantic v1 coerces them.
class FieldReader {
 public:
  FieldReader(const json& body, ojson& errors, bool reject_fraction)
      : body_(body), errors_(errors), reject_fraction_(reject_fraction) {}

  // Optional[int] (or int when `required`).
  std::optional<long long> integer(const char* key, bool required = false,
                                   bool fraction_rejected = false) {
    if (!present(key, required, true)) {
      return std::nullopt;
    }
    const auto& v = body_[key];
    if (v.is_boolean()) {
      return v.get<bool>() ? 1 : 0;
    }
    if (v.is_number_unsigned()) {
      const auto u = v.get<unsigned long long>();
      if (u <= static_cast<unsigned long long>(std::numeric_limits<long long>::max())) {
        return static_cast<long long>(u);
      }
    } else if (v.is_number_integer()) {
      return v.get<long long>();
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      if (fraction_rejected && reject_fraction_ && d != std::trunc(d)) {
        add_error(errors_, key, kFraction);
        return std::nullopt;
      }
      if (std::isfinite(d) && std::fabs(d) < 9.2e18) {
        return static_cast<long long>(std::trunc(d));  // int(31.5) == 31
      }
    } else if (v.is_string()) {
      if (const auto i = py_int(v.get<std::string>())) {
        return i;
      }
    }
    add_error(errors_, key, kNotInt);
    return std::nullopt;
  }

  std::optional<double> number(const char* key) {
    if (!present(key, false, true)) {
      return std::nullopt;
    }
    const auto& v = body_[key];
    if (v.is_boolean()) {
      return v.get<bool>() ? 1.0 : 0.0;
    }
    if (v.is_number()) {
      return v.get<double>();
    }
    if (v.is_string()) {
      if (const auto d = parse_decimal(trim(v.get<std::string>()))) {
        return d;
      }
    }
    add_error(errors_, key, kNotFloat);
    return std::nullopt;
  }

  // Optional[str]; `required`: str without a default; `max_chars` 0: no limit.
  std::optional<std::string> text(const char* key, bool required, std::size_t max_chars,
                                  bool null_allowed = true) {
    if (!present(key, required, null_allowed)) {
      return std::nullopt;
    }
    const auto s = as_text(key);
    if (s && max_chars > 0 && code_points(*s) > max_chars) {
      add_error(errors_, key,
                "ensure this value has at most " + std::to_string(max_chars) + " characters");
      return std::nullopt;
    }
    return s;
  }

 private:
  // Whether the field has a value; a missing one is an error when
  // `required`, a null one when `required` or not `null_allowed`.
  bool present(const char* key, bool required, bool null_allowed) {
    if (!body_.contains(key)) {
      if (required) {
        add_error(errors_, key, kRequired);
      }
      return false;
    }
    if (body_[key].is_null()) {
      if (required || !null_allowed) {
        add_error(errors_, key, kNone);
      }
      return false;
    }
    return true;
  }

  // str() of a scalar, as pydantic v1 coerces it.
  std::optional<std::string> as_text(const char* key) {
    const auto& v = body_[key];
    if (v.is_string()) {
      return v.get<std::string>();
    }
    if (v.is_boolean()) {
      return v.get<bool>() ? "True" : "False";
    }
    if (v.is_number_float()) {
      return py_float(v.get<double>());
    }
    if (v.is_number()) {
      return v.dump();
    }
    add_error(errors_, key, kNotStr);
    return std::nullopt;
  }

  const json& body_;
  ojson& errors_;
  bool reject_fraction_;
};

AdbVmFields read_vm(FieldReader& v) {
  AdbVmFields vm;
  vm.vmid = v.integer("vmid", true).value_or(0);
  vm.name = v.text("name", true, 100).value_or("");
  vm.ip_address = v.text("ip_address", false, 45);
  vm.status = v.text("status", false, 20, false).value_or("stopped");
  vm.cpu_cores = v.integer("cpu_cores");
  vm.cpu_usage_percent = v.number("cpu_usage_percent");
  vm.memory_mb = v.integer("memory_mb");
  vm.disk_gb = v.integer("disk_gb", false, true);
  v.integer("uptime_seconds");
  v.integer("proxmox_node_id");
  v.text("proxmox_node", false, 0);
  vm.template_id = v.integer("template_id");
  vm.notes = v.text("notes", false, 0);
  return vm;
}

}  // namespace

std::optional<long long> py_int(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') {
      return std::nullopt;
    }
  }
  return parse_int(s);
}

std::optional<long long> AdbValidation::int_param(const std::optional<std::string>& value,
                                                  const std::string& field, bool required) {
  if (!value) {
    if (required) {
      add_error(errors_, field, kRequired);
    }
    return std::nullopt;
  }
  const auto v = py_int(*value);
  if (!v) {
    add_error(errors_, field, kNotInt);
  }
  return v;
}

void AdbValidation::require(const std::optional<std::string>& value, const std::string& field) {
  if (!value) {
    add_error(errors_, field, kRequired);
  }
}

AdbVmFields AdbValidation::vm_body(const std::string& body, const std::string& content_type,
                                   bool reject_fraction) {
  // FastAPI reads the body as JSON when the content type says JSON or is
  // missing, else hands the bytes to the model; JSON null is a missing body.
  if (body.empty()) {
    add_error(errors_, "", kRequired);
    return {};
  }
  if (!is_json_type(content_type)) {
    add_error(errors_, "", kNotDict);
    return {};
  }
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::parse_error& e) {
    const auto [field, message] = json_error(body, e.byte);
    add_error(errors_, field, message);
    return {};
  }
  if (parsed.is_null()) {
    add_error(errors_, "", kRequired);
    return {};
  }
  if (!parsed.is_object()) {
    add_error(errors_, "", kNotDict);
    return {};
  }
  FieldReader reader(parsed, errors_, reject_fraction);
  return read_vm(reader);
}

AdbReply AdbValidation::reply() const {
  return validation_reply(errors_);
}

}  // namespace pha::sim
