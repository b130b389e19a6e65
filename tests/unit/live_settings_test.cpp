// Settings as one immutable snapshot (agent/config/live_settings.hpp) and what
// a reload does to the parts that read it when they act: a reader keeps the
// snapshot it took, a Live value sees the new one, listeners run once per
// reload for as long as they are subscribed, and the endpoint pool and the
// host manager apply a changed target list at their next decision. Also
// what a reload puts in force (start_only.hpp: the start-only settings keep
// their running value) and the upstream transports rebuilt from it
// (settings_transport.hpp).

#include "agent/config/live_settings.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <thread>

#include <doctest/doctest.h>

#include "agent/config/docs.hpp"
#include "agent/config/start_only.hpp"
#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/settings_transport.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_system.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

Settings with_interval(int seconds) {
  Settings s;
  s.update_interval = seconds;
  return s;
}

AccountDbEndpoint endpoint(const std::string& url) {
  return {*parse_url(url, {"http", 80}), 1, 1};
}

}  // namespace

TEST_CASE("live settings: a reader keeps its snapshot - a Live value reads the new one") {
  LiveSettings live(with_interval(300));
  const auto taken = live.get();
  const auto interval = live.read([](const Settings& s) { return s.update_interval; });
  CHECK(interval() == 300);
  live.replace(LoadedConfig{with_interval(60)});
  CHECK(taken->update_interval == 300);  // a cycle that started keeps its settings
  CHECK(live.get()->update_interval == 60);
  CHECK(interval() == 60);
  CHECK(live.config()->settings.update_interval == 60);
}

TEST_CASE("live settings: listeners run after each replace while subscribed") {
  LiveSettings live(with_interval(300));
  int calls = 0;
  int seen = 0;
  {
    const auto subscription = live.on_replace([&] {
      ++calls;
      seen = live.get()->update_interval;  // the new snapshot is in place
    });
    live.replace(LoadedConfig{with_interval(60)});
    CHECK(calls == 1);
    CHECK(seen == 60);
  }
  live.replace(LoadedConfig{with_interval(30)});
  CHECK(calls == 1);  // unsubscribed
}

TEST_CASE("reload: the endpoint pool takes new endpoints at its next decision and keeps health") {
  test::FakeClock clock;
  UpstreamMonitor monitor("accountdb", clock, HealthSettings{});
  const std::string a = "http://adb1:8080";
  const std::string b = "http://adb2:8080";
  PoolOptions options{.endpoints = {endpoint(a)}};
  EndpointPool pool(Live<PoolOptions>([&options] { return options; }), monitor, clock, {});
  monitor.observe(a, {FailureKind::network, 0ms, "connection refused"});
  REQUIRE(pool.order() == std::vector<std::string>{a});

  options.endpoints = {endpoint(a), endpoint(b)};  // SIGHUP with a second endpoint
  const auto order = pool.order();
  CHECK(order.size() == 2);
  const auto kept = monitor.target(a);
  REQUIRE(kept);
  CHECK(kept->health.consecutive_failures == 1);  // the endpoint that stays keeps its health
  REQUIRE(monitor.target(b));

  options.endpoints = {endpoint(b)};
  CHECK(pool.order() == std::vector<std::string>{b});
  CHECK_FALSE(monitor.target(a));
}

TEST_CASE("reload: a new PROXMOX_HOST is preferred at the host manager's next decision") {
  test::FakeClock clock;
  UpstreamMonitor monitor("proxmox", clock, HealthSettings{});
  std::vector<FailoverEvent> events;
  HostOptions options;
  options.primary = "https://127.0.0.1:8006";
  HostManager hosts(
      Live<HostOptions>([&options] { return options; }), monitor, clock, [] { return 0.5; },
      [&events](const FailoverEvent& e) { events.push_back(e); });
  REQUIRE(hosts.preferred() == "https://127.0.0.1:8006");

  options.primary = "https://127.0.0.2:8006";
  options.configured = {"https://10.0.0.3:8006"};
  CHECK(hosts.use_local());  // the decision reads the options: the new primary, no fault
  CHECK(hosts.preferred() == "https://127.0.0.2:8006");
  CHECK(hosts.hosts() ==
        std::vector<std::string>{"https://127.0.0.2:8006", "https://10.0.0.3:8006"});
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == FailoverKind::manual);
  CHECK(events[0].reason == "the configuration changed");

  hosts.evaluate();  // the same options again: nothing changes
  CHECK(events.size() == 1);
}

