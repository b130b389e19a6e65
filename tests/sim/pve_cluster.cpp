#include "tests/sim/pve_cluster.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

namespace pha::sim {

namespace {

// SplitMix64: a small deterministic generator, the same on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }
  long long range(long long lo, long long hi) {
    return lo + static_cast<long long>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(next() % v.size())];
  }

 private:
  std::uint64_t state_;
};

constexpr long long kMiB = 1LL << 20;
constexpr long long kGiB = 1LL << 30;
// How far below zero a container's CPU share may go (see Guest::cpu).
constexpr double kLowestContainerCpu = -0.01;

std::string random_key() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  std::string out;
  char hex[3];
  for (const auto b : bytes) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out;
}

std::string guest_ipv4(int vmid) {
  return "10." + std::to_string((vmid / 62500) % 250) + "." + std::to_string((vmid / 250) % 250) +
         "." + std::to_string(vmid % 250 + 2) + "/24";
}

nlohmann::json guest_json(const Guest& g, long long now) {
  nlohmann::json j = {{"vmid", g.vmid},
                      {"node", g.node},
                      {"type", to_string(g.type)},
                      {"status", to_string(g.status)},
                      {"cpus", g.cpus},
                      {"maxmem", g.maxmem},
                      {"maxdisk", g.maxdisk},
                      {"mem", g.mem},
                      {"disk", g.disk},
                      {"cpu", g.cpu},
                      {"template", g.template_ ? 1 : 0},
                      {"uptime", g.status == GuestStatus::stopped ? 0 : now - g.started_at},
                      {"agent_configured", g.agent_configured},
                      {"agent_running", g.agent_running},
                      {"ipv4", g.ipv4},
                      {"mac", g.mac}};
  if (g.name) {
    j["name"] = *g.name;
  }
  if (!g.tags.empty()) {
    j["tags"] = g.tags;
  }
  if (!g.lock.empty()) {
    j["lock"] = g.lock;
  }
  if (!g.pool.empty()) {
    j["pool"] = g.pool;
  }
  if (g.pid != 0) {
    j["pid"] = g.pid;
  }
  if (g.description) {
    j["description"] = *g.description;
  }
  return j;
}

}  // namespace

std::string to_string(GuestType t) {
  return t == GuestType::qemu ? "qemu" : "lxc";
}

std::string to_string(GuestStatus s) {
  switch (s) {
    case GuestStatus::running:
      return "running";
    case GuestStatus::paused:
      return "paused";
    case GuestStatus::stopped:
      break;
  }
  return "stopped";
}

std::optional<GuestType> parse_guest_type(const std::string& s) {
  if (s == "qemu") {
    return GuestType::qemu;
  }
  if (s == "lxc") {
    return GuestType::lxc;
  }
  return std::nullopt;
}

std::optional<GuestStatus> parse_guest_status(const std::string& s) {
  if (s == "running") {
    return GuestStatus::running;
  }
  if (s == "stopped") {
    return GuestStatus::stopped;
  }
  if (s == "paused") {
    return GuestStatus::paused;
  }
  return std::nullopt;
}

PveVersion PveVersion::parse(const std::string& v) {
  PveVersion out;
  int* parts[3] = {&out.major, &out.minor, &out.patch};
  std::size_t i = 0;
  for (const char c : v) {
    if (c >= '0' && c <= '9') {
      *parts[i] = *parts[i] * 10 + (c - '0');
    } else if (c == '.' || c == '-') {
      if (++i == 3) {
        break;
      }
    } else {
      break;
    }
  }
  return out;
}

bool PveVersion::at_least(int ma, int mi, int pa) const {
  if (major != ma) {
    return major > ma;
  }
  if (minor != mi) {
    return minor > mi;
  }
  return patch >= pa;
}

PveCluster::PveCluster(std::vector<std::string> node_names, std::string cluster_name)
    : name_(std::move(cluster_name)), ticket_key_(random_key()) {
  next_pid_ = 1000 + static_cast<long long>(std::hash<std::string>{}(ticket_key_) % 100000);
  for (const auto& n : node_names) {
    Node node;
    node.name = n;
    add_node(node);
  }
}

