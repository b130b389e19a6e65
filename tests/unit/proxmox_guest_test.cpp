// The mapping of docs/sync.md "Field mapping", field by field.

#include <doctest/doctest.h>

#include "agent/proxmox/guest.hpp"

using namespace pha;

namespace {

Guest running_vm() {
  Guest g;
  g.type = GuestType::qemu;
  g.vmid = 101;
  g.node = "pve1";
  g.name = "web-101";
  g.status = "running";
  g.cpus = 2;
  g.cpu = 0.12345;
  g.maxmem = 2048LL * 1024 * 1024 + 5;
  g.maxdisk = 32LL * 1024 * 1024 * 1024 + 512LL * 1024 * 1024;  // 32.5 GiB
  g.uptime = 3600;
  return g;
}

}  // namespace

TEST_CASE("a running VM maps to AccountDB's fields") {
  const auto r = to_record(running_vm());
  CHECK(r.vmid == 101);
  CHECK(r.name == "web-101");
  CHECK(r.status == "running");
  CHECK(r.cpu_cores == 2);
  // cpu x 100 (not divided by the cores again) rounded to 0.1
  CHECK(r.cpu_usage_percent == doctest::Approx(12.3));
  CHECK(r.memory_mb == 2048);
  CHECK(r.disk_gb == 32);  // rounded down to an integer
  CHECK(r.uptime_seconds == 3600);
  CHECK(r.proxmox_node == "pve1");
  CHECK_FALSE(r.template_id.has_value());
  CHECK_FALSE(r.ip_address.has_value());
  CHECK_FALSE(r.notes.has_value());
}

TEST_CASE("a stopped guest has no CPU use and no uptime") {
  auto g = running_vm();
  g.status = "stopped";
  g.cpu = 0.5;
  g.uptime = 99;
  const auto r = to_record(g);
  CHECK(r.cpu_usage_percent == 0);
  CHECK(r.uptime_seconds == 0);
  CHECK(r.status == "stopped");
}

TEST_CASE("CPU use is clamped to 0..100 and fractional LXC cores round up") {
  auto g = running_vm();
  g.type = GuestType::lxc;
  g.cpu = 1.7;
  g.cpus = 1.5;
  auto r = to_record(g);
  CHECK(r.cpu_usage_percent == 100);
  CHECK(r.cpu_cores == 2);
  CHECK(r.type == "lxc");
  g.cpu = 0.00049;
  CHECK(to_record(g).cpu_usage_percent == 0);
  g.cpu = 0.0005;
  CHECK(to_record(g).cpu_usage_percent == doctest::Approx(0.1));
}

TEST_CASE("names: a fallback for unnamed guests and the 100-character limit") {
  auto g = running_vm();
  g.name = "";
  CHECK(to_record(g).name == "VM-101");
  g.name = std::string(150, 'x');
  CHECK(to_record(g).name.size() == 100);
  // Never cut inside a UTF-8 character: 99 ASCII bytes then a 2-byte character.
  g.name = std::string(99, 'a') + "\xC3\xA9" + "tail";
  CHECK(to_record(g).name == std::string(99, 'a'));
}

TEST_CASE("templates get template_id 1 and details pass through") {
  auto g = running_vm();
  g.is_template = true;
  g.ip_address = "10.0.0.11";
  g.notes = "hello";
  const auto r = to_record(g);
  CHECK(r.template_id == std::optional<std::int64_t>(1));
  CHECK(r.ip_address == std::optional<std::string>("10.0.0.11"));
  CHECK(r.notes == std::optional<std::string>("hello"));
}

TEST_CASE("the AccountDB JSON body has every field with its type - disk_gb an integer") {
  auto g = running_vm();
  const auto j = to_accountdb_json(to_record(g));
  CHECK(j["vmid"] == 101);
  CHECK(j["disk_gb"].is_number_integer());
  CHECK(j["memory_mb"].is_number_integer());
  CHECK(j["cpu_cores"].is_number_integer());
  CHECK(j["cpu_usage_percent"].is_number());
  CHECK(j["ip_address"].is_null());
  CHECK(j["template_id"].is_null());
  CHECK(j["notes"].is_null());
  CHECK(j["status"] == "running");
  CHECK(j["proxmox_node"] == "pve1");
  CHECK(j.size() == 12);
  CHECK_FALSE(j.contains("type"));
}
