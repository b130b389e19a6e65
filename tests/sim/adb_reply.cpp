#include "tests/sim/adb_reply.hpp"

namespace pha::sim {

using ojson = nlohmann::ordered_json;

AdbReply json_reply(int status, const ojson& body) {
  AdbReply r;
  r.status = status;
  r.body = body.dump();
  return r;
}

AdbReply not_found_reply() {
  return json_reply(
      404, ojson{{"error", "NOT_FOUND"},
                 {"message", "Endpoint not found"},
                 {"status_code", 404},
                 {"details", ojson{{"resource_type", "Endpoint"}, {"resource_id", nullptr}}}});
}

AdbReply server_error_reply() {
  return json_reply(500, ojson{{"error", "INTERNAL_SERVER_ERROR"},
                               {"message", "An unexpected error occurred"},
                               {"status_code", 500},
                               {"details", ojson::object()}});
}

AdbReply validation_reply(const ojson& errors) {
  return json_reply(422, ojson{{"error", "VALIDATION_ERROR"},
                               {"message", "Validation error"},
                               {"status_code", 422},
                               {"details", ojson{{"errors", errors}}}});
}

AdbReply too_many_requests_reply() {
  return json_reply(429, ojson{{"detail", "Too many requests"}});
}

AdbReply http_error_reply(int status, const std::string& detail, const std::string& accept) {
  if (accept.starts_with("application/json")) {
    return json_reply(status, ojson{{"error", "HTTP_ERROR"},
                                    {"message", detail},
                                    {"status_code", status},
                                    {"details", ojson::object()}});
  }
  return json_reply(status, ojson{{"detail", detail}});
}

}  // namespace pha::sim
