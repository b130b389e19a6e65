// Guests that move (docs/sync.md "Guests that move"): two real agents, one
// per node of a simulated cluster, against one AccountDB. A guest that
// migrates keeps its row and its customer; without the agent of the node it
// left it gets a new row, and the agent says so; a peer that answers wrongly
// touches no other guest's row.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/webhook_receiver.hpp"
#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

const std::string kKey1 = "Node1KeyNode1KeyNode1KeyNode1KeyNode1Key01";
const std::string kKey2 = "Node2KeyNode2KeyNode2KeyNode2KeyNode2Key02";
const std::string kFleetRead = "fleet-read-token-5b1e0c";
constexpr long long kOwner = 7;  // the customer of pve1's guests
constexpr long long kOwner2 = 8;

bool port_free(const char* ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A port free on 127.0.0.1 and 127.0.0.2: the agents of pve1 and pve2 both
// listen on it, as a fleet's agents share PORT (PEER_PORT 0).
int shared_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    const int port = ntohs(a.sin_port);
    if (port_free("127.0.0.2", port)) {
      return port;
    }
  }
  FAIL("no port free on both loopback addresses");
  return 0;
}

// pve1 (AccountDB node 1) and pve2 (node 2): every running guest has its
// row, pve1's owned by customer 7, pve2's by 8; both whitelists hold every
// guest of the cluster.
struct Cluster {
  TempDir dir;
  sim::PveSim pve;
  sim::AdbSim adb;
  int port = shared_port();

  Cluster()
      : pve({.dir = dir.path(),
             .nodes = {"pve1", "pve2"},
             .guests = 16,
             .seed = 11,
             .auth_failure_delay = 20ms,
             .tokens = {{.id = kTokenId, .secret = kTokenSecret}}}),
        adb({.nodes = {{.id = 1, .name = "pve1", .api_key = kKey1},
                       {.id = 2, .name = "pve2", .api_key = kKey2}}}) {
    std::vector<long long> all;
    for (const auto* node : {"pve1", "pve2"}) {
      for (const auto& g : pve.cluster().guests_on(node)) {
        all.push_back(g.vmid);
        if (g.status == sim::GuestStatus::running && !g.template_) {
          const bool first = std::string(node) == "pve1";
          sim::AdbRow r;
          r.vmid = g.vmid;
          r.name = listed_name(g);
          r.status = "running";
          r.proxmox_node_id = first ? 1 : 2;
          r.owner_id = first ? kOwner : kOwner2;
          adb.add_row(r);
        }
      }
    }
    adb.set_whitelist(1, all);
    adb.set_whitelist(2, all);
    for (const auto* d : {"/a", "/b"}) {
      std::filesystem::create_directories(dir.path() + d);
    }
  }

  Env env(int node, Env extra = {}) {
    const bool first = node == 1;
    Env e{{"PROXMOX_HOST", pve.host(first ? "pve1" : "pve2").url()},
          {"PROXMOX_TOKEN_ID", kTokenId},
          {"PROXMOX_TOKEN_SECRET", kTokenSecret},
          {"PROXMOX_CA_FILE", pve.ca_file()},
          {"ACCOUNTDB_URL", adb.url()},
          {"ACCOUNTDB_API_KEY", first ? kKey1 : kKey2},
          {"ACCOUNTDB_NODE_ID", std::to_string(node)},
          {"STATE_DIR", dir.path() + (first ? "/a" : "/b")},
          {"MISSING_AFTER_CYCLES", "2"},
          {"RETRY_BASE_DELAY", "0.05"},
          {"RETRY_MAX_DELAY", "2"},
          {"PORT", std::to_string(port)},
          {"BIND_ADDRESS", first ? "127.0.0.1" : "127.0.0.2"},
          {"AGENT_READ_TOKEN", kFleetRead},
          {"LOG_FORMAT", "json"},
          {"PATH", "/usr/bin:/bin"}};
    for (auto& [k, v] : extra) {
      e[k] = v;
    }
    return e;
  }

  std::vector<sim::AdbRow> rows_of(long long vmid) const {
    std::vector<sim::AdbRow> out;
    for (const auto& r : adb.rows()) {
      if (r.vmid == vmid) {
        out.push_back(r);
      }
    }
    return out;
  }
  long long running_guest_of(const std::string& node) {
    for (const auto& g : pve.cluster().guests_on(node)) {
      if (g.status == sim::GuestStatus::running && !g.template_) {
        return g.vmid;
      }
    }
    FAIL("no running guest on ", node);
    return 0;
  }
};

// An agent of the cluster with the read token, and a cycle run now.
void cycle_now(RunningAgent& a) {
  a.set_default_headers({{"Authorization", "Bearer " + kFleetRead}});
  const auto before = a.get_json("/status")["sync"]["cycle_count"].get<std::uint64_t>();
  REQUIRE(a.post("/sync/trigger", {{"X-Test", "1"}})->status == 202);
  REQUIRE_MESSAGE(a.wait_cycles(before + 1), log_tail(a));
}

}  // namespace

