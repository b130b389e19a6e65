// What a reload does to each setting (issue 32). For every row of the
// settings table: the real agent against the simulators, that one setting
// changed in its env file, `--reload PID` (the unit's ExecReload=), and then
// its effect: a request the simulators recorded or did not, a header, a TLS
// handshake refused, a figure of /status or /metrics, a log event; or, for a
// start-only setting, the reload naming it (exit 3, reload_partial, the
// verdict's restart_needed) while the old value stays the one in use.
//
// kRows says which test shows each row's effect; the first test case fails
// for a row of settings_table() without one, so that no setting comes
// without its reload tested. Rows that can share an agent do (a group, one
// test case each), in the order of kRows, each changing its setting from
// the state the rows before it left. Every agent syncs only when a test
// asks (UPDATE_INTERVAL=86400) and checks its hosts once at start unless a
// group asks for more, so that what the simulators record is the test's.

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <regex>
#include <set>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "agent/config/settings_table.hpp"
#include "agent/core/text.hpp"
#include "tests/integration/webhook_receiver.hpp"
#include "tests/integration/world.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"

using namespace pha;
using namespace pha::test;
using json = nlohmann::json;

namespace {

// The longest any effect may take to show; most show within a second.
constexpr auto kWait = std::chrono::seconds(30);
const std::string kRequests = "proxmox_host_agent_upstream_requests_total";

// Polls `done` until it holds; false after `timeout`.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a poll interval
  }
  return done();
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Whether a log line (JSON or text format) is `event`.
bool is_event(std::string_view line, const std::string& event) {
  return contains(line, "\"event\":\"" + event + "\"") || contains(line, " " + event + ": ");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
}

// A listener on 127.0.0.1 that never accepts, its backlog full: a connection
// to it hangs in the TCP handshake, so only the connect timeout ends it.
class SilentHost {
 public:
  SilentHost() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    auto* any = reinterpret_cast<sockaddr*>(&addr);
    REQUIRE(::bind(listener_, any, len) == 0);
    REQUIRE(::listen(listener_, 0) == 0);
    REQUIRE(::getsockname(listener_, any, &len) == 0);
    port_ = ntohs(addr.sin_port);
    // The one place of the backlog, taken: later SYNs are dropped.
    filler_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(filler_, any, len) == 0);
  }
  ~SilentHost() {
    ::close(filler_);
    ::close(listener_);
  }
  SilentHost(const SilentHost&) = delete;
  SilentHost& operator=(const SilentHost&) = delete;
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  int listener_ = -1;
  int filler_ = -1;
  int port_ = 0;
};

