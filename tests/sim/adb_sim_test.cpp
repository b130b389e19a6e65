// The AccountDB simulator against the recording of the real server, and its
// own behaviour (rows, keys, rate limit, faults, control API, program), over
// real loopback HTTP with libcurl. Time moves through a FakeClock or
// advance(); every wait is bounded.

#include <csignal>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "tests/sim/adb_control.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/process.hpp"

using namespace std::chrono_literals;
using pha::sim::AdbCall;
using pha::sim::AdbFault;
using pha::sim::AdbFaultKind;
using pha::sim::AdbNode;
using pha::sim::AdbRow;
using pha::sim::AdbSim;
using pha::sim::AdbSimOptions;

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// 43 URL-safe characters, like the server's keys.
const std::string kKey = "q7Vd0cN3xL2mWb8RkT5yHs1EoPj4ZuGa9fIiC6Xe-_Q";
const std::string kOtherKey = "Lw3Nn7Qs0Ab2Cd4Ef6Gh8Ij1Kl5Mo9Pq-Rt_UvWxYz0";

// --- a small libcurl client ---

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  bool has(const std::string& name) const { return headers.count(name) != 0; }
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  json doc() const { return json::parse(body); }
  ojson ordered() const { return ojson::parse(body); }
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::optional<std::string> body;
  std::vector<std::string> headers;
  long timeout_ms = 10000;
  std::string source;  // the local address to send from ("" = any)
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(user);
  const std::string line(data, size * n);
  if (line.starts_with("HTTP/")) {
    headers.clear();  // a new answer (after 100 Continue)
  }
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    headers[pha::to_lower(pha::trim(line.substr(0, colon)))] =
        std::string(pha::trim(line.substr(colon + 1)));
  }
  return size * n;
}

Reply send(const Request& r) {
  static const bool initialized = [] {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  }();
  REQUIRE(initialized);
  Reply reply;
  CURL* c = curl_easy_init();
  REQUIRE(c != nullptr);
  curl_slist* headers = curl_slist_append(nullptr, "Expect:");
  for (const auto& h : r.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  if (r.body) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
  }
  curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r.timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &reply.headers);
  const std::string body = r.body.value_or("");
  if (r.method == "POST" || r.body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  if (r.method != "GET" && r.method != "POST") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  const std::string interface = "host!" + r.source;
  if (!r.source.empty()) {
    curl_easy_setopt(c, CURLOPT_INTERFACE, interface.c_str());
  }
  reply.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_cleanup(c);
  curl_slist_free_all(headers);
  return reply;
}

Reply get(const AdbSim& sim, const std::string& target, std::vector<std::string> headers = {}) {
  return send({.url = sim.url() + target, .headers = std::move(headers)});
}

Reply put(const AdbSim& sim, const std::string& target, const json& body) {
  return send({.method = "PUT", .url = sim.url() + target, .body = body.dump()});
}

Reply post(const AdbSim& sim, const std::string& target) {
  return send({.method = "POST", .url = sim.url() + target});
}

// The calls of docs/accountdb.md for node 34 with `key`.
std::string node_info_path(const std::string& key = kKey) {
  return "/proxmox-nodes/agent-node/34?api_key=" + key;
}
std::string heartbeat_path(const std::string& key = kKey) {
  return "/proxmox-nodes/heartbeat?node_id=34&api_key=" + key;
}
std::string whitelist_path(const std::string& key = kKey) {
  return "/vm-access/node/34/whitelist/agent?api_key=" + key;
}
std::string whitelist_legacy_path(const std::string& key = kKey) {
  return "/proxmox-nodes/agent-whitelist/34?api_key=" + key;
}
std::string list_vms_path(const std::string& key = kKey) {
  return "/proxmox-nodes/agent-vms/34?api_key=" + key;
}
std::string put_vm_path(long long id, const std::string& key = kKey) {
  return "/vms/agent/" + std::to_string(id) + "?node_id=34&api_key=" + key;
}

json guest(long long vmid, const std::string& name) {
  return {{"vmid", vmid},
          {"name", name},
          {"status", "running"},
          {"cpu_cores", 2},
          {"cpu_usage_percent", 12.345},
          {"memory_mb", 2048},
          {"disk_gb", 32},
          {"ip_address", "10.0.0.11"},
          {"uptime_seconds", 3600},
          {"proxmox_node", "pve1"},
          {"template_id", nullptr},
          {"notes", "hello"}};
}

// Node 34 as in the recording.
AdbNode recorded_node() {
  return {.id = 34,
          .name = "pha-node-34",
          .hostname = "127.0.0.1",
          .port = 8006,
          .api_key = kKey,
          .owner_id = 2,
          .whitelist = {101, 102, 205}};
}

AdbSimOptions recorded_options() {
  AdbSimOptions o;
  o.nodes = {recorded_node()};
  return o;
}

bool is_hex16(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// "2026-11-22T01:44:31.896295+00:00"
bool is_timestamp(const ojson& v) {
  if (!v.is_string()) {
    return false;
  }
  const auto s = v.get<std::string>();
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddddd+00:00";
  if (s.size() != shape.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) {
      return false;
    }
  }
  return true;
}

std::string keys_of(const ojson& j) {
  std::string out;
  for (const auto& [k, v] : j.items()) {
    out += k + " ";
  }
  return out;
}

