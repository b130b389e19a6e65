#include "tests/sim/pve_render.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <utility>

namespace pha::sim {

namespace {

using nlohmann::json;

constexpr long long kMiB = 1LL << 20;
constexpr long long kGiB = 1LL << 30;

// Integral numbers as JSON integers ("cpus": 2), others as decimals (1.5).
json number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) {
    return static_cast<long long>(v);
  }
  return v;
}

std::uint32_t fnv1a(const std::string& s) {
  std::uint32_t h = 2166136261U;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619U;
  }
  return h;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

std::string uuid_for(const std::string& seed) {
  const auto a = hex32(fnv1a(seed + "a"));
  const auto b = hex32(fnv1a(seed + "b"));
  const auto c = hex32(fnv1a(seed + "c"));
  const auto d = hex32(fnv1a(seed + "d"));
  return a + "-" + b.substr(0, 4) + "-4" + b.substr(5, 3) + "-a" + c.substr(1, 3) + "-" +
         c.substr(4, 4) + d;
}

long long uptime_of(const Guest& g, long long now) {
  return g.status == GuestStatus::stopped ? 0 : std::max(0LL, now - g.started_at);
}

struct Counters {
  long long netin = 0;
  long long netout = 0;
  long long diskread = 0;
  long long diskwrite = 0;
};

// Counters grow with the uptime, like the kernel's.
Counters counters_of(const Guest& g, long long now) {
  const auto up = uptime_of(g, now);
  Counters c;
  c.netin = g.net_rate * up;
  c.netout = c.netin / 3;
  c.diskread = g.disk_rate * up;
  c.diskwrite = c.diskread / 2;
  return c;
}

void add_optional_fields(json& j, const Guest& g) {
  if (!g.tags.empty()) {
    j["tags"] = g.tags;
  }
  if (!g.lock.empty()) {
    j["lock"] = g.lock;
  }
}

std::string size_text(long long bytes) {
  if (bytes % kGiB == 0) {
    return std::to_string(bytes / kGiB) + "G";
  }
  return std::to_string(bytes / kMiB) + "M";
}

std::string lower(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// The IPv6 link-local address derived from a MAC (EUI-64).
std::string link_local(const std::string& mac) {
  unsigned b[6] = {};
  if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) !=
      6) {
    return "fe80::1";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "fe80::%x:%xff:fe%x:%x", ((b[0] ^ 2U) << 8) | b[1], b[2], b[3],
                (b[4] << 8) | b[5]);
  return buf;
}

long long node_mem(const Node& n, const std::vector<Guest>& guests) {
  long long used = 2 * kGiB;
  for (const auto& g : guests) {
    if (g.node == n.name && g.status != GuestStatus::stopped) {
      used += g.mem;
    }
  }
  return std::min(used, n.maxmem - kGiB);
}

// The six pressure stall averages of a running guest on PVE 9, over the last
// 10 seconds, as the kernel prints them ("0.00"): a little CPU pressure,
// the rest idle. Text for a container, numbers for a VM (see the header).
void add_pressure(json& j, const Guest& g) {
  const double cpu_some = static_cast<double>((g.vmid * 37) % 100) / 100.0;
  const auto value = [&](double v) -> json {
    if (g.type == GuestType::qemu) {
      return number(v);
    }
    char text[16];
    std::snprintf(text, sizeof text, "%.2f", v);
    return std::string(text);
  };
  j["pressurecpusome"] = value(cpu_some);
  j["pressurecpufull"] = value(0);
  j["pressureiosome"] = value(g.disk_rate > 250000 ? 0.12 : 0);
  j["pressureiofull"] = value(0);
  j["pressurememorysome"] = value(0);
  j["pressurememoryfull"] = value(0);
}

double node_cpu(const Node& n, const std::vector<Guest>& guests) {
  double used = 0.002;
  for (const auto& g : guests) {
    if (g.node == n.name && g.status == GuestStatus::running) {
      used += g.cpu * g.cpus;
    }
  }
  return std::min(1.0, used / n.maxcpu);
}

}  // namespace