std::string PveCluster::name() const {
  std::lock_guard lock(mutex_);
  return name_;
}

long long PveCluster::now() const {
  std::lock_guard lock(mutex_);
  return now_locked();
}

void PveCluster::advance(std::chrono::seconds d) {
  std::lock_guard lock(mutex_);
  offset_ += d;
}

void PveCluster::add_node(Node node) {
  const auto t = now();
  std::lock_guard lock(mutex_);
  for (const auto& n : nodes_) {
    if (n.name == node.name) {
      throw std::invalid_argument("node exists: " + node.name);
    }
  }
  const auto index = static_cast<long long>(nodes_.size());
  if (node.nodeid <= 1) {
    node.nodeid = static_cast<int>(index) + 1;
  }
  if (node.booted_at == 0) {
    node.booted_at = t - 2'500'000 + index * 3600;
  }
  if (!node.online && node.offline_since == 0) {
    node.offline_since = t;
  }
  nodes_.push_back(std::move(node));
}

std::vector<Node> PveCluster::nodes() const {
  std::lock_guard lock(mutex_);
  return nodes_;
}

std::optional<Node> PveCluster::node(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const auto& n : nodes_) {
    if (n.name == name) {
      return n;
    }
  }
  return std::nullopt;
}

void PveCluster::set_node_online(const std::string& name, bool online) {
  const auto t = now();
  std::lock_guard lock(mutex_);
  for (auto& n : nodes_) {
    if (n.name == name) {
      if (n.online && !online) {
        n.offline_since = t;
      }
      if (!n.online && online) {
        n.booted_at = t;
      }
      n.online = online;
      return;
    }
  }
  throw std::invalid_argument("no such node: " + name);
}

void PveCluster::set_node_ip(const std::string& name, const std::string& ip) {
  std::lock_guard lock(mutex_);
  for (auto& n : nodes_) {
    if (n.name == name) {
      n.ip = ip;
      return;
    }
  }
  throw std::invalid_argument("no such node: " + name);
}

void PveCluster::set_node_version(const std::string& name, const std::string& version) {
  std::lock_guard lock(mutex_);
  for (auto& n : nodes_) {
    if (n.name == name) {
      n.version = version;
      return;
    }
  }
  throw std::invalid_argument("no such node: " + name);
}

void PveCluster::set_all_versions(const std::string& version) {
  std::lock_guard lock(mutex_);
  for (auto& n : nodes_) {
    n.version = version;
  }
}

void PveCluster::set_node_fingerprint(const std::string& name, const std::string& fingerprint) {
  std::lock_guard lock(mutex_);
  for (auto& n : nodes_) {
    if (n.name == name) {
      n.ssl_fingerprint = fingerprint;
      return;
    }
  }
}

