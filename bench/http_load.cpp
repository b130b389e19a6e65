#include "bench/http_load.hpp"

#include <array>
#include <cstdio>
#include <regex>
#include <sys/wait.h>

namespace pha::bench {

namespace {

// "123.45us", "1.20ms", "2.00s" -> milliseconds.
double to_ms(double value, const std::string& unit) {
  if (unit == "us") {
    return value / 1000.0;
  }
  if (unit == "s") {
    return value * 1000.0;
  }
  if (unit == "m") {
    return value * 60000.0;
  }
  return value;
}

}  // namespace

std::optional<HttpLoad> run_wrk(const std::string& base_url, const std::string& path,
                                int connections, int seconds, std::string& error) {
  // Two threads at most: the machine the agent shares is small too.
  const int threads = connections > 1 ? 2 : 1;
  const auto command = "wrk --latency -t" + std::to_string(threads) + " -c" +
                       std::to_string(connections) + " -d" + std::to_string(seconds) + "s " +
                       base_url + path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    error = "cannot run wrk";
    return std::nullopt;
  }
  std::string out;
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0;) {
    out.append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error = "wrk failed: " + out;
    return std::nullopt;
  }
  HttpLoad r;
  r.path = path;
  r.connections = connections;
  std::smatch m;
  const std::regex rps(R"(Requests/sec:\s+([0-9.]+))");
  const std::regex p50(R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m)\b)");
  const std::regex p99(R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b)");
  const std::regex total(R"(\n\s+([0-9]+) requests in)");
  if (!std::regex_search(out, m, rps)) {
    error = "no Requests/sec in wrk's output: " + out;
    return std::nullopt;
  }
  r.requests_per_s = std::stod(m[1]);
  if (std::regex_search(out, m, p50)) {
    r.p50_ms = to_ms(std::stod(m[1]), m[2]);
  }
  if (std::regex_search(out, m, p99)) {
    r.p99_ms = to_ms(std::stod(m[1]), m[2]);
  }
  if (std::regex_search(out, m, total)) {
    r.requests = std::stoll(m[1]);
  }
  const std::regex socket_errors(
      R"(Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+))");
  if (std::regex_search(out, m, socket_errors)) {
    for (std::size_t i = 1; i <= 4; ++i) {
      r.errors += std::stoll(m[i]);
    }
  }
  const std::regex non2xx(R"(Non-2xx or 3xx responses:\s+([0-9]+))");
  if (std::regex_search(out, m, non2xx)) {
    r.errors += std::stoll(m[1]);
  }
  return r;
}

}  // namespace pha::bench