// `got` must equal `want` in structure, key order, types and values, except
// timestamps, which must be timestamps where the recording has one (and
// equal to each other where the recording's are).
void expect_like(const ojson& got, const ojson& want, const std::string& where) {
  INFO(where);
  if (want.is_object()) {
    REQUIRE(got.is_object());
    CHECK(keys_of(got) == keys_of(want));
    for (const auto& [k, v] : want.items()) {
      if (!got.contains(k)) {
        continue;
      }
      if (k == "created_at" || k == "updated_at" || k == "last_seen") {
        INFO(where << "." << k);
        CHECK(got[k].is_null() == v.is_null());
        if (v.is_string()) {
          CHECK(is_timestamp(got[k]));
        }
      } else {
        expect_like(got[k], v, where + "." + k);
      }
    }
    if (want.contains("created_at") && want["created_at"].is_string() &&
        want.contains("updated_at") && want["updated_at"].is_string()) {
      CHECK((want["created_at"] == want["updated_at"]) == (got["created_at"] == got["updated_at"]));
    }
  } else if (want.is_array()) {
    REQUIRE(got.is_array());
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      expect_like(got[i], want[i], where + "[" + std::to_string(i) + "]");
    }
  } else if (want.is_number_float()) {
    REQUIRE(got.is_number_float());
    CHECK(got.get<double>() == doctest::Approx(want.get<double>()));
  } else if (want.is_number()) {
    REQUIRE(got.is_number_integer());
    CHECK(got.get<long long>() == want.get<long long>());
  } else {
    CHECK(got.dump() == want.dump());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Reply send_entry(const AdbSim& sim, const ojson& request) {
  auto target = request["path"].get<std::string>();
  const std::string placeholder = "<API_KEY>";
  if (const auto at = target.find(placeholder); at != std::string::npos) {
    target.replace(at, placeholder.size(), kKey);
  }
  Request r{.method = request["method"].get<std::string>(), .url = sim.url() + target};
  if (!request["body"].is_null()) {
    r.body = request["body"].dump();
  }
  return send(r);
}

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) {
      return false;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace

TEST_CASE("replaying the real-server transcript gives the recorded answers") {
  pha::test::FakeClock clock;
  auto options = recorded_options();
  options.clock = &clock;
  AdbSim sim(options);
  const auto transcript = ojson::parse(
      read_file(std::string(PHA_FIXTURES_DIR) + "/accountdb/transcript.real-server.json"));
  REQUIRE(transcript["entries"].size() >= 20);

  int last_repeat = -1;
  for (const auto& entry : transcript["entries"]) {
    const auto label = entry["label"].get<std::string>();
    CAPTURE(label);
    const auto& want = entry["response"];
    if (label.starts_with("C repeat ")) {
      // The recording keeps only some of a run of requests: send the others.
      const int n = std::stoi(label.substr(9));
      for (int i = last_repeat + 1; i < n && last_repeat >= 0; ++i) {
        REQUIRE(send_entry(sim, entry["request"]).code == CURLE_OK);
      }
      last_repeat = n;
      if (want["headers"].contains("retry-after")) {
        // retry-after is int(window end - now): put the clock where the
        // recording's was, half a second into that second.
        const auto retry = std::stoll(want["headers"]["retry-after"].get<std::string>());
        clock.advance(std::chrono::milliseconds((60 - retry) * 1000 - 500));
      }
    }
    const auto got = send_entry(sim, entry["request"]);
    REQUIRE(got.code == CURLE_OK);
    CHECK(got.status == want["status"].get<long>());
    for (const auto& [name, value] : want["headers"].items()) {
      const auto lower = pha::to_lower(name);
      INFO("header " << name);
      REQUIRE(got.has(lower));
      if (lower == "x-request-id") {
        CHECK(is_hex16(got.header(lower)));
      } else {
        CHECK(got.header(lower) == value.get<std::string>());
      }
    }
    expect_like(got.ordered(), want["body"], "body");
  }
  CHECK(sim.rows().size() == 1);
  CHECK(sim.node(34)->status == "connected");
}

TEST_CASE("a create through a negative id inserts a new row every time") {
  AdbSim sim(recorded_options());
  const auto first = put(sim, put_vm_path(-101), guest(101, "web-101"));
  const auto second = put(sim, put_vm_path(-101), guest(101, "web-101"));
  REQUIRE(first.status == 200);
  REQUIRE(second.status == 200);
  CHECK(first.doc()["id"] == 1);
  CHECK(second.doc()["id"] == 2);  // no unique key on (vmid, node): a duplicate
  CHECK(second.doc()["proxmox_node"] == "pha-node-34");
  CHECK(second.doc()["owner_id"] == 1);

  const auto e = get(sim, list_vms_path()).doc();
  CHECK(e["count"] == 2);
  CHECK(e["vms"][0]["vmid"] == 101);
  CHECK(e["vms"][1]["vmid"] == 101);
  CHECK(sim.count("PUT /vms/agent/{id}") == 2);
  CHECK(sim.count("PUT /vms/agent/-101") == 2);

  // A PUT to an id that exists updates it, wherever the id comes from.
  CHECK(put(sim, put_vm_path(2), guest(101, "web-101b")).doc()["id"] == 2);
  CHECK(sim.rows().size() == 2);
  CHECK(sim.row(2)->name == "web-101b");
  // list_vms lists the rows in the order of their last write, like a heap scan.
  const auto again = get(sim, list_vms_path()).doc();
  CHECK(again["vms"][0]["id"] == 1);
  CHECK(again["vms"][1]["id"] == 2);
  put(sim, put_vm_path(1), guest(101, "web-101a"));
  CHECK(get(sim, list_vms_path()).doc()["vms"][1]["id"] == 1);
}

TEST_CASE("an update moves the row to the node of the request") {
  auto options = recorded_options();
  options.nodes.push_back({.id = 35, .name = "pve2", .api_key = kOtherKey});
  AdbSim sim(options);
  REQUIRE(put(sim, put_vm_path(-101), guest(101, "web-101")).status == 200);
  // The server checks the key against node_id only, not against the row.
  const auto moved =
      put(sim, "/vms/agent/1?node_id=35&api_key=" + kOtherKey, guest(101, "web-101"));
  REQUIRE(moved.status == 200);
  CHECK(moved.doc()["proxmox_node_id"] == 35);
  CHECK(moved.doc()["proxmox_node"] == "pve2");
  CHECK(get(sim, list_vms_path()).doc()["count"] == 0);
  CHECK(sim.rows_of_node(35).size() == 1);
}

TEST_CASE("a null or missing field keeps the stored value but a missing status means stopped") {
  AdbSim sim(recorded_options());
  REQUIRE(put(sim, put_vm_path(-101), guest(101, "web-101")).status == 200);
  const auto updated = put(sim, put_vm_path(1),
                           {{"vmid", 101},
                            {"name", "web-101"},
                            {"status", "paused"},
                            {"cpu_cores", nullptr},
                            {"ip_address", nullptr},
                            {"notes", nullptr},
                            {"memory_mb", 4096}});
  REQUIRE(updated.status == 200);
  const auto row = updated.doc();
  CHECK(row["status"] == "paused");
  CHECK(row["cpu_cores"] == 2);
  CHECK(row["ip_address"] == "10.0.0.11");
  CHECK(row["notes"] == "hello");
  CHECK(row["memory_mb"] == 4096);
  CHECK(row["disk_gb"] == 32);
  CHECK(row["cpu_usage_percent"] == 12.3);
  CHECK(row["uptime_seconds"].is_null());
  CHECK(row["created_at"] != row["updated_at"]);

  // pydantic's default for a missing status is "stopped", and COALESCE keeps it.
  const auto no_status = put(sim, put_vm_path(1), {{"vmid", 101}, {"name", "web-101"}});
  REQUIRE(no_status.status == 200);
  CHECK(no_status.doc()["status"] == "stopped");
  CHECK(sim.row(1)->status == "stopped");

  // A null status is rejected.
  const auto null_status =
      put(sim, put_vm_path(1), {{"vmid", 101}, {"name", "web-101"}, {"status", nullptr}});
  CHECK(null_status.status == 422);
  CHECK(null_status.doc()["details"]["errors"]["status"][0] == "none is not an allowed value");
}

TEST_CASE("a key is valid for its own node only") {
  auto options = recorded_options();
  options.nodes.push_back({.id = 35, .api_key = kOtherKey, .owner_id = 3});
  AdbSim sim(options);
  const std::string key34 = "api_key=" + kKey;
  const std::string key35 = "api_key=" + kOtherKey;

  CHECK(get(sim, "/proxmox-nodes/agent-node/35?" + key34).status == 401);
  CHECK(post(sim, "/proxmox-nodes/heartbeat?node_id=35&" + key34).status == 401);
  CHECK(get(sim, "/vm-access/node/35/whitelist/agent?" + key34).status == 401);
  CHECK(get(sim, "/proxmox-nodes/agent-whitelist/35?" + key34).status == 401);
  CHECK(get(sim, "/proxmox-nodes/agent-vms/35?" + key34).status == 401);
  const auto f = put(sim, "/vms/agent/-5?node_id=35&" + key34, guest(5, "x"));
  CHECK(f.status == 401);
  CHECK(f.doc()["detail"] == "Invalid API key or node not found");
  CHECK(sim.rows().empty());

  const auto a35 = get(sim, "/proxmox-nodes/agent-node/35?" + key35);
  REQUIRE(a35.status == 200);
  CHECK(a35.doc()["owner_id"] == 3);
  CHECK(a35.doc()["name"] == "pha-node-35");

  // A rotated key replaces the old one.
  const auto fresh = sim.rotate_key(34);
  CHECK(fresh.size() == 43);
  CHECK(get(sim, node_info_path()).status == 401);
  CHECK(get(sim, node_info_path(fresh)).status == 200);
}

TEST_CASE("node_info marks the node connected but answers with the node as it was") {
  AdbSim sim(recorded_options());
  const auto first = get(sim, node_info_path()).doc();
  CHECK(first["status"] == "disconnected");
  CHECK(first["last_seen"].is_null());
  const auto second = get(sim, node_info_path()).ordered();
  CHECK(second["status"] == "connected");
  CHECK(is_timestamp(second["last_seen"]));
  CHECK(sim.node(34)->last_seen.has_value());

  const auto heartbeat = post(sim, heartbeat_path());
  CHECK(heartbeat.status == 200);
  CHECK(heartbeat.doc() == json{{"message", "Heartbeat received"}});
  CHECK(post(sim, "/proxmox-nodes/heartbeat?node_id=99&api_key=" + kKey).status == 404);
  CHECK(post(sim, "/proxmox-nodes/heartbeat?node_id=0&api_key=" + kKey).doc()["detail"] ==
        "Invalid node_id parameter");
}

TEST_CASE("the rate limit counts per client address and path and frees after the window") {
  pha::test::FakeClock clock;
  auto options = recorded_options();
  options.clock = &clock;
  options.rate_limit = 5;
  options.rate_window = 60s;
  AdbSim sim(options);

  for (int i = 1; i <= 5; ++i) {
    const auto r = get(sim, whitelist_path());
    REQUIRE(r.status == 200);
    CHECK(r.header("x-ratelimit-limit") == "5");
    CHECK(r.header("x-ratelimit-remaining") == std::to_string(5 - i));
  }
  clock.advance(20s);
  // The query does not matter: the path does.
  const auto limited = get(sim, "/vm-access/node/34/whitelist/agent?api_key=other");
  CHECK(limited.status == 429);
  CHECK(limited.doc() == json{{"detail", "Too many requests"}});
  CHECK(limited.header("retry-after") == "40");
  CHECK(limited.header("x-ratelimit-remaining") == "0");

  // Another path and another client address have windows of their own.
  CHECK(get(sim, whitelist_legacy_path()).status == 200);
  const auto other_client = send({.url = sim.url() + whitelist_path(), .source = "127.0.0.2"});
  REQUIRE(other_client.code == CURLE_OK);
  CHECK(other_client.status == 200);
  CHECK(other_client.header("x-ratelimit-remaining") == "4");
  CHECK(sim.requests().back().client == "127.0.0.2");

  // The window ends 60 s after its first request.
  clock.advance(39s);
  CHECK(get(sim, whitelist_path()).header("retry-after") == "1");
  clock.advance(1500ms);
  const auto again = get(sim, whitelist_path());
  CHECK(again.status == 200);
  CHECK(again.header("x-ratelimit-remaining") == "4");

  // advance() moves the simulator's time on top of its clock.
  for (int i = 0; i < 5; ++i) {
    get(sim, whitelist_path());
  }
  CHECK(get(sim, whitelist_path()).status == 429);
  sim.advance(61s);
  CHECK(get(sim, whitelist_path()).status == 200);
}

TEST_CASE("a down server refuses connections until the fault is cleared") {
  AdbSim sim(recorded_options());
  REQUIRE(get(sim, node_info_path()).status == 200);
  sim.set_fault({.kind = AdbFaultKind::down});
  CHECK(get(sim, node_info_path()).code == CURLE_COULDNT_CONNECT);
  sim.clear_fault();
  CHECK(get(sim, node_info_path()).status == 200);
}

TEST_CASE("a slow server makes a short client time out while the write still lands") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::slow, .delay = 3000ms});
  const auto r = send({.method = "PUT",
                       .url = sim.url() + put_vm_path(-101),
                       .body = guest(101, "web-101").dump(),
                       .timeout_ms = 200});
  CHECK(r.code == CURLE_OPERATION_TIMEDOUT);
  CHECK(wait_until([&] { return sim.rows().size() == 1; }));
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).doc()["count"] == 1);
}

