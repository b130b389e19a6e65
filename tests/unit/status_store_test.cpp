// The status store (docs/http-api.md "GET /status"): the history appended only on a
// change and bounded, the overall state as the worst component, and what a
// cycle leaves behind.

#include <doctest/doctest.h>

#include "agent/core/metrics.hpp"
#include "agent/platform/process_stats.hpp"
#include "agent/status/store.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

CycleReport cycle(bool success, std::string message = "", std::int64_t errors = 0) {
  CycleReport r;
  r.success = success;
  r.status = !success ? Severity::error : errors > 0 ? Severity::warning : Severity::ok;
  r.message = std::move(message);
  r.stats.errors = errors;
  r.stats.duration_ms = 40;
  r.finished_at = 1000;
  return r;
}

}  // namespace

TEST_CASE("status store: no entry before anything happened") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  CHECK_FALSE(store.current().has_value());
  CHECK(store.history().empty());
  CHECK(store.vms() == nullptr);
}

TEST_CASE("status store: steady cycles add one entry however their counts change") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  for (int i = 0; i < 20; ++i) {
    auto r = cycle(true, "synced: " + std::to_string(i) + " created");
    r.stats.created = i;
    store.record_cycle(r);
    clock.advance(60s);
  }
  const auto h = store.history();
  REQUIRE(h.size() == 1);
  CHECK(h[0].status == Severity::ok);
  CHECK(h[0].message == "in sync");
  CHECK(store.sync().cycle_count == 20);
  CHECK(store.sync().totals.created == 190);
}

TEST_CASE("status store: changes are appended and the history is bounded oldest first") {
  test::FakeClock clock;
  std::size_t size = 3;  // STATUS_HISTORY_SIZE, which a reload may change
  StatusStore store(clock, Live<std::size_t>([&size] { return size; }));
  store.record_cycle(cycle(true));
  clock.advance(1s);
  store.record_cycle(cycle(false, "AccountDB: connection refused"));
  clock.advance(1s);
  store.record_cycle(cycle(false, "AccountDB: connection refused"));  // same: no entry
  clock.advance(1s);
  store.record_cycle(cycle(true, "", 2));
  clock.advance(1s);
  store.record_cycle(cycle(true));
  const auto h = store.history();
  REQUIRE(h.size() == 3);
  CHECK(h[0].message == "sync failed: AccountDB: connection refused");
  CHECK(h[1].status == Severity::warning);
  CHECK(h[2].status == Severity::ok);
  CHECK(h[0].timestamp < h[1].timestamp);
  CHECK(store.current() == h[2]);
  CHECK(store.sync().consecutive_failures == 0);
  size = 1;  // a reload shrinks it: the newest entry stays
  REQUIRE(store.history().size() == 1);
  CHECK(store.history()[0] == h[2]);
}

TEST_CASE("status store: the overall state is the worst component and the sync wins ties") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  store.record_cycle(cycle(true));
  store.set_state(StatusComponent::proxmox, Severity::error,
                  "Proxmox host https://pve1:8006 is unhealthy");
  CHECK(store.current()->message == "Proxmox host https://pve1:8006 is unhealthy");
  store.record_cycle(cycle(false, "Proxmox: timeout"));
  CHECK(store.current()->message == "sync failed: Proxmox: timeout");
  store.set_state(StatusComponent::proxmox, Severity::ok,
                  "Proxmox host https://pve1:8006 is healthy");
  store.record_cycle(cycle(true));
  CHECK(store.current()->message == "in sync");
  CHECK(store.history().size() == 4);
}

TEST_CASE("status store: starting ranks above ok and below a warning and parts can be cleared") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  store.set_state(StatusComponent::startup, Severity::starting, "waiting for the first sync cycle");
  CHECK(store.current()->status == Severity::starting);
  store.record_cycle(cycle(true));
  CHECK(store.current()->status == Severity::starting);
  store.set_state(StatusComponent::redundancy, Severity::warning,
                  "Proxmox redundancy degraded: 1 of 3 healthy");
  CHECK(store.current()->status == Severity::warning);
  store.clear_state(StatusComponent::startup);
  store.clear_state(StatusComponent::redundancy);
  CHECK(store.current()->status == Severity::ok);
  CHECK(store.current()->message == "in sync");
  store.clear_state(StatusComponent::redundancy);  // not set: no new entry
  CHECK(store.history().size() == 3);
  CHECK(nlohmann::json(Severity::starting) == "starting");
}

