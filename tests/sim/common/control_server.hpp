#pragma once
// The scaffolding of the simulators' control APIs: plain HTTP on 127.0.0.1
// (any free port) for programs that run a simulator as a separate process
// (the demo, the benchmarks, the package test). A handler returns the JSON
// answer or throws: a ControlError is answered {"error": what} with its
// status, any other exception {"error": what} with 400.
//
//   ControlServer server;
//   server.post(R"(/control/rows/(-?\d+))", [&](const httplib::Request& req) {
//     const auto id = control_id(req.matches[1]);
//     ...
//     return nlohmann::json{{"ok", true}};
//   });
//   server.start();

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json_fwd.hpp>

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace pha::sim {

struct ControlError : std::runtime_error {
  ControlError(int s, const std::string& what) : std::runtime_error(what), status(s) {}
  int status;
};

// The body as JSON, {} when empty; ControlError 400 when it is not JSON.
nlohmann::json control_body(const httplib::Request& req);
// The same, and it must be a JSON object.
nlohmann::json control_object(const httplib::Request& req);
// An integer from the path ("-101"); ControlError 400 when it is not one.
long long control_id(const std::string& text);

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const httplib::Request&)>;

  ControlServer();
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // `pattern` is an httplib path pattern (a regular expression).
  void get(const std::string& pattern, Handler handler);
  void post(const std::string& pattern, Handler handler);
  void put(const std::string& pattern, Handler handler);
  void del(const std::string& pattern, Handler handler);

  // Listens on 127.0.0.1, any free port, and returns once it serves; throws
  // when it cannot listen.
  void start();
  void stop();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace pha::sim