Typing Typing::for_version(const std::string& version) {
  const auto v = PveVersion::parse(version);
  Typing t;
  t.qemu_legacy = !v.at_least(7, 0);
  t.lxc_vmid_string = !v.at_least(8, 2);
  t.pressure = v.at_least(9, 0);
  t.lxc_ip_addresses = v.at_least(8, 4);
  return t;
}

std::string display_name(const Guest& g) {
  const auto vmid = std::to_string(g.vmid);
  if (g.type == GuestType::qemu) {
    return g.name && !g.name->empty() ? *g.name : "VM " + vmid;
  }
  std::string name = g.name && !g.name->empty() ? *g.name : "CT" + vmid;
  std::erase_if(name, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
  return name;
}

std::string repo_id(const std::string& version) {
  return hex32(fnv1a("pve-manager " + version));
}

json version_data(const std::string& version) {
  const auto v = PveVersion::parse(version);
  return {{"release", std::to_string(v.major) + "." + std::to_string(v.minor)},
          {"repoid", repo_id(version)},
          {"version", version}};
}

json cluster_status_data(const std::string& cluster_name, const std::vector<Node>& nodes,
                         const std::string& local) {
  json out = json::array();
  const bool clustered = nodes.size() > 1;
  std::size_t online = 0;
  for (const auto& n : nodes) {
    online += n.online ? 1 : 0;
  }
  if (clustered) {
    out.push_back({{"type", "cluster"},
                   {"version", static_cast<long long>(nodes.size()) + 2},
                   {"quorate", online * 2 > nodes.size() ? 1 : 0},
                   {"name", cluster_name},
                   {"id", "cluster"},
                   {"nodes", nodes.size()}});
  }
  // Nodes in no particular order: the local one is not first.
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[(i + 1) % nodes.size()];
    out.push_back({{"name", n.name},
                   {"nodeid", clustered ? n.nodeid : 0},
                   {"id", "node/" + n.name},
                   {"online", n.online ? 1 : 0},
                   {"type", "node"},
                   {"ip", n.ip},
                   {"local", n.name == local ? 1 : 0},
                   {"level", ""}});
  }
  return out;
}

json nodes_data(const std::vector<Node>& nodes, const std::vector<Guest>& guests, long long now) {
  json out = json::array();
  for (const auto& n : nodes) {
    if (!n.online) {
      out.push_back({{"type", "node"},
                     {"node", n.name},
                     {"id", "node/" + n.name},
                     {"status", "offline"},
                     {"ssl_fingerprint", n.ssl_fingerprint}});
      continue;
    }
    out.push_back({{"cpu", node_cpu(n, guests)},
                   {"disk", n.maxdisk / 10},
                   {"id", "node/" + n.name},
                   {"level", ""},
                   {"maxcpu", n.maxcpu},
                   {"maxdisk", n.maxdisk},
                   {"maxmem", n.maxmem},
                   {"mem", node_mem(n, guests)},
                   {"node", n.name},
                   {"ssl_fingerprint", n.ssl_fingerprint},
                   {"status", "online"},
                   {"type", "node"},
                   {"uptime", std::max(0LL, now - n.booted_at)}});
  }
  return out;
}

json node_status_data(const Node& n, const std::vector<Guest>& guests, long long now) {
  const auto mem = node_mem(n, guests);
  return {{"cpu", node_cpu(n, guests)},
          {"cpuinfo",
           {{"cores", n.maxcpu / 2},
            {"cpus", n.maxcpu},
            {"flags", "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov"},
            {"hvm", "1"},
            {"mhz", "3400.000"},
            {"model", "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"},
            {"sockets", 1},
            {"user_hz", 100}}},
          {"idle", 0},
          {"ksm", {{"shared", 0}}},
          {"kversion", "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4"},
          {"loadavg", {"0.12", "0.08", "0.05"}},
          {"memory", {{"free", n.maxmem - mem}, {"total", n.maxmem}, {"used", mem}}},
          {"pveversion", "pve-manager/" + n.version + "/" + repo_id(n.version)},
          {"rootfs",
           {{"avail", n.maxdisk - n.maxdisk / 10},
            {"free", n.maxdisk - n.maxdisk / 10},
            {"total", n.maxdisk},
            {"used", n.maxdisk / 10}}},
          {"swap", {{"free", 0}, {"total", 0}, {"used", 0}}},
          {"uptime", std::max(0LL, now - n.booted_at)},
          {"wait", 0}};
}