TEST_CASE("a hanging server answers nothing until the fault is cleared") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::hang, .call = AdbCall::put_vm});
  const auto r = send({.method = "PUT",
                       .url = sim.url() + put_vm_path(-101),
                       .body = guest(101, "web-101").dump(),
                       .timeout_ms = 200});
  CHECK(r.code == CURLE_OPERATION_TIMEDOUT);
  CHECK(sim.rows().empty());                       // a hang never reaches the database
  CHECK(get(sim, list_vms_path()).status == 200);  // only put_vm hangs
  CHECK(sim.requests().front().status == 0);
  sim.clear_fault();
  CHECK(put(sim, put_vm_path(-101), guest(101, "web-101")).status == 200);
}

TEST_CASE("a status fault answers for one call kind and only for the next requests") {
  AdbSim sim(recorded_options());
  sim.set_fault(
      {.kind = AdbFaultKind::status, .call = AdbCall::list_vms, .count = 2, .status = 503});
  CHECK(get(sim, node_info_path()).status == 200);
  const auto first = get(sim, list_vms_path());
  CHECK(first.status == 503);
  CHECK(first.header("content-type") == "application/json");
  CHECK(first.doc() == json{{"detail", "Service Unavailable"}});
  CHECK(get(sim, list_vms_path()).status == 503);
  CHECK_FALSE(sim.fault().has_value());
  CHECK(get(sim, list_vms_path()).status == 200);

  sim.set_fault({.kind = AdbFaultKind::status, .status = 500});
  const auto server_error = get(sim, whitelist_path());
  CHECK(server_error.status == 500);
  CHECK(server_error.doc()["error"] == "INTERNAL_SERVER_ERROR");

  sim.set_fault({.kind = AdbFaultKind::status, .call = AdbCall::put_vm, .status = 401});
  const auto denied = put(sim, put_vm_path(-101), guest(101, "web-101"));
  CHECK(denied.status == 401);
  CHECK(denied.doc()["detail"] == "Invalid API key or node not found");
  CHECK(sim.rows().empty());

  sim.set_fault({.kind = AdbFaultKind::status, .status = 502, .body = R"({"oops":1})"});
  const auto custom = get(sim, whitelist_legacy_path());
  CHECK(custom.status == 502);
  CHECK(custom.body == R"({"oops":1})");
  CHECK(custom.header("content-type") == "application/json");

  const std::string page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
  sim.set_fault({.kind = AdbFaultKind::status, .status = 502, .body = page});
  const auto proxy = get(sim, whitelist_legacy_path());
  CHECK(proxy.body == page);
  CHECK(proxy.header("content-type") == "text/html");

  sim.clear_fault();
  CHECK(get(sim, whitelist_legacy_path()).status == 200);
}

