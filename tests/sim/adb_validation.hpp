#pragma once
// The validation of one AccountDB request as FastAPI and pydantic v1 do it:
// the errors by field ("path.node_id", "query.api_key", "vmid"; "" for the
// whole body), in pydantic's words.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/sim/adb_reply.hpp"
#include "tests/sim/adb_store.hpp"

namespace pha::sim {

class AdbValidation {
 public:
  // An int path or query parameter: Python's int() of the text.
  std::optional<long long> int_param(const std::optional<std::string>& value,
                                     const std::string& field, bool required);
  void require(const std::optional<std::string>& value, const std::string& field);
  // put_vm's body (the server's VMBase model) with its Content-Type.
  // `reject_fraction`: as a newer server (pydantic v2), a fractional disk_gb
  // is an error.
  AdbVmFields vm_body(const std::string& body, const std::string& content_type,
                      bool reject_fraction);

  bool failed() const { return !errors_.empty(); }
  AdbReply reply() const;  // 422 with the errors

 private:
  nlohmann::ordered_json errors_ = nlohmann::ordered_json::object();
};

// Python's int() of a string: surrounding whitespace and a sign allowed.
std::optional<long long> py_int(std::string_view s);

}  // namespace pha::sim