TEST_CASE("status store: a cycle without a Proxmox read keeps the last guests") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  auto r = cycle(true);
  r.proxmox_read = true;
  r.proxmox_read_at = 900;
  r.node = "pve1";
  Guest g;
  g.vmid = 101;
  r.guests = {g};
  store.record_cycle(r);
  store.record_cycle(cycle(false, "AccountDB: down"));
  const auto v = store.vms();
  REQUIRE(v != nullptr);
  CHECK(v->guests.size() == 1);
  CHECK(v->as_of == 900);
  CHECK(v->node == "pve1");
  CHECK(store.sync().last_sync_time == 1000);
  CHECK(store.sync().consecutive_failures == 1);
}

TEST_CASE("status store: dry runs count no writes") {
  test::FakeClock clock;
  StatusStore store(clock, 10);
  auto r = cycle(true);
  r.dry_run = true;
  r.stats.created = 5;
  store.record_cycle(r);
  CHECK(store.sync().totals.created == 0);
  CHECK(store.current()->message == "in sync (dry run: nothing is written)");
}

TEST_CASE("metrics: families have HELP and TYPE and label values are escaped") {
  MetricsWriter m;
  m.family("upstream_requests_total", "counter", "Requests.");
  m.sample("upstream_requests_total", {{"target", "a\"b\\c\nd"}, {"kind", "ok"}}, 3);
  m.family("ratio", "gauge", "A ratio.");
  m.sample("ratio", 0.25);
  CHECK(m.text() ==
        "# HELP proxmox_host_agent_upstream_requests_total Requests.\n"
        "# TYPE proxmox_host_agent_upstream_requests_total counter\n"
        "proxmox_host_agent_upstream_requests_total{target=\"a\\\"b\\\\c\\nd\",kind=\"ok\"} 3\n"
        "# HELP proxmox_host_agent_ratio A ratio.\n"
        "# TYPE proxmox_host_agent_ratio gauge\n"
        "proxmox_host_agent_ratio 0.25\n");
}

TEST_CASE("metrics: a writer without a prefix writes the names as given") {
  MetricsWriter m("");
  m.family("process_open_fds", "gauge", "Open file descriptors.");
  m.sample("process_open_fds", 7);
  CHECK(m.text() ==
        "# HELP process_open_fds Open file descriptors.\n"
        "# TYPE process_open_fds gauge\n"
        "process_open_fds 7\n");
}

TEST_CASE("metrics: a histogram has cumulative buckets with +Inf and a sum and count") {
  Histogram h({0.5, 1});
  h.observe(0.25);
  h.observe(0.5);  // on a bound: that bucket (le is inclusive)
  h.observe(0.75);
  h.observe(7);
  MetricsWriter m;
  m.histogram("d_seconds", {{"upstream", "proxmox"}}, h.data());
  CHECK(m.text() ==
        "proxmox_host_agent_d_seconds_bucket{upstream=\"proxmox\",le=\"0.5\"} 2\n"
        "proxmox_host_agent_d_seconds_bucket{upstream=\"proxmox\",le=\"1\"} 3\n"
        "proxmox_host_agent_d_seconds_bucket{upstream=\"proxmox\",le=\"+Inf\"} 4\n"
        "proxmox_host_agent_d_seconds_sum{upstream=\"proxmox\"} 8.5\n"
        "proxmox_host_agent_d_seconds_count{upstream=\"proxmox\"} 4\n");
}

TEST_CASE("metrics: the process figures are read from proc") {
  const auto p = read_process_stats();
  REQUIRE(p.rss_bytes.has_value());
  CHECK(*p.rss_bytes > 1024 * 1024);
  REQUIRE(p.virtual_bytes.has_value());
  CHECK(*p.virtual_bytes >= *p.rss_bytes);
  REQUIRE(p.open_fds.has_value());
  CHECK(*p.open_fds >= 3);
  REQUIRE(p.cpu_seconds.has_value());
  CHECK(*p.cpu_seconds >= 0.0);
}
