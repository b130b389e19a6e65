// The agent under systemd (docs/packaging.md "Under systemd", docs/settings.md "Signals"):
// the real binary talks sd_notify to a datagram socket the test owns, the way
// systemd's NOTIFY_SOCKET works; SIGTERM within its grace; SIGHUP applied.

#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <regex>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::Env;
using test::RunningAgent;
using test::World;

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

struct Notification {
  std::string text;  // e.g. "READY=1\nSTATUS=..."
  SteadyTime at;
  bool has(std::string_view assignment) const {
    return ("\n" + text + "\n").find("\n" + std::string(assignment) + "\n") != std::string::npos;
  }
  // The value of STATUS=, or "".
  std::string status() const {
    const auto pos = ("\n" + text).find("\nSTATUS=");
    if (pos == std::string::npos) {
      return "";
    }
    const auto value = text.substr(pos + std::strlen("STATUS="));
    return value.substr(0, value.find('\n'));
  }
};

// The receiving end of sd_notify: an abstract unix datagram socket (no path
// length limit, nothing to clean up), like the one systemd passes in
// NOTIFY_SOCKET. Every message read is kept, in order.
class NotifySocket {
 public:
  NotifySocket() {
    static std::atomic<int> counter{0};
    name_ = "pha-notify-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name_.data(), name_.size());  // sun_path[0] = 0: abstract
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name_.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  std::string address() const { return "@" + name_; }
  const std::vector<Notification>& seen() const { return seen_; }

  // The next message, or nullopt when none comes within `timeout`.
  std::optional<Notification> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
      return std::nullopt;
    }
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      return std::nullopt;
    }
    seen_.push_back(
        {std::string(buf, static_cast<std::size_t>(n)), std::chrono::steady_clock::now()});
    return seen_.back();
  }
  // Reads until a message satisfies `match`; nullopt when none does in time.
  std::optional<Notification> wait_for(const std::function<bool(const Notification&)>& match,
                                       std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) {
        return std::nullopt;
      }
      auto m = next(left);
      if (m && match(*m)) {
        return m;
      }
    }
  }
  // Keeps reading (as systemd does: sd_notify blocks once the queue of
  // unread messages is full) until `done`; false when it is not in time.
  bool read_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      next(50ms);
    }
    return true;
  }
  std::optional<Notification> wait_for(std::string_view assignment,
                                       std::chrono::milliseconds timeout) {
    return wait_for([assignment](const Notification& m) { return m.has(assignment); }, timeout);
  }

 private:
  std::string name_;
  int fd_ = -1;
  std::vector<Notification> seen_;
};

bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// The environment of an agent under a systemd watchdog of 2 s.
Env under_systemd(const NotifySocket& socket) {
  return {
      {"NOTIFY_SOCKET", socket.address()}, {"WATCHDOG_USEC", "2000000"}, {"LOG_FORMAT", "json"}};
}

// Polls the simulator until call `call` has arrived (it may still be unanswered).
bool wait_for_call(const sim::AdbSim& adb, sim::AdbCall call) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto requests = adb.requests();
    if (std::any_of(requests.begin(), requests.end(),
                    [call](const sim::AdbRecordedRequest& r) { return r.call == call; })) {
      return true;
    }
    std::this_thread::sleep_for(10ms);  // a poll interval, not a wait for an outcome
  }
  return false;
}

// The log line of `event` in JSON logs, or "".
std::string log_line(const std::string& err, const std::string& event) {
  const auto at = err.find("\"event\":\"" + event + "\"");
  if (at == std::string::npos) {
    return "";
  }
  const auto start = err.rfind('\n', at);
  const auto from = start == std::string::npos ? 0 : start + 1;
  return err.substr(from, err.find('\n', at) - from);
}

bool is_status_of_cycle(const Notification& m) {
  static const std::regex cycle(R"((in sync|warning|error): .*next in \d+ s)");
  return std::regex_match(m.status(), cycle);
}

std::size_t count_of(const std::vector<Notification>& seen, std::string_view assignment) {
  return static_cast<std::size_t>(std::count_if(
      seen.begin(), seen.end(), [assignment](const Notification& m) { return m.has(assignment); }));
}

}  // namespace

