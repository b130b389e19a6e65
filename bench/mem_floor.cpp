// The memory floor under the agent: the resident set of a process that links
// the agent's libraries and does only what every agent does before its first
// sync, step by step. It shows which part of the agent's RSS is the code of
// its libraries (file-backed, shared with every other process that maps
// them) and which part the set-up of libcurl and OpenSSL costs, so that the
// agent's own share can be told apart.
//
//   build/bench/mem_floor

#include <cstdio>
#include <malloc.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "agent/platform/logging.hpp"
#include "bench/proc_sample.hpp"

namespace {

void row(const char* stage) {
  const auto s = pha::bench::sample_process(::getpid());
  const auto mb = [](long kb) { return static_cast<double>(kb) * 1024.0 / 1e6; };
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", stage, mb(s.rss_kb), mb(s.anon_kb),
              mb(s.file_kb), mb(s.pss_kb));
}

}  // namespace

int main() {
  std::printf(
      "| stage (one process, cumulative) | VmRSS MB | RssAnon MB | RssFile MB | PSS MB "
      "|\n|---|---|---|---|---|\n");
  row("main() of a program linking the agent's libraries");
  pha::log::init({});
  pha::log::info("mem_floor", "logging set up");
  row("+ logging (spdlog) set up, one line written");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  row("+ curl_global_init (OpenSSL 3 initialised)");
  {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, "/etc/ssl/certs/ca-certificates.crt", nullptr);
    row("+ an SSL_CTX with the system CA bundle loaded (an https AccountDB without a CA file)");
    SSL_CTX_free(ctx);
    row("+ that SSL_CTX freed again");
  }
  // The agent's threads: sync, heartbeat, health checks, HTTP loop, signals,
  // four senders. Each thread that allocates gets a malloc arena of its own.
  std::vector<std::thread> threads;
  for (int i = 0; i < 9; ++i) {
    threads.emplace_back([] {
      std::vector<std::string> v(200, std::string(200, 'x'));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  row("+ 9 threads alive, each with 40 KB of small allocations");
  for (auto& t : threads) {
    t.join();
  }
  row("+ the threads ended (their arenas stay)");
  malloc_trim(0);
  row("+ malloc_trim(0)");
  curl_global_cleanup();
  return 0;
}