namespace {

// A configuration as the agent loads it, from `env` over the required settings.
LoadedConfig loaded(const StringMap& env, test::FakeSystemAccess& fs) {
  StringMap all = {{"ACCOUNTDB_URL", "https://adb.example:8080"},
                   {"ACCOUNTDB_API_KEY", "k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD"},
                   {"ACCOUNTDB_NODE_ID", "34"},
                   {"PROXMOX_TOKEN_ID", "agent@pve!sync"},
                   {"PROXMOX_TOKEN_SECRET", "11111111-2222-3333-4444-555555555555"},
                   {"STATE_DIR", "/var/lib/a"}};
  for (const auto& [k, v] : env) {
    all[k] = v;
  }
  LoadInput input;
  input.environment = all;
  auto outcome = load_settings(input, fs);
  const auto* errors = std::get_if<ConfigErrors>(&outcome);
  REQUIRE_MESSAGE(errors == nullptr, (errors != nullptr ? errors->errors.front() : ""));
  return std::get<LoadedConfig>(std::move(outcome));
}

test::FakeSystemAccess state_dirs() {
  test::FakeSystemAccess fs;
  fs.dirs = {"/var/lib/a", "/var/lib/b"};
  fs.writable_dirs = fs.dirs;
  return fs;
}

// A value other than the test's base one for each start-only setting. A
// start-only setting that is not here fails the test below: say what a
// reload of it must keep.
const std::map<std::string, std::string> kOtherStartOnlyValue = {
    {"ACCOUNTDB_NODE_ID", "35"},
    {"BIND_ADDRESS", "127.0.0.2"},
    {"PORT", "8001"},
    {"WEBHOOK_URLS", "https://hooks.example/receiver/other-path"},
    {"WEBHOOK_TOKEN", "new-hook-token"},
    {"WEBHOOK_TIMEOUT", "9"},
    {"STATE_DIR", "/var/lib/b"},
};

std::string shown(const LoadedConfig& c, const std::string& name) {
  return print_config_json(c)["settings"][name]["value"].dump();
}

}  // namespace

TEST_CASE(
    "start-only settings: each has its field - a reload keeps its running value and names it") {
  auto fs = state_dirs();
  const auto running = loaded({{"WEBHOOK_URLS", "https://hooks.example/receiver/path"},
                               {"WEBHOOK_TOKEN", "hook-token"},
                               {"BIND_ADDRESS", "127.0.0.1"}},
                              fs);
  for (const auto& spec : settings_table()) {
    const std::string name(spec.env);
    if (!spec.start_only) {
      continue;
    }
    CAPTURE(name);
    const bool has_field = spec.field.same != nullptr && spec.field.copy != nullptr;
    REQUIRE_MESSAGE(has_field, "a start-only setting needs its field");
    REQUIRE_MESSAGE(kOtherStartOnlyValue.contains(name), "no reload test value for ", name);
    StringMap env = {{"WEBHOOK_URLS", "https://hooks.example/receiver/path"},
                     {"WEBHOOK_TOKEN", "hook-token"},
                     {"BIND_ADDRESS", "127.0.0.1"},
                     {"UPDATE_INTERVAL", "60"}};
    env[name] = kOtherStartOnlyValue.at(name);
    auto next = loaded(env, fs);
    REQUIRE_FALSE(spec.field.same(running.settings, next.settings));

    const auto settled = keep_start_only(running, next);
    CHECK(settled.restart_needed == std::vector<std::string>{name});
    CHECK(spec.field.same(settled.config.settings, running.settings));  // the running value
    CHECK(shown(settled.config, name) == shown(running, name));         // and what /config shows
    CHECK(settled.config.settings.update_interval == 60);  // the rest is the new configuration
  }
}

TEST_CASE("start-only settings: a webhook URL's path is a change though /config shows the origin") {
  auto fs = state_dirs();
  const auto running = loaded({{"WEBHOOK_URLS", "https://hooks.example/a-secret"}}, fs);
  const auto next = loaded({{"WEBHOOK_URLS", "https://hooks.example/another-secret"}}, fs);
  REQUIRE(shown(running, "WEBHOOK_URLS") == shown(next, "WEBHOOK_URLS"));
  const auto settled = keep_start_only(running, next);
  CHECK(settled.restart_needed == std::vector<std::string>{"WEBHOOK_URLS"});
  CHECK(settled.config.settings.webhook_urls == running.settings.webhook_urls);
}

TEST_CASE("start-only settings: an unchanged one and every other setting apply as loaded") {
  auto fs = state_dirs();
  const auto running = loaded({{"PORT", "8001"}}, fs);
  const auto next = loaded({{"PORT", "8001"}, {"PROXMOX_VERIFY_SSL", "false"}}, fs);
  const auto settled = keep_start_only(running, next);
  CHECK(settled.restart_needed.empty());
  CHECK_FALSE(settled.config.settings.proxmox_verify_ssl);
  CHECK(settled.config.settings.port == 8001);
}