json qemu_list_entry(const Guest& g, long long now, Typing typing) {
  const auto c = counters_of(g, now);
  json j = {{"cpu", g.status == GuestStatus::running ? number(g.cpu) : json(0)},
            {"cpus", number(g.cpus)},
            {"disk", g.disk},
            {"diskread", c.diskread},
            {"diskwrite", c.diskwrite},
            {"maxdisk", g.maxdisk},
            {"maxmem", g.maxmem},
            {"mem", g.mem},
            {"netin", c.netin},
            {"netout", c.netout},
            // The list shows a paused VM as running (its process runs); only the
            // monitor state (qmpstatus, /cluster/resources) says paused.
            {"status", g.status == GuestStatus::stopped ? "stopped" : "running"},
            {"uptime", uptime_of(g, now)}};
  if (typing.qemu_legacy) {
    j["vmid"] = std::to_string(g.vmid);
  } else {
    j["vmid"] = g.vmid;
  }
  j["name"] = display_name(g);
  if (g.pid != 0) {
    if (typing.pressure) {
      add_pressure(j, g);
    }
    if (typing.qemu_legacy) {
      j["pid"] = std::to_string(g.pid);
    } else {
      j["pid"] = g.pid;
    }
  }
  if (g.template_) {
    j["template"] = 1;
  } else if (typing.qemu_legacy) {
    j["template"] = "";
  }
  add_optional_fields(j, g);
  return j;
}

json lxc_list_entry(const Guest& g, long long now, Typing typing) {
  const auto c = counters_of(g, now);
  json j = {{"cpu", g.status == GuestStatus::running ? number(g.cpu) : json(0)},
            {"cpus", number(g.cpus)},
            {"disk", g.disk},
            {"diskread", c.diskread},
            {"diskwrite", c.diskwrite},
            {"maxdisk", g.maxdisk},
            {"maxmem", g.maxmem},
            {"maxswap", g.maxswap},
            {"mem", g.mem},
            {"netin", c.netin},
            {"netout", c.netout},
            {"status", g.status == GuestStatus::stopped ? "stopped" : "running"},
            {"swap", 0},
            {"type", "lxc"},
            {"uptime", uptime_of(g, now)}};
  if (typing.lxc_vmid_string) {
    j["vmid"] = std::to_string(g.vmid);
  } else {
    j["vmid"] = g.vmid;
  }
  j["name"] = display_name(g);
  if (g.pid != 0) {
    j["pid"] = g.pid;
    if (typing.pressure) {
      add_pressure(j, g);
    }
  }
  if (g.template_) {
    j["template"] = 1;
  }
  add_optional_fields(j, g);
  return j;
}

json vm_resource(const Guest& g, long long now, bool unknown) {
  const auto type = to_string(g.type);
  const auto id = type + "/" + std::to_string(g.vmid);
  if (unknown) {
    return {{"id", id}, {"vmid", g.vmid}, {"node", g.node}, {"type", type}, {"status", "unknown"}};
  }
  const auto c = counters_of(g, now);
  // The status is the QEMU monitor state (paused shows as paused); a
  // container that is frozen still runs.
  std::string status = to_string(g.status);
  if (g.type == GuestType::lxc && g.status == GuestStatus::paused) {
    status = "running";
  }
  json j = {{"cpu", g.status == GuestStatus::running ? number(g.cpu) : json(0)},
            {"disk", g.disk},
            {"diskread", c.diskread},
            {"diskwrite", c.diskwrite},
            {"id", id},
            {"maxcpu", number(g.cpus)},
            {"maxdisk", g.maxdisk},
            {"maxmem", g.maxmem},
            {"mem", g.mem},
            {"netin", c.netin},
            {"netout", c.netout},
            {"node", g.node},
            {"status", status},
            {"template", g.template_ ? 1 : 0},
            {"type", type},
            {"uptime", uptime_of(g, now)},
            {"vmid", g.vmid}};
  j["name"] = display_name(g);
  if (!g.pool.empty()) {
    j["pool"] = g.pool;
  }
  add_optional_fields(j, g);
  return j;
}

