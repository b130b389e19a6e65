#pragma once
// A small libcurl client for the simulator's tests: one request at a time,
// with the reason phrase, the headers, and how many new connections the
// request needed (keep-alive checks). Verifies TLS against a CA file.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

namespace pha::simtest {

struct Reply {
  CURLcode code = CURLE_OK;
  std::string error;  // curl's message for a transfer error
  long status = 0;
  std::string reason;                          // the HTTP reason phrase
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // as received (decoded when `decode_gzip`)
  long new_connections = 0;                    // 0: a kept-alive connection was reused
  std::chrono::milliseconds elapsed{0};

  bool transfer_ok() const { return code == CURLE_OK; }
  bool has_header(const std::string& lower) const { return headers.count(lower) != 0; }
  std::string header(const std::string& lower) const {
    const auto it = headers.find(lower);
    return it == headers.end() ? "" : it->second;
  }
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::string ca_file;
  std::chrono::milliseconds timeout{10000};
  bool decode_gzip = false;             // offer gzip and decode it (curl)
  bool raw_gzip = false;                // offer gzip but keep the body compressed
  std::optional<std::size_t> max_body;  // abort the transfer past this many bytes
};

// One easy handle: requests through the same Client reuse its connection.
class Client {
 public:
  Client();
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Reply send(const Request& request);

 private:
  CURL* curl_;
};

// A request on a fresh connection.
Reply fetch(const Request& request);

// gunzip, for checking a body kept compressed.
std::string gunzip(const std::string& data);

}  // namespace pha::simtest