TEST_CASE(
    "systemd: READY once the port is open - STATUS after each cycle - WATCHDOG pings - "
    "STOPPING on SIGTERM and exit 0") {
  World w;
  NotifySocket socket;
  auto env = w.env();
  for (const auto& [k, v] : under_systemd(socket)) {
    env[k] = v;
  }
  // A 4 s watchdog: pings every 2 s, and a loaded CI machine's scheduling
  // delays stay far from the limit the gaps are checked against.
  env["WATCHDOG_USEC"] = "4000000";
  test::Process agent(PHA_AGENT_BINARY, {{}, env, w.dir.path()});

  // READY comes first and names the port it serves: the port must accept at once.
  const auto ready = socket.next(20s);
  REQUIRE_MESSAGE(ready, agent.err_so_far());
  REQUIRE_MESSAGE(ready->has("READY=1"), ready->text);
  std::smatch m;
  const auto status = ready->status();
  REQUIRE_MESSAGE(std::regex_search(status, m, std::regex(R"(127\.0\.0\.1:(\d+))")), status);
  const int port = std::stoi(m[1]);
  CHECK(port_open(port));
  // The log line may reach the test's stderr reader after the notify socket.
  CHECK_MESSAGE(agent.wait_for_output("\"port\":" + std::to_string(port)), agent.err_so_far());

  // STATUS after the first cycle, and again after a triggered one.
  const auto first = socket.wait_for(is_status_of_cycle, 30s);
  REQUIRE_MESSAGE(first, agent.err_so_far());
  CHECK_MESSAGE(first->status().starts_with("in sync: "), first->status());
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5s);
  auto trigger = client.Post("/sync/trigger");
  REQUIRE(trigger);
  CHECK(trigger->status == 202);
  const auto second = socket.wait_for(is_status_of_cycle, 30s);
  REQUIRE_MESSAGE(second, agent.err_so_far());
  const auto line = second->status();
  CHECK_MESSAGE(
      std::regex_match(line, std::regex(R"(in sync: \d+ guests, \d+ changes?, next in \d+ s)")),
      line);
  // UPDATE_INTERVAL is 300 s (± 10 % jitter).
  const auto next_in = std::stoi(line.substr(line.rfind("next in ") + 8));
  CHECK(next_in >= 268);
  CHECK(next_in <= 330);
  CHECK(line.find(test::kKey) == std::string::npos);
  // The state is said once: "starting: waiting for ...", never "starting: starting: ...".
  for (const auto& n : socket.seen()) {
    const auto s = n.status();
    for (const std::string state : {"starting", "warning", "error"}) {
      CHECK_MESSAGE(!s.starts_with(state + ": " + state), s);
    }
  }

  // Pings while the loop runs: at least three, none further apart than the 4 s watchdog.
  while (count_of(socket.seen(), "WATCHDOG=1") < 3) {
    REQUIRE_MESSAGE(socket.wait_for("WATCHDOG=1", 8s), agent.err_so_far());
  }
  std::optional<SteadyTime> last_ping;
  for (const auto& n : socket.seen()) {
    if (n.has("WATCHDOG=1")) {
      if (last_ping) {
        CHECK(n.at - *last_ping < 4s);
      }
      last_ping = n.at;
    }
  }

  agent.signal(SIGTERM);
  REQUIRE(socket.wait_for("STOPPING=1", 10s));
  const auto r = agent.wait(15s);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  // Nothing after STOPPING: no ping of a process on its way out.
  while (socket.next(0ms)) {
  }
  CHECK(socket.seen().back().has("STOPPING=1"));
  CHECK(socket.seen().front().has("READY=1"));
}

TEST_CASE("systemd: a stuck sync loop stops the watchdog pings and they resume when it moves") {
  World w;
  // Call A hangs: the first cycle cannot finish. With UPDATE_INTERVAL=10 and
  // RETRY_MAX_DELAY=2, /health calls the loop stuck after 2 x 10 s.
  w.adb.set_fault({.kind = sim::AdbFaultKind::hang, .call = sim::AdbCall::node_info});
  NotifySocket socket;
  auto env = under_systemd(socket);
  env["UPDATE_INTERVAL"] = "10";
  env["ACCOUNTDB_TIMEOUT"] = "120";
  RunningAgent agent(w, env);

  const auto withheld = [&agent] {
    return !log_line(agent.process().err_so_far(), "watchdog_withheld").empty();
  };
  REQUIRE_MESSAGE(socket.read_until(withheld, 40s), agent.process().err_so_far());
  // Until then the loop only waited on a request: the pings went on for about 20 s.
  CHECK(count_of(socket.seen(), "WATCHDOG=1") >= 15);
  const auto health = agent.get("/health");
  REQUIRE(health);
  CHECK(health->status == 503);
  CHECK(health->body.find("the sync loop has not finished a cycle") != std::string::npos);
  // Withheld means no ping for longer than the watchdog's 2 s: systemd would restart it.
  while (socket.next(0ms)) {
  }
  CHECK_FALSE(socket.wait_for("WATCHDOG=1", 3s));

  w.adb.clear_fault();  // the hung node_info is answered: the cycle ends
  CHECK_MESSAGE(socket.wait_for("WATCHDOG=1", 20s), agent.process().err_so_far());
  CHECK(agent.process().wait_for_output("\"event\":\"watchdog_resumed\"", 5s));
  CHECK(agent.stop().exit_code == 0);
}