json node_resource(const Node& n, const std::vector<Guest>& guests, long long now, bool audit) {
  if (!n.online) {
    return {{"id", "node/" + n.name}, {"node", n.name}, {"status", "offline"}, {"type", "node"}};
  }
  if (!audit) {
    return {{"cgroup-mode", 2}, {"id", "node/" + n.name}, {"level", ""},
            {"node", n.name},   {"status", "online"},     {"type", "node"}};
  }
  return {{"cgroup-mode", 2},
          {"cpu", node_cpu(n, guests)},
          {"disk", n.maxdisk / 10},
          {"id", "node/" + n.name},
          {"level", ""},
          {"maxcpu", n.maxcpu},
          {"maxdisk", n.maxdisk},
          {"maxmem", n.maxmem},
          {"mem", node_mem(n, guests)},
          {"node", n.name},
          {"status", "online"},
          {"type", "node"},
          {"uptime", std::max(0LL, now - n.booted_at)}};
}

std::vector<json> storage_resources(const Node& n) {
  std::vector<json> out;
  const auto entry = [&](const std::string& storage, const std::string& plugin,
                         const std::string& content, long long maxdisk) {
    json j = {{"id", "storage/" + n.name + "/" + storage},
              {"node", n.name},
              {"storage", storage},
              {"type", "storage"},
              {"plugintype", plugin},
              {"content", content},
              {"shared", 0},
              {"status", n.online ? "available" : "unknown"}};
    if (n.online) {
      j["disk"] = maxdisk / 5;
      j["maxdisk"] = maxdisk;
    }
    out.push_back(std::move(j));
  };
  entry("local", "dir", "iso,vztmpl,backup", n.maxdisk);
  entry("local-lvm", "lvmthin", "rootdir,images", n.maxdisk * 4);
  return out;
}

json sdn_resource(const Node& n) {
  return {{"id", "sdn/" + n.name + "/localnetwork"},
          {"node", n.name},
          {"sdn", "localnetwork"},
          {"status", n.online ? "ok" : "unknown"},
          {"type", "sdn"}};
}

json guest_config(const Guest& g, Typing typing) {
  const auto vmid = std::to_string(g.vmid);
  const auto digest = hex32(fnv1a(vmid + g.node)) + hex32(fnv1a(vmid + "cfg")) +
                      hex32(fnv1a(vmid + g.mac)) + hex32(fnv1a(vmid + g.ipv4)) +
                      hex32(fnv1a(vmid + g.lock));
  json j;
  j["digest"] = digest;
  if (g.type == GuestType::qemu) {
    j["boot"] = "order=scsi0;ide2;net0";
    j["cores"] = static_cast<long long>(std::ceil(g.cpus));
    j["sockets"] = 1;
    j["cpu"] = "x86-64-v2-AES";
    // Since PVE 8.1 the memory option is a property string.
    if (typing.qemu_legacy) {
      j["memory"] = g.maxmem / kMiB;
    } else {
      j["memory"] = std::to_string(g.maxmem / kMiB);
    }
    j["meta"] = "creation-qemu=8.1.5,ctime=" + std::to_string(1700000000 + g.vmid);
    // "VM 100" is qemu-server's stand-in for a VM without a name, not config.
    if (g.name && !g.name->empty() && *g.name != "VM " + vmid) {
      j["name"] = *g.name;
    }
    j["net0"] = "virtio=" + g.mac + ",bridge=vmbr0,firewall=1";
    j["numa"] = 0;
    j["ostype"] = "l26";
    if (g.maxdisk > 0) {
      j["scsi0"] = "local-lvm:vm-" + vmid + "-disk-0,iothread=1,size=" + size_text(g.maxdisk);
    }
    j["ide2"] = "none,media=cdrom";
    j["scsihw"] = "virtio-scsi-single";
    j["smbios1"] = "uuid=" + uuid_for("smbios" + vmid);
    j["vmgenid"] = uuid_for("vmgenid" + vmid);
    if (g.agent_configured) {
      j["agent"] = "1";
    }
  } else {
    j["arch"] = "amd64";
    const double whole = std::ceil(g.cpus);
    j["cores"] = static_cast<long long>(whole);
    if (whole != g.cpus) {
      j["cpulimit"] = number(g.cpus);
    }
    if (g.name && !g.name->empty()) {
      j["hostname"] = *g.name;
    }
    j["memory"] = g.maxmem / kMiB;
    j["swap"] = g.maxswap / kMiB;
    j["net0"] = "name=eth0,bridge=vmbr0,hwaddr=" + g.mac +
                ",ip=" + (g.ipv4.empty() ? std::string("dhcp") : g.ipv4) + ",type=veth";
    j["ostype"] = "debian";
    j["rootfs"] = "local-lvm:vm-" + vmid + "-disk-0,size=" + size_text(g.maxdisk);
    j["unprivileged"] = 1;
  }
  if (g.description) {
    j["description"] = *g.description;
  }
  if (g.template_) {
    j["template"] = 1;
  }
  add_optional_fields(j, g);
  return j;
}

