// pha-file-server: serves a directory over HTTP on loopback, as a web server
// publishes an apt repository; the package test's nodes install from it.
//
//   pha-file-server --root DIR [--port 0]
// prints {"event":"ready","url":"http://127.0.0.1:P"} on stdout once it
// listens, and one line per request on stderr. SIGTERM ends it.

#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

int main(int argc, char** argv) {
  CLI::App app{"Serves a directory over HTTP on 127.0.0.1"};
  std::string root;
  int port = 0;
  app.add_option("--root", root, "the directory to serve")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--port", port, "the port (0: a free one)")->check(CLI::Range(0, 65535));
  CLI11_PARSE(app, argc, argv);

  httplib::Server server;
  if (!server.set_mount_point("/", root)) {
    std::cerr << "pha-file-server: cannot serve " << root << "\n";
    return 1;
  }
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });
  const int bound = port == 0 ? server.bind_to_any_port("127.0.0.1") : port;
  if (port != 0 && !server.bind_to_port("127.0.0.1", port)) {
    std::cerr << "pha-file-server: cannot listen on 127.0.0.1:" << port << "\n";
    return 1;
  }
  if (bound < 0) {
    std::cerr << "pha-file-server: cannot listen on 127.0.0.1\n";
    return 1;
  }
  nlohmann::json ready = {{"event", "ready"}, {"url", "http://127.0.0.1:" + std::to_string(bound)}};
  std::cout << ready.dump() << std::endl;
  return server.listen_after_bind() ? 0 : 1;
}
