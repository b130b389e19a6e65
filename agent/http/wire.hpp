#pragma once
// The HTTP/1.1 wire format of the agent's server, without sockets: framing
// requests out of the bytes a connection has received (request line,
// headers, Content-Length body, pipelining, the limits of ServerOptions) and
// writing answers. The server feeds it what it reads; tests and the fuzz
// target feed it bytes directly.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "agent/http/server.hpp"

namespace pha::http {

// The request line and headers of a request, parsed and checked.
struct RequestHead {
  std::string method;
  std::string target;
  std::string path;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::size_t head_bytes = 0;
  std::size_t content_length = 0;
  bool http10 = false;
  bool keep_alive = true;
  bool expect_continue = false;
  std::string request_id;  // the client's, when sane
};

// A request the server answers itself (status, error code, message), then
// closes the connection.
struct Refusal {
  int status = 400;
  std::string_view code = "bad_request";
  std::string message;
  std::string request_id;    // the client's, when known and sane
  bool head_method = false;  // when known
};

// Parses a complete head (request line, header lines and the empty line).
std::variant<RequestHead, Refusal> parse_request_head(std::string_view text,
                                                      const ServerOptions& limits);

// Frames the requests of one connection out of its input buffer, as bytes
// arrive. A pure state machine: the same steps whatever the bytes' split.
class RequestReader {
 public:
  // Nothing complete yet. send_continue: the head asked for "100 Continue"
  // and its body is still missing (said once per request).
  struct NeedMore {
    bool send_continue = false;
  };
  // A whole request; its bytes are taken off the input buffer.
  struct Ready {
    RequestHead head;
    std::string body;
  };
  using Step = std::variant<NeedMore, Ready, Refusal>;

  // The next step with what `in` holds (the bytes received and not yet
  // taken). After a Refusal the connection is done: its caller closes it.
  Step next(std::string& in, const ServerOptions& limits);
  // Forgets a request begun (the connection is closing).
  void reset();

 private:
  std::variant<std::monostate, std::size_t, Refusal> scan_head(std::string& in,
                                                               const ServerOptions& limits);

  std::size_t scan_pos_ = 0;         // where the search for the end of the head goes on
  std::size_t method_checked_ = 0;   // bytes of the method already checked
  bool request_line_done_ = false;   // the request line has its line end
  std::size_t header_lines_ = 0;     // complete header lines seen
  std::optional<RequestHead> head_;  // parsed, its body still coming
  bool continue_sent_ = false;
};

// The Request a handler sees, from a framed request (the connection's peer,
// TLS and a request id of the server's own are the caller's to add).
Request make_request(RequestHead head, std::string body);

// An answer on the wire: status line, the server's framing headers
// (Content-Length, X-Request-ID, Connection), the handler's extra headers
// (those that would change the framing or split the answer are dropped),
// then the body unless the request was HEAD or the status has none.
std::string serialize_response(const Response& r, bool head_method, bool keep_alive,
                               std::string_view request_id);

}  // namespace pha::http