json status_current(const Guest& g, long long now, Typing typing) {
  const auto c = counters_of(g, now);
  const bool up = g.status != GuestStatus::stopped;
  json j = {{"cpu", g.status == GuestStatus::running ? number(g.cpu) : json(0)},
            {"cpus", number(g.cpus)},
            {"disk", g.disk},
            {"diskread", c.diskread},
            {"diskwrite", c.diskwrite},
            {"ha", {{"managed", 0}}},
            {"maxdisk", g.maxdisk},
            {"maxmem", g.maxmem},
            {"mem", g.mem},
            {"netin", c.netin},
            {"netout", c.netout},
            {"status", up ? "running" : "stopped"},
            {"uptime", uptime_of(g, now)},
            {"vmid", g.vmid}};
  j["name"] = display_name(g);
  if (g.pid != 0) {
    j["pid"] = g.pid;
    if (typing.pressure) {
      add_pressure(j, g);
    }
  }
  if (g.template_) {
    j["template"] = 1;
  }
  add_optional_fields(j, g);
  if (g.type == GuestType::qemu) {
    j["qmpstatus"] = to_string(g.status);
    if (g.agent_configured) {
      j["agent"] = 1;
    }
    if (up) {
      j["running-machine"] = "pc-i440fx-8.1+pve0";
      j["running-qemu"] = "8.1.5";
      j["balloon"] = g.maxmem;
      j["freemem"] = g.maxmem - g.mem;
      j["nics"] = {
          {"tap" + std::to_string(g.vmid) + "i0", {{"netin", c.netin}, {"netout", c.netout}}}};
    }
  } else {
    j["type"] = "lxc";
    j["maxswap"] = g.maxswap;
    j["swap"] = 0;
  }
  return j;
}

json agent_network_interfaces(const Guest& g) {
  const auto stats = [](long long rx, long long tx) {
    return json{{"rx-bytes", rx}, {"rx-dropped", 0}, {"rx-errs", 0}, {"rx-packets", rx / 900},
                {"tx-bytes", tx}, {"tx-dropped", 0}, {"tx-errs", 0}, {"tx-packets", tx / 900}};
  };
  json lo = {{"name", "lo"},
             {"hardware-address", "00:00:00:00:00:00"},
             {"ip-addresses",
              {{{"ip-address", "127.0.0.1"}, {"ip-address-type", "ipv4"}, {"prefix", 8}},
               {{"ip-address", "::1"}, {"ip-address-type", "ipv6"}, {"prefix", 128}}}},
             {"statistics", stats(18000, 18000)}};
  json addresses = json::array();
  if (!g.ipv4.empty()) {
    const auto slash = g.ipv4.find('/');
    addresses.push_back(
        {{"ip-address", g.ipv4.substr(0, slash)},
         {"ip-address-type", "ipv4"},
         {"prefix", slash == std::string::npos ? 32 : std::stoi(g.ipv4.substr(slash + 1))}});
  }
  addresses.push_back(
      {{"ip-address", link_local(g.mac)}, {"ip-address-type", "ipv6"}, {"prefix", 64}});
  json eth0 = {{"name", "eth0"},
               {"hardware-address", lower(g.mac)},
               {"ip-addresses", addresses},
               {"statistics", stats(g.net_rate * 1000, g.net_rate * 300)}};
  return {{"result", {lo, eth0}}};
}