TEST_CASE("a forced rate limit answers 429 with the configured retry-after") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::rate_limit, .call = AdbCall::put_vm, .retry_after = 7});
  const auto r = put(sim, put_vm_path(-101), guest(101, "web-101"));
  CHECK(r.status == 429);
  CHECK(r.header("retry-after") == "7");
  CHECK(r.doc() == json{{"detail", "Too many requests"}});
  CHECK(sim.rows().empty());
  sim.set_fault({.kind = AdbFaultKind::rate_limit, .retry_after = 0});
  CHECK(get(sim, node_info_path()).header("retry-after") == "0");
  sim.clear_fault();
  CHECK(put(sim, put_vm_path(-101), guest(101, "web-101")).status == 200);
}

TEST_CASE("a reset cuts the answer off but the create has landed") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::reset, .call = AdbCall::put_vm});
  const auto r = put(sim, put_vm_path(-101), guest(101, "web-101"));
  CHECK(r.code != CURLE_OK);
  CHECK(sim.rows().size() == 1);
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).doc()["count"] == 1);
}

TEST_CASE("list_vms_fails makes list_vms answer 500 while the other calls work") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::list_vms_fails});
  CHECK(get(sim, list_vms_path()).status == 500);
  CHECK(get(sim, list_vms_path()).status == 500);
  CHECK(get(sim, node_info_path()).status == 200);
  CHECK(get(sim, whitelist_path()).status == 200);
  CHECK(put(sim, put_vm_path(-101), guest(101, "web-101")).status == 200);
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).status == 200);
}

namespace {

// The recorded answer of the transcript entry `label`.
ojson recorded_response(const std::string& label) {
  const auto transcript = ojson::parse(
      read_file(std::string(PHA_FIXTURES_DIR) + "/accountdb/transcript.real-server.json"));
  for (const auto& entry : transcript["entries"]) {
    if (entry["label"] == label) {
      return entry["response"];
    }
  }
  FAIL("no transcript entry " << label);
  return nullptr;
}

}  // namespace

TEST_CASE("list_vms_empty answers 200 with no rows in the server's shape") {
  AdbSim sim(recorded_options());
  sim.add_row({.vmid = 101, .name = "web-101", .proxmox_node_id = 34});
  sim.add_row({.vmid = 102, .name = "db-102", .proxmox_node_id = 34});
  const auto honest = get(sim, list_vms_path());
  sim.set_fault({.kind = AdbFaultKind::list_vms_empty});
  const auto r = get(sim, list_vms_path());
  CHECK(r.status == 200);
  expect_like(r.ordered(), recorded_response("E ok, empty")["body"], "body");
  CHECK(r.body == R"({"vms":[],"count":0,"node_id":34})");
  for (const auto* h : {"content-type", "x-ratelimit-limit", "server"}) {
    CHECK(r.header(h) == honest.header(h));
  }
  CHECK(r.has("x-request-id"));
  // Only list_vms, and not a refused one.
  CHECK(get(sim, whitelist_path()).doc() == json{101, 102, 205});
  CHECK(get(sim, list_vms_path("wrong")).status == 401);
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).doc()["count"] == 2);
  // With a count it clears itself.
  sim.set_fault({.kind = AdbFaultKind::list_vms_empty, .count = 1});
  CHECK(get(sim, whitelist_path()).status == 200);
  CHECK(get(sim, list_vms_path()).doc()["count"] == 0);
  CHECK_FALSE(sim.fault().has_value());
  CHECK(get(sim, list_vms_path()).doc()["count"] == 2);
}

TEST_CASE("list_vms_drop leaves out the first rows and adjusts the count") {
  AdbSim sim(recorded_options());
  for (const long long vmid : {101, 102, 205}) {
    sim.add_row({.vmid = vmid, .name = "vm-" + std::to_string(vmid), .proxmox_node_id = 34});
  }
  const auto honest = get(sim, list_vms_path()).ordered();
  sim.set_fault({.kind = AdbFaultKind::list_vms_drop, .drop = 2});
  const auto r = get(sim, list_vms_path());
  CHECK(r.status == 200);
  const auto body = r.ordered();
  CHECK(keys_of(body) == keys_of(honest));
  REQUIRE(body["vms"].size() == 1);
  CHECK(body["count"] == 1);
  CHECK(body["node_id"] == 34);
  CHECK(body["vms"][0] == honest["vms"][2]);  // the rows left are whole
  CHECK(keys_of(body["vms"][0]) == keys_of(recorded_response("E ok, one row")["body"]["vms"][0]));
  sim.set_fault({.kind = AdbFaultKind::list_vms_drop, .drop = 10});
  CHECK(get(sim, list_vms_path()).body == R"({"vms":[],"count":0,"node_id":34})");
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).doc()["count"] == 3);
}

TEST_CASE("list_vms_other_node answers rows that each belong to another node") {
  AdbSim sim(recorded_options());
  sim.add_node({.id = 35, .name = "pha-node-35", .api_key = kOtherKey});
  sim.add_row({.vmid = 101, .name = "web-101", .proxmox_node_id = 34});
  sim.add_row({.vmid = 102, .name = "db-102", .proxmox_node_id = 34});
  sim.set_fault({.kind = AdbFaultKind::list_vms_other_node});
  auto body = get(sim, list_vms_path()).ordered();
  CHECK(body["count"] == 2);
  CHECK(body["node_id"] == 34);
  REQUIRE(body["vms"].size() == 2);
  for (const auto& vm : body["vms"]) {
    CHECK(vm["proxmox_node_id"] == 35);  // the node's id + 1
    CHECK(keys_of(vm) == keys_of(recorded_response("E ok, one row")["body"]["vms"][0]));
  }
  sim.set_fault({.kind = AdbFaultKind::list_vms_other_node, .other_node_id = 77});
  body = get(sim, list_vms_path()).ordered();
  for (const auto& vm : body["vms"]) {
    CHECK(vm["proxmox_node_id"] == 77);
  }
  // The stored rows did not move.
  for (const auto& row : sim.rows()) {
    CHECK(row.proxmox_node_id == 34);
  }
  sim.clear_fault();
  CHECK(get(sim, list_vms_path()).doc()["vms"][0]["proxmox_node_id"] == 34);
}