TEST_CASE("handover: a guest that migrates keeps its one row and its customer on the new node") {
  Cluster c;
  RunningAgent a(c.env(1), c.dir.path());
  RunningAgent b(c.env(2), c.dir.path());
  cycle_now(a);
  cycle_now(b);
  const auto vmid = c.running_guest_of("pve1");
  const auto before = c.rows_of(vmid);
  REQUIRE(before.size() == 1);
  const auto row = before.front().id;
  const auto rows_before = c.adb.rows().size();

  REQUIRE(c.pve.cluster().migrate(static_cast<int>(vmid), "pve2"));
  cycle_now(b);  // pve2's agent sees the guest first: it asks pve1's agent for the row
  auto now = c.rows_of(vmid);
  INFO(log_tail(b));
  REQUIRE(now.size() == 1);
  CHECK(now.front().id == row);
  CHECK(now.front().proxmox_node_id == 2);
  CHECK(now.front().owner_id == kOwner);
  CHECK(now.front().status == "running");
  CHECK(c.adb.count("PUT /vms/agent/-" + std::to_string(vmid)) == 0);
  const auto v = b.get_json("/vms/" + std::to_string(vmid));
  CHECK(v["accountdb"]["row_id"] == row);
  CHECK(v["accountdb"]["reason"].get<std::string>().find("moved from pve1") != std::string::npos);

  // The old node does not fight the move: its next cycles neither mark nor
  // recreate the row. And once every guest of pve2 has a row or was looked
  // up, its cycles read the cluster's task list no more (docs/sync.md "Guests
  // that move": once per cycle with new candidates, none in a steady state).
  const auto task_reads = [&] {
    return c.pve.host("pve1").count("GET /api2/json/cluster/tasks") +
           c.pve.host("pve2").count("GET /api2/json/cluster/tasks");
  };
  const auto tasks_read = task_reads();
  CHECK(tasks_read >= 1);
  cycle_now(a);
  cycle_now(a);
  cycle_now(b);
  CHECK(task_reads() == tasks_read);
  now = c.rows_of(vmid);
  REQUIRE(now.size() == 1);
  CHECK(now.front().proxmox_node_id == 2);
  CHECK(now.front().owner_id == kOwner);
  CHECK(now.front().status == "running");
  CHECK(c.adb.rows().size() == rows_before);

  // And back again: the row follows it home.
  REQUIRE(c.pve.cluster().migrate(static_cast<int>(vmid), "pve1"));
  cycle_now(a);
  cycle_now(b);
  cycle_now(b);
  now = c.rows_of(vmid);
  REQUIRE(now.size() == 1);
  CHECK(now.front().id == row);
  CHECK(now.front().proxmox_node_id == 1);
  CHECK(now.front().owner_id == kOwner);
  CHECK(c.adb.rows().size() == rows_before);
}

TEST_CASE("handover: without the agent of the node it left - a new row and it says so") {
  Cluster c;
  Receiver hooks;
  RunningAgent b(c.env(2, {{"WEBHOOK_URLS", hooks.url()}, {"PEER_TIMEOUT", "1"}}), c.dir.path());
  cycle_now(b);
  const auto vmid = c.running_guest_of("pve1");
  const auto old_row = c.rows_of(vmid).front().id;
  REQUIRE(c.pve.cluster().migrate(static_cast<int>(vmid), "pve2"));
  cycle_now(b);  // nobody answers on pve1
  const auto rows = c.rows_of(vmid);
  INFO(log_tail(b));
  REQUIRE(rows.size() == 2);  // the old row stays on node 1: its agent is down
  CHECK(c.adb.row(old_row)->proxmox_node_id == 1);
  REQUIRE(hooks.wait_for("guest_row_not_handed_over", 1));
  const auto e = hooks.calls("guest_row_not_handed_over").front().json;
  CHECK(e["vmid"] == vmid);
  CHECK(e["from"] == "pve1");
  CHECK(e["to"] == "pve2");
  CHECK(e["reason"].get<std::string>().find("did not answer") != std::string::npos);
  CHECK(b.process().err_so_far().find("\"event\":\"guest_row_not_handed_over\"") !=
        std::string::npos);
  const auto v = b.get_json("/vms/" + std::to_string(vmid));
  CHECK(v["accountdb"]["reason"].get<std::string>().find("not handed over") != std::string::npos);
}