// A TCP port nothing listens on (bound and released at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* any = reinterpret_cast<sockaddr*>(&addr);
  REQUIRE(::bind(fd, any, len) == 0);
  REQUIRE(::getsockname(fd, any, &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The host of /status with that URL, or null.
json host_of(const json& status, const std::string& url) {
  for (const auto& h : status["proxmox"]["hosts"]) {
    if (h["url"] == url) {
      return h;
    }
  }
  return nullptr;
}

const json& last_result(const json& status) {
  return status["sync"]["last_result"];
}

bool failed(const json& status) {
  return last_result(status)["status"] == "error";
}

std::string message_of(const json& status) {
  return last_result(status)["message"].get<std::string>();
}

// The HTTPS group's certificates, all of one test CA.
struct Certificates {
  TempDir dir;
  TestPki pki{dir.path()};
  CertFiles first = pki.issue("first");
  CertFiles second = pki.issue("second");
  CertFiles third = pki.issue("third");
};

// One agent of a group: its world, its env file and the reloads of it.
class Stage {
 public:
  struct Reload {
    int exit_code = -1;
    std::string err;       // --reload's stderr
    std::size_t mark = 0;  // the agent's log before the reload
    json verdict;          // reload.json after it
  };

  explicit Stage(World& world) : w(world) {
    for (const auto& [k, v] : w.env()) {
      if (k != "PATH") {
        file[k] = v;
      }
    }
    file["LOG_FORMAT"] = "json";
    file["PORT"] = "0";
    file["BIND_ADDRESS"] = "127.0.0.1";
    file["UPDATE_INTERVAL"] = "86400";
    file["HEARTBEAT_INTERVAL"] = "3600";
    file["HEALTH_CHECK_INTERVAL"] = "300";
  }

  // Every setting comes from the env file, so that a reload can change any
  // of them: the environment holds only what is no setting.
  void start() {
    write_file();
    std::vector<std::string> unset = {"PORT", "BIND_ADDRESS", "LOG_FORMAT"};
    for (const auto& [k, v] : w.env()) {
      if (k != "PATH") {
        unset.push_back(k);
      }
    }
    agent =
        std::make_unique<RunningAgent>(w, Env{{"RUNTIME_DIRECTORY", runtime.path()}},
                                       std::vector<std::string>{"--env-file", env_path_}, unset);
  }

  // Writes `changes` to the env file ("" removes a key) and runs --reload.
  Reload reload(const Env& changes) {
    for (const auto& [k, v] : changes) {
      if (v.empty()) {
        file.erase(k);
      } else {
        file[k] = v;
      }
    }
    write_file();
    Reload r;
    r.mark = agent->process().err_so_far().size();
    const auto run =
        run_process(PHA_AGENT_BINARY,
                    {{"--reload", std::to_string(agent->process().pid())},
                     {{"RUNTIME_DIRECTORY", runtime.path()}, {"PATH", "/usr/bin:/bin"}},
                     w.dir.path()},
                    std::chrono::seconds(40));
    r.exit_code = run.exit_code;
    r.err = run.err;
    const auto text = read_text(runtime.path() + "/reload.json");
    r.verdict = json::parse(text, nullptr, false);
    return r;
  }

  // The row's reload, of a setting that applies at reload: exit 0, nothing
  // waits for a restart (`logged`: the agent's level lets the info lines through).
  Reload applied(const std::string& name, const std::string& value, bool logged = true) {
    reloaded_[name] = false;
    auto r = reload({{name, value}});
    REQUIRE_MESSAGE(r.exit_code == 0, name, "=", value, ": ", r.err, "\n", log_tail(*agent));
    CHECK(r.verdict["applied"] == true);
    CHECK(r.verdict["restart_needed"].empty());
    if (logged) {
      REQUIRE_MESSAGE(wait_event(r.mark, "config_reloaded"), log_tail(*agent));
      const auto log = log_since(r.mark);
      CHECK_MESSAGE(!contains(log.substr(0, log.find("config_reloaded")), "reload_partial"), log);
    }
    return r;
  }

  // The row's reload of a start-only setting: exit 3, and the verdict, the
  // message and reload_partial name it. The env file keeps the new value
  // until the row's step is over (restore_start_only()).
  Reload start_only(const std::string& name, const std::string& value) {
    reloaded_[name] = true;
    const auto it = file.find(name);
    pending_[name] = it == file.end() ? std::string() : it->second;
    auto r = reload({{name, value}});
    CHECK_MESSAGE(r.exit_code == 3, r.err);
    CHECK_MESSAGE(contains(r.err, "except " + name + ":"), r.err);
    CHECK(r.verdict["applied"] == true);
    CHECK(r.verdict["restart_needed"] == json::array({name}));
    REQUIRE_MESSAGE(wait_event(r.mark, "reload_partial"), log_tail(*agent));
    const auto line = line_after(r.mark, "reload_partial");
    CHECK_MESSAGE(contains(line, name), line);
    return r;
  }

  // The env file as the agent runs it again, so that the next row's
  // reload is about its own setting only: nothing waits for a restart.
  void restore_start_only() {
    if (pending_.empty()) {
      return;
    }
    const auto r = reload(pending_);
    pending_.clear();
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }

  // A change between rows, to bring the agent where the next row needs it.
  void setup(const Env& changes) {
    const auto r = reload(changes);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }

  // Whether the row's step reloaded its setting, and as start-only or not.
  std::optional<bool> reloaded_as_start_only(const std::string& name) const {
    const auto it = reloaded_.find(name);
    return it == reloaded_.end() ? std::nullopt : std::optional<bool>(it->second);
  }

  json status() const { return agent->get_json("/status"); }
  // A cycle that begins after the call; /status after it.
  json cycle() const { return test::cycle(*agent); }
  // The row's reload and the cycle it runs (the agent idle before, no
  // timer running one): /status after that very cycle.
  json applied_cycle(const std::string& name, const std::string& value) {
    std::uint64_t before = 0;
    REQUIRE(agent->wait_status([&](const json& s) {
      before = s["sync"]["cycle_count"].get<std::uint64_t>();
      return s["sync"]["is_syncing"] == false;
    }));
    applied(name, value);
    REQUIRE(agent->wait_cycles(before + 1));
    json out;
    REQUIRE(agent->wait_status([&](const json& s) {
      out = s;
      return s["sync"]["is_syncing"] == false;
    }));
    return out;
  }

  std::string log_since(std::size_t mark) const {
    const auto err = agent->process().err_so_far();
    return mark < err.size() ? err.substr(mark) : std::string();
  }
  std::string line_after(std::size_t mark, const std::string& event) const {
    for (const auto& line : lines_of(log_since(mark))) {
      if (is_event(line, event)) {
        return line;
      }
    }
    return "";
  }
  bool wait_event(std::size_t mark, const std::string& event) const {
    return eventually([&] { return !line_after(mark, event).empty(); }, std::chrono::seconds(10));
  }

  // The sum of a family's samples whose labels include `labels`.
  double metric(const std::string& family, const Env& labels) const {
    const auto r = agent->get("/metrics");
    REQUIRE(r);
    double sum = 0;
    static const std::regex label(R"re((\w+)="([^"]*)")re");
    for (const auto& line : lines_of(r->body)) {
      if (!line.starts_with(family + "{")) {
        continue;
      }
      const auto close = line.rfind('}');
      const auto labels_text = line.substr(family.size() + 1, close - family.size() - 1);
      Env found;
      for (std::sregex_iterator it(labels_text.begin(), labels_text.end(), label), end; it != end;
           ++it) {
        found[(*it)[1]] = (*it)[2];
      }
      const bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& l) {
        return found.contains(l.first) && found.at(l.first) == l.second;
      });
      if (match) {
        sum += std::stod(line.substr(close + 1));
      }
    }
    return sum;
  }

  // GET without any header (not the default token).
  httplib::Result bare_get(const std::string& path, const std::string& address = "127.0.0.1",
                           int port = 0) const {
    httplib::Client c(address, port == 0 ? agent->port() : port);
    c.set_connection_timeout(std::chrono::seconds(2));
    return c.Get(path);
  }
  json config_value(const std::string& name) const {
    return agent->get_json("/config")["settings"][name]["value"];
  }

  // A check that needs time to pass: its `before` and `after` run around one
  // cycle at the end of the group.
  struct Later {
    std::string setting;
    std::function<void()> before;
    std::function<void()> after;
  };

  World& w;
  Env file;  // the env file's settings, as written now
  TempDir runtime;
  std::unique_ptr<RunningAgent> agent;
  std::vector<Later> later;
  // What some groups add.
  std::unique_ptr<SilentHost> silent;
  std::vector<Receiver*> receivers;
  const Certificates* certificates = nullptr;
  std::unique_ptr<NetNs> ns;  // a client that is not on loopback
  std::map<std::string, long long> numbers;

 private:
  void write_file() {
    std::string text;
    for (const auto& [k, v] : file) {
      text += k + "='" + v + "'\n";
    }
    env_path_ = w.dir.write("agent.env", text);
  }
  static std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::string env_path_;
  std::map<std::string, bool> reloaded_;
  Env pending_;  // start-only settings changed in the file: their running value
};

// ---- The Proxmox transport: TLS verification, pins, CA file, timeouts ------

// The real scenario of issue 32: verification off with a CA that did not
// sign the hosts, then on by reload. The handshake is refused and not one
// request (each carries the token) reaches a host after the reload, though
// the cycle before left kept-alive connections to reuse.
void verify_ssl(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  auto& pve2 = st.w.pve.host("pve2");
  // The start's health round is over (both hosts answered it) and the next
  // is 300 s away: from here on only the test's cycles talk to Proxmox.
  REQUIRE(eventually([&] {
    const auto hosts = st.status()["proxmox"]["hosts"];
    return hosts.size() == 2 && std::all_of(hosts.begin(), hosts.end(), [](const json& h) {
             return !h["last_seen"].is_null();
           });
  }));
  const auto unverified = st.cycle();
  REQUIRE_FALSE_MESSAGE(failed(unverified), message_of(unverified));
  const auto requests1 = pve1.total_requests();
  const auto requests2 = pve2.total_requests();
  const auto connections = pve1.connections_accepted();

  const auto r = st.applied("PROXMOX_VERIFY_SSL", "true");
  const auto verified = st.cycle();
  CHECK(failed(verified));
  CHECK_MESSAGE(contains(message_of(verified), "not trusted"), message_of(verified));
  CHECK(pve1.connections_accepted() > connections);  // a new connection, its handshake refused
  CHECK(pve1.total_requests() == requests1);
  CHECK(pve2.total_requests() == requests2);
  CHECK(st.metric(kRequests, {{"upstream", "proxmox"}, {"kind", "tls"}}) > 0);
  CHECK_FALSE(contains(st.log_since(r.mark), kTokenSecret));
}

// Pins of the hosts' own certificates: accepted though the CA is wrong.
void fingerprint(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  const auto lists = pve1.count("GET /api2/json/nodes/pve1/qemu");
  st.applied("PROXMOX_FINGERPRINT", st.w.pve.cert("pve1").sha256_fingerprint + "," +
                                        st.w.pve.cert("pve2").sha256_fingerprint);
  const auto pinned = st.cycle();
  CHECK_FALSE_MESSAGE(failed(pinned), message_of(pinned));
  CHECK(pve1.count("GET /api2/json/nodes/pve1/qemu") > lists);
  // Pins decide alone: without them the CA file decides again (the next row).
  st.setup({{"PROXMOX_FINGERPRINT", ""}});
  REQUIRE(failed(st.cycle()));
}

void ca_file(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  const auto lists = pve1.count("GET /api2/json/nodes/pve1/qemu");
  st.applied("PROXMOX_CA_FILE", st.w.pve.ca_file());
  const auto trusted = st.cycle();
  CHECK_FALSE_MESSAGE(failed(trusted), message_of(trusted));
  CHECK(pve1.count("GET /api2/json/nodes/pve1/qemu") > lists);
}

// A failover host that never completes a TCP handshake: the health rounds
// probe it, and its error says how long the connect was given.
void connect_timeout(Stage& st) {
  st.silent = std::make_unique<SilentHost>();
  st.setup({{"PROXMOX_HOSTS", st.silent->url()}, {"HEALTH_CHECK_INTERVAL", "10"}});
  st.applied("PROXMOX_CONNECT_TIMEOUT", "1");
  static const std::regex after(R"(after (\d+) ms)");
  std::string error;
  CHECK_MESSAGE(eventually([&] {
                  const auto h = host_of(st.status(), st.silent->url());
                  std::smatch m;
                  error = h.is_object() && h["last_error"].is_string() ? h["last_error"] : "";
                  return std::regex_search(error, m, after) && std::stoi(m[1]) < 1900;
                }),
                "the silent host's last error: ", error);
}

// A list call answered after 2.5 s: within the start's 5 s, beyond the new 1 s.
void proxmox_timeout(Stage& st) {
  const Env timeouts = {
      {"upstream", "proxmox"}, {"target", st.w.pve.host("pve1").url()}, {"kind", "timeout"}};
  REQUIRE(st.metric(kRequests, timeouts) == 0);
  st.w.pve.host("pve1").set_fault({.kind = sim::FaultKind::slow,
                                   .path_prefix = "/nodes/pve1/qemu",
                                   .count = 1,
                                   .delay = std::chrono::milliseconds(2500)});
  const auto s = st.applied_cycle("PROXMOX_TIMEOUT", "1");
  CHECK(st.metric(kRequests, timeouts) >= 1);
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));  // its retry answered at once
}

// ---- The Proxmox client's options -------------------------------------------

void guest_types(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  st.cycle();
  const auto lxc = pve1.count("GET /api2/json/nodes/pve1/lxc");
  const auto qemu = pve1.count("GET /api2/json/nodes/pve1/qemu");
  st.applied("SYNC_GUEST_TYPES", "qemu");
  st.cycle();
  CHECK(pve1.count("GET /api2/json/nodes/pve1/lxc") == lxc);
  CHECK(pve1.count("GET /api2/json/nodes/pve1/qemu") > qemu);
  const auto vms = st.agent->get_json("/vms")["vms"];
  REQUIRE_FALSE(vms.empty());
  for (const auto& vm : vms) {
    CHECK(vm["type"] == "qemu");
  }
}

void vm_details(Stage& st) {
  const auto with_notes = [&] {
    const auto vms = st.agent->get_json("/vms")["vms"];
    return std::count_if(vms.begin(), vms.end(),
                         [](const json& v) { return !v["notes"].is_null(); });
  };
  REQUIRE(with_notes() > 0);
  st.applied("VM_DETAILS", "false");
  st.cycle();
  CHECK(with_notes() == 0);
}

// A second token; the first revoked after the reload: only the new one reads.
void token_id(Stage& st) {
  st.w.pve.cluster().add_token({.id = "agent@pve!other", .secret = kTokenSecret});
  const auto r = st.applied("PROXMOX_TOKEN_ID", "agent@pve!other");
  st.cycle();
  REQUIRE(st.w.pve.cluster().remove_token(kTokenId));
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["total_proxmox_vms"] > 0);
  CHECK_FALSE(st.line_after(r.mark, "proxmox_credentials_changed").empty());
}

// The secret rotated in Proxmox: refused until the reload brings the new one.
void token_secret(Stage& st) {
  const std::string rotated = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
  st.w.pve.cluster().add_token({.id = "agent@pve!other", .secret = rotated});
  const auto refused = st.cycle();
  REQUIRE(failed(refused));
  REQUIRE_MESSAGE(contains(message_of(refused), "rejected the API token"), message_of(refused));
  const auto r = st.applied("PROXMOX_TOKEN_SECRET", rotated);
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK_FALSE(contains(st.log_since(r.mark), rotated));
}

void discover_hosts(Stage& st) {
  const auto pve2 = st.w.pve.host("pve2").url();
  REQUIRE(eventually([&] { return host_of(st.status(), pve2).is_object(); }));
  st.applied("PROXMOX_DISCOVER_HOSTS", "false");
  st.cycle();  // the host manager's next decision reads it
  CHECK(host_of(st.status(), pve2).is_null());
}

