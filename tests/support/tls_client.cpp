#include "tests/support/tls_client.hpp"

#include <arpa/inet.h>
#include <array>
#include <cctype>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/support/test_pki.hpp"

namespace pha::test {

struct TlsConnection::Handles {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~Handles() {
    if (ssl != nullptr) {
      SSL_free(ssl);
    }
    if (ctx != nullptr) {
      SSL_CTX_free(ctx);
    }
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

namespace {

std::string openssl_error(const std::string& what) {
  std::array<char, 256> buf{};
  ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
  ERR_clear_error();
  return what + ": " + buf.data();
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TlsConnection::TlsConnection(int port, const std::string& ca_file)
    : h_(std::make_unique<Handles>()) {
  h_->fd = connect_loopback(port);
  if (h_->fd < 0) {
    error_ = "cannot connect to 127.0.0.1:" + std::to_string(port);
    return;
  }
  h_->ctx = SSL_CTX_new(TLS_client_method());
  if (h_->ctx == nullptr || SSL_CTX_load_verify_locations(h_->ctx, ca_file.c_str(), nullptr) != 1) {
    error_ = openssl_error("cannot load " + ca_file);
    return;
  }
  SSL_CTX_set_verify(h_->ctx, SSL_VERIFY_PEER, nullptr);
  h_->ssl = SSL_new(h_->ctx);
  SSL_set_fd(h_->ssl, h_->fd);
  SSL_set1_host(h_->ssl, "127.0.0.1");
  if (SSL_connect(h_->ssl) != 1) {
    error_ = openssl_error("TLS handshake failed");
    return;
  }
  X509* peer = SSL_get1_peer_certificate(h_->ssl);
  if (peer == nullptr) {
    error_ = "the server presented no certificate";
    return;
  }
  fingerprint_ = sha256_fingerprint(peer);
  X509_free(peer);
}

TlsConnection::~TlsConnection() = default;

bool TlsConnection::write_all(const std::string& bytes) {
  std::size_t written = 0;
  while (written < bytes.size()) {
    const int n =
        SSL_write(h_->ssl, bytes.data() + written, static_cast<int>(bytes.size() - written));
    if (n <= 0) {
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<std::string> TlsConnection::read_more() {
  std::array<char, 16384> chunk{};
  const int n = SSL_read(h_->ssl, chunk.data(), static_cast<int>(chunk.size()));
  if (n <= 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  return std::string(chunk.data(), static_cast<std::size_t>(n));
}

// Enough HTTP/1.1 for the agent's answers: a status line, headers with a
// Content-Length, and that many bytes of body.
std::optional<TlsConnection::Answer> TlsConnection::get(const std::string& path,
                                                        const Headers& headers) {
  if (!ok()) {
    return std::nullopt;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) {
    request += name + ": " + value + "\r\n";
  }
  if (!write_all(request + "\r\n")) {
    return std::nullopt;
  }
  std::size_t head_end = std::string::npos;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    auto more = read_more();
    if (!more) {
      return std::nullopt;
    }
    buffer_ += *more;
  }
  std::string head = buffer_.substr(0, head_end);
  for (auto& c : head) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  Answer a;
  a.status = head.size() > 12 ? std::atoi(head.substr(9, 3).c_str()) : 0;
  std::size_t length = 0;
  if (const auto at = head.find("\r\ncontent-length: "); at != std::string::npos) {
    length = std::strtoul(head.c_str() + at + 18, nullptr, 10);
  }
  while (buffer_.size() < head_end + 4 + length) {
    auto more = read_more();
    if (!more) {
      return std::nullopt;
    }
    buffer_ += *more;
  }
  a.body = buffer_.substr(head_end + 4, length);
  buffer_.erase(0, head_end + 4 + length);
  return a;
}

}  // namespace pha::test
