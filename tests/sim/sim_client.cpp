#include "tests/sim/sim_client.hpp"

#include <stdexcept>
#include <zlib.h>

#include "agent/core/text.hpp"

namespace pha::simtest {

namespace {

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~GlobalInit() { curl_global_cleanup(); }
};

struct Sink {
  Reply* reply;
  std::optional<std::size_t> max_body;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const auto len = size * n;
  if (sink->max_body && sink->reply->body.size() + len > *sink->max_body) {
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  sink->reply->body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* reply = static_cast<Reply*>(user);
  const auto len = size * n;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.pop_back();
  }
  if (line.starts_with("HTTP/")) {
    // A new response (after a 100 Continue): start over.
    reply->headers.clear();
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    reply->reason = sp2 == std::string::npos ? "" : line.substr(sp2 + 1);
    return len;
  }
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    reply->headers[to_lower(line.substr(0, colon))] = std::string(trim(line.substr(colon + 1)));
  }
  return len;
}

}  // namespace

Client::Client() : curl_(nullptr) {
  static GlobalInit init;
  curl_ = curl_easy_init();
  if (curl_ == nullptr) {
    throw std::runtime_error("curl_easy_init failed");
  }
}

Client::~Client() {
  curl_easy_cleanup(curl_);
}

Reply Client::send(const Request& request) {
  Reply reply;
  Sink sink{&reply, request.max_body};
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_reset(curl_);
  curl_easy_setopt(curl_, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &reply);
  if (!request.ca_file.empty()) {
    curl_easy_setopt(curl_, CURLOPT_CAINFO, request.ca_file.c_str());
  }
  curl_easy_setopt(curl_, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (request.method == "HEAD") {
    curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
  }
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  if (request.raw_gzip) {
    headers = curl_slist_append(headers, "Accept-Encoding: gzip");
  } else if (request.decode_gzip) {
    curl_easy_setopt(curl_, CURLOPT_ACCEPT_ENCODING, "gzip");
  }
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  const auto start = std::chrono::steady_clock::now();
  reply.code = curl_easy_perform(curl_);
  reply.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  curl_slist_free_all(headers);
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &reply.new_connections);
  if (reply.code != CURLE_OK) {
    reply.error = error[0] != '\0' ? error : curl_easy_strerror(reply.code);
  }
  return reply;
}

Reply fetch(const Request& request) {
  Client client;
  return client.send(request);
}

std::string gunzip(const std::string& data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    throw std::runtime_error("inflateInit2 failed");
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    throw std::runtime_error("not a complete gzip stream");
  }
  return out;
}

}  // namespace pha::simtest
