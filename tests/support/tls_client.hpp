#pragma once
// One HTTPS connection to a server on loopback, held open: a test sees which
// certificate the server presented when it was opened, and sends several
// requests over it (keep-alive), e.g. before and after a certificate reload.
// Blocking OpenSSL with a 10 s timeout on every read and write.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pha::test {

class TlsConnection {
 public:
  // Connects to 127.0.0.1:port and shakes hands, verifying the server
  // against `ca_file`; ok() says whether it worked, error() why not.
  TlsConnection(int port, const std::string& ca_file);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The presented certificate's SHA-256 ("AB:CD:...", as CertFiles has it).
  const std::string& peer_fingerprint() const { return fingerprint_; }

  struct Answer {
    int status = 0;
    std::string body;
  };
  using Headers = std::vector<std::pair<std::string, std::string>>;
  // GET over this connection; nullopt when it failed or the server closed it.
  std::optional<Answer> get(const std::string& path, const Headers& headers = {});

 private:
  bool write_all(const std::string& bytes);
  std::optional<std::string> read_more();

  struct Handles;
  std::unique_ptr<Handles> h_;
  std::string error_;
  std::string fingerprint_;
  std::string buffer_;  // read and not yet used
};

}  // namespace pha::test