void proxmox_hosts(Stage& st) {
  const auto pve2 = st.w.pve.host("pve2").url();
  REQUIRE(host_of(st.status(), pve2).is_null());
  st.applied("PROXMOX_HOSTS", pve2);
  st.cycle();
  const auto h = host_of(st.status(), pve2);
  REQUIRE(h.is_object());
  CHECK(h["source"] == "config");
}

// Another node's guests, read through this node's API (which forwards them).
void node_name(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  const auto reads = pve1.count("GET /api2/json/nodes/pve2/qemu");
  st.applied("PROXMOX_NODE_NAME", "pve2");
  const auto s = st.cycle();
  CHECK(pve1.count("GET /api2/json/nodes/pve2/qemu") > reads);
  CHECK(s["proxmox"]["node"] == "pve2");
  st.setup({{"PROXMOX_NODE_NAME", "auto"}});
}

// pve2's API as the node's own: asked directly, and as auto node name pve2.
void proxmox_host(Stage& st) {
  auto& pve2 = st.w.pve.host("pve2");
  const auto direct = [&] {
    const auto requests = pve2.requests();
    return std::count_if(requests.begin(), requests.end(), [](const sim::RecordedRequest& r) {
      return r.path == "/api2/json/nodes/pve2/qemu" && r.proxied_from.empty();
    });
  };
  const auto before = direct();
  st.applied("PROXMOX_HOST", pve2.url());
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(direct() > before);
  CHECK(s["proxmox"]["primary"] == pve2.url());
}

// ---- Password login ------------------------------------------------------------

// The password changed in Proxmox: the old ticket still works, so only a new
// login shows the new password in use.
void password(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  st.cycle();
  st.w.pve.cluster().add_user({.userid = "root@pam", .password = "pw-new-2"});
  const auto logins = pve1.count("POST /api2/json/access/ticket");
  const auto r = st.applied("PROXMOX_PASSWORD", "pw-new-2");
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(pve1.count("POST /api2/json/access/ticket") > logins);
  CHECK_FALSE(contains(st.log_since(r.mark), "pw-new-2"));
}

// A user who may audit one guest: Proxmox shows it that one only.
void user(Stage& st) {
  const auto visible = st.w.running.front();
  st.w.pve.cluster().add_user(
      {.userid = "sync@pve",
       .password = "pw-new-2",
       .acls = std::vector<sim::Acl>{
           {.path = "/vms/" + std::to_string(visible), .role = "PVEAuditor"}}});
  REQUIRE(last_result(st.status())["total_proxmox_vms"] > 1);
  st.applied("PROXMOX_USER", "sync@pve");
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["total_proxmox_vms"] == 1);
}

// ---- AccountDB ----------------------------------------------------------------

const std::string kListVms = "GET /proxmox-nodes/agent-vms/{node_id}";
const std::string kKey2 = "Zy9xWvUtSrQpOnMlKjIhGfEdCbA9876543210_-ZyXw";

// Two endpoints of one priority: the first takes everything, then turns.
void strategy(Stage& st) {
  st.cycle();
  REQUIRE(st.w.adb.count(kListVms, 1) == 0);
  st.applied("ACCOUNTDB_STRATEGY", "round_robin");
  for (int i = 0; i < 3; ++i) {
    st.cycle();
  }
  CHECK(st.w.adb.count(kListVms, 1) > 0);
}

void accountdb_url(Stage& st) {
  const auto first = st.w.adb.total_requests(0);
  const auto second = st.w.adb.count(kListVms, 1);
  st.applied("ACCOUNTDB_URL", st.w.adb.url(1));
  st.cycle();
  st.cycle();
  CHECK(st.w.adb.total_requests(0) == first);
  CHECK(st.w.adb.count(kListVms, 1) >= second + 2);
}

// list_vms answered after 2.5 s: within the start's 30 s, beyond the new 1 s.
void accountdb_timeout(Stage& st) {
  const Env timeouts = {{"upstream", "accountdb"}, {"kind", "timeout"}};
  REQUIRE(st.metric(kRequests, timeouts) == 0);
  st.w.adb.set_fault({.kind = sim::AdbFaultKind::slow,
                      .call = sim::AdbCall::list_vms,
                      .count = 1,
                      .delay = std::chrono::milliseconds(2500)},
                     1);
  const auto s = st.applied_cycle("ACCOUNTDB_TIMEOUT", "1");
  CHECK(st.metric(kRequests, timeouts) >= 1);
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
}

// AccountDB refuses the key: the next cycle waits RETRY_MAX_DELAY (±10 %).
void retry_max_delay(Stage& st) {
  st.w.adb.rotate_key(kNode, kKey2);
  const auto refused = st.cycle();
  REQUIRE(failed(refused));
  const auto wait_of = [](const json& s) {
    return s["sync"]["next_sync_time"].get<long long>() -
           s["sync"]["last_attempt_time"].get<long long>();
  };
  CHECK(wait_of(refused) <= 3);  // the start's 2 s
  st.applied("RETRY_MAX_DELAY", "600");
  long long wait = 0;
  CHECK_MESSAGE(eventually([&] {
                  wait = wait_of(st.status());
                  return wait >= 500;
                }),
                "the wait after a refused key: ", wait, " s");
}

void api_key(Stage& st) {
  const auto r = st.applied("ACCOUNTDB_API_KEY", kKey2);
  const auto s = st.cycle();
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK_FALSE(contains(st.log_since(r.mark), kKey2));
}

// Node 35 exists too, with the same key: the agent keeps node 34 for
// everything (its calls, its whitelist, /config and /status).
void node_id(Stage& st) {
  st.w.adb.add_node({.id = 35, .name = "pha-node-35", .api_key = kKey2, .owner_id = 2});
  const auto from = st.w.adb.requests().size();
  st.start_only("ACCOUNTDB_NODE_ID", "35");
  st.cycle();
  REQUIRE(st.agent->post("/whitelist/refresh")->status == 200);
  const auto requests = st.w.adb.requests();
  REQUIRE(requests.size() > from);
  bool node34 = false;
  for (auto i = from; i < requests.size(); ++i) {
    const auto& r = requests[i];
    CAPTURE(r.path);
    CHECK_FALSE(r.path.ends_with("/35"));
    CHECK_FALSE(contains(r.path, "/35/"));
    CHECK_FALSE(contains(r.query, "node_id=35"));
    node34 = node34 || r.path.ends_with("/34") || contains(r.path, "/34/");
  }
  CHECK(node34);
  CHECK(st.config_value("ACCOUNTDB_NODE_ID") == 34);
  CHECK(st.status()["accountdb"]["node_id"] == 34);
}

// ---- The sync -----------------------------------------------------------------

void create_stopped(Stage& st) {
  st.cycle();
  REQUIRE_FALSE(st.w.row_of(st.w.stopped));
  st.applied("CREATE_STOPPED_VMS", "true");
  st.cycle();
  CHECK(st.w.row_of(st.w.stopped));
}

// A running guest's CPU moves 2 points: below 5, at least 1.
void cpu_threshold(Stage& st) {
  const auto vmid = st.w.running.front();
  const auto row = st.w.row_of(vmid);
  REQUIRE(row);
  const auto puts = [&] { return st.w.adb.count("PUT /vms/agent/" + std::to_string(row->id)); };
  const auto guest = st.w.pve.cluster().guest(static_cast<int>(vmid));
  REQUIRE(guest);
  REQUIRE(st.w.pve.cluster().set_usage(static_cast<int>(vmid),
                                       guest->cpu < 0.5 ? guest->cpu + 0.02 : guest->cpu - 0.02,
                                       std::nullopt));
  const auto before = puts();
  st.cycle();
  REQUIRE(puts() == before);
  st.applied("CPU_CHANGE_THRESHOLD", "1");
  st.cycle();
  CHECK(puts() == before + 1);
}

std::string row_status(Stage& st, long long vmid) {
  const auto row = st.w.row_of(vmid);
  REQUIRE(row);
  return row->status;
}

// A guest gone (MISSING_AFTER_CYCLES=1): marked only once marking is on.
void mark_missing(Stage& st) {
  const auto vmid = st.w.running[1];
  REQUIRE(st.w.pve.cluster().remove_guest(static_cast<int>(vmid)));
  st.cycle();
  REQUIRE(row_status(st, vmid) != "deleted");
  st.applied("MARK_MISSING_VMS", "true");
  st.cycle();
  CHECK(row_status(st, vmid) == "deleted");
}

// A guest gone: with the start's 1 it would be marked at this read.
void missing_after(Stage& st) {
  const auto vmid = st.w.running[2];
  st.applied("MISSING_AFTER_CYCLES", "100");
  st.cycle();
  REQUIRE(st.w.pve.cluster().remove_guest(static_cast<int>(vmid)));
  const auto s = st.cycle();
  REQUIRE_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(row_status(st, vmid) != "deleted");
  const auto vm = st.agent->get_json("/vms/" + std::to_string(vmid));
  CHECK(vm["accountdb"]["missing"]["reads"] == 1);
}

// ---- The change brake ------------------------------------------------------

