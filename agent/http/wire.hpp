#pragma once
// What Boost.Beast does not do for the agent's server (docs: "HTTP API"): the
// limits and admission rules of ServerOptions around Beast's HTTP/1.1 request
// parser, and the answer as the server writes it. No sockets: the server
// feeds RequestReader what it reads; tests and the fuzz target feed it bytes.
//
// Beast parses a request's head only once all of it is in (or a limit is
// broken), so the same bytes give the same steps however they arrive.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "agent/http/server.hpp"

namespace pha::http {

// A request the server answers itself, then closes the connection.
struct Refusal {
  int status = 400;
  std::string_view code = "bad_request";
  std::string message;
  std::string request_id;    // the client's, when known and sane
  bool head_method = false;  // when known
};

// Frames the requests of one connection out of the bytes it received.
class RequestReader {
 public:
  // Nothing complete yet. send_continue: the head asked for "100 Continue"
  // and its body is still missing (said once per request).
  struct NeedMore {
    bool send_continue = false;
  };
  // A whole request, taken off the input (the server adds peer, TLS and its
  // own request id when the client sent none).
  struct Ready {
    Request request;
    bool keep_alive = true;
  };
  using Step = std::variant<NeedMore, Ready, Refusal>;

  explicit RequestReader(const ServerOptions& limits) : limits_(limits) {}

  boost::beast::flat_buffer& input() { return input_; }  // received, not yet framed
  void feed(std::string_view bytes);                     // appends to input()
  // The next step with what the input holds. After a Refusal the
  // connection is done: its caller answers and closes it.
  Step next();
  // Forgets a request begun (the connection is closing).
  void reset();

 private:
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;
  std::variant<std::monostate, std::size_t, Refusal> scan_head();
  std::optional<Refusal> parse_head(std::size_t end);
  std::optional<Refusal> admit();

  ServerOptions limits_;
  boost::beast::flat_buffer input_;
  std::size_t scan_pos_ = 0;        // where the search for the head's end goes on
  std::size_t method_checked_ = 0;  // bytes of the method already checked
  bool request_line_done_ = false;
  std::size_t header_lines_ = 0;
  std::optional<Parser> parser_;  // a head parsed, its body still coming
  Request request_;               // path, query and request id of that head
  bool expect_continue_ = false;
  bool continue_sent_ = false;
};

// An answer as it goes on the wire: the status line, the server's framing
// headers (Content-Length, X-Request-ID, Connection), the handler's extra
// headers (those that would change the framing or split the answer are
// dropped), then the body unless the request was HEAD or the status has none.
using Answer = boost::beast::http::response<boost::beast::http::string_body>;
Answer make_answer(Response r, bool head_method, bool keep_alive, std::string_view request_id);
std::string serialize_response(const Response& r, bool head_method, bool keep_alive,
                               std::string_view request_id);

}  // namespace pha::http
