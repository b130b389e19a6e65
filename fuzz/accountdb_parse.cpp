// Fuzz target: AccountDB's answers (agent/accountdb/types.*) as the parsers
// and the client (agent/accountdb/client.*) take them. The input is a body;
// its first byte also picks the HTTP status the fake server answers with, so
// the client's failure messages (which quote the body) are fuzzed too. The
// API key never shows in a message or a log line.

#include <array>
#include <string>
#include <vector>

#include "agent/accountdb/client.hpp"
#include "agent/accountdb/types.hpp"
#include "agent/platform/logging.hpp"
#include "fuzz/target.hpp"

namespace {

constexpr std::string_view kMarker = "zq-";
constexpr std::array kStatuses = {200, 200, 200, 200, 400, 401, 404, 405, 422, 429, 500, 503};

std::vector<std::string>& log_lines() {
  static std::vector<std::string> lines = [] {
    pha::log::set_level(pha::log::Level::debug);
    return std::vector<std::string>{};
  }();
  static const bool captured = (pha::log::capture_for_test(&lines), true);
  (void)captured;
  return lines;
}

void require_no_key(std::string_view text) {
  pha::fuzz::require(text.find(kMarker) == std::string_view::npos,
                     "the API key appears in a message or a log line");
}

// Every error field an answer or a log could show: message and URL.
void check_error(const pha::Error& e) {
  require_no_key(e.message);
  require_no_key(e.url);
}

template <class Call>
void check(const Call& call) {
  if (!call.ok()) {
    check_error(call.error());
  }
}

void run_client(std::string_view body, int status) {
  pha::AccountDbClientOptions options;
  options.endpoint = *pha::parse_url("http://adb.example:8080/api", {"http", 80});
  options.api_key = "zq-key-zq";
  options.node_id = 7;
  const pha::Transport transport = [&](const pha::HttpRequest&) {
    pha::HttpOutcome o;
    o.status = status;
    o.kind = pha::classify_status(status);
    o.body = std::string(body);
    return o;
  };
  pha::AccountDbClient client(options, transport, [] { return std::string("fuzz"); });
  check(client.node_info());
  check(client.whitelist());
  check(client.list_vms());
  if (const auto beat = client.heartbeat(); !beat) {
    check_error(beat.error());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = pha::fuzz::as_text(data, size);
  (void)pha::parse_node(body);
  if (auto wl = pha::parse_whitelist_c(body)) {
    pha::fuzz::require(wl->empty() || *wl->begin() > 0, "a whitelist holds VMIDs only");
  }
  if (auto wl = pha::parse_whitelist_d(body)) {
    pha::fuzz::require(wl->empty() || *wl->begin() > 0, "a whitelist holds VMIDs only");
  }
  if (auto rows = pha::parse_rows(body)) {
    for (const auto& row : *rows) {
      // An update goes to /vms/agent/{id}: id <= 0 would be a create.
      pha::fuzz::require(row.id > 0, "a row's id is a positive serial");
    }
  }
  if (body.find(kMarker) != std::string_view::npos) {
    return 0;
  }
  auto& lines = log_lines();
  lines.clear();
  run_client(body, size == 0 ? 200 : kStatuses[data[0] % kStatuses.size()]);
  for (const auto& line : lines) {
    require_no_key(line);
  }
  return 0;
}