// Three guests gone (MISSING_AFTER_CYCLES=1): with the start's
// CHANGE_BRAKE_MIN=1000 their marks would go out; with 2 they are held.
void brake_min(Stage& st) {
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(st.w.pve.cluster().remove_guest(static_cast<int>(st.w.running[i])));
  }
  const auto s = st.applied_cycle("CHANGE_BRAKE_MIN", "2");
  const auto& held = s["sync"]["held"];
  REQUIRE_MESSAGE(held.is_object(), s.dump());
  CHECK(held["holds"][0]["threshold"] == 2);
  CHECK(held["holds"][0]["vmids"].size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(row_status(st, st.w.running[i]) != "deleted");
  }
}

// The same three: half of the node's rows may go at once, so they do.
void brake_percent(Stage& st) {
  const auto s = st.applied_cycle("CHANGE_BRAKE_PERCENT", "50");
  CHECK_MESSAGE(s["sync"]["held"].is_null(), s.dump());
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(row_status(st, st.w.running[i]) == "deleted");
  }
}

void update_interval(Stage& st) {
  st.applied("UPDATE_INTERVAL", "10");
  const auto s = st.cycle();
  const auto wait = s["sync"]["next_sync_time"].get<long long>() -
                    s["sync"]["last_attempt_time"].get<long long>();
  CHECK(wait <= 12);  // 10 s ±10 %, not the start's day
  st.setup({{"UPDATE_INTERVAL", "86400"}});
}

void heartbeat_interval(Stage& st) {
  const auto heartbeats = [&] { return st.w.adb.count("POST /proxmox-nodes/heartbeat"); };
  const auto before = heartbeats();  // none in the start's hour
  st.applied("HEARTBEAT_INTERVAL", "5");
  CHECK(eventually([&] { return heartbeats() > before; }, std::chrono::seconds(15)));
  st.setup({{"HEARTBEAT_INTERVAL", "3600"}});
}

const std::string kWhitelist = "GET /vm-access/node/34/whitelist/agent";

// The copy fetched at start is older than the new TTL: fetched again (and,
// the call failing, kept as a stale copy for the next row).
void whitelist_ttl(Stage& st) {
  st.w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist, .status = 503});
  const auto fetches = st.w.adb.count(kWhitelist);
  st.applied("WHITELIST_TTL", "10");
  REQUIRE(eventually([&] {
    const auto age = st.status()["whitelist"]["age_seconds"];
    return age.is_number() && age.get<long long>() >= 11;
  }));
  const auto s = st.cycle();
  CHECK(st.w.adb.count(kWhitelist) > fetches);
  CHECK(s["whitelist"]["stale"] == true);
  CHECK(s["whitelist"]["known"] == true);
}

void whitelist_max_stale(Stage& st) {
  REQUIRE(st.status()["whitelist"]["known"] == true);
  st.applied("WHITELIST_MAX_STALE", "0");
  const auto s = st.cycle();
  CHECK(s["whitelist"]["known"] == false);
  st.w.adb.clear_fault();
}

// ---- Resilience -------------------------------------------------------------
// One request per cycle to pve1 (the qemu list, VM_DETAILS=false), no
// failover until AUTO_FAILOVER, no health round until HEALTH_CHECK_INTERVAL.

const std::string kQemu = "GET /api2/json/nodes/pve1/qemu";

void fail_lists(Stage& st, std::optional<std::size_t> count) {
  st.w.pve.host("pve1").set_fault({.kind = sim::FaultKind::status,
                                   .path_prefix = "/nodes/pve1/qemu",
                                   .count = count,
                                   .status = 500});
}

json pve1_of(Stage& st, const json& status) {
  return host_of(status, st.w.pve.host("pve1").url());
}

// One 500, then the retry after 1.5 s ±20 %, not the start's 0.05 s.
void retry_base_delay(Stage& st) {
  REQUIRE(eventually([&] {  // the start's health round is over
    const auto h = host_of(st.status(), st.w.pve.host("pve2").url());
    return h.is_object() && !h["last_seen"].is_null();
  }));
  fail_lists(st, 1);
  const auto s = st.applied_cycle("RETRY_BASE_DELAY", "1.5");
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["duration_ms"] >= 1100);
}

void retry_max_attempts(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  fail_lists(st, 1);
  const auto lists = pve1.count(kQemu);
  const auto s = st.applied_cycle("RETRY_MAX_ATTEMPTS", "1");
  CHECK(failed(s));
  CHECK(pve1.count(kQemu) == lists + 1);  // no retry
}

// pve1 unhealthy (three failures in a row), then one success: healthy at 1.
void healthy_threshold(Stage& st) {
  auto& pve1 = st.w.pve.host("pve1");
  fail_lists(st, 2);  // with the one the row before left
  st.cycle();
  const auto down = st.cycle();
  REQUIRE(pve1_of(st, down)["status"] == "unhealthy");
  const auto lists = pve1.count(kQemu);
  const auto checks = pve1.count("GET /api2/json/version");
  const auto s = st.applied_cycle("HEALTHY_THRESHOLD", "1");
  REQUIRE(pve1.count(kQemu) == lists + 1);  // one success since, nothing else
  REQUIRE(pve1.count("GET /api2/json/version") == checks);
  CHECK(pve1_of(st, s)["status"] == "healthy");
}

void breaker_threshold(Stage& st) {
  REQUIRE(pve1_of(st, st.status())["circuit"] == "closed");  // 3 failures did not open it
  fail_lists(st, 1);
  const auto s = st.applied_cycle("CIRCUIT_BREAKER_THRESHOLD", "1");
  CHECK(pve1_of(st, s)["circuit"] == "open");
}

// Open after one failure: half open after 5 s, not the start's 60.
void breaker_reset(Stage& st) {
  REQUIRE(st.agent->post("/failover/reset")->status == 200);
  st.applied("CIRCUIT_BREAKER_RESET", "5");
  st.cycle();
  fail_lists(st, 1);
  REQUIRE(pve1_of(st, st.cycle())["circuit"] == "open");
  CHECK(eventually([&] { return pve1_of(st, st.status())["circuit"] == "half_open"; },
                   std::chrono::seconds(15)));
  REQUIRE(st.agent->post("/failover/reset")->status == 200);
}

void auto_failover(Stage& st) {
  fail_lists(st, std::nullopt);
  const auto pve2 = st.w.pve.host("pve2").url();
  const auto s = st.applied_cycle("AUTO_FAILOVER", "true");
  CHECK(s["proxmox"]["host"] == pve2);
  const auto events = st.agent->get_json("/failover/events")["events"];
  CHECK(std::any_of(events.begin(), events.end(),
                    [&](const json& e) { return e["kind"] == "automatic" && e["to"] == pve2; }));
}

void health_check_interval(Stage& st) {
  auto& pve2 = st.w.pve.host("pve2");
  const auto checks = pve2.count("GET /api2/json/version");
  st.applied("HEALTH_CHECK_INTERVAL", "10");
  CHECK(eventually([&] { return pve2.count("GET /api2/json/version") > checks; },
                   std::chrono::seconds(15)));
}

// pve1 healthy again; the agent goes back to it only once AUTO_RECOVERY is on.
void auto_recovery(Stage& st) {
  st.w.pve.host("pve1").clear_fault();
  const auto pve1 = st.w.pve.host("pve1").url();
  REQUIRE(eventually(
      [&] {
        const auto h = pve1_of(st, st.status());
        return h["status"] == "healthy" && h["circuit"] == "closed";
      },
      std::chrono::seconds(45)));
  REQUIRE(st.status()["proxmox"]["host"] == st.w.pve.host("pve2").url());
  st.applied("AUTO_RECOVERY", "true");
  CHECK(
      eventually([&] { return st.status()["proxmox"]["host"] == pve1; }, std::chrono::seconds(45)));
  const auto events = st.agent->get_json("/failover/events")["events"];
  CHECK(std::any_of(events.begin(), events.end(),
                    [&](const json& e) { return e["kind"] == "recovery" && e["to"] == pve1; }));
}

void health_check_peers(Stage& st) {
  const auto pve2 = st.w.pve.host("pve2").url();
  REQUIRE(eventually([&] { return host_of(st.status(), pve2)["probed"] == true; }));
  st.applied("HEALTH_CHECK_PEERS", "0");
  CHECK(eventually([&] { return host_of(st.status(), pve2)["probed"] == false; }));
}

// The score /status shows and the host manager orders the hosts by:
// 100 - rt/10 (at most 100) - 10 per failure, plus the bonus of the primary.
void primary_bonus(Stage& st) {
  const auto matches = [](const json& h, double bonus) {
    const double rt = h["response_time_ms"].is_number() ? h["response_time_ms"].get<double>() : 0;
    const double expected =
        100.0 - std::min(100.0, rt / 10.0) - 10.0 * h["failure_count"].get<double>() + bonus;
    return h["score"].is_number() && std::abs(h["score"].get<double>() - expected) < 1e-6;
  };
  CHECK(matches(pve1_of(st, st.status()), 50));
  st.applied("PRIMARY_BONUS", "0");
  CHECK(matches(pve1_of(st, st.status()), 0));
}

// ---- Hedged requests ----------------------------------------------------------
// pve1's qemu list answers after 1.5 s, once: a cycle with it hedged (a
// peer's cluster-wide read answers first) takes well under that.

constexpr auto kSlowList = std::chrono::milliseconds(1500);

