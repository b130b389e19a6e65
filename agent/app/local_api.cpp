#include "agent/app/local_api.hpp"

#include <cstdio>
#include <memory>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/net/curl_client.hpp"

namespace pha {

namespace {

// The SHA-256 fingerprint of the agent's own certificate: the request goes to
// that listener or to nobody, whatever names the certificate carries.
std::string certificate_fingerprint(const std::string& file) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "r"), std::fclose);
  if (!f) {
    return {};
  }
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                              X509_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!cert || X509_digest(cert.get(), EVP_sha256(), digest, &size) != 1) {
    return {};
  }
  return curl_detail::format_fingerprint(digest, size);
}

}  // namespace

std::string LocalAnswer::why_not() const {
  if (status == 0) {
    return "cannot reach the agent at " + url + ": " + error;
  }
  std::string why = "the agent answered " + std::to_string(status);
  if (body.is_object() && body.contains("message") && body["message"].is_string()) {
    why += ": " + body["message"].get<std::string>();
  }
  return why;
}

LocalAnswer ask_local_agent(const Settings& s, const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body) {
  const bool tls = !s.tls_cert_file.empty();
  HttpClientOptions options;
  options.upstream = "the agent";
  if (tls) {
    options.tls.fingerprints = {certificate_fingerprint(s.tls_cert_file)};
  }
  auto client = make_curl_client(options);
  HttpRequest req;
  req.method = method;
  req.url = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(s.port) + path;
  if (!token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + token);
  }
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  const auto o = client->send(req);
  return {o.status, nlohmann::json::parse(o.body, nullptr, false), req.url, o.error};
}

}  // namespace pha