TEST_CASE("systemd: SIGTERM lets an in-flight AccountDB request finish") {
  World w;
  // The first node_info takes 3 s; everything after it answers at once.
  w.adb.set_fault({.kind = sim::AdbFaultKind::slow,
                   .call = sim::AdbCall::node_info,
                   .count = 1,
                   .delay = 3000ms});
  RunningAgent agent(w, {});
  REQUIRE(wait_for_call(w.adb, sim::AdbCall::node_info));
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = agent.stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.exit_code == 0);
  CHECK(took >= 2s);  // it waited for the answer
  CHECK(took < 10s);
  // The answer came and its cycle ended before the agent did.
  const auto cycle = r.err.find("\"event\":\"sync_cycle\"");
  const auto stopped = r.err.find("\"event\":\"agent_stopped\"");
  CHECK_MESSAGE(cycle != std::string::npos, r.err);
  CHECK(stopped != std::string::npos);
  CHECK(cycle < stopped);
  CHECK(r.err.find("\"event\":\"stop_deadline\"") == std::string::npos);
}

TEST_CASE("systemd: SIGTERM during a hung AccountDB request exits 0 after the 10 s grace") {
  World w;
  w.adb.set_fault({.kind = sim::AdbFaultKind::hang});
  RunningAgent agent(w, {{"ACCOUNTDB_TIMEOUT", "120"}});
  REQUIRE(
      wait_for_call(w.adb, sim::AdbCall::node_info));  // in flight: the simulator never answers it
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = agent.stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(took >= 9s);  // the request had its grace
  CHECK(took < 14s);
  CHECK_MESSAGE(!log_line(r.err, "stop_deadline").empty(), r.err);
}

TEST_CASE("systemd: SIGHUP applies a new UPDATE_INTERVAL - a broken env file keeps the old one") {
  World w;
  const auto file = w.dir.write("agent.env", "UPDATE_INTERVAL=3600\n");
  RunningAgent agent(w, {}, {"--env-file", file});
  REQUIRE(agent.wait_cycles(1));
  CHECK(agent.get_json("/sync/status")["update_interval"] == 3600);

  w.dir.write("agent.env", "UPDATE_INTERVAL=20\n");
  agent.process().signal(SIGHUP);
  REQUIRE(agent.process().wait_for_output("\"event\":\"config_reloaded\"", 10s));
  CHECK(agent.get_json("/sync/status")["update_interval"] == 20);
  const auto setting = agent.get_json("/config")["settings"]["UPDATE_INTERVAL"];
  CHECK(setting["value"] == 20);
  CHECK(setting["source"] == "env-file");
  // The loop uses it: the reload runs a cycle, and the next is 20 s (± 10 %) after it.
  CHECK(agent.wait_status([](const nlohmann::json& s) {
    const auto& sync = s["sync"];
    if (sync["cycle_count"].get<int>() < 2 || !sync["last_attempt_time"].is_number()) {
      return false;
    }
    const auto gap =
        sync["next_sync_time"].get<long long>() - sync["last_attempt_time"].get<long long>();
    return gap >= 17 && gap <= 23;
  }));

  w.dir.write("agent.env", "UPDATE_INTERVAL=abc\n");
  agent.process().signal(SIGHUP);
  REQUIRE(agent.process().wait_for_output("\"event\":\"config_reload_rejected\"", 10s));
  const auto rejected = log_line(agent.process().err_so_far(), "config_reload_rejected");
  CHECK_MESSAGE(rejected.find("UPDATE_INTERVAL") != std::string::npos, rejected);
  CHECK_MESSAGE(rejected.find("abc") != std::string::npos, rejected);
  CHECK(agent.get_json("/sync/status")["update_interval"] == 20);
  CHECK(agent.get_json("/config")["settings"]["UPDATE_INTERVAL"]["value"] == 20);
  // Still serving and still syncing.
  CHECK(agent.get("/health")->status == 200);
  REQUIRE(agent.post("/sync/trigger")->status == 202);
  CHECK(agent.wait_cycles(3));
  CHECK(agent.stop().exit_code == 0);
}