double hedges_sent(Stage& st) {
  return st.metric("proxmox_host_agent_hedges_total",
                   {{"upstream", "proxmox"}, {"result", "sent"}});
}

void slow_list(Stage& st) {
  st.w.pve.host("pve1").set_fault({.kind = sim::FaultKind::slow,
                                   .path_prefix = "/nodes/pve1/qemu",
                                   .count = 1,
                                   .delay = kSlowList});
}

// A lost race fails the node over to the cluster-wide read: back to it.
void back_to_pve1(Stage& st) {
  REQUIRE(st.agent->post("/failover/reset")->status == 200);
}

// With ten answers of the node's lists (fast ones) the delay is the floor:
// 50 ms at the start (the slow list is hedged), 5 s after the reload (it is
// waited for).
void hedge_delay_min(Stage& st) {
  for (int i = 0; i < 10; ++i) {
    st.cycle();
  }
  slow_list(st);
  const auto sent = hedges_sent(st);
  const auto hedged = st.cycle();
  CHECK(last_result(hedged)["duration_ms"] < 1000);
  CHECK(hedges_sent(st) == sent + 1);
  back_to_pve1(st);
  slow_list(st);
  const auto s = st.applied_cycle("HEDGE_DELAY_MIN", "5000");
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["duration_ms"] >= 1400);
  CHECK(hedges_sent(st) == sent + 1);
}

// The lists' 99th percentile is now the slow answer (1.5 s): the delay
// follows it up to the ceiling, 60 s at the start; 200 ms after the reload.
void hedge_delay_max(Stage& st) {
  st.setup({{"HEDGE_DELAY_MIN", "50"}});
  slow_list(st);
  const auto sent = hedges_sent(st);
  const auto s = st.applied_cycle("HEDGE_DELAY_MAX", "200");
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["duration_ms"] < 1000);
  CHECK(hedges_sent(st) == sent + 1);
  back_to_pve1(st);
}

// A budget of 0 turns hedging off: the slow list is waited for.
void hedge_budget(Stage& st) {
  slow_list(st);
  const auto sent = hedges_sent(st);
  const auto s = st.applied_cycle("HEDGE_BUDGET_PERCENT", "0");
  CHECK_FALSE_MESSAGE(failed(s), message_of(s));
  CHECK(last_result(s)["duration_ms"] >= 1400);
  CHECK(hedges_sent(st) == sent);
}

// ---- Change-driven sync -------------------------------------------------------
// A guest task on pve1 (the guest outside the whitelist, started and
// stopped in turn) is the change; /status sync.changes says what was seen
// and when its cycle is due.

void toggle_outside(Stage& st) {
  auto& c = st.w.pve.cluster();
  const auto vmid = static_cast<int>(st.w.outside);
  REQUIRE((c.stop(vmid) || c.start(vmid)));
}

// Waits until a change is seen after `seen_before`; /status then.
json change_seen(Stage& st, std::uint64_t seen_before) {
  json out;
  REQUIRE(st.agent->wait_status(
      [&](const json& s) {
        out = s;
        return s["sync"]["changes"]["seen"].get<std::uint64_t>() > seen_before;
      },
      std::chrono::seconds(15)));
  return out;
}

// Off at the start (nothing is read between cycles); 0.5 s: a task starts a cycle.
void change_poll_interval(Stage& st) {
  CHECK(st.status()["sync"]["changes"]["watching"] == false);
  const auto s = st.applied_cycle("CHANGE_POLL_INTERVAL", "0.5");
  const auto cycles = s["sync"]["cycle_count"].get<std::uint64_t>();
  toggle_outside(st);
  CHECK(st.agent->wait_cycles(cycles + 1, std::chrono::seconds(15)));
  CHECK(st.status()["sync"]["changes"]["cycles"].get<std::uint64_t>() >= 1);
}

// 30 s (set after the row before): a change waits that long; 0.2 s after the reload.
void change_settle(Stage& st) {
  const auto before = st.status()["sync"]["cycle_count"].get<std::uint64_t>();
  st.setup({{"CHANGE_SETTLE", "30"}});  // its cycle covers what was pending
  REQUIRE(st.agent->wait_cycles(before + 1));
  REQUIRE(st.agent->wait_status([](const json& s) { return s["sync"]["is_syncing"] == false; }));
  const auto seen = st.status()["sync"]["changes"]["seen"].get<std::uint64_t>();
  toggle_outside(st);
  const auto waiting = change_seen(st, seen);
  CHECK(waiting["sync"]["changes"]["due_in_seconds"].get<double>() > 20);
  const auto s = st.applied_cycle("CHANGE_SETTLE", "0.2");  // this cycle covers it
  const auto cycles = s["sync"]["cycle_count"].get<std::uint64_t>();
  toggle_outside(st);
  CHECK(st.agent->wait_cycles(cycles + 1, std::chrono::seconds(15)));
}

// 1 s at the start; 60 s after the reload: the change waits for the minute.
void change_min_interval(Stage& st) {
  const auto s = st.applied_cycle("CHANGE_MIN_INTERVAL", "60");
  const auto seen = s["sync"]["changes"]["seen"].get<std::uint64_t>();
  toggle_outside(st);
  const auto waiting = change_seen(st, seen);
  CHECK(waiting["sync"]["changes"]["due_in_seconds"].get<double>() > 50);
  CHECK(waiting["sync"]["changes"]["behind_seconds"].get<double>() >= 0);
}

// ---- What only time shows: TTLs and ages of a minute --------------------------
// Reloaded early; a minute later one cycle shows what the old values would have done.

bool detail_call(const sim::RecordedRequest& r) {
  return r.path.ends_with("/config") || r.path.ends_with("/interfaces") ||
         contains(r.path, "/agent/");
}

// What an ordinary cycle adds to `count` (a guest whose answer is never
// final is asked again at each cycle, whatever the TTL).
long per_cycle(Stage& st, const std::function<long()>& count) {
  const auto before = count();
  st.cycle();
  return count() - before;
}

void vm_details_ttl(Stage& st) {
  REQUIRE(st.agent->wait_cycles(1));
  st.numbers["first_sync"] = st.status()["sync"]["last_sync_time"].get<long long>();
  st.applied("VM_DETAILS_TTL", "86400");
  auto& pve1 = st.w.pve.host("pve1");
  const std::function<long()> details = [&pve1] {
    const auto requests = pve1.requests();
    return static_cast<long>(std::count_if(requests.begin(), requests.end(), detail_call));
  };
  const auto usual = per_cycle(st, details);
  auto before = std::make_shared<long>(0);
  // Read a minute ago: with the start's 60 s every guest's details again.
  st.later.push_back({"VM_DETAILS_TTL", [=] { *before = details(); },
                      [=] { CHECK(details() - *before == usual); }});
}

void full_resync(Stage& st) {
  st.applied("FULL_RESYNC_INTERVAL", "0");
  auto& w = st.w;
  const std::function<long()> puts = [&w] { return static_cast<long>(w.puts()); };
  const auto usual = per_cycle(st, puts);
  auto before = std::make_shared<long>(0);
  // Sent a minute ago: with the start's 60 s every unchanged guest again.
  st.later.push_back({"FULL_RESYNC_INTERVAL", [=] { *before = puts(); },
                      [=] { CHECK(puts() - *before == usual); }});
}

// pve2 leaves the cluster (offline): dropped a minute after it was last seen.
void host_cleanup_age(Stage& st) {
  const auto pve2 = st.w.pve.host("pve2").url();
  REQUIRE(eventually([&] { return host_of(st.status(), pve2).is_object(); }));
  st.w.pve.cluster().set_node_online("pve2", false);
  const auto r = st.applied("HOST_CLEANUP_AGE", "60");
  CHECK(
      eventually([&] { return host_of(st.status(), pve2).is_null(); }, std::chrono::seconds(120)));
  CHECK_FALSE(st.line_after(r.mark, "proxmox_host_dropped").empty());
  // And the minute of the checks above is over.
  const auto first = st.numbers.at("first_sync");
  REQUIRE(eventually([&] { return st.status()["timestamp"].get<long long>() >= first + 62; }));
}

// ---- The HTTP API -------------------------------------------------------------

const std::string kControl = "control-token-0451";
const std::string kRead = "read-token-8812";

httplib::Headers bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

// A failed cycle and a good one: entries enough to trim.
void history_size(Stage& st) {
  st.w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  st.cycle();
  st.w.adb.clear_fault();
  st.cycle();
  REQUIRE(st.status()["history"].size() >= 2);
  st.applied("STATUS_HISTORY_SIZE", "1");
  CHECK(st.status()["history"].size() == 1);
}

// The status of a request from a client that is not on loopback.
int remote(Stage& st, const std::string& method, const std::string& path,
           const std::string& token = "") {
  int status = 0;
  st.ns->run([&] {
    httplib::Client c(st.ns->host_address(), st.agent->port());
    c.set_connection_timeout(std::chrono::seconds(5));
    const auto headers = token.empty() ? httplib::Headers{} : bearer(token);
    const auto r =
        method == "POST" ? c.Post(path, headers, "", "application/json") : c.Get(path, headers);
    status = r ? r->status : 0;
  });
  return status;
}

// On 0.0.0.0 from the start: still reached from another address.
void bind_address(Stage& st) {
  REQUIRE(remote(st, "GET", "/health") == 200);
  st.start_only("BIND_ADDRESS", "127.0.0.1");
  CHECK(remote(st, "GET", "/health") == 200);
  CHECK(st.config_value("BIND_ADDRESS") == "0.0.0.0");
}