void PveCluster::generate(std::size_t count, std::uint64_t seed, int first_vmid, GuestMix mix) {
  const auto t = now();
  std::lock_guard lock(mutex_);
  if (nodes_.empty()) {
    throw std::invalid_argument("a cluster without nodes cannot hold guests");
  }
  Rng rng(seed);
  static const std::vector<std::string> kRoles = {
      "web", "db",     "mail",    "app", "cache",  "build", "ci-runner", "vpn",  "dns",  "proxy",
      "git", "wiki",   "shop",    "api", "worker", "redis", "pg",        "mq",   "ldap", "win-rdp",
      "nas", "backup", "monitor", "dev", "test",   "k8s",   "elastic",   "jump", "ftp",  "voip"};
  static const std::vector<std::string> kDomains = {
      "", "", ".example.com", ".customer.net", ".internal", ".home.arpa"};
  static const std::vector<std::string> kTags = {"prod",       "staging", "dev",   "customer-a",
                                                 "customer-b", "web",     "db",    "backup-daily",
                                                 "k8s",        "managed", "legacy"};
  static const std::vector<std::string> kLocks = {"backup", "snapshot", "migrate", "clone"};
  static const std::vector<std::string> kOwners = {
      "Acme GmbH", "Globex Corp", "Initech", "Umbrella Ltd", "Hooli", "Stark Industries"};
  static const std::vector<double> kQemuCpus = {1, 2, 2, 4, 4, 8, 16};
  static const std::vector<double> kLxcCpus = {1, 1, 2, 2, 4, 0.5, 1.5};
  static const std::vector<long long> kMem = {512 * kMiB, 1 * kGiB,  2 * kGiB, 4 * kGiB,
                                              8 * kGiB,   16 * kGiB, 32 * kGiB};
  static const std::vector<long long> kQemuDisk = {8 * kGiB,  32 * kGiB,  32 * kGiB,
                                                   64 * kGiB, 128 * kGiB, 500 * kGiB};
  static const std::vector<long long> kLxcDisk = {4 * kGiB, 8 * kGiB, 10 * kGiB, 20 * kGiB,
                                                  50 * kGiB};

  int vmid = first_vmid;
  for (std::size_t i = 0; i < count; ++i) {
    while (guests_.count(vmid) != 0) {
      ++vmid;
    }
    Guest g;
    g.vmid = vmid;
    g.node = nodes_[static_cast<std::size_t>(rng.next() % nodes_.size())].name;
    g.type = rng.chance(mix.lxc_share) ? GuestType::lxc : GuestType::qemu;
    const bool qemu = g.type == GuestType::qemu;
    g.template_ = rng.chance(mix.template_share);
    const double r = rng.unit();
    if (g.template_ || r < mix.stopped_share) {
      g.status = GuestStatus::stopped;
    } else if (qemu && r < mix.stopped_share + mix.paused_share) {
      g.status = GuestStatus::paused;
    } else {
      g.status = GuestStatus::running;
    }
    g.cpus = qemu ? rng.pick(kQemuCpus) : rng.pick(kLxcCpus);
    g.maxmem = rng.pick(kMem);
    g.maxswap = qemu ? 0 : 512 * kMiB;
    g.maxdisk = qemu ? (rng.chance(0.03) ? 0 : rng.pick(kQemuDisk)) : rng.pick(kLxcDisk);
    const double n = rng.unit();
    if (n < mix.unnamed_share) {
      g.name = std::nullopt;
    } else if (!qemu && n < mix.unnamed_share + mix.empty_name_share) {
      g.name = "";
    } else if (qemu && n < mix.unnamed_share + mix.empty_name_share) {
      g.name = "VM " + std::to_string(vmid);  // qemu-server's default for a VM without a name
    } else {
      g.name = rng.pick(kRoles) + "-" + std::to_string(rng.range(1, 99)) + rng.pick(kDomains);
    }
    if (rng.chance(mix.tagged_share)) {
      std::set<std::string> tags;
      const auto k = rng.range(1, 3);
      for (long long j = 0; j < k; ++j) {
        tags.insert(rng.pick(kTags));
      }
      for (const auto& tag : tags) {
        g.tags += (g.tags.empty() ? "" : ";") + tag;
      }
    }
    if (!g.template_ && rng.chance(mix.locked_share)) {
      g.lock = rng.pick(kLocks);
    }
    if (rng.chance(0.15)) {
      g.pool = rng.chance(0.5) ? "customers" : "pool1";
    }
    if (rng.chance(mix.described_share)) {
      g.description = "Customer: " + rng.pick(kOwners) + " (contract " +
                      std::to_string(rng.range(1000, 9999)) + ")\nOwner: ops@example.com";
    }
    g.agent_configured = qemu && rng.chance(mix.agent_share);
    g.ipv4 = guest_ipv4(vmid);
    char mac[32];
    std::snprintf(
        mac, sizeof mac, "BC:24:11:%02X:%02X:%02X", static_cast<unsigned>(rng.next() & 0xFF),
        static_cast<unsigned>(rng.next() & 0xFF), static_cast<unsigned>(rng.next() & 0xFF));
    g.mac = mac;
    if (g.status != GuestStatus::stopped) {
      g.started_at = t - rng.range(60, 60LL * 86400);
      next_pid_ += rng.range(1, 5000);
      g.pid = next_pid_;
      g.mem = static_cast<long long>(static_cast<double>(g.maxmem) * (0.1 + 0.8 * rng.unit()));
      g.cpu = g.status == GuestStatus::paused ? 0 : std::pow(rng.unit(), 3) * 0.8;
      g.disk =
          qemu ? 0
               : static_cast<long long>(static_cast<double>(g.maxdisk) * (0.05 + 0.6 * rng.unit()));
      g.net_rate = rng.range(10, 200000);
      g.disk_rate = rng.range(10, 500000);
      g.agent_running = g.agent_configured && rng.chance(0.85);
    }
    guests_.emplace(vmid, std::move(g));
    vmid += 1 + (rng.chance(0.1) ? static_cast<int>(rng.range(1, 20)) : 0);
  }
  // A generator of its own, so that the guests above stay those of the seed.
  Rng glitch(seed ^ 0x5EEDC0FFEEULL);
  std::set<std::string> glitched;
  for (auto& [id, g] : guests_) {
    if (id >= first_vmid && g.type == GuestType::lxc && g.status == GuestStatus::running &&
        glitched.insert(g.node).second) {
      g.cpu = -static_cast<double>(glitch.range(100, 9999)) * 1e-8;
    }
  }
}