TEST_CASE(
    "systemd: SIGHUP re-reads the drop-ins - a new one applies - a broken one is refused by file "
    "and line - a removed one counts no more") {
  World w;
  const auto file = w.dir.write("agent.env", "UPDATE_INTERVAL=3600\n");
  RunningAgent agent(w, {}, {"--env-file", file});
  REQUIRE(agent.wait_cycles(1));
  const auto interval = [&agent] {
    return agent.get_json("/status")["sync"]["update_interval"].get<int>();
  };
  CHECK(interval() == 3600);

  const auto drop_in = w.dir.write("agent.env.d/20-interval.env", "# faster\nUPDATE_INTERVAL=30\n");
  agent.process().signal(SIGHUP);
  REQUIRE(agent.process().wait_for_output("\"event\":\"config_reloaded\"", 10s));
  CHECK(interval() == 30);
  CHECK(agent.get_json("/config")["settings"]["UPDATE_INTERVAL"]["from"] == drop_in + ":2");
  const auto reloaded = log_line(agent.process().err_so_far(), "config_reloaded");
  CHECK_MESSAGE(reloaded.find(drop_in) != std::string::npos, reloaded);

  w.dir.write("agent.env.d/20-interval.env", "UPDATE_INTERVAL=40\nUPDATE_INTERVAL 50\n");
  agent.process().signal(SIGHUP);
  REQUIRE(agent.process().wait_for_output("\"event\":\"config_reload_rejected\"", 10s));
  const auto rejected = log_line(agent.process().err_so_far(), "config_reload_rejected");
  CHECK_MESSAGE(rejected.find(drop_in + ":2: expected KEY=value") != std::string::npos, rejected);
  CHECK(interval() == 30);
  CHECK(agent.get("/health")->status == 200);

  // Removed: agent.env's value is back. Only this reload lists agent.env alone.
  std::filesystem::remove(drop_in);
  agent.process().signal(SIGHUP);
  REQUIRE_MESSAGE(agent.process().wait_for_output("\"env_files\":\"" + file + "\"", 10s),
                  log_tail(agent));
  CHECK(interval() == 3600);
  CHECK(agent.get_json("/config")["settings"]["UPDATE_INTERVAL"]["from"] == file + ":1");
  CHECK(agent.stop().exit_code == 0);
}

TEST_CASE(
    "systemd: --reload PID (ExecReload=) - exit 0 when the agent applied the edit - 78 with the "
    "file and line when it refused it - 1 without an agent to ask") {
  World w;
  const auto file = w.dir.write("agent.env", "UPDATE_INTERVAL=3600\n");
  test::TempDir runtime;  // RuntimeDirectory=
  RunningAgent agent(w, {{"RUNTIME_DIRECTORY", runtime.path()}}, {"--env-file", file});
  REQUIRE(agent.wait_cycles(1));
  const auto pid = std::to_string(agent.process().pid());
  const auto reload = [&] {
    return test::run_process(
        PHA_AGENT_BINARY,
        {{"--reload", pid}, {{"RUNTIME_DIRECTORY", runtime.path()}}, w.dir.path()}, 40s);
  };
  const auto interval = [&agent] {
    return agent.get_json("/status")["sync"]["update_interval"].get<int>();
  };

  w.dir.write("agent.env", "UPDATE_INTERVAL=120\n");
  const auto applied = reload();
  CHECK_MESSAGE(applied.exit_code == 0, applied.err);
  CHECK(applied.err.empty());
  // The verdict comes after the agent applied it: no wait needed here.
  CHECK(interval() == 120);

  const auto drop_in = w.dir.write("agent.env.d/50-node.env", "UPDATE_INTERVAL=60\nPORT 9100\n");
  const auto refused = reload();
  CHECK(refused.exit_code == 78);
  CHECK_MESSAGE(refused.err.find(drop_in + ":2") != std::string::npos, refused.err);
  CHECK_MESSAGE(refused.err.find("keeps the old one") != std::string::npos, refused.err);
  CHECK(interval() == 120);
  CHECK(agent.get("/health")->status == 200);

  // Fixed again: each reload gets its own verdict, not the last one.
  w.dir.write("agent.env.d/50-node.env", "UPDATE_INTERVAL=60\n");
  CHECK(reload().exit_code == 0);
  CHECK(interval() == 60);
  CHECK(agent.stop().exit_code == 0);

  // The agent is gone: its last verdict stays, but nobody takes the signal.
  const auto gone = reload();
  CHECK(gone.exit_code == 1);
  CHECK_MESSAGE(gone.err.find("cannot signal") != std::string::npos, gone.err);
  // No RUNTIME_DIRECTORY: nothing to read the verdict from.
  const auto outside = test::run_process(PHA_AGENT_BINARY, {{"--reload", "1"}, {}, w.dir.path()});
  CHECK(outside.exit_code == 1);
  CHECK_MESSAGE(outside.err.find("RUNTIME_DIRECTORY") != std::string::npos, outside.err);
}