void port(Stage& st) {
  const auto unused = free_port();
  st.start_only("PORT", std::to_string(unused));
  const auto old = st.bare_get("/health");
  REQUIRE(old);
  CHECK(old->status == 200);
  CHECK_FALSE(st.bare_get("/health", "127.0.0.1", unused));
  CHECK(st.config_value("PORT") == 0);
}

void api_token(Stage& st) {
  REQUIRE(remote(st, "POST", "/sync/trigger", kControl) == 403);  // without it: loopback only
  REQUIRE(st.agent->post("/sync/trigger")->status == 202);
  st.applied("AGENT_API_TOKEN", kControl);
  CHECK(remote(st, "POST", "/sync/trigger", kControl) == 202);
  CHECK(st.agent->post("/sync/trigger")->status == 401);  // loopback needs it too now
  st.agent->set_default_headers(bearer(kControl));
}

void open_customer_data(Stage& st) {
  REQUIRE(remote(st, "GET", "/vms") == 401);
  st.applied("AGENT_OPEN_CUSTOMER_DATA", "true");
  CHECK(remote(st, "GET", "/vms") == 200);
  st.setup({{"AGENT_OPEN_CUSTOMER_DATA", "false"}});  // it excludes a read token (the next row)
}

void read_token(Stage& st) {
  REQUIRE(st.agent->get("/vms", bearer(kRead))->status == 403);
  st.applied("AGENT_READ_TOKEN", kRead);
  CHECK(st.agent->get("/vms", bearer(kRead))->status == 200);
  CHECK(st.agent->post("/sync/trigger", bearer(kRead))->status == 403);
}

void read_auth(Stage& st) {
  REQUIRE(st.bare_get("/status")->status == 200);
  st.applied("AGENT_READ_AUTH", "true");
  CHECK(st.bare_get("/status")->status == 401);
  CHECK(st.agent->get("/status", bearer(kRead))->status == 200);
}

// ---- The HTTPS listener: new paths read at reload -------------------------------

std::string served(Stage& st) {
  TlsConnection c(st.agent->port(), st.certificates->pki.ca_pem_path());
  REQUIRE_MESSAGE(c.ok(), c.error());
  return c.peer_fingerprint();
}