TEST_CASE("whitelist_empty answers both whitelist calls with no VMIDs in their shapes") {
  AdbSim sim(recorded_options());
  sim.set_fault({.kind = AdbFaultKind::whitelist_empty});
  auto r = get(sim, whitelist_path());
  CHECK(r.status == 200);
  CHECK(r.body == "[]");
  CHECK(r.header("content-type") == "application/json");
  const auto legacy = get(sim, whitelist_legacy_path()).ordered();
  CHECK(keys_of(legacy) == keys_of(recorded_response("D ok")["body"]));
  CHECK(legacy["vmids"] == ojson::array());
  CHECK(legacy["success"] == true);
  CHECK(get(sim, list_vms_path()).status == 200);
  CHECK(get(sim, whitelist_path("wrong")).status == 401);
  sim.clear_fault();
  CHECK(get(sim, whitelist_path()).doc() == json{101, 102, 205});
}

TEST_CASE("the lies are set and read through the control API") {
  AdbSim sim(recorded_options());
  sim.add_row({.vmid = 101, .name = "web-101", .proxmox_node_id = 34});
  pha::sim::AdbControlApi control(sim);
  control.start();
  const auto ctl = [&](const std::string& method, const std::string& path,
                       std::optional<std::string> body = std::nullopt) {
    return send({.method = method, .url = control.url() + path, .body = std::move(body)});
  };
  REQUIRE(
      ctl("POST", "/control/fault", R"({"kind":"list_vms_other_node","other_node_id":9})").status ==
      200);
  CHECK(get(sim, list_vms_path()).doc()["vms"][0]["proxmox_node_id"] == 9);
  const auto f = ctl("GET", "/control/fault").doc();
  CHECK(f["kind"] == "list_vms_other_node");
  CHECK(f["other_node_id"] == 9);
  REQUIRE(ctl("POST", "/control/fault", R"({"kind":"list_vms_drop","drop":1})").status == 200);
  CHECK(get(sim, list_vms_path()).doc()["count"] == 0);
  REQUIRE(ctl("POST", "/control/fault", R"({"kind":"list_vms_empty"})").status == 200);
  CHECK(get(sim, list_vms_path()).doc()["vms"].empty());
  REQUIRE(ctl("POST", "/control/fault", R"({"kind":"whitelist_empty"})").status == 200);
  CHECK(get(sim, whitelist_path()).body == "[]");
  CHECK(ctl("DELETE", "/control/fault").status == 200);
  CHECK(get(sim, whitelist_path()).doc().size() == 3);
  control.stop();
}

TEST_CASE("X-Request-ID is echoed or generated") {
  AdbSim sim(recorded_options());
  CHECK(get(sim, node_info_path(), {"X-Request-ID: trace-42"}).header("x-request-id") ==
        "trace-42");
  const auto one = get(sim, node_info_path()).header("x-request-id");
  const auto two = get(sim, "/no/such/path").header("x-request-id");
  CHECK(is_hex16(one));
  CHECK(is_hex16(two));
  CHECK(one != two);
  const auto r = get(sim, whitelist_path());
  CHECK(r.header("content-type") == "application/json");
  CHECK(r.header("server") == "uvicorn");
}

TEST_CASE("an older server without whitelist answers 404 there while whitelist_legacy works") {
  auto options = recorded_options();
  options.whitelist_endpoint = false;
  AdbSim sim(options);
  const auto c = get(sim, whitelist_path());
  CHECK(c.status == 404);
  CHECK(c.doc()["error"] == "NOT_FOUND");
  CHECK(get(sim, whitelist_legacy_path()).doc()["vmids"] == json{101, 102, 205});
  CHECK(sim.count("GET /vm-access/node/{node_id}/whitelist/agent") == 1);
  sim.set_whitelist_endpoint(true);
  CHECK(get(sim, whitelist_path()).doc() == json{101, 102, 205});
}

TEST_CASE("a newer server rejects a fractional disk_gb") {
  auto options = recorded_options();
  options.reject_float_disk = true;
  AdbSim sim(options);
  auto body = guest(101, "web-101");
  body["disk_gb"] = 31.5;
  const auto r = put(sim, put_vm_path(-101), body);
  CHECK(r.status == 422);
  CHECK(r.doc()["details"]["errors"]["disk_gb"][0] ==
        "Input should be a valid integer, got a number with a fractional part");
  body["disk_gb"] = 31.0;
  CHECK(put(sim, put_vm_path(-101), body).doc()["disk_gb"] == 31);
  sim.set_reject_float_disk(false);
  body["disk_gb"] = 31.9;
  CHECK(put(sim, put_vm_path(-101), body).doc()["disk_gb"] == 31);
}

TEST_CASE("put_vm validates its body like pydantic v1") {
  AdbSim sim(recorded_options());
  const auto errors = [](const Reply& r) {
    REQUIRE(r.status == 422);
    const auto doc = r.doc();
    CHECK(doc["error"] == "VALIDATION_ERROR");
    return doc["details"]["errors"];
  };
  auto body = guest(101, std::string(101, 'n'));
  CHECK(errors(put(sim, put_vm_path(-101), body))["name"][0] ==
        "ensure this value has at most 100 characters");
  body = guest(101, std::string(100, 'n'));
  body["status"] = std::string(21, 's');
  CHECK(errors(put(sim, put_vm_path(-101), body))["status"][0] ==
        "ensure this value has at most 20 characters");
  body = guest(101, "web");
  body["cpu_cores"] = "four";
  body["memory_mb"] = json::array();
  const auto two = errors(put(sim, put_vm_path(-101), body));
  CHECK(two["cpu_cores"][0] == "value is not a valid integer");
  CHECK(two["memory_mb"][0] == "value is not a valid integer");
  CHECK(errors(put(sim, put_vm_path(-101), json{{"name", "x"}}))["vmid"][0] == "field required");

  const auto not_json =
      send({.method = "PUT", .url = sim.url() + put_vm_path(-101), .body = "{nope"});
  CHECK(errors(not_json).size() == 1);
  CHECK(
      errors(send({.method = "PUT", .url = sim.url() + put_vm_path(-101), .body = "[1]"}))[""][0] ==
      "value is not a valid dict");
  CHECK(errors(send({.method = "PUT", .url = sim.url() + put_vm_path(-101)}))[""][0] ==
        "field required");
  const auto both = errors(put(sim, "/vms/agent/abc?api_key=" + kKey, json{{"vmid", 1}}));
  CHECK(both["path.vm_id"][0] == "value is not a valid integer");
  CHECK(both["query.node_id"][0] == "field required");
  CHECK(both["name"][0] == "field required");
  CHECK(sim.rows().empty());

  // Coercions and rounding as the server stores them; unknown keys are ignored.
  body = guest(101, "web");
  body["cpu_cores"] = "4";
  body["cpu_usage_percent"] = 12.35;
  body["name"] = 1234;
  body["no_such_field"] = {{"x", 1}};
  const auto ok = put(sim, put_vm_path(-101), body);
  REQUIRE(ok.status == 200);
  CHECK(ok.doc()["cpu_cores"] == 4);
  CHECK(ok.doc()["cpu_usage_percent"] == 12.4);
  CHECK(ok.doc()["name"] == "1234");
  CHECK(ok.doc()["template_id"].is_null());
}

