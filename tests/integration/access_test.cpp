// Who may read and who may control (docs/http-api.md "Authorisation"): the
// real binary bound to 0.0.0.0, asked from loopback and from a client in a
// network namespace of the test's own (tests/support/netns.hpp), whose
// address is not loopback.

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"
#include "tests/support/netns.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::Env;
using test::NetNs;
using test::RunningAgent;
using test::World;

namespace {

const std::string kReadToken = "read-token-3b8e61f0c2a94d7e";
const std::string kControlToken = "control-token-9d2c47a1e0f35b86";

struct Answer {
  int status = 0;
  std::string body;
  std::string www_authenticate;
};

Answer answer_of(const httplib::Result& r) {
  REQUIRE_MESSAGE(r, "no answer: ", httplib::to_string(r.error()));
  return {r->status, r->body, r->get_header_value("WWW-Authenticate")};
}

httplib::Headers bearer(const std::string& token) {
  return token.empty() ? httplib::Headers{}
                       : httplib::Headers{{"Authorization", "Bearer " + token}};
}

Answer ask(httplib::Client& c, const std::string& method, const std::string& path,
           const std::string& token) {
  return answer_of(method == "POST" ? c.Post(path, bearer(token), "", "application/json")
                                    : c.Get(path, bearer(token)));
}

// The agent on 0.0.0.0, and the two kinds of client.
struct Scene {
  World world;
  NetNs ns;
  RunningAgent agent;

  explicit Scene(Env extra) : agent(world, with_any_address(std::move(extra))) {}

  static Env with_any_address(Env e) {
    e["BIND_ADDRESS"] = "0.0.0.0";
    return e;
  }

  // From the namespace: a client whose address is not loopback.
  Answer remote(const std::string& method, const std::string& path,
                const std::string& token = "") const {
    Answer a;
    ns.run([&] {
      httplib::Client c(ns.host_address(), agent.port());
      c.set_connection_timeout(5s);
      c.set_read_timeout(20s);
      a = ask(c, method, path, token);
    });
    return a;
  }
  // Over loopback, with exactly the token given (not the agent's default headers).
  Answer local(const std::string& method, const std::string& path,
               const std::string& token = "") const {
    auto c = agent.client();
    return ask(c, method, path, token);
  }
  std::string some_vm() const { return "/vms/" + std::to_string(world.running.front()); }
};

bool names(const Answer& a, const std::string& setting) {
  return a.body.find(setting) != std::string::npos;
}

}  // namespace

TEST_CASE("access: the test's client really is not on loopback") {
  Scene s(Env{{"LOG_LEVEL", "debug"}});
  test::cycle(s.agent);
  // The same request is answered differently, and the denial's log line names
  // the namespace's address as the peer.
  const auto remote = s.remote("GET", "/vms");
  CHECK(remote.status == 401);
  CHECK(s.local("GET", "/vms").status == 200);
  const auto log = s.agent.process().err_so_far();
  const auto denied = log.find("\"event\":\"http_denied\"");
  REQUIRE(denied != std::string::npos);
  const auto line = log.substr(denied, log.find('\n', denied) - denied);
  CHECK_MESSAGE(line.find("\"peer\":\"" + s.ns.client_address()) != std::string::npos, line);
}

TEST_CASE("access: without tokens customer data and control answer loopback only") {
  Scene s(Env{});
  test::cycle(s.agent);
  for (const auto& path : std::vector<std::string>{"/vms", s.some_vm(), "/config"}) {
    const auto a = s.remote("GET", path);
    CHECK_MESSAGE(a.status == 401, path);
    CHECK_MESSAGE(names(a, "AGENT_READ_TOKEN"), path, ": ", a.body);
    CHECK_MESSAGE(s.local("GET", path).status == 200, path);
  }
  // Monitoring stays open, as monitoring endpoints conventionally are.
  for (const std::string path : {"/", "/health", "/status", "/metrics", "/sync/status"}) {
    CHECK_MESSAGE(s.remote("GET", path).status == 200, path);
  }
  const auto proxmox = s.remote("GET", "/health/proxmox");
  CHECK((proxmox.status == 200 || proxmox.status == 503));
  // Control from elsewhere needs the control token, which is not set.
  const auto post = s.remote("POST", "/sync/trigger");
  CHECK(post.status == 403);
  CHECK_MESSAGE(names(post, "AGENT_API_TOKEN"), post.body);
  CHECK(s.local("POST", "/sync/trigger").status == 202);
}

