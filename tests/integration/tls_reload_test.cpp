// The real binary's HTTPS listener renewed by a reload (docs/settings.md
// "Reload"): `--reload PID` (the unit's ExecReload=) reads TLS_CERT_FILE and
// TLS_KEY_FILE again, new connections get the new certificate and a
// keep-alive connection opened before keeps answering; a pair that does not
// load is refused (exit 78, `tls_reload_failed`) and the old certificate stays.

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "tests/integration/world.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::RunningAgent;
using test::TlsConnection;
using test::World;

namespace {

// The agent's certificate files, overwritten in place by a renewal.
struct ServedFiles {
  std::string cert;
  std::string key;
  void take(const std::string& cert_from, const std::string& key_from) const {
    const auto overwrite = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(cert_from, cert, overwrite);
    std::filesystem::copy_file(key_from, key, overwrite);
  }
};

std::string env_file_for(const std::string& cert, const std::string& key) {
  return "TLS_CERT_FILE=" + cert + "\nTLS_KEY_FILE=" + key + "\n";
}

// The first log line of `event` after `from`, or "".
std::string log_line_after(const std::string& err, std::size_t from, const std::string& event) {
  const auto at = err.find("\"event\":\"" + event + "\"", from);
  if (at == std::string::npos) {
    return "";
  }
  const auto start = err.rfind('\n', at);
  const auto begin = start == std::string::npos ? 0 : start + 1;
  return err.substr(begin, err.find('\n', at) - begin);
}

int health_over(TlsConnection& c) {
  const auto a = c.get("/health");
  return a ? a->status : 0;
}

}  // namespace

TEST_CASE(
    "tls reload: --reload PID renews the certificate under a live keep-alive connection - a broken "
    "pair is refused with exit 78 and the old certificate stays") {
  World w;
  test::TestPki pki(w.dir.path() + "/pki");
  const auto first = pki.issue("first");
  const auto second = pki.issue("second");
  const auto moved = pki.issue("moved");  // a renewal under new file names
  const ServedFiles files{w.dir.path() + "/agent.pem", w.dir.path() + "/agent.key"};
  files.take(first.cert_pem_path, first.key_pem_path);
  const auto env_file = w.dir.write("agent.env", env_file_for(files.cert, files.key));
  test::TempDir runtime;  // RuntimeDirectory=
  RunningAgent agent(w, {{"RUNTIME_DIRECTORY", runtime.path()}}, {"--env-file", env_file});
  const auto reload = [&] {
    return test::run_process(PHA_AGENT_BINARY,
                             {{"--reload", std::to_string(agent.process().pid())},
                              {{"RUNTIME_DIRECTORY", runtime.path()}},
                              w.dir.path()},
                             40s);
  };
  const auto served = [&] {
    TlsConnection c(agent.port(), pki.ca_pem_path());
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(health_over(c) == 200);
    return c.peer_fingerprint();
  };

  TlsConnection kept(agent.port(), pki.ca_pem_path());
  REQUIRE_MESSAGE(kept.ok(), kept.error());
  CHECK(kept.peer_fingerprint() == first.sha256_fingerprint);
  CHECK(health_over(kept) == 200);

  // Renewed in place: the verdict comes after the new context is in use.
  files.take(second.cert_pem_path, second.key_pem_path);
  auto mark = agent.process().err_so_far().size();
  const auto renewed = reload();
  CHECK_MESSAGE(renewed.exit_code == 0, renewed.err);
  CHECK(served() == second.sha256_fingerprint);
  CHECK(health_over(kept) == 200);  // the connection from before, still on the first certificate
  CHECK_FALSE(log_line_after(agent.process().err_so_far(), mark, "tls_reloaded").empty());

  // A key that is not the certificate's: refused, nothing changes.
  files.take(first.cert_pem_path, moved.key_pem_path);
  mark = agent.process().err_so_far().size();
  const auto mismatched = reload();
  CHECK(mismatched.exit_code == 78);
  CHECK_MESSAGE(mismatched.err.find("does not match the certificate") != std::string::npos,
                mismatched.err);
  CHECK_MESSAGE(mismatched.err.find("keeps the old one") != std::string::npos, mismatched.err);
  const auto failed = log_line_after(agent.process().err_so_far(), mark, "tls_reload_failed");
  CHECK_MESSAGE(failed.find(files.key) != std::string::npos, failed);
  CHECK(served() == second.sha256_fingerprint);
  CHECK(health_over(kept) == 200);
  const auto metrics = kept.get("/metrics");
  REQUIRE(metrics);
  CHECK_MESSAGE(metrics->body.find("proxmox_host_agent_http_tls_reload_failures_total 1\n") !=
                    std::string::npos,
                metrics->body);

  // A certificate file gone: the settings check refuses it first.
  std::filesystem::remove(files.cert);
  const auto missing = reload();
  CHECK(missing.exit_code == 78);
  CHECK_MESSAGE(missing.err.find("TLS_CERT_FILE") != std::string::npos, missing.err);
  CHECK(served() == second.sha256_fingerprint);

  // New paths in the env file are read too.
  w.dir.write("agent.env", env_file_for(moved.cert_pem_path, moved.key_pem_path));
  const auto repointed = reload();
  CHECK_MESSAGE(repointed.exit_code == 0, repointed.err);
  CHECK(served() == moved.sha256_fingerprint);
  CHECK(health_over(kept) == 200);

  // HTTPS off at a reload: only at the next start; the listener stays as it
  // is, and --reload says so (exit 3, the settings named).
  w.dir.write("agent.env", "");
  mark = agent.process().err_so_far().size();
  const auto off = reload();
  CHECK(off.exit_code == 3);
  CHECK_MESSAGE(off.err.find("except TLS_CERT_FILE, TLS_KEY_FILE") != std::string::npos, off.err);
  const auto partial = log_line_after(agent.process().err_so_far(), mark, "reload_partial");
  CHECK_MESSAGE(partial.find("TLS_CERT_FILE") != std::string::npos, log_tail(agent));
  CHECK(served() == moved.sha256_fingerprint);

  const auto err = agent.process().err_so_far();
  CHECK(err.find("PRIVATE KEY") == std::string::npos);
  CHECK(agent.stop().exit_code == 0);
}