void PveCluster::add_guest(Guest guest) {
  std::lock_guard lock(mutex_);
  add_guest_locked(std::move(guest));
}

void PveCluster::add_guest_locked(Guest guest) {
  const auto t = now_locked();
  if (guests_.count(guest.vmid) != 0) {
    throw std::invalid_argument("VM " + std::to_string(guest.vmid) + " already exists");
  }
  if (std::none_of(nodes_.begin(), nodes_.end(),
                   [&](const Node& n) { return n.name == guest.node; })) {
    throw std::invalid_argument("no such node: " + guest.node);
  }
  if (guest.mac.empty()) {
    char mac[32];
    std::snprintf(mac, sizeof mac, "BC:24:11:%02X:%02X:%02X",
                  static_cast<unsigned>((guest.vmid >> 16) & 0xFF),
                  static_cast<unsigned>((guest.vmid >> 8) & 0xFF),
                  static_cast<unsigned>(guest.vmid & 0xFF));
    guest.mac = mac;
  }
  if (guest.ipv4.empty()) {
    guest.ipv4 = guest_ipv4(guest.vmid);
  }
  if (guest.status != GuestStatus::stopped) {
    if (guest.started_at == 0) {
      guest.started_at = t;
    }
    if (guest.pid == 0) {
      guest.pid = ++next_pid_;
    }
  } else {
    guest.pid = 0;
    guest.agent_running = false;
  }
  const int vmid = guest.vmid;
  guests_.emplace(vmid, std::move(guest));
}

bool PveCluster::remove_guest(int vmid) {
  std::lock_guard lock(mutex_);
  return guests_.erase(vmid) != 0;
}

std::optional<Guest> PveCluster::guest(int vmid) const {
  std::lock_guard lock(mutex_);
  const auto it = guests_.find(vmid);
  if (it == guests_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<Guest> PveCluster::guests() const {
  std::lock_guard lock(mutex_);
  std::vector<Guest> out;
  out.reserve(guests_.size());
  for (const auto& [id, g] : guests_) {
    out.push_back(g);
  }
  return out;
}

std::vector<Guest> PveCluster::guests_on(const std::string& node) const {
  std::lock_guard lock(mutex_);
  std::vector<Guest> out;
  for (const auto& [id, g] : guests_) {
    if (g.node == node) {
      out.push_back(g);
    }
  }
  return out;
}

Guest* PveCluster::find(int vmid) {
  const auto it = guests_.find(vmid);
  return it == guests_.end() ? nullptr : &it->second;
}

bool PveCluster::update_guest(int vmid, const std::function<void(Guest&)>& change) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr) {
    return false;
  }
  change(*g);
  return true;
}

long long PveCluster::now_locked() const {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch() + offset_)
      .count();
}