void copy_over(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

// The key file in use renewed in place first: only with the new certificate
// path does the pair match (the old path with it would be refused, exit 78).
void tls_cert_file(Stage& st) {
  const auto& c = *st.certificates;
  REQUIRE(served(st) == c.first.sha256_fingerprint);
  copy_over(c.second.key_pem_path, st.file.at("TLS_KEY_FILE"));
  st.applied("TLS_CERT_FILE", c.second.cert_pem_path);
  CHECK(served(st) == c.second.sha256_fingerprint);
}

void tls_key_file(Stage& st) {
  const auto& c = *st.certificates;
  copy_over(c.third.cert_pem_path, c.second.cert_pem_path);
  st.applied("TLS_KEY_FILE", c.third.key_pem_path);
  CHECK(served(st) == c.third.sha256_fingerprint);
}

// ---- Webhooks -------------------------------------------------------------------
// receivers[0] and [1] (which never answers) at start; [2] only in a reload.

void webhook_sync_failures(Stage& st) {
  auto& hook = *st.receivers[0];
  st.w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  REQUIRE(failed(st.cycle()));
  REQUIRE(hook.calls("sync_failed").empty());  // 1000 failed cycles first
  st.applied("WEBHOOK_SYNC_FAILURES", "1");
  REQUIRE(hook.wait_for("sync_failed", 1, kWait));  // the next failed cycle is enough
  CHECK(hook.calls("sync_failed").front().headers.at("Authorization") == "Bearer hook-token-1");
}

void webhook_events(Stage& st) {
  auto& hook = *st.receivers[0];
  st.applied("WEBHOOK_EVENTS", "failover,sync_failed,sync_recovered");
  st.w.adb.clear_fault();
  REQUIRE_FALSE(failed(st.cycle()));
  CHECK(hook.wait_for("sync_recovered", 1, kWait));
}

void webhook_urls(Stage& st) {
  auto& hook = *st.receivers[0];
  const auto shown = st.config_value("WEBHOOK_URLS");
  st.start_only("WEBHOOK_URLS", hook.url() + "," + st.receivers[2]->url());
  st.w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  REQUIRE(failed(st.cycle()));
  CHECK(hook.wait_for("sync_failed", 2, kWait));  // the start's receivers
  CHECK(st.receivers[2]->calls().empty());
  CHECK(st.config_value("WEBHOOK_URLS") == shown);
}

void webhook_token(Stage& st) {
  auto& hook = *st.receivers[0];
  const auto r = st.start_only("WEBHOOK_TOKEN", "hook-token-2");
  st.w.adb.clear_fault();
  st.cycle();
  REQUIRE(hook.wait_for("sync_recovered", 2, kWait));
  CHECK(hook.calls("sync_recovered").back().headers.at("Authorization") == "Bearer hook-token-1");
  CHECK_FALSE(contains(st.log_since(r.mark), "hook-token-2"));
}

void webhook_timeout(Stage& st) {
  st.start_only("WEBHOOK_TIMEOUT", "9");
  CHECK(st.config_value("WEBHOOK_TIMEOUT") == 5);
}

// The receiver that never answers holds the events sent to it: one more
// finds its queue, now of one, full.
void webhook_queue_size(Stage& st) {
  const auto port = ":" + std::to_string(st.receivers[1]->port()) + "/";
  const auto silent = [&] {
    const auto receivers = st.status()["webhooks"]["receivers"];
    for (const auto& r : receivers) {
      if (contains(r["url"].get<std::string>(), port)) {
        return r;
      }
    }
    return json();
  };
  REQUIRE(silent().is_object());
  REQUIRE(silent()["dropped_queue_full"] == 0);
  REQUIRE(silent()["queued"] >= 1);
  st.applied("WEBHOOK_QUEUE_SIZE", "1");
  st.w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  REQUIRE(failed(st.cycle()));
  CHECK(eventually([&] { return silent()["dropped_queue_full"] >= 1; }));
}

// ---- Logging and state ------------------------------------------------------------

void debug(Stage& st) {
  const auto r = st.applied("DEBUG", "true");
  st.cycle();
  CHECK(contains(st.log_since(r.mark), "\"level\":\"debug\""));
}

void log_format(Stage& st) {
  const auto r = st.applied("LOG_FORMAT", "text");
  st.cycle();
  bool text = false;
  for (const auto& line : lines_of(st.log_since(r.mark))) {
    text = text || (is_event(line, "sync_cycle") && !line.starts_with("{"));
  }
  CHECK_MESSAGE(text, st.log_since(r.mark));
}

// Text lines ("TIME LEVEL EVENT: ..."): nothing below warning after it.
void log_level(Stage& st) {
  st.applied("LOG_LEVEL", "warning", /*logged=*/false);
  const auto mark = st.agent->process().err_so_far().size();
  st.cycle();
  const auto log = st.log_since(mark);
  for (const auto& line : lines_of(log)) {
    const auto first = line.find(' ');
    const auto level = line.substr(first + 1, line.find(' ', first + 1) - first - 1);
    CHECK_MESSAGE((level != "info" && level != "debug"), line);
  }
}

void state_dir(Stage& st) {
  const auto old_dir = st.file.at("STATE_DIR");
  const auto new_dir = st.w.dir.path() + "/state2";
  std::filesystem::create_directories(new_dir);
  st.start_only("STATE_DIR", new_dir);
  std::filesystem::remove(old_dir + "/whitelist.json");
  REQUIRE(st.agent->post("/whitelist/refresh")->status == 200);
  CHECK(std::filesystem::exists(old_dir + "/whitelist.json"));
  CHECK(std::filesystem::is_empty(new_dir));
  CHECK(st.config_value("STATE_DIR") == old_dir);
}

// ---- Peers (docs/sync.md "Guests that move") ------------------------------------

// A stand-in for the agent of pve2, on pve2's address: for a guest the test
// moved from pve2, it names the row the test seeded for it, after `delay`.
struct FakePeer {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<int> asked{0};
  std::atomic<int> delay_ms{0};
  std::mutex mutex;
  std::map<long long, json> answers;  // vmid -> the body

  FakePeer() {
    server.Get(R"(/vms/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++asked;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(delay_ms.load()));  // the peer's slowness
      std::lock_guard lock(mutex);
      const auto it = answers.find(std::stoll(req.matches[1]));
      if (it == answers.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second.dump(), "application/json");
    });
    port = server.bind_to_any_port("127.0.0.2");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FakePeer() {
    server.stop();
    thread.join();
  }
};
FakePeer* g_peer = nullptr;  // the peers group's, while it runs

// Moves a running guest of pve2 to pve1, with a row on another node (owner
// 7) that the fake peer names: returns its VMID and that row's id.
std::pair<long long, long long> move_here(Stage& st) {
  for (const auto& g : st.w.pve.cluster().guests_on("pve2")) {
    if (g.status != sim::GuestStatus::running || g.template_) {
      continue;
    }
    sim::AdbRow r;
    r.vmid = g.vmid;
    r.name = listed_name(g);
    r.status = "running";
    r.proxmox_node_id = 99;
    r.owner_id = 7;
    const auto row = st.w.adb.add_row(r).id;
    {
      std::lock_guard lock(g_peer->mutex);
      g_peer->answers[g.vmid] = {{"vmid", g.vmid},
                                 {"name", r.name},
                                 {"type", g.type == sim::GuestType::qemu ? "qemu" : "lxc"},
                                 {"accountdb", {{"row_id", row}}}};
    }
    REQUIRE(st.w.pve.cluster().migrate(g.vmid, "pve1"));
    return {g.vmid, row};
  }
  FAIL("pve2 has no running guest left to move");
  return {};
}

bool handed_over(const Stage& st, long long row) {
  const auto r = st.w.adb.row(row);
  return r && r->proxmox_node_id == kNode && r->owner_id == 7;
}

// Off, then on: the reload's cycle asks pve2's agent and writes its row.
void peer_handover(Stage& st) {
  const auto [vmid, row] = move_here(st);
  st.applied_cycle("PEER_HANDOVER", "true");
  CHECK(g_peer->asked > 0);
  CHECK(handed_over(st, row));
  CHECK(st.w.adb.count("PUT /vms/agent/-" + std::to_string(vmid)) == 0);
}

// A peer slower than PEER_TIMEOUT (1 s) is not waited for; with 3 s it is.
void peer_timeout(Stage& st) {
  g_peer->delay_ms = 1500;
  const auto [slow, slow_row] = move_here(st);
  st.cycle();
  CHECK_FALSE(handed_over(st, slow_row));
  const auto [vmid, row] = move_here(st);
  st.applied_cycle("PEER_TIMEOUT", "3");
  CHECK(handed_over(st, row));
  g_peer->delay_ms = 0;
}

// Another port: the next guest's row is asked there (nobody answers).
void peer_port(Stage& st) {
  const auto before = g_peer->asked.load();
  const auto [vmid, row] = move_here(st);
  st.applied_cycle("PEER_PORT", "1");
  CHECK(g_peer->asked == before);
  CHECK_FALSE(handed_over(st, row));
  st.setup({{"PEER_PORT", std::to_string(g_peer->port)}});
}

// https: the plain-HTTP peer cannot answer a TLS handshake.
void peer_scheme(Stage& st) {
  const auto before = g_peer->asked.load();
  const auto [vmid, row] = move_here(st);
  st.applied_cycle("PEER_SCHEME", "https");
  CHECK_FALSE(handed_over(st, row));
  CHECK(g_peer->asked == before);  // a TLS handshake is no request the peer can answer
  const auto why = st.agent->get_json("/vms/" + std::to_string(vmid))["accountdb"]["reason"];
  CHECK_MESSAGE(contains(why.dump(), "https://127.0.0.2:" + std::to_string(g_peer->port)), why);
  st.setup({{"PEER_SCHEME", "auto"}});
}

// ---- The table -------------------------------------------------------------------

using Step = void (*)(Stage&);
struct RowTest {
  std::string_view setting;
  std::string_view group;  // the test case that runs it, with others, in this order
  Step step;
};

constexpr std::string_view kTransport = "proxmox transport";
constexpr std::string_view kClient = "proxmox client";
constexpr std::string_view kPassword = "proxmox password";
constexpr std::string_view kAccountDb = "accountdb";
constexpr std::string_view kSync = "sync";
constexpr std::string_view kResilience = "resilience";
constexpr std::string_view kMinute = "a minute";
constexpr std::string_view kHttp = "http api";
constexpr std::string_view kHttps = "https listener";
constexpr std::string_view kWebhooks = "webhooks";
constexpr std::string_view kLogging = "logging and state";
constexpr std::string_view kBrake = "change brake";
constexpr std::string_view kPeers = "peers";
constexpr std::string_view kHedging = "hedging";
constexpr std::string_view kChanges = "changes";

const RowTest kRows[] = {
    {"PROXMOX_VERIFY_SSL", kTransport, verify_ssl},
    {"PROXMOX_FINGERPRINT", kTransport, fingerprint},
    {"PROXMOX_CA_FILE", kTransport, ca_file},
    {"PROXMOX_CONNECT_TIMEOUT", kTransport, connect_timeout},
    {"PROXMOX_TIMEOUT", kTransport, proxmox_timeout},

    {"SYNC_GUEST_TYPES", kClient, guest_types},
    {"VM_DETAILS", kClient, vm_details},
    {"PROXMOX_TOKEN_ID", kClient, token_id},
    {"PROXMOX_TOKEN_SECRET", kClient, token_secret},
    {"PROXMOX_DISCOVER_HOSTS", kClient, discover_hosts},
    {"PROXMOX_HOSTS", kClient, proxmox_hosts},
    {"PROXMOX_NODE_NAME", kClient, node_name},
    {"PROXMOX_HOST", kClient, proxmox_host},

    {"PROXMOX_PASSWORD", kPassword, password},
    {"PROXMOX_USER", kPassword, user},

    {"ACCOUNTDB_STRATEGY", kAccountDb, strategy},
    {"ACCOUNTDB_URL", kAccountDb, accountdb_url},
    {"ACCOUNTDB_TIMEOUT", kAccountDb, accountdb_timeout},
    {"RETRY_MAX_DELAY", kAccountDb, retry_max_delay},
    {"ACCOUNTDB_API_KEY", kAccountDb, api_key},
    {"ACCOUNTDB_NODE_ID", kAccountDb, node_id},

    {"CREATE_STOPPED_VMS", kSync, create_stopped},
    {"CPU_CHANGE_THRESHOLD", kSync, cpu_threshold},
    {"MARK_MISSING_VMS", kSync, mark_missing},
    {"MISSING_AFTER_CYCLES", kSync, missing_after},
    {"UPDATE_INTERVAL", kSync, update_interval},
    {"HEARTBEAT_INTERVAL", kSync, heartbeat_interval},
    {"WHITELIST_TTL", kSync, whitelist_ttl},
    {"WHITELIST_MAX_STALE", kSync, whitelist_max_stale},

    {"CHANGE_POLL_INTERVAL", kChanges, change_poll_interval},
    {"CHANGE_SETTLE", kChanges, change_settle},
    {"CHANGE_MIN_INTERVAL", kChanges, change_min_interval},

    {"PEER_HANDOVER", kPeers, peer_handover},
    {"PEER_TIMEOUT", kPeers, peer_timeout},
    {"PEER_PORT", kPeers, peer_port},
    {"PEER_SCHEME", kPeers, peer_scheme},

    {"CHANGE_BRAKE_MIN", kBrake, brake_min},
    {"CHANGE_BRAKE_PERCENT", kBrake, brake_percent},

    {"RETRY_BASE_DELAY", kResilience, retry_base_delay},
    {"RETRY_MAX_ATTEMPTS", kResilience, retry_max_attempts},
    {"HEALTHY_THRESHOLD", kResilience, healthy_threshold},
    {"CIRCUIT_BREAKER_THRESHOLD", kResilience, breaker_threshold},
    {"CIRCUIT_BREAKER_RESET", kResilience, breaker_reset},
    {"AUTO_FAILOVER", kResilience, auto_failover},
    {"HEALTH_CHECK_INTERVAL", kResilience, health_check_interval},
    {"AUTO_RECOVERY", kResilience, auto_recovery},
    {"HEALTH_CHECK_PEERS", kResilience, health_check_peers},
    {"PRIMARY_BONUS", kResilience, primary_bonus},

    {"HEDGE_DELAY_MIN", kHedging, hedge_delay_min},
    {"HEDGE_DELAY_MAX", kHedging, hedge_delay_max},
    {"HEDGE_BUDGET_PERCENT", kHedging, hedge_budget},

    {"VM_DETAILS_TTL", kMinute, vm_details_ttl},
    {"FULL_RESYNC_INTERVAL", kMinute, full_resync},
    {"HOST_CLEANUP_AGE", kMinute, host_cleanup_age},

    {"STATUS_HISTORY_SIZE", kHttp, history_size},
    {"BIND_ADDRESS", kHttp, bind_address},
    {"PORT", kHttp, port},
    {"AGENT_API_TOKEN", kHttp, api_token},
    {"AGENT_OPEN_CUSTOMER_DATA", kHttp, open_customer_data},
    {"AGENT_READ_TOKEN", kHttp, read_token},
    {"AGENT_READ_AUTH", kHttp, read_auth},

    {"TLS_CERT_FILE", kHttps, tls_cert_file},
    {"TLS_KEY_FILE", kHttps, tls_key_file},

    {"WEBHOOK_SYNC_FAILURES", kWebhooks, webhook_sync_failures},
    {"WEBHOOK_EVENTS", kWebhooks, webhook_events},
    {"WEBHOOK_URLS", kWebhooks, webhook_urls},
    {"WEBHOOK_TOKEN", kWebhooks, webhook_token},
    {"WEBHOOK_TIMEOUT", kWebhooks, webhook_timeout},
    {"WEBHOOK_QUEUE_SIZE", kWebhooks, webhook_queue_size},

    {"DEBUG", kLogging, debug},
    {"LOG_FORMAT", kLogging, log_format},
    {"LOG_LEVEL", kLogging, log_level},
    {"STATE_DIR", kLogging, state_dir},
};

const std::set<std::string_view> kGroups = {kTransport,  kClient, kPassword, kAccountDb, kSync,
                                            kResilience, kMinute, kHttp,     kHttps,     kWebhooks,
                                            kLogging,    kBrake,  kPeers,    kHedging,   kChanges};

// Runs the rows of `group` in order, each under its setting's name; then
// the checks that needed time, around one cycle.
void run_rows(Stage& st, std::string_view group) {
  std::size_t ran = 0;
  for (const auto& row : kRows) {
    if (row.group != group) {
      continue;
    }
    const std::string name(row.setting);
    INFO("the reload of ", name);
    const auto* spec = find_setting(name);
    REQUIRE(spec != nullptr);
    row.step(st);
    st.restore_start_only();
    // The step reloaded its own setting, the way the table says it applies.
    const auto as = st.reloaded_as_start_only(name);
    REQUIRE_MESSAGE(as.has_value(), "the step of ", name, " never reloaded it");
    CHECK(*as == spec->start_only);
    ++ran;
  }
  REQUIRE(ran > 0);
  if (!st.later.empty()) {
    for (const auto& l : st.later) {
      l.before();
    }
    st.cycle();
    for (const auto& l : st.later) {
      INFO("the reload of ", l.setting, ", a minute later");
      l.after();
    }
  }
}

}  // namespace