// pve1's "agent" is a fake that answers what the test says.
TEST_CASE("handover: a peer that answers wrongly touches no other row - at most one is created") {
  Cluster c;
  const auto vmid = c.running_guest_of("pve1");
  std::vector<sim::AdbRow> pve1_rows;
  for (const auto& r : c.adb.rows()) {
    if (r.proxmox_node_id == 1 && r.vmid != vmid) {
      pve1_rows.push_back(r);
    }
  }
  REQUIRE(!pve1_rows.empty());
  const auto other = pve1_rows.front();
  const auto own_row = c.rows_of(vmid).front();
  const auto guest = *c.pve.cluster().guest(static_cast<int>(vmid));
  const std::string type = guest.type == sim::GuestType::qemu ? "qemu" : "lxc";

  // The peer's answer: about `about`, named `name`, naming row `row`.
  const auto answer = [&](long long about, const std::string& name, long long row) {
    nlohmann::json j = nlohmann::json::object();
    j["vmid"] = about;
    j["name"] = name;
    j["type"] = type;
    j["accountdb"] = nlohmann::json::object();
    j["accountdb"]["row_id"] = row;
    return j;
  };
  const std::vector<std::pair<std::string, nlohmann::json>> lies = {
      {"another VMID's row", answer(vmid, listed_name(guest), other.id)},
      {"a row id that does not exist", answer(vmid, listed_name(guest), 999999)},
      {"a name that does not match", answer(vmid, "not-it", own_row.id)},
      {"an answer about another VMID", answer(other.vmid, listed_name(guest), own_row.id)},
  };
  for (const auto& [what, body] : lies) {
    CAPTURE(what);
    Cluster w;  // a fresh cluster each: the same guests and rows
    httplib::Server peer;
    peer.Get(R"(/vms/(\d+))", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(body.dump(), "application/json");
    });
    REQUIRE(peer.bind_to_port("127.0.0.1", w.port));
    std::thread serve([&] { peer.listen_after_bind(); });
    while (!peer.is_running()) {
      std::this_thread::sleep_for(
          5ms);  // until the listener thread runs: a poll, not a wait for an outcome
    }
    RunningAgent b(w.env(2), w.dir.path());
    cycle_now(b);
    const auto before = w.adb.rows();
    REQUIRE(w.pve.cluster().migrate(static_cast<int>(vmid), "pve2"));
    cycle_now(b);
    INFO(log_tail(b));
    const auto after = w.adb.rows();
    // Every row but this guest's is as it was; this guest has at most one new row.
    std::size_t created = 0;
    for (const auto& r : after) {
      const auto was = std::find_if(before.begin(), before.end(),
                                    [&](const sim::AdbRow& x) { return x.id == r.id; });
      if (was == before.end()) {
        CHECK(r.vmid == vmid);
        ++created;
        continue;
      }
      if (r.vmid != vmid) {
        CHECK(r.proxmox_node_id == was->proxmox_node_id);
        CHECK(r.owner_id == was->owner_id);
        CHECK(r.name == was->name);
        CHECK(r.status == was->status);
      }
    }
    CHECK(created <= 1);
    if (what == "a row id that does not exist") {
      // AccountDB inserted it: the agent keeps that row and says so.
      CHECK(created == 1);
      CHECK(b.process().err_so_far().find("\"event\":\"guest_row_not_handed_over\"") !=
            std::string::npos);
    }
    peer.stop();
    serve.join();
  }
}

TEST_CASE(
    "handover: a whole node evacuated - every row follows and the change brake holds nothing") {
  Cluster c;
  RunningAgent a(c.env(1), c.dir.path());
  RunningAgent b(c.env(2), c.dir.path());
  cycle_now(a);
  cycle_now(b);
  std::vector<long long> moved;
  for (const auto& g : c.pve.cluster().guests_on("pve1")) {
    moved.push_back(g.vmid);
  }
  std::map<long long, long long> row_of;
  for (const auto v : moved) {
    if (const auto r = c.rows_of(v); !r.empty()) {
      row_of[v] = r.front().id;
    }
  }
  REQUIRE(row_of.size() > 3);  // more than CHANGE_BRAKE_MIN: a mass create would be held
  const auto rows_before = c.adb.rows().size();
  for (const auto v : moved) {
    REQUIRE(c.pve.cluster().migrate(static_cast<int>(v), "pve2"));
  }
  cycle_now(b);
  cycle_now(a);
  cycle_now(a);
  cycle_now(b);
  INFO(log_tail(b));
  CHECK(b.get_json("/status")["sync"]["held"].is_null());
  CHECK(a.get_json("/status")["sync"]["held"].is_null());
  CHECK(c.adb.rows().size() == rows_before);
  for (const auto& [v, id] : row_of) {
    CAPTURE(v);
    const auto rows = c.rows_of(v);
    REQUIRE(rows.size() == 1);
    CHECK(rows.front().id == id);
    CHECK(rows.front().proxmox_node_id == 2);
    CHECK(rows.front().owner_id == kOwner);
  }
}
