#pragma once
// An AccountDB answer before the simulator adds its common headers, and the
// bodies the server writes for its errors.

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pha::sim {

struct AdbReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

AdbReply json_reply(int status, const nlohmann::ordered_json& body);

// 404 {"error": "NOT_FOUND", ...}: an unknown path, or an unknown node.
AdbReply not_found_reply();
// 500 {"error": "INTERNAL_SERVER_ERROR", ...}
AdbReply server_error_reply();
// 422 {"error": "VALIDATION_ERROR", ..., "details": {"errors": errors}}
AdbReply validation_reply(const nlohmann::ordered_json& errors);
// 429 {"detail": "Too many requests"}
AdbReply too_many_requests_reply();
// An HTTPException: FastAPI's {"detail"}, or the server's own format when
// the client asks for JSON (its handler looks at the Accept header).
AdbReply http_error_reply(int status, const std::string& detail, const std::string& accept);

}  // namespace pha::sim
