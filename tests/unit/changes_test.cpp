// Change-driven sync (agent/sync/changes.hpp) on a fake clock: the settle
// delay, the minimum interval between cycles, what a failed cycle leaves
// pending, and which tasks of /cluster/tasks are changes of this node.

#include "agent/sync/changes.hpp"

#include <doctest/doctest.h>

#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

const ChangeTimings kTimings{.poll = 2s, .settle = 1s, .min_interval = 5s, .status_poll = 10s};

ProxmoxTask task(const std::string& upid, const std::string& node, const std::string& type,
                 const std::string& id, std::optional<std::int64_t> end = 1000) {
  ProxmoxTask t;
  t.upid = upid;
  t.node = node;
  t.type = type;
  t.id = id;
  t.user = "root@pam";
  t.starttime = 990;
  t.endtime = end;
  t.status = end ? "OK" : "";
  return t;
}

}  // namespace

TEST_CASE("changes: nothing seen - nothing due") {
  ChangeSchedule s;
  CHECK_FALSE(s.due(kTimings).has_value());
}

TEST_CASE("changes: a change is due after the settle delay") {
  test::FakeClock clock;
  ChangeSchedule s;
  const auto t0 = clock.now();
  s.seen(t0);
  REQUIRE(s.due(kTimings).has_value());
  CHECK(*s.due(kTimings) == t0 + 1s);
  // Changes seen meanwhile join it: the first one sets the time.
  s.seen(t0 + 500ms);
  CHECK(*s.due(kTimings) == t0 + 1s);
}

TEST_CASE("changes: the minimum interval holds the next cycle after the last one began") {
  test::FakeClock clock;
  ChangeSchedule s;
  const auto t0 = clock.now();
  s.cycle_started(t0);
  s.cycle_ended(true);
  s.seen(t0 + 1s);
  CHECK(*s.due(kTimings) == t0 + 5s);  // not t0 + 2 s
  s.cycle_started(t0 + 5s);
  s.cycle_ended(true);
  CHECK_FALSE(s.due(kTimings).has_value());
}

TEST_CASE("changes: a burst of 200 changes is a few cycles") {
  test::FakeClock clock;
  ChangeSchedule s;
  const auto t0 = clock.now();
  int cycles = 0;
  // One change every 100 ms for 20 s; a cycle takes 300 ms.
  for (int i = 0; i < 200; ++i) {
    const auto now = t0 + i * 100ms;
    s.seen(now);
    if (const auto due = s.due(kTimings); due && now >= *due) {
      s.cycle_started(now);
      s.cycle_ended(true);
      ++cycles;
    }
  }
  CHECK(cycles >= 3);
  CHECK(cycles <= 5);
}

TEST_CASE("changes: a change seen during a cycle waits for the next one") {
  test::FakeClock clock;
  ChangeSchedule s;
  const auto t0 = clock.now();
  s.seen(t0);
  s.cycle_started(t0 + 1s);
  s.seen(t0 + 1500ms);  // after the cycle read Proxmox
  s.cycle_ended(true);
  REQUIRE(s.due(kTimings).has_value());
  CHECK(*s.due(kTimings) == t0 + 6s);
}

TEST_CASE("changes: a failed cycle leaves the change pending - failures in a row back off") {
  test::FakeClock clock;
  ChangeSchedule s;
  const auto t0 = clock.now();
  s.seen(t0);
  s.cycle_started(t0 + 1s);
  s.cycle_ended(false);
  REQUIRE(s.pending_since().has_value());
  CHECK(*s.due(kTimings) == t0 + 11s);  // 1 s + 2 x 5 s
  s.cycle_started(t0 + 11s);
  s.cycle_ended(false);
  CHECK(*s.due(kTimings) == t0 + 31s);  // 11 s + 4 x 5 s
  for (int i = 0; i < 10; ++i) {
    s.cycle_started(t0 + 31s);
    s.cycle_ended(false);
  }
  CHECK(*s.due(kTimings) == t0 + 31s + 64 * 5s);  // at most 64 times
  s.cycle_started(t0 + 400s);
  s.cycle_ended(true);
  CHECK_FALSE(s.due(kTimings).has_value());
  s.seen(t0 + 401s);
  CHECK(*s.due(kTimings) == t0 + 405s);  // a success ends the backoff
}

TEST_CASE("changes: guest tasks that ended on this node are changes - once each") {
  std::set<std::string> seen;
  const std::vector<ProxmoxTask> tasks = {
      task("U1", "pve1", "qmstart", "104"),
      task("U2", "pve1", "vzdump", "104"),           // a backup: no change of the guest
      task("U3", "pve2", "qmstart", "205"),          // another node's guest
      task("U4", "pve2", "qmigrate", "206"),         // may have come here
      task("U5", "pve1", "qmshutdown", "105", {}),   // still running: its end is the change
      task("U6", "pve1", "hastart", "107"),          // an HA request: the real task follows
      task("U7", "pve3", "vzclone", "300"),          // the clone may be here
      task("U8", "pve1", "vzdestroy", "108", 500)};  // ended before the agent started
  const auto changes = guest_changes(tasks, "pve1", seen, 900);
  std::vector<std::string> upids;
  for (const auto& t : changes) {
    upids.push_back(t.upid);
  }
  CHECK(upids == std::vector<std::string>{"U1", "U4", "U7"});
  CHECK(guest_changes(tasks, "pve1", seen, 900).empty());  // seen already
  auto ended = tasks;
  ended[4].endtime = 1001;
  ended[4].status = "OK";
  const auto later = guest_changes(ended, "pve1", seen, 900);
  REQUIRE(later.size() == 1);
  CHECK(later[0].upid == "U5");
}

TEST_CASE("changes: a status - name or node in the cluster's view is a change of this node") {
  GuestList list;
  Guest a;
  a.vmid = 104;
  a.node = "pve1";
  a.status = "running";
  a.name = "web";
  Guest b = a;
  b.vmid = 205;
  b.node = "pve2";
  list.guests = {a, b};
  const auto before = guest_states(list, "pve1");
  CHECK(before.size() == 1);
  list.guests[1].status = "stopped";  // another node's guest
  CHECK(guest_states(list, "pve1") == before);
  list.guests[0].name = "web-2";
  CHECK(guest_states(list, "pve1") != before);
  list.guests[0].name = "web";
  list.guests[1].node = "pve1";  // migrated here
  CHECK(guest_states(list, "pve1") != before);
}