json lxc_interfaces(const Guest& g, Typing typing) {
  // One interface as get_interfaces builds it from `ip --json a`: the legacy
  // inet/inet6 keep the last address of their family.
  const auto interface = [&](const std::string& name, const std::string& mac,
                             const std::vector<std::pair<std::string, std::string>>& addresses) {
    json j = {{"name", name}, {"hwaddr", mac}};
    json list = json::array();
    for (const auto& [family, cidr] : addresses) {
      j[family] = cidr;
      const auto slash = cidr.find('/');
      list.push_back({{"ip-address-type", family},
                      {"ip-address", cidr.substr(0, slash)},
                      {"prefix", std::stoi(cidr.substr(slash + 1))}});
    }
    if (typing.lxc_ip_addresses) {
      j["ip-addresses"] = list;
      j["hardware-address"] = mac;
    }
    return j;
  };
  std::vector<std::pair<std::string, std::string>> eth0;
  if (!g.ipv4.empty()) {
    eth0.emplace_back("inet", g.ipv4.find('/') == std::string::npos ? g.ipv4 + "/32" : g.ipv4);
  }
  eth0.emplace_back("inet6", link_local(g.mac) + "/64");
  return json::array(
      {interface("lo", "00:00:00:00:00:00", {{"inet", "127.0.0.1/8"}, {"inet6", "::1/128"}}),
       interface("eth0", lower(g.mac), eth0)});
}

json ticket_data(const std::string& userid, const std::string& ticket, const std::string& csrf,
                 const std::string& cluster_name, bool clustered) {
  json cap = {
      {"access", {{"Group.Allocate", 1}, {"Permissions.Modify", 1}, {"User.Modify", 1}}},
      {"dc", {{"SDN.Allocate", 1}, {"SDN.Audit", 1}, {"SDN.Use", 1}, {"Sys.Audit", 1}}},
      {"nodes",
       {{"Permissions.Modify", 1},
        {"Sys.Audit", 1},
        {"Sys.Console", 1},
        {"Sys.Incoming", 1},
        {"Sys.Modify", 1},
        {"Sys.PowerMgmt", 1},
        {"Sys.Syslog", 1}}},
      {"sdn", {{"Permissions.Modify", 1}, {"SDN.Allocate", 1}, {"SDN.Audit", 1}, {"SDN.Use", 1}}},
      {"storage",
       {{"Datastore.Allocate", 1},
        {"Datastore.AllocateSpace", 1},
        {"Datastore.AllocateTemplate", 1},
        {"Datastore.Audit", 1},
        {"Permissions.Modify", 1}}},
      {"vms",
       {{"Permissions.Modify", 1},
        {"VM.Allocate", 1},
        {"VM.Audit", 1},
        {"VM.Backup", 1},
        {"VM.Clone", 1},
        {"VM.Config.CDROM", 1},
        {"VM.Config.CPU", 1},
        {"VM.Config.Cloudinit", 1},
        {"VM.Config.Disk", 1},
        {"VM.Config.HWType", 1},
        {"VM.Config.Memory", 1},
        {"VM.Config.Network", 1},
        {"VM.Config.Options", 1},
        {"VM.Console", 1},
        {"VM.Migrate", 1},
        {"VM.Monitor", 1},
        {"VM.PowerMgmt", 1},
        {"VM.Snapshot", 1},
        {"VM.Snapshot.Rollback", 1}}}};
  json j = {{"username", userid}, {"CSRFPreventionToken", csrf}, {"cap", cap}, {"ticket", ticket}};
  if (clustered) {
    j["clustername"] = cluster_name;
  }
  return j;
}

}  // namespace pha::sim