TEST_CASE(
    "access: the read token reads customer data and never controls - the control token does both") {
  Scene s(Env{{"AGENT_READ_TOKEN", kReadToken}, {"AGENT_API_TOKEN", kControlToken}});
  s.agent.set_default_headers(bearer(kControlToken));
  test::cycle(s.agent, 30s);
  for (const auto& path : std::vector<std::string>{"/vms", s.some_vm(), "/config"}) {
    const auto none = s.remote("GET", path);
    CHECK_MESSAGE(none.status == 401, path);
    CHECK(none.www_authenticate == "Bearer");
    CHECK_MESSAGE(s.remote("GET", path, kReadToken).status == 200, path);
    CHECK_MESSAGE(s.remote("GET", path, kControlToken).status == 200, path);
    CHECK_MESSAGE(s.remote("GET", path, kReadToken + "x").status == 403, path);
    // A read token set: loopback needs it as well.
    CHECK_MESSAGE(s.local("GET", path).status == 401, path);
    CHECK_MESSAGE(s.local("GET", path, kReadToken).status == 200, path);
  }
  const auto read_posts = s.remote("POST", "/sync/trigger", kReadToken);
  CHECK(read_posts.status == 403);
  CHECK_MESSAGE(names(read_posts, "AGENT_API_TOKEN"), read_posts.body);
  CHECK(s.local("POST", "/sync/trigger", kReadToken).status == 403);
  CHECK(s.remote("POST", "/sync/trigger").status == 401);
  CHECK(s.remote("POST", "/sync/trigger", kControlToken).status == 202);
  CHECK(s.local("POST", "/sync/trigger").status == 401);
  // No answer carries a token.
  const auto status =
      s.remote("GET", "/status", kReadToken).body + s.remote("GET", "/config", kReadToken).body;
  CHECK(status.find(kReadToken) == std::string::npos);
  CHECK(status.find(kControlToken) == std::string::npos);
}

TEST_CASE("access: AGENT_READ_AUTH closes every GET but health to clients without a token") {
  Scene s(Env{{"AGENT_READ_AUTH", "true"}, {"AGENT_READ_TOKEN", kReadToken}});
  for (const std::string path :
       {"/status", "/metrics", "/health/proxmox", "/sync/status", "/vms"}) {
    const auto none = s.remote("GET", path);
    CHECK_MESSAGE(none.status == 401, path);
    CHECK_MESSAGE(names(none, "AGENT_READ_TOKEN"), path, ": ", none.body);
    CHECK_MESSAGE(s.local("GET", path).status == 401, path);
    const auto with = s.remote("GET", path, kReadToken);
    CHECK_MESSAGE((with.status == 200 || with.status == 503), path);
  }
  CHECK(s.remote("GET", "/health").status == 200);
  // The page is a shell without data that asks for the token itself.
  const auto page = s.remote("GET", "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("token") != std::string::npos);
}

TEST_CASE("access: AGENT_OPEN_CUSTOMER_DATA opens /vms to every client and says so at start") {
  Scene s(Env{{"AGENT_OPEN_CUSTOMER_DATA", "true"}});
  test::cycle(s.agent);
  CHECK(s.remote("GET", "/vms").status == 200);
  CHECK(s.remote("GET", "/config").status == 200);
  const auto log = s.agent.process().err_so_far();
  CHECK(log.find("\"event\":\"config_warning\"") != std::string::npos);
  CHECK(log.find("AGENT_OPEN_CUSTOMER_DATA=true") != std::string::npos);
  // Control is not opened with it.
  CHECK(s.remote("POST", "/sync/trigger").status == 403);
}