TEST_CASE("HTTPS certificate and key: new paths apply - switching HTTPS on or off waits") {
  auto fs = state_dirs();
  for (const auto* f : {"/etc/a.pem", "/etc/b.pem"}) {
    fs.files[f] = "cert";
    fs.certificates[f] = 1;
  }
  for (const auto* f : {"/etc/a.key", "/etc/b.key"}) {
    fs.files[f] = "key";
    fs.private_keys.insert(f);
  }
  const auto https = loaded({{"TLS_CERT_FILE", "/etc/a.pem"}, {"TLS_KEY_FILE", "/etc/a.key"}}, fs);
  const auto moved = loaded({{"TLS_CERT_FILE", "/etc/b.pem"}, {"TLS_KEY_FILE", "/etc/b.key"}}, fs);
  const auto plain = loaded({}, fs);

  const auto renewed = keep_start_only(https, moved);
  CHECK(renewed.restart_needed.empty());
  CHECK(renewed.config.settings.tls_cert_file == "/etc/b.pem");

  const auto off = keep_start_only(https, plain);
  CHECK(off.restart_needed == std::vector<std::string>{"TLS_CERT_FILE", "TLS_KEY_FILE"});
  CHECK(off.config.settings.tls_cert_file == "/etc/a.pem");
  CHECK(off.config.settings.tls_key_file == "/etc/a.key");

  const auto on = keep_start_only(plain, https);
  CHECK(on.restart_needed == std::vector<std::string>{"TLS_CERT_FILE", "TLS_KEY_FILE"});
  CHECK(on.config.settings.tls_cert_file.empty());
}

namespace {

// Holds a request inside a transport until the test lets it go.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool closed = false;
  int inside = 0;
  bool wait_inside(int n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 10s, [&] { return inside >= n; });
  }
  void open() {
    {
      std::lock_guard lock(mutex);
      closed = false;
    }
    cv.notify_all();
  }
};

// A transport that says which snapshot built it (its UPDATE_INTERVAL).
struct BuiltTransport final : HttpClient {
  int built_from = 0;
  Gate* gate = nullptr;
  std::atomic<bool> cancelled{false};
  HttpOutcome send(const HttpRequest&) override {
    if (gate != nullptr) {
      std::unique_lock lock(gate->mutex);
      ++gate->inside;
      gate->cv.notify_all();
      gate->cv.wait_for(lock, 10s, [this] { return !gate->closed; });
    }
    HttpOutcome o;
    o.kind = FailureKind::ok;
    o.status = 200;
    o.body = std::to_string(built_from);
    return o;
  }
  void cancel() override { cancelled = true; }
};

}  // namespace

TEST_CASE(
    "settings transport: rebuilt from the new snapshot after a reload - in flight keeps its own") {
  LiveSettings live(with_interval(300));
  Gate gate;
  std::vector<BuiltTransport*> built;  // owned by the transport while it lives
  SettingsTransport transport(live, [&](const Settings& s) {
    auto t = std::make_unique<BuiltTransport>();
    t->built_from = s.update_interval;
    t->gate = s.update_interval == 300 ? &gate : nullptr;  // the first snapshot's may hold
    built.push_back(t.get());
    return t;
  });
  CHECK(transport.builds() == 1);
  CHECK(transport.send({}).body == "300");
  CHECK(transport.send({}).body == "300");
  CHECK(transport.builds() == 1);  // the same snapshot: the same transport and its connections

  // A request in flight when the reload comes finishes on the transport it began on.
  gate.closed = true;
  std::string in_flight;
  std::thread sender([&] { in_flight = transport.send({}).body; });
  REQUIRE(gate.wait_inside(3));
  live.replace(LoadedConfig{with_interval(60)});
  CHECK(transport.send({}).body == "60");  // meanwhile a new request: the new transport
  gate.open();
  sender.join();
  CHECK(in_flight == "300");
  CHECK(transport.builds() == 2);

  live.replace(LoadedConfig{with_interval(60)});  // every reload is a new snapshot: new connections
  CHECK(transport.send({}).body == "60");
  CHECK(transport.builds() == 3);

  transport.cancel();
  CHECK(built.back()->cancelled);
  live.replace(LoadedConfig{with_interval(30)});
  CHECK(transport.send({}).body == "30");
  CHECK(built.back()->cancelled);  // built after the stop: cancelled at once
}