TEST_CASE("wrong methods and unknown paths answer like the server") {
  AdbSim sim(recorded_options());
  const auto unknown = get(sim, "/proxmox-nodes/agent-node/34/extra?api_key=" + kKey);
  CHECK(unknown.status == 404);
  CHECK(unknown.doc()["message"] == "Endpoint not found");
  CHECK(unknown.has("x-ratelimit-remaining"));
  const auto wrong = send({.method = "DELETE", .url = sim.url() + node_info_path()});
  CHECK(wrong.status == 405);
  CHECK(wrong.doc() == json{{"detail", "Method Not Allowed"}});
  const auto bad_id = get(sim, "/proxmox-nodes/agent-node/x1?api_key=" + kKey);
  CHECK(bad_id.status == 422);
  CHECK(bad_id.doc()["details"]["errors"]["path.node_id"][0] == "value is not a valid integer");
  CHECK(get(sim, "/proxmox-nodes/agent-node/0?api_key=" + kKey).status == 400);
  const auto e_no_key = get(sim, "/proxmox-nodes/agent-vms/34");
  CHECK(e_no_key.status == 422);
  CHECK(e_no_key.doc()["details"]["errors"]["query.api_key"][0] == "field required");
  CHECK(get(sim, "/proxmox-nodes/agent-vms/34?api_key=").doc()["detail"] ==
        "Missing required parameter: api_key");
}

TEST_CASE("a client that asks for JSON gets the server's own error format") {
  AdbSim sim(recorded_options());
  const auto r = get(sim, node_info_path("wrong"), {"Accept: application/json"});
  CHECK(r.status == 401);
  CHECK(r.doc() == json{{"error", "HTTP_ERROR"},
                        {"message", "Invalid API key"},
                        {"status_code", 401},
                        {"details", json::object()}});
  CHECK(get(sim, node_info_path("wrong")).doc() == json{{"detail", "Invalid API key"}});
}

TEST_CASE("the request log masks the key and the counts reset") {
  AdbSim sim(recorded_options());
  put(sim, put_vm_path(-101), guest(101, "web-101"));
  get(sim, list_vms_path());
  get(sim, "/proxmox-nodes/agent-vms/34");
  const auto log = sim.requests();
  REQUIRE(log.size() == 3);
  CHECK(log[0].method == "PUT");
  CHECK(log[0].path == "/vms/agent/-101");
  CHECK(log[0].query == "node_id=34&api_key=***");
  CHECK(log[0].call == AdbCall::put_vm);
  CHECK(log[0].status == 200);
  CHECK(json::parse(log[0].body)["name"] == "web-101");
  CHECK(log[2].status == 422);
  CHECK(sim.count("GET /proxmox-nodes/agent-vms/{node_id}") == 2);
  CHECK(sim.count("GET /proxmox-nodes/agent-vms/34") == 2);
  CHECK(sim.total_requests() == 3);
  CHECK(sim.state_json().find(kKey) != std::string::npos);  // the state shows the seed
  sim.reset_counts();
  CHECK(sim.total_requests() == 0);
  CHECK(sim.counts().empty());
  CHECK(sim.requests().empty());
}

TEST_CASE("operator changes to rows and whitelists show in the answers") {
  AdbSim sim(recorded_options());
  const auto added = sim.add_row({.vmid = 300, .name = "by-hand", .proxmox_node_id = 34});
  CHECK(added.id == 1);
  CHECK(get(sim, list_vms_path()).doc()["vms"][0]["name"] == "by-hand");
  CHECK(sim.edit_row(1, [](AdbRow& r) { r.status = "running"; }));
  CHECK(get(sim, list_vms_path()).doc()["vms"][0]["status"] == "running");
  CHECK(put(sim, put_vm_path(-301), guest(301, "next")).doc()["id"] == 2);
  CHECK(sim.delete_row(1));
  CHECK(get(sim, list_vms_path()).doc()["count"] == 1);
  CHECK(put(sim, put_vm_path(-302), guest(302, "after")).doc()["id"] == 3);  // serials never repeat

  CHECK(sim.set_whitelist(34, {7, 8}));
  CHECK(get(sim, whitelist_path()).doc() == json{7, 8});
  CHECK(get(sim, whitelist_legacy_path()).doc()["vmids"] == json{7, 8});
  CHECK(sim.set_whitelist(34, {}));
  CHECK(get(sim, whitelist_path()).doc() == json::array());
  CHECK_FALSE(sim.set_whitelist(99, {1}));
}

TEST_CASE("the control API drives the simulator") {
  AdbSim sim(recorded_options());
  pha::sim::AdbControlApi control(sim);
  control.start();
  const auto ctl = [&](const std::string& method, const std::string& path,
                       std::optional<std::string> body = std::nullopt) {
    return send({.method = method, .url = control.url() + path, .body = std::move(body)});
  };

  REQUIRE(ctl("POST", "/control/fault", R"({"kind":"status","call":"whitelist","status":502})")
              .status == 200);
  CHECK(get(sim, whitelist_path()).status == 502);
  CHECK(ctl("GET", "/control/fault").doc()["call"] == "whitelist");
  CHECK(ctl("DELETE", "/control/fault").status == 200);
  CHECK(get(sim, whitelist_path()).status == 200);
  CHECK(ctl("POST", "/control/fault", R"({"kind":"nonsense"})").status == 400);

  CHECK(ctl("PUT", "/control/nodes/34/whitelist", "[5, 6]").status == 200);
  CHECK(get(sim, whitelist_path()).doc() == json{5, 6});
  CHECK(ctl("PUT", "/control/nodes/99/whitelist", "[5]").status == 404);

  const auto row = ctl("POST", "/control/rows", R"({"vmid":300,"name":"ops"})").doc();
  CHECK(row["id"] == 1);
  CHECK(row["proxmox_node_id"] == 34);
  CHECK(ctl("PUT", "/control/rows/1", R"({"name":"renamed","ip_address":null})").doc()["name"] ==
        "renamed");
  CHECK(get(sim, list_vms_path()).doc()["vms"][0]["name"] == "renamed");
  CHECK(ctl("GET", "/control/rows").doc()["count"] == 1);
  CHECK(ctl("DELETE", "/control/rows/1").status == 200);
  CHECK(ctl("DELETE", "/control/rows/1").status == 404);

  const auto counts = ctl("GET", "/control/counts").doc();
  CHECK(counts["counts"]["GET /vm-access/node/{node_id}/whitelist/agent"] == 3);
  CHECK(counts["paths"]["GET /vm-access/node/34/whitelist/agent"] == 3);
  const auto log = ctl("GET", "/control/requests").doc();
  CHECK(log["requests"][0]["query"] == "api_key=***");
  CHECK(ctl("POST", "/control/counts/reset").status == 200);
  CHECK(sim.total_requests() == 0);

  CHECK(ctl("POST", "/control/settings", R"({"rate_limit":1,"whitelist_endpoint":false})")
            .doc()["rate_limit"] == 1);
  CHECK(get(sim, whitelist_legacy_path()).status == 200);
  CHECK(get(sim, whitelist_legacy_path()).status == 429);
  CHECK(get(sim, whitelist_path()).status == 404);
  CHECK(ctl("POST", "/control/clock/advance", R"({"seconds":61})").status == 200);
  CHECK(get(sim, whitelist_legacy_path()).status == 200);
  CHECK(ctl("POST", "/control/settings", R"({"rate_limit":100})").status == 200);

  const auto key = ctl("POST", "/control/nodes/34/rotate-key", "{}").doc()["api_key"];
  CHECK(get(sim, node_info_path()).status == 401);
  CHECK(get(sim, "/proxmox-nodes/agent-node/34?api_key=" + key.get<std::string>()).status == 200);
  const auto state = ctl("GET", "/control/state").doc();
  CHECK(state["nodes"][0]["api_key"] == key);
  CHECK(state["settings"]["whitelist_endpoint"] == false);
  control.stop();
}

