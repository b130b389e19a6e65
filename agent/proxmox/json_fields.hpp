#pragma once
// The fields of Proxmox VE API answers, read as the API sends them: the
// {"data": ...} envelope, integers and numbers that may arrive as strings,
// 0/1 flags, "" and absence as "not set". Each says in its error what it got
// (at most 80 characters of it). For the parsers of parse.cpp.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/core/result.hpp"

namespace pha::pve_json {

// `v` as JSON text, cut to 80 characters.
std::string shown(const nlohmann::json& v);
// The "data" member of the {"data": ...} envelope.
Result<nlohmann::json> envelope(std::string_view body);
// The "data" member when it is a list.
Result<nlohmann::json> data_array(std::string_view body);
// An integer sent as a number or as a numeric string; "" and absence are
// "not set" (older servers send template: "" for non-templates).
Result<std::optional<std::int64_t>> int_field(const nlohmann::json& obj, const char* key);
Result<std::optional<double>> number_field(const nlohmann::json& obj, const char* key);
Result<std::optional<std::string>> string_field(const nlohmann::json& obj, const char* key);
// 0/1 (number or string), true/false, "" (not set).
Result<bool> flag_field(const nlohmann::json& obj, const char* key);

}  // namespace pha::pve_json