void PveCluster::start_locked(Guest& g) {
  const auto t = now_locked();
  g.status = GuestStatus::running;
  g.started_at = t;
  next_pid_ += 17;
  g.pid = next_pid_;
  if (g.mem == 0) {
    g.mem = g.maxmem / 4;
  }
  if (g.cpu == 0) {
    g.cpu = 0.02;
  }
  if (g.net_rate == 0) {
    g.net_rate = 1000;
    g.disk_rate = 4000;
  }
  if (g.type == GuestType::lxc && g.disk == 0) {
    g.disk = g.maxdisk / 10;
  }
  g.agent_running = g.agent_configured;
}

bool PveCluster::rename(int vmid, std::optional<std::string> name) {
  return update_guest(vmid, [&](Guest& g) { g.name = std::move(name); });
}

bool PveCluster::set_usage(int vmid, std::optional<double> cpu, std::optional<long long> mem) {
  return update_guest(vmid, [&](Guest& g) {
    if (cpu) {
      g.cpu = std::clamp(*cpu, g.type == GuestType::lxc ? kLowestContainerCpu : 0.0, 1.0);
    }
    if (mem) {
      g.mem = std::clamp(*mem, 0LL, g.maxmem);
    }
  });
}

bool PveCluster::set_agent(int vmid, bool configured, bool running) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr || g->type != GuestType::qemu) {
    return false;
  }
  g->agent_configured = configured;
  g->agent_running = configured && running && g->status != GuestStatus::stopped;
  return true;
}

bool PveCluster::set_description(int vmid, std::optional<std::string> description) {
  if (description) {
    // Proxmox keeps the description as comment lines and drops trailing whitespace.
    while (!description->empty() && std::isspace(static_cast<unsigned char>(description->back()))) {
      description->pop_back();
    }
  }
  return update_guest(vmid, [&](Guest& g) { g.description = std::move(description); });
}

bool PveCluster::set_tags(int vmid, const std::string& tags) {
  return update_guest(vmid, [&](Guest& g) { g.tags = tags; });
}

bool PveCluster::set_lock(int vmid, const std::string& lock) {
  return update_guest(vmid, [&](Guest& g) { g.lock = lock; });
}

bool PveCluster::set_pool(int vmid, const std::string& pool) {
  return update_guest(vmid, [&](Guest& g) { g.pool = pool; });
}

std::optional<std::string> PveCluster::pool_of(int vmid) const {
  std::lock_guard lock(mutex_);
  const auto it = guests_.find(vmid);
  if (it == guests_.end() || it->second.pool.empty()) {
    return std::nullopt;
  }
  return it->second.pool;
}

int PveCluster::next_vmid() const {
  std::lock_guard lock(mutex_);
  int vmid = 100;
  while (guests_.count(vmid) != 0) {
    ++vmid;
  }
  return vmid;
}

void PveCluster::add_user(User user) {
  std::lock_guard lock(mutex_);
  const auto id = user.userid;
  users_[id] = std::move(user);
}

void PveCluster::add_token(ApiToken token) {
  std::lock_guard lock(mutex_);
  const auto id = token.id;
  tokens_[id] = std::move(token);
}

bool PveCluster::remove_token(const std::string& id) {
  std::lock_guard lock(mutex_);
  return tokens_.erase(id) == 1;
}

bool PveCluster::set_acls(const std::string& authid, std::vector<Acl> acls) {
  std::lock_guard lock(mutex_);
  if (authid.find('!') != std::string::npos) {
    const auto it = tokens_.find(authid);
    if (it == tokens_.end()) {
      return false;
    }
    it->second.privileges.clear();
    it->second.acls = std::move(acls);
    return true;
  }
  auto& user = users_[authid];
  user.userid = authid;
  user.acls = std::move(acls);
  return true;
}

bool PveCluster::add_acl(const std::string& authid, Acl acl) {
  std::lock_guard lock(mutex_);
  if (authid.find('!') != std::string::npos) {
    const auto it = tokens_.find(authid);
    if (it == tokens_.end()) {
      return false;
    }
    it->second.acls.push_back(std::move(acl));
    return true;
  }
  auto& user = users_[authid];
  user.userid = authid;
  user.acls = user.acls.value_or(std::vector<Acl>{});
  user.acls->push_back(std::move(acl));
  return true;
}