TEST_CASE("reload effects: every row of the settings table has its reload test") {
  std::vector<std::string> missing;
  for (const auto& spec : settings_table()) {
    const auto n = std::count_if(std::begin(kRows), std::end(kRows),
                                 [&](const RowTest& r) { return r.setting == spec.env; });
    CHECK_MESSAGE(n <= 1, spec.env, " has several reload tests");
    if (n == 0) {
      missing.emplace_back(spec.env);
    }
  }
  CHECK_MESSAGE(missing.empty(),
                "no reload test in kRows (tests/integration/reload_effects_test.cpp) for ",
                join_list(missing), ": say what a reload of it does, and show it");
  for (const auto& row : kRows) {
    CHECK_MESSAGE(find_setting(row.setting) != nullptr, row.setting, " is no setting");
    CHECK_MESSAGE(kGroups.contains(row.group), row.group, " is no group");
  }
}

TEST_CASE("reload effects: the Proxmox transport - verification - pins - CA file - timeouts") {
  World w;
  TempDir other;
  const TestPki stranger(other.path());  // a CA that signed none of the hosts
  Stage st(w);
  st.file["PROXMOX_VERIFY_SSL"] = "false";
  st.file["PROXMOX_CA_FILE"] = stranger.ca_pem_path();
  st.file["AUTO_FAILOVER"] = "false";  // every request to the node's own host
  st.file["CIRCUIT_BREAKER_THRESHOLD"] = "10";
  st.start();
  run_rows(st, kTransport);
}

TEST_CASE("reload effects: the Proxmox client - guest types - details - credentials - hosts") {
  World w;
  Stage st(w);
  st.file["MARK_MISSING_VMS"] = "false";  // another node's read leaves this node's rows alone
  st.start();
  run_rows(st, kClient);
}

TEST_CASE("reload effects: Proxmox password login - the password and the user") {
  World w;
  w.pve.cluster().add_user({.userid = "root@pam", .password = "pw-start-1"});
  Stage st(w);
  st.file.erase("PROXMOX_TOKEN_ID");
  st.file.erase("PROXMOX_TOKEN_SECRET");
  st.file["PROXMOX_USER"] = "root@pam";
  st.file["PROXMOX_PASSWORD"] = "pw-start-1";
  st.file["MARK_MISSING_VMS"] = "false";
  st.start();
  run_rows(st, kPassword);
}

TEST_CASE("reload effects: AccountDB - strategy - endpoints - timeout - key - node id") {
  World w;
  const auto second = w.adb.add_endpoint();
  Stage st(w);
  st.file["ACCOUNTDB_URL"] = w.adb.url(0) + "," + w.adb.url(second);
  st.start();
  run_rows(st, kAccountDb);
}

TEST_CASE("reload effects: the sync - creates - changes - marks - schedule - whitelist") {
  World w;
  Stage st(w);
  st.file["WHITELIST_TTL"] = "86400";
  st.file["WHITELIST_MAX_STALE"] = "86400";
  st.file["MARK_MISSING_VMS"] = "false";
  st.file["MISSING_AFTER_CYCLES"] = "1";
  st.start();
  run_rows(st, kSync);
}

TEST_CASE("reload effects: the change brake - its floor and its share") {
  World w;
  REQUIRE(w.running.size() >= 6);  // three gone are at most half the rows
  Stage st(w);
  st.file["CHANGE_BRAKE_MIN"] = "1000";
  st.file["CHANGE_BRAKE_PERCENT"] = "20";
  st.file["MISSING_AFTER_CYCLES"] = "1";
  st.file["PROXMOX_NODE_NAME"] = "pve1";
  st.start();
  st.cycle();
  REQUIRE(w.rows().size() == w.running.size());
  run_rows(st, kBrake);
}

TEST_CASE("reload effects: resilience - retries - breakers - health - failover and recovery") {
  World w;
  Stage st(w);
  st.file["SYNC_GUEST_TYPES"] = "qemu";
  st.file["VM_DETAILS"] = "false";
  st.file["PROXMOX_NODE_NAME"] = "pve1";
  st.file["AUTO_FAILOVER"] = "false";
  st.file["AUTO_RECOVERY"] = "false";
  st.file["CIRCUIT_BREAKER_THRESHOLD"] = "10";
  st.file["MARK_MISSING_VMS"] = "false";
  st.start();
  run_rows(st, kResilience);
}

TEST_CASE("reload effects: a minute - details TTL - full resync - host cleanup age") {
  World w;
  Stage st(w);
  st.file["VM_DETAILS_TTL"] = "60";
  st.file["FULL_RESYNC_INTERVAL"] = "60";
  st.file["HEALTH_CHECK_INTERVAL"] = "10";
  st.file["WHITELIST_TTL"] = "86400";
  st.file["MARK_MISSING_VMS"] = "false";
  st.start();
  run_rows(st, kMinute);
}

TEST_CASE("reload effects: the HTTP API - history - listener - tokens - read auth") {
  World w;
  Stage st(w);
  st.ns = std::make_unique<NetNs>();
  st.file["BIND_ADDRESS"] = "0.0.0.0";
  st.start();
  run_rows(st, kHttp);
}

TEST_CASE("reload effects: the HTTPS listener - certificate and key paths") {
  World w;
  const Certificates certificates;
  Stage st(w);
  st.certificates = &certificates;
  const auto cert = w.dir.path() + "/agent.pem";
  const auto key = w.dir.path() + "/agent.key";
  copy_over(certificates.first.cert_pem_path, cert);
  copy_over(certificates.first.key_pem_path, key);
  st.file["TLS_CERT_FILE"] = cert;
  st.file["TLS_KEY_FILE"] = key;
  st.start();
  run_rows(st, kHttps);
}

TEST_CASE("reload effects: webhooks - failures - events - receivers - token - timeout - queue") {
  World w;
  Receiver first;
  Receiver silent(/*hang=*/true);
  Receiver later;
  Stage st(w);
  st.receivers = {&first, &silent, &later};
  st.file["WEBHOOK_URLS"] = first.url() + "," + silent.url();
  st.file["WEBHOOK_TOKEN"] = "hook-token-1";
  st.file["WEBHOOK_TIMEOUT"] = "5";
  st.file["WEBHOOK_EVENTS"] = "failover,sync_failed";
  st.file["WEBHOOK_SYNC_FAILURES"] = "1000";
  st.file["PROXMOX_NODE_NAME"] = "pve1";
  st.start();
  run_rows(st, kWebhooks);
  st.agent->stop();  // before the receivers go
}

TEST_CASE("reload effects: logging and state - debug - format - level - state directory") {
  World w;
  Stage st(w);
  st.start();
  run_rows(st, kLogging);
}

TEST_CASE("reload effects: peers - handover - timeout - port - scheme") {
  World w;
  FakePeer peer;
  g_peer = &peer;
  std::vector<long long> all = w.running;
  for (const auto& g : w.pve.cluster().guests_on("pve2")) {
    all.push_back(g.vmid);
  }
  w.adb.set_whitelist(kNode, all);
  Stage st(w);
  st.file["PROXMOX_NODE_NAME"] = "pve1";
  st.file["PEER_HANDOVER"] = "false";
  st.file["PEER_PORT"] = std::to_string(peer.port);
  st.file["PEER_TIMEOUT"] = "1";
  st.start();
  st.cycle();
  run_rows(st, kPeers);
  g_peer = nullptr;
}

TEST_CASE("reload effects: hedged requests - delay floor and ceiling - budget") {
  World w;
  Stage st(w);
  st.file["HEDGE_DELAY_MAX"] = "60000";
  st.file["MARK_MISSING_VMS"] = "false";  // a cluster-wide read is no evidence anyway
  st.start();
  run_rows(st, kHedging);
}

TEST_CASE("reload effects: change-driven sync - poll interval - settle - minimum interval") {
  World w;
  Stage st(w);
  st.file["CHANGE_POLL_INTERVAL"] = "0";
  st.file["CHANGE_SETTLE"] = "0.2";
  st.file["CHANGE_MIN_INTERVAL"] = "1";
  st.start();
  run_rows(st, kChanges);
}