namespace {

// The ready line of adb-sim, once it is printed.
json ready_line(pha::test::Process& p) {
  REQUIRE(p.wait_for_output("\"event\":\"ready\"", 20s));
  const auto out = p.out_so_far();
  return json::parse(out.substr(0, out.find('\n')));
}

}  // namespace

TEST_CASE("adb-sim prints its ready line and exits 0 on SIGTERM") {
  pha::test::Process p(PHA_ADB_SIM_BINARY,
                       {.args = {"--node-id", "34", "--api-key", kKey, "--whitelist", "101,102",
                                 "--owner-id", "2", "--node-name", "pve1", "--rate-limit", "100"}});
  const auto ready = ready_line(p);
  const auto url = ready["url"].get<std::string>();
  const auto control = ready["control"].get<std::string>();
  CHECK(url.starts_with("http://127.0.0.1:"));
  CHECK(control.starts_with("http://127.0.0.1:"));

  const auto a = send({.url = url + node_info_path()});
  REQUIRE(a.status == 200);
  CHECK(a.doc()["name"] == "pve1");
  CHECK(a.doc()["owner_id"] == 2);
  CHECK(a.doc()["whitelist"] == json{101, 102});
  CHECK(send({.url = control + "/control/counts"}).doc()["total"] == 1);
  CHECK(send({.method = "POST", .url = control + "/control/fault", .body = R"({"kind":"down"})"})
            .status == 200);
  CHECK(send({.url = url + node_info_path()}).code == CURLE_COULDNT_CONNECT);

  p.signal(SIGTERM);
  const auto result = p.wait(20s);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 0);
}

TEST_CASE("adb-sim reads nodes and rows from a seed file") {
  pha::test::TempDir dir;
  const auto seed = dir.write(
      "seed.json",
      json{{"nodes",
            {{{"id", 34}, {"api_key", kKey}},
             {{"id", 35}, {"api_key", kOtherKey}, {"name", "pve2"}, {"whitelist", {9}}}}},
           {"rows",
            {{{"vmid", 9}, {"name", "seeded"}, {"proxmox_node_id", 35}, {"status", "running"}}}}}
          .dump());
  pha::test::Process p(PHA_ADB_SIM_BINARY, {.args = {"--seed", seed, "--rate-limit", "3"}});
  const auto url = ready_line(p)["url"].get<std::string>();
  const auto e = send({.url = url + "/proxmox-nodes/agent-vms/35?api_key=" + kOtherKey});
  REQUIRE(e.status == 200);
  CHECK(e.doc()["vms"][0]["name"] == "seeded");
  CHECK(e.header("x-ratelimit-limit") == "3");
  CHECK(send({.url = url + node_info_path()}).status == 200);

  p.signal(SIGINT);
  const auto result = p.wait(20s);
  CHECK(result.exit_code == 0);
}

TEST_CASE("adb-sim refuses to start without a node") {
  const auto result =
      pha::test::run_process(PHA_ADB_SIM_BINARY, {.args = {"--rate-limit", "5"}}, 20s);
  CHECK(result.exit_code == 1);
  CHECK(result.err.find("no node") != std::string::npos);
}

// --- several endpoints over one state ---

namespace {

Reply get_at(const AdbSim& sim, std::size_t endpoint, const std::string& target) {
  return send({.url = sim.url(endpoint) + target});
}

Reply put_at(const AdbSim& sim, std::size_t endpoint, const std::string& target, const json& body) {
  return send({.method = "PUT", .url = sim.url(endpoint) + target, .body = body.dump()});
}

}  // namespace

TEST_CASE("two endpoints serve the same rows and share the rate limit") {
  auto options = recorded_options();
  options.rate_limit = 3;
  AdbSim sim(options);
  CHECK(sim.endpoints() == 1);
  const auto second = sim.add_endpoint();
  CHECK(second == 1);
  CHECK(sim.endpoints() == 2);
  CHECK(sim.port(0) == sim.port());
  CHECK(sim.url(0) == sim.url());
  CHECK(sim.port(1) != sim.port(0));
  CHECK(sim.url(1) == "http://127.0.0.1:" + std::to_string(sim.port(1)));
  CHECK_THROWS_AS(sim.url(2), std::out_of_range);

  // A create through endpoint 1 is read through endpoint 0.
  const auto created = put_at(sim, 1, put_vm_path(-101), guest(101, "web-101"));
  REQUIRE(created.status == 200);
  const auto e = get_at(sim, 0, list_vms_path());
  REQUIRE(e.status == 200);
  CHECK(e.doc()["count"] == 1);
  CHECK(e.doc()["vms"][0]["id"] == created.doc()["id"]);
  CHECK(sim.rows().size() == 1);
  // An operator's change shows through both.
  sim.add_row({.vmid = 300, .name = "by-hand", .proxmox_node_id = 34});
  CHECK(get_at(sim, 1, list_vms_path()).doc()["count"] == 2);

  // One rate limit for the farm: the window of (client, path) is shared.
  CHECK(get_at(sim, 0, whitelist_legacy_path()).status == 200);
  CHECK(get_at(sim, 1, whitelist_legacy_path()).status == 200);
  CHECK(get_at(sim, 0, whitelist_legacy_path()).status == 200);
  CHECK(get_at(sim, 1, whitelist_legacy_path()).status == 429);
}