bool PveCluster::remove_acls(const std::string& authid, const std::string& path) {
  std::lock_guard lock(mutex_);
  std::vector<Acl>* acls = nullptr;
  bool removed = false;
  if (authid.find('!') != std::string::npos) {
    const auto it = tokens_.find(authid);
    if (it == tokens_.end()) {
      return false;
    }
    // Its privileges on / are an entry on / too.
    if (path == "/" && !it->second.privileges.empty()) {
      it->second.privileges.clear();
      removed = true;
    }
    acls = &it->second.acls;
  } else {
    const auto it = users_.find(authid);
    if (it == users_.end() || !it->second.acls) {
      return false;
    }
    acls = &*it->second.acls;
  }
  const auto before = acls->size();
  std::erase_if(*acls, [&](const Acl& a) { return a.path == path; });
  return removed || acls->size() != before;
}

void PveCluster::set_role(const std::string& name, std::set<std::string> privileges) {
  std::lock_guard lock(mutex_);
  roles_[name] = std::move(privileges);
}

bool PveCluster::remove_role(const std::string& name) {
  std::lock_guard lock(mutex_);
  return roles_.erase(name) == 1;
}

std::map<std::string, std::set<std::string>> PveCluster::roles() const {
  std::lock_guard lock(mutex_);
  return roles_;
}

std::optional<User> PveCluster::user(const std::string& userid) const {
  std::lock_guard lock(mutex_);
  const auto it = users_.find(userid);
  if (it == users_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::optional<ApiToken> PveCluster::token(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = tokens_.find(id);
  if (it == tokens_.end()) {
    return std::nullopt;
  }
  return it->second;
}

namespace {

template <typename K, typename V>
std::vector<V> values_of(const std::map<K, V>& m) {
  std::vector<V> out;
  for (const auto& [k, v] : m) {
    out.push_back(v);
  }
  return out;
}

}  // namespace

std::vector<User> PveCluster::users() const {
  std::lock_guard lock(mutex_);
  return values_of(users_);
}

std::vector<ApiToken> PveCluster::tokens() const {
  std::lock_guard lock(mutex_);
  return values_of(tokens_);
}

void PveCluster::set_auth_failure_delay(std::chrono::milliseconds d) {
  std::lock_guard lock(mutex_);
  auth_delay_ = d;
}

std::chrono::milliseconds PveCluster::auth_failure_delay() const {
  std::lock_guard lock(mutex_);
  return auth_delay_;
}

std::string PveCluster::ticket_key() const {
  std::lock_guard lock(mutex_);
  return ticket_key_;
}

void PveCluster::attach_host(const std::string& node, PveHost* host) {
  std::lock_guard lock(mutex_);
  hosts_[node] = host;
}

void PveCluster::detach_host(const std::string& node, PveHost* host) {
  std::lock_guard lock(mutex_);
  const auto it = hosts_.find(node);
  if (it != hosts_.end() && it->second == host) {
    hosts_.erase(it);
  }
}

PveHost* PveCluster::host(const std::string& node) const {
  std::lock_guard lock(mutex_);
  const auto it = hosts_.find(node);
  return it == hosts_.end() ? nullptr : it->second;
}

std::string PveCluster::snapshot_json() const {
  const auto t = now();
  std::lock_guard lock(mutex_);
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : nodes_) {
    nlohmann::json j = {{"name", n.name},       {"ip", n.ip},
                        {"nodeid", n.nodeid},   {"online", n.online},
                        {"version", n.version}, {"ssl_fingerprint", n.ssl_fingerprint}};
    if (!n.online) {
      j["offline_since"] = n.offline_since;
    }
    nodes.push_back(std::move(j));
  }
  nlohmann::json guests = nlohmann::json::array();
  for (const auto& [id, g] : guests_) {
    guests.push_back(guest_json(g, t));
  }
  return nlohmann::json{{"cluster", name_}, {"now", t}, {"nodes", nodes}, {"guests", guests}}
      .dump();
}

}  // namespace pha::sim
