// The AccountDB client against a scripted peer: paths, the key only in the
// query string, request ids, and each row of docs/accountdb.md "Status codes".

#include <doctest/doctest.h>

#include "agent/accountdb/client.hpp"
#include "agent/platform/logging.hpp"
#include "tests/support/fake_http.hpp"

using namespace pha;
using test::FakeHttp;
using test::http_answer;

namespace {

const std::string kKey = "Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";

struct Fixture {
  FakeHttp http;
  int ids = 0;
  AccountDbClient client;
  Fixture()
      : client(
            AccountDbClientOptions{*parse_url("http://127.0.0.1:5000/base", {"", 0}), kKey, 34,
                                   std::chrono::seconds(30)},
            [this](const HttpRequest& r) { return http.send(r); },
            [this] { return "req-" + std::to_string(++ids); }) {}
};

std::string header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("node_info: the path - the key in the query - the request id - the node object") {
  Fixture f;
  f.http.on(
      "GET /base/proxmox-nodes/agent-node/34",
      http_answer(
          200,
          R"({"name":"pha-node-34","hostname":"127.0.0.1","port":8006,"id":34,)"
          R"("status":"disconnected","whitelist":[101,102,205],"last_seen":null,"owner_id":2})"));
  auto a = f.client.node_info();
  REQUIRE(a.ok());
  CHECK(a->id == 34);
  CHECK(a->owner_id == std::optional<std::int64_t>(2));
  CHECK(a->whitelist == std::vector<std::int64_t>{101, 102, 205});
  const auto req = f.http.requests().at(0);
  CHECK(req.url == "http://127.0.0.1:5000/base/proxmox-nodes/agent-node/34?api_key=" + kKey);
  CHECK(header(req, "X-Request-ID") == "req-1");
  CHECK(header(req, "Authorization").empty());
  CHECK(req.timeout == std::chrono::seconds(30));
}

TEST_CASE("heartbeat: POST with node_id and api_key and no body") {
  Fixture f;
  f.http.on("POST /base/proxmox-nodes/heartbeat",
            http_answer(200, R"({"message":"Heartbeat received"})"));
  CHECK(f.client.heartbeat().ok());
  const auto req = f.http.requests().at(0);
  CHECK(req.url == "http://127.0.0.1:5000/base/proxmox-nodes/heartbeat?node_id=34&api_key=" + kKey);
  CHECK(req.body.empty());
}

TEST_CASE("whitelist and the fall back to whitelist_legacy on an older server") {
  Fixture f;
  f.http.on("GET /base/vm-access/node/34/whitelist/agent", http_answer(200, "[1552, 5001]"));
  auto c = f.client.whitelist();
  REQUIRE(c.ok());
  CHECK(c->vmids == std::set<std::int64_t>{1552, 5001});
  CHECK(c->source == "accountdb");

  for (int status : {404, 405}) {
    Fixture old;
    old.http.on("GET /base/vm-access/node/34/whitelist/agent",
                http_answer(status, R"({"detail":"Not Found"})"));
    old.http.on("GET /base/proxmox-nodes/agent-whitelist/34",
                http_answer(200, R"({"node_id":34,"vmids":[101],"success":true,"message":"ok"})"));
    auto d = old.client.whitelist();
    REQUIRE(d.ok());
    CHECK(d->vmids == std::set<std::int64_t>{101});
    CHECK(d->source == "accountdb-legacy");
    CHECK(old.http.requests().size() == 2);
  }
}

TEST_CASE("a whitelist error is an error - never an empty whitelist") {
  Fixture f;
  f.http.on("GET /base/vm-access/node/34/whitelist/agent",
            http_answer(401, R"({"detail":"Invalid API key or node not found"})"));
  auto c = f.client.whitelist();
  CHECK_FALSE(c.ok());
  CHECK(c.error().kind == ErrorKind::auth);
  f.http.on("GET /base/vm-access/node/34/whitelist/agent", http_answer(503, "upstream down"));
  CHECK(f.client.whitelist().error().kind == ErrorKind::server);
  f.http.on("GET /base/vm-access/node/34/whitelist/agent", http_answer(200, R"({"not":"a list"})"));
  auto garbage = f.client.whitelist();
  CHECK(garbage.error().kind == ErrorKind::bad_reply);
  CHECK(garbage.error().message.find("not understood") != std::string::npos);
}

TEST_CASE("a body that fails after a 200 head says why - not 200") {
  Fixture f;
  auto cut = http_answer(200, R"({"vms":[{"id":1,)");
  cut.kind = FailureKind::network;
  cut.error = "GET http://127.0.0.1:5000/base/proxmox-nodes/agent-vms/34: response body truncated";
  f.http.on("GET /base/proxmox-nodes/agent-vms/34", cut);
  auto e = f.client.list_vms();
  REQUIRE_FALSE(e.ok());
  CHECK_MESSAGE(e.error().message.find("response body truncated") != std::string::npos,
                e.error().message);
  CHECK(e.error().message.find(": 200") == std::string::npos);
}

TEST_CASE("list_vms: rows parsed - a row without id fails the whole answer") {
  Fixture f;
  f.http.on(
      "GET /base/proxmox-nodes/agent-vms/34",
      http_answer(
          200,
          R"({"vms":[{"id":1,"vmid":101,"name":"web","status":"running","cpu_cores":2,)"
          R"("cpu_usage_percent":12.3,"memory_mb":2048,"disk_gb":32,"ip_address":"10.0.0.11",)"
          R"("proxmox_node_id":34,"owner_id":1,"created_at":"a","updated_at":"b"}],"count":1,"node_id":34})"));
  auto e = f.client.list_vms();
  REQUIRE(e.ok());
  REQUIRE(e->size() == 1);
  const auto& row = e->at(0);
  CHECK(row.id == 1);
  CHECK(row.cpu_usage_percent == std::optional<double>(12.3));
  CHECK(row.ip_address == std::optional<std::string>("10.0.0.11"));
  f.http.on("GET /base/proxmox-nodes/agent-vms/34",
            http_answer(200, R"({"vms":[{"vmid":101}],"count":1})"));
  CHECK(f.client.list_vms().error().kind == ErrorKind::bad_reply);
}

TEST_CASE(
    "put_vm: a create is a non-idempotent PUT to -vmid and an update an idempotent PUT to the id") {
  Fixture f;
  f.http.on("PUT /base/vms/agent/-101", http_answer(200, R"({"id":1})"));
  f.http.on("PUT /base/vms/agent/7", http_answer(200, R"({"id":7})"));
  const nlohmann::json body = {
      {"vmid", 101}, {"name", "web"}, {"status", "running"}, {"disk_gb", 32}};
  CHECK(f.client.put_vm(-101, body).ok());
  CHECK(f.client.put_vm(7, body).ok());
  const auto reqs = f.http.requests();
  CHECK(reqs[0].url == "http://127.0.0.1:5000/base/vms/agent/-101?node_id=34&api_key=" + kKey);
  CHECK_FALSE(reqs[0].idempotent);
  CHECK(reqs[1].idempotent);
  CHECK(header(reqs[0], "Content-Type") == "application/json");
  CHECK(nlohmann::json::parse(reqs[0].body) == body);
}

TEST_CASE("401 - 404 on node_info - 422 and 429 give operator messages without the key") {
  Fixture f;
  f.http.on("GET /base/proxmox-nodes/agent-node/34",
            http_answer(401, R"({"detail":"Invalid API key"})"));
  auto bad_key = f.client.node_info();
  CHECK(bad_key.error().kind == ErrorKind::auth);
  CHECK(
      bad_key.error().message ==
      R"(AccountDB refused the API key for node 34 (401 {"detail":"Invalid API key"}): check ACCOUNTDB_API_KEY and ACCOUNTDB_NODE_ID)");

  f.http.on("GET /base/proxmox-nodes/agent-node/34", http_answer(404, R"({"error":"NOT_FOUND"})"));
  auto unknown = f.client.node_info();
  CHECK(unknown.error().kind == ErrorKind::auth);
  CHECK(unknown.error().message.find("does not know node 34") != std::string::npos);

  f.http.on(
      "PUT /base/vms/agent/7",
      http_answer(
          422, R"({"error":"VALIDATION_ERROR","details":{"errors":{"name":["field required"]}}})"));
  auto invalid = f.client.put_vm(7, {{"vmid", 101}});
  CHECK(invalid.error().kind == ErrorKind::client);
  CHECK(invalid.error().message.find("422") != std::string::npos);
  CHECK(invalid.error().message.find("field required") != std::string::npos);

  auto limited = http_answer(429, R"({"detail":"Too many requests"})");
  limited.retry_after = std::chrono::seconds(53);
  f.http.on("POST /base/proxmox-nodes/heartbeat", limited);
  auto rl = f.client.heartbeat();
  CHECK(rl.error().kind == ErrorKind::rate_limited);
  CHECK(rl.error().message.find("Retry-After 53 s") != std::string::npos);

  f.http.on("GET /base/proxmox-nodes/agent-vms/34",
            test::http_failure(FailureKind::timeout,
                               "GET http://127.0.0.1:5000/x?api_key=" + kKey + " timed out"));
  auto t = f.client.list_vms();
  CHECK(t.error().kind == ErrorKind::timeout);
  // The context as fields: the request, and the URL without the query that holds the key.
  CHECK(invalid.error().method == "PUT");
  CHECK(invalid.error().url == "http://127.0.0.1:5000/base/vms/agent/7");
  CHECK(invalid.error().status == 422);
  CHECK(t.error().status == 0);
  for (const auto* m : {&bad_key.error().message, &unknown.error().message,
                        &invalid.error().message, &rl.error().message, &t.error().message}) {
    CHECK(m->find(kKey) == std::string::npos);
  }
}

TEST_CASE("the key is never logged") {
  std::vector<std::string> lines;
  log::init({log::Level::trace, log::Format::text, false, {}});
  log::capture_for_test(&lines);
  Fixture f;
  f.http.on("GET /base/proxmox-nodes/agent-node/34",
            http_answer(401, R"({"detail":"Invalid API key"})"));
  static_cast<void>(f.client.node_info());
  f.http.on("GET /base/proxmox-nodes/agent-node/34", http_answer(200, R"({"id":34})"));
  static_cast<void>(f.client.node_info());
  log::capture_for_test(nullptr);
  log::init({});
  REQUIRE(lines.size() == 2);
  for (const auto& l : lines) {
    CHECK(l.find(kKey) == std::string::npos);
    CHECK(l.find("request_id=req-") != std::string::npos);
  }
}

// Found by fuzz/accountdb_parse (UBSan: 1e+300 is outside the range of
// long): a float id or count too large for int64 was converted anyway, and an
// unsigned id above INT64_MAX wrapped to a negative one - an update to it
// would have gone out as a create.
TEST_CASE("list_vms: a row id that is not a positive int64 fails the whole answer") {
  for (const char* id : {"1e300", "-1e300", "9.3e18", "18446744073709551615", "0", "-5"}) {
    CAPTURE(id);
    const auto rows = parse_rows(std::string(R"({"vms":[{"id":)") + id + R"(,"vmid":101}]})");
    CHECK_FALSE(rows.ok());
  }
  const auto ok = parse_rows(R"({"vms":[{"id":7.0,"vmid":101,"cpu_cores":1e300,"disk_gb":2.7}]})");
  REQUIRE(ok.ok());
  CHECK(ok->at(0).id == 7);
  CHECK_FALSE(ok->at(0).cpu_cores.has_value());  // not a number AccountDB can hold
  CHECK(ok->at(0).disk_gb == std::optional<std::int64_t>(2));
  CHECK_FALSE(parse_node(R"({"id":1e300})").ok());
}