TEST_CASE("a down endpoint refuses connections while the other answers") {
  AdbSim sim(recorded_options());
  sim.add_endpoint();
  sim.set_fault({.kind = AdbFaultKind::down}, 0);
  CHECK(get_at(sim, 0, node_info_path()).code == CURLE_COULDNT_CONNECT);
  const auto a = get_at(sim, 1, node_info_path());
  REQUIRE(a.code == CURLE_OK);
  CHECK(a.status == 200);
  CHECK(sim.fault(0).has_value());
  CHECK_FALSE(sim.fault(1).has_value());
  CHECK(sim.fault()->kind == AdbFaultKind::down);  // no endpoint: endpoint 0

  // The other way round, through the calls without an endpoint for endpoint 0.
  sim.clear_fault();
  sim.set_fault({.kind = AdbFaultKind::down}, 1);
  CHECK(get_at(sim, 0, node_info_path()).status == 200);
  CHECK(get_at(sim, 1, node_info_path()).code == CURLE_COULDNT_CONNECT);
  sim.clear_fault(1);
  CHECK(get_at(sim, 1, node_info_path()).status == 200);
  CHECK_THROWS_AS(sim.set_fault({.kind = AdbFaultKind::down}, 2), std::out_of_range);
}

TEST_CASE("a hang on endpoint 0 does not delay endpoint 1") {
  AdbSim sim(recorded_options());
  sim.add_endpoint();
  sim.set_fault({.kind = AdbFaultKind::hang}, 0);
  const auto hung = send({.url = sim.url(0) + list_vms_path(), .timeout_ms = 200});
  CHECK(hung.code == CURLE_OPERATION_TIMEDOUT);
  // Endpoint 0 still hangs (its fault has no count): endpoint 1 answers at once.
  const auto answered = send({.url = sim.url(1) + list_vms_path(), .timeout_ms = 2000});
  REQUIRE(answered.code == CURLE_OK);
  CHECK(answered.status == 200);
  const auto written = send({.method = "PUT",
                             .url = sim.url(1) + put_vm_path(-101),
                             .body = guest(101, "web-101").dump(),
                             .timeout_ms = 2000});
  CHECK(written.status == 200);
  CHECK(sim.fault(0).has_value());
  CHECK(sim.requests().front().status == 0);
  CHECK(sim.requests().front().endpoint == 0);
  sim.clear_fault(0);
  CHECK(get_at(sim, 0, list_vms_path()).doc()["count"] == 1);
}

TEST_CASE("per-endpoint request counts add up to the totals") {
  AdbSim sim(recorded_options());
  sim.add_endpoint();
  get_at(sim, 0, node_info_path());
  get_at(sim, 0, list_vms_path());
  get_at(sim, 1, list_vms_path());
  put_at(sim, 1, put_vm_path(-101), guest(101, "web-101"));
  put_at(sim, 1, put_vm_path(-102), guest(102, "web-102"));
  get_at(sim, 1, "/no/such/path");

  CHECK(sim.total_requests(0) == 2);
  CHECK(sim.total_requests(1) == 4);
  CHECK(sim.total_requests(0) + sim.total_requests(1) == sim.total_requests());
  for (const auto& [pattern, n] : sim.counts()) {
    CAPTURE(pattern);
    CHECK(sim.count(pattern, 0) + sim.count(pattern, 1) == n);
  }
  CHECK(sim.count("GET /proxmox-nodes/agent-vms/{node_id}", 0) == 1);
  CHECK(sim.count("GET /proxmox-nodes/agent-vms/{node_id}", 1) == 1);
  CHECK(sim.count("GET /proxmox-nodes/agent-vms/{node_id}") == 2);
  CHECK(sim.count("PUT /vms/agent/{id}", 0) == 0);
  CHECK(sim.count("PUT /vms/agent/{id}", 1) == 2);
  CHECK(sim.count("PUT /vms/agent/-102", 1) == 1);  // by exact path too
  CHECK(sim.count("GET /no/such/path", 1) == 1);

  std::size_t on_zero = 0;
  for (const auto& r : sim.requests()) {
    on_zero += r.endpoint == 0 ? 1 : 0;
  }
  CHECK(on_zero == 2);
  CHECK_THROWS_AS(sim.total_requests(2), std::out_of_range);

  sim.reset_counts();
  CHECK(sim.total_requests(0) == 0);
  CHECK(sim.total_requests(1) == 0);
  CHECK(sim.count("PUT /vms/agent/{id}", 1) == 0);
}

TEST_CASE("stop with two endpoints returns and closes both") {
  AdbSim sim(recorded_options());
  sim.add_endpoint();
  const auto url0 = sim.url(0);
  const auto url1 = sim.url(1);
  // A hanging request on each endpoint must not hold stop() up.
  sim.set_fault({.kind = AdbFaultKind::hang}, 0);
  sim.set_fault({.kind = AdbFaultKind::hang}, 1);
  CHECK(send({.url = url0 + node_info_path(), .timeout_ms = 100}).code == CURLE_OPERATION_TIMEDOUT);
  CHECK(send({.url = url1 + node_info_path(), .timeout_ms = 100}).code == CURLE_OPERATION_TIMEDOUT);
  sim.stop();
  CHECK(send({.url = url0 + node_info_path()}).code == CURLE_COULDNT_CONNECT);
  CHECK(send({.url = url1 + node_info_path()}).code == CURLE_COULDNT_CONNECT);
  CHECK_THROWS_AS(sim.add_endpoint(), std::logic_error);
  sim.stop();  // idempotent
}

TEST_CASE("adb-sim with two endpoints prints both and faults one through the control API") {
  pha::test::Process p(PHA_ADB_SIM_BINARY,
                       {.args = {"--node-id", "34", "--api-key", kKey, "--endpoints", "2"}});
  const auto ready = ready_line(p);
  const auto url = ready["url"].get<std::string>();
  const auto control = ready["control"].get<std::string>();
  REQUIRE(ready["urls"].size() == 2);
  CHECK(ready["urls"][0] == url);
  const auto url1 = ready["urls"][1].get<std::string>();
  CHECK(url1.starts_with("http://127.0.0.1:"));
  CHECK(url1 != url);

  REQUIRE(send({.method = "PUT", .url = url1 + put_vm_path(-101), .body = guest(101, "web").dump()})
              .status == 200);
  CHECK(send({.url = url + list_vms_path()}).doc()["count"] == 1);

  CHECK(send({.method = "POST",
              .url = control + "/control/fault",
              .body = R"({"kind":"down","endpoint":1})"})
            .status == 200);
  CHECK(send({.url = url1 + node_info_path()}).code == CURLE_COULDNT_CONNECT);
  CHECK(send({.url = url + node_info_path()}).status == 200);
  CHECK(send({.url = control + "/control/fault"}).doc().is_null());
  CHECK(send({.url = control + "/control/fault?endpoint=1"}).doc()["kind"] == "down");
  CHECK(send({.method = "POST",
              .url = control + "/control/fault",
              .body = R"({"kind":"down","endpoint":2})"})
            .status == 404);
  const auto counts = send({.url = control + "/control/counts"}).doc();
  CHECK(counts["endpoints"] == json{2, 1});
  CHECK(send({.method = "DELETE", .url = control + "/control/fault?endpoint=1"}).status == 200);
  CHECK(send({.url = url1 + node_info_path()}).status == 200);

  p.signal(SIGTERM);
  const auto result = p.wait(20s);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 0);
}
