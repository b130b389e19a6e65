#include "tests/sim/adb_sim.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <stdexcept>
#include <utility>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr std::size_t kLogLimit = 100000;
constexpr const char* kJson = "application/json";

const Clock& system_clock_instance() {
  static const SystemClock clock;
  return clock;
}

std::string reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Request Entity Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Percent-decoding as Starlette does it for paths (`plus` false) and query
// strings (`plus` true); a malformed escape stays as it is.
std::string decode(std::string_view s, bool plus) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus && c == '+') ? ' ' : c;
  }
  return out;
}

using Query = std::vector<std::pair<std::string, std::string>>;

// Like Python's parse_qsl(keep_blank_values=True).
Query parse_query(const std::string& query) {
  Query q;
  std::size_t i = 0;
  while (i <= query.size()) {
    auto j = query.find('&', i);
    if (j == std::string::npos) {
      j = query.size();
    }
    const auto piece = std::string_view(query).substr(i, j - i);
    if (!piece.empty()) {
      const auto eq = piece.find('=');
      q.emplace_back(decode(piece.substr(0, eq), true),
                     eq == std::string_view::npos ? "" : decode(piece.substr(eq + 1), true));
    }
    i = j + 1;
  }
  return q;
}

// Starlette keeps the last value of a repeated parameter.
std::optional<std::string> query_value(const Query& q, std::string_view name) {
  std::optional<std::string> v;
  for (const auto& [k, value] : q) {
    if (k == name) {
      v = value;
    }
  }
  return v;
}

std::string mask_key(const std::string& query) {
  std::string out;
  std::size_t i = 0;
  while (i <= query.size()) {
    auto j = query.find('&', i);
    if (j == std::string::npos) {
      j = query.size();
    }
    auto piece = query.substr(i, j - i);
    const auto eq = piece.find('=');
    if (eq != std::string::npos && decode(piece.substr(0, eq), true) == "api_key" &&
        eq + 1 < piece.size()) {
      piece = piece.substr(0, eq + 1) + "***";
    }
    if (i > 0) {
      out += '&';
    }
    out += piece;
    i = j + 1;
  }
  return out;
}

std::string client_address(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    const auto close = peer.find(']');
    return peer.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return peer.substr(0, peer.rfind(':'));
}

// Python's int() of a string: surrounding whitespace and a sign allowed.
std::optional<long long> py_int(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') {
      return std::nullopt;
    }
  }
  return parse_int(s);
}

// Python's repr() of a float, as str() of a number gives it.
std::string py_float(double v) {
  char buf[64];
  const auto r = std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e16
                     ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 1)
                     : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// PostgreSQL's NUMERIC(n,1) of the value psycopg2 sends (Python's repr):
// decimal rounding, half away from zero. std::round(v * 10) would turn 12.35
// into 12.3 because 123.5 is not exact in binary.
double round_to_tenth(double v) {
  if (!std::isfinite(v) || std::fabs(v) >= 1e15) {
    return std::round(v * 10) / 10;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  std::string s(buf, r.ptr);
  const bool negative = !s.empty() && s.front() == '-';
  if (negative) {
    s.erase(0, 1);
  }
  const auto dot = s.find('.');
  if (dot == std::string::npos) {
    return v;
  }
  long long scaled = std::stoll(s.substr(0, dot)) * 10;
  if (dot + 1 < s.size()) {
    scaled += s[dot + 1] - '0';
  }
  if (dot + 2 < s.size() && s[dot + 2] >= '5') {
    ++scaled;
  }
  const double rounded = static_cast<double>(scaled) / 10.0;
  return negative ? -rounded : rounded;
}

std::size_t code_points(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string iso_from_us(long long us) {
  const long long secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  const long long frac = us - secs * 1000000;
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string hex16(std::mt19937_64& rng) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// --- bodies as the server writes them ---

ojson not_found_body() {
  return ojson{{"error", "NOT_FOUND"},
               {"message", "Endpoint not found"},
               {"status_code", 404},
               {"details", ojson{{"resource_type", "Endpoint"}, {"resource_id", nullptr}}}};
}

ojson validation_body(const ojson& errors) {
  return ojson{{"error", "VALIDATION_ERROR"},
               {"message", "Validation error"},
               {"status_code", 422},
               {"details", ojson{{"errors", errors}}}};
}

ojson server_error_body() {
  return ojson{{"error", "INTERNAL_SERVER_ERROR"},
               {"message", "An unexpected error occurred"},
               {"status_code", 500},
               {"details", ojson::object()}};
}

void add_error(ojson& errors, const std::string& field, const std::string& message) {
  if (!errors.contains(field)) {
    errors[field] = ojson::array();
  }
  errors[field].push_back(message);
}

template <typename T>
void put(ojson& j, const char* key, const std::optional<T>& v) {
  if (v) {
    j[key] = *v;
  } else {
    j[key] = nullptr;
  }
}

ojson node_body(const AdbNode& n) {
  ojson j;
  j["name"] = n.name;
  j["hostname"] = n.hostname;
  j["port"] = n.port;
  j["id"] = n.id;
  j["status"] = n.status;
  j["whitelist"] = n.whitelist;
  put(j, "last_seen", n.last_seen);
  j["created_at"] = n.created_at;
  j["updated_at"] = n.updated_at;
  j["owner_id"] = n.owner_id;
  return j;
}

// A row as E lists it.
ojson e_row_body(const AdbRow& r) {
  ojson j;
  j["id"] = r.id;
  j["vmid"] = r.vmid;
  j["name"] = r.name;
  j["status"] = r.status;
  put(j, "cpu_cores", r.cpu_cores);
  put(j, "cpu_usage_percent", r.cpu_usage_percent);
  put(j, "memory_mb", r.memory_mb);
  put(j, "disk_gb", r.disk_gb);
  put(j, "ip_address", r.ip_address);
  j["proxmox_node_id"] = r.proxmox_node_id;
  j["owner_id"] = r.owner_id;
  j["created_at"] = r.created_at;
  j["updated_at"] = r.updated_at;
  return j;
}

// A row as F answers it (the server's VMResponse model).
ojson f_row_body(const AdbRow& r, const std::optional<std::string>& node_name) {
  ojson j;
  j["vmid"] = r.vmid;
  j["name"] = r.name;
  put(j, "ip_address", r.ip_address);
  j["status"] = r.status;
  put(j, "cpu_cores", r.cpu_cores);
  put(j, "cpu_usage_percent", r.cpu_usage_percent);
  put(j, "memory_mb", r.memory_mb);
  put(j, "disk_gb", r.disk_gb);
  j["uptime_seconds"] = nullptr;
  j["proxmox_node_id"] = r.proxmox_node_id;
  put(j, "proxmox_node", node_name);
  put(j, "template_id", r.template_id);
  put(j, "notes", r.notes);
  j["id"] = r.id;
  j["created_at"] = r.created_at;
  j["updated_at"] = r.updated_at;
  j["owner_id"] = r.owner_id;
  return j;
}

// --- pydantic v1 validation of F's body (the server's VMBase model) ---

constexpr const char* kRequired = "field required";
constexpr const char* kNone = "none is not an allowed value";
constexpr const char* kNotInt = "value is not a valid integer";
constexpr const char* kNotFloat = "value is not a valid float";
constexpr const char* kNotStr = "str type expected";
constexpr const char* kFraction =
    "Input should be a valid integer, got a number with a fractional part";

struct VmBody {
  long long vmid = 0;
  std::string name;
  std::optional<std::string> ip_address;
  std::string status = "stopped";
  std::optional<long long> cpu_cores;
  std::optional<double> cpu_usage_percent;
  std::optional<long long> memory_mb;
  std::optional<long long> disk_gb;
  std::optional<long long> template_id;
  std::optional<std::string> notes;
};

class BodyValidator {
 public:
  BodyValidator(const json& body, ojson& errors, bool reject_fraction)
      : body_(body), errors_(errors), reject_fraction_(reject_fraction) {}

  // Optional[int] (or int when `required`).
  std::optional<long long> integer(const char* key, bool required = false,
                                   bool fraction_rejected = false) {
    if (!body_.contains(key)) {
      if (required) {
        add_error(errors_, key, kRequired);
      }
      return std::nullopt;
    }
    const auto& v = body_[key];
    if (v.is_null()) {
      if (required) {
        add_error(errors_, key, kNone);
      }
      return std::nullopt;
    }
    if (v.is_boolean()) {
      return v.get<bool>() ? 1 : 0;
    }
    if (v.is_number_unsigned()) {
      const auto u = v.get<unsigned long long>();
      if (u <= static_cast<unsigned long long>(std::numeric_limits<long long>::max())) {
        return static_cast<long long>(u);
      }
    } else if (v.is_number_integer()) {
      return v.get<long long>();
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      if (fraction_rejected && reject_fraction_ && d != std::trunc(d)) {
        add_error(errors_, key, kFraction);
        return std::nullopt;
      }
      if (std::isfinite(d) && std::fabs(d) < 9.2e18) {
        return static_cast<long long>(std::trunc(d));  // int(31.5) == 31
      }
    } else if (v.is_string()) {
      if (const auto i = py_int(v.get<std::string>())) {
        return i;
      }
    }
    add_error(errors_, key, kNotInt);
    return std::nullopt;
  }

  std::optional<double> number(const char* key) {
    if (!body_.contains(key) || body_[key].is_null()) {
      return std::nullopt;
    }
    const auto& v = body_[key];
    if (v.is_boolean()) {
      return v.get<bool>() ? 1.0 : 0.0;
    }
    if (v.is_number()) {
      return v.get<double>();
    }
    if (v.is_string()) {
      if (const auto d = parse_decimal(trim(v.get<std::string>()))) {
        return d;
      }
    }
    add_error(errors_, key, kNotFloat);
    return std::nullopt;
  }

  // Optional[str]; `required`: str without a default; `max_chars` 0: no limit.
  std::optional<std::string> text(const char* key, bool required, std::size_t max_chars,
                                  bool null_allowed = true) {
    if (!body_.contains(key)) {
      if (required) {
        add_error(errors_, key, kRequired);
      }
      return std::nullopt;
    }
    const auto& v = body_[key];
    if (v.is_null()) {
      if (required || !null_allowed) {
        add_error(errors_, key, kNone);
      }
      return std::nullopt;
    }
    std::string s;
    if (v.is_string()) {
      s = v.get<std::string>();
    } else if (v.is_boolean()) {
      s = v.get<bool>() ? "True" : "False";
    } else if (v.is_number_float()) {
      s = py_float(v.get<double>());
    } else if (v.is_number()) {
      s = v.dump();
    } else {
      add_error(errors_, key, kNotStr);
      return std::nullopt;
    }
    if (max_chars > 0 && code_points(s) > max_chars) {
      add_error(errors_, key,
                "ensure this value has at most " + std::to_string(max_chars) + " characters");
      return std::nullopt;
    }
    return s;
  }

 private:
  const json& body_;
  ojson& errors_;
  bool reject_fraction_;
};

// Python's json error message, near enough: "Expecting value: line 1 column 1 (char 0)".
std::pair<std::string, std::string> json_error(const std::string& text, std::size_t byte) {
  const std::size_t pos = byte > 0 ? std::min(byte - 1, text.size()) : 0;
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {std::to_string(pos), "Expecting value: line " + std::to_string(line) + " column " +
                                   std::to_string(column) + " (char " + std::to_string(pos) + ")"};
}

bool is_json_type(const std::string& content_type) {
  if (content_type.empty()) {
    return true;
  }
  const auto type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
  if (!type.starts_with("application/")) {
    return false;
  }
  const auto sub = type.substr(12);
  return sub == "json" || sub.ends_with("+json");
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 1;  // after the leading '/'
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string::npos) {
      j = path.size();
    }
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

char effective_call(const AdbFault& f) {
  return f.kind == AdbFaultKind::e_fails ? 'E' : f.call;
}

std::string generated_key(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string key;
  for (int i = 0; i < 43; ++i) {
    key += kAlphabet[rng() % 64];
  }
  return key;
}

}  // namespace

std::string to_string(AdbFaultKind k) {
  switch (k) {
    case AdbFaultKind::down:
      return "down";
    case AdbFaultKind::slow:
      return "slow";
    case AdbFaultKind::hang:
      return "hang";
    case AdbFaultKind::status:
      return "status";
    case AdbFaultKind::rate_limit:
      return "rate_limit";
    case AdbFaultKind::reset:
      return "reset";
    case AdbFaultKind::e_fails:
      return "e_fails";
  }
  return "status";
}

std::optional<AdbFaultKind> parse_adb_fault_kind(const std::string& s) {
  for (const auto k :
       {AdbFaultKind::down, AdbFaultKind::slow, AdbFaultKind::hang, AdbFaultKind::status,
        AdbFaultKind::rate_limit, AdbFaultKind::reset, AdbFaultKind::e_fails}) {
    if (to_string(k) == s) {
      return k;
    }
  }
  return std::nullopt;
}

namespace adb_detail {

struct Route {
  char call = 0;        // 'A'..'F'; 0: no call of the protocol
  std::string pattern;  // "METHOD /path/{param}" (for a path of no call: "METHOD path")
  std::string param;    // the path parameter, decoded
  bool method_ok = true;
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = kJson;
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace adb_detail

AdbSim::AdbSim(AdbSimOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &system_clock_instance()),
      rng_(std::random_device{}()) {
  auto seed_nodes = std::move(options_.nodes);
  auto seed_rows = std::move(options_.rows);
  options_.nodes.clear();
  options_.rows.clear();
  for (auto& n : seed_nodes) {
    add_node(std::move(n));
  }
  for (auto& r : seed_rows) {
    add_row(std::move(r));
  }
  auto first = make_endpoint(0, options_.port);
  first->server->start();
  std::lock_guard lock(endpoints_mutex_);
  endpoints_.push_back(std::move(first));
}

AdbSim::~AdbSim() {
  stop();
}

void AdbSim::stop() {
  std::vector<Endpoint*> all;
  {
    std::lock_guard lock(endpoints_mutex_);
    stopped_ = true;
    for (const auto& ep : endpoints_) {
      all.push_back(ep.get());
    }
  }
  for (auto* ep : all) {
    ep->fault_epoch->fetch_add(1);
    ep->server->stop();
  }
}

std::unique_ptr<AdbSim::Endpoint> AdbSim::make_endpoint(std::size_t index, int listen_port) {
  auto ep = std::make_unique<Endpoint>();
  ep->index = index;
  ep->server = std::make_unique<WireServer>(
      WireServerOptions{.name = index == 0 ? "accountdb" : "accountdb-" + std::to_string(index),
                        .bind_address = options_.bind_address,
                        .port = listen_port,
                        .idle_timeout = std::chrono::milliseconds(5000),  // uvicorn: 5 s
                        .max_requests_per_connection = std::numeric_limits<std::size_t>::max(),
                        .max_connections = 256,
                        .max_body_bytes = 10u << 20,  // the server's size limit
                        .close_on_error_status = false,
                        .server_header = "uvicorn"},
      [this, raw = ep.get()](const WireRequest& req) { return handle(req, *raw); });
  return ep;
}

std::size_t AdbSim::add_endpoint() {
  std::lock_guard lock(endpoints_mutex_);
  if (stopped_) {
    throw std::logic_error("the AccountDB simulator is stopped");
  }
  auto ep = make_endpoint(endpoints_.size(), 0);
  ep->server->start();
  endpoints_.push_back(std::move(ep));
  return endpoints_.size() - 1;
}

std::size_t AdbSim::endpoints() const {
  std::lock_guard lock(endpoints_mutex_);
  return endpoints_.size();
}

AdbSim::Endpoint& AdbSim::endpoint_at(std::size_t index) const {
  std::lock_guard lock(endpoints_mutex_);
  if (index >= endpoints_.size()) {
    throw std::out_of_range("no AccountDB simulator endpoint " + std::to_string(index) + " (" +
                            std::to_string(endpoints_.size()) + " endpoints)");
  }
  return *endpoints_[index];
}

int AdbSim::port(std::size_t index) const {
  return endpoint_at(index).server->port();
}

std::string AdbSim::url(std::size_t index) const {
  const auto& server = *endpoint_at(index).server;
  const auto& a = server.bind_address();
  const auto host = a.find(':') != std::string::npos ? "[" + a + "]" : a;
  return "http://" + host + ":" + std::to_string(server.port());
}

void AdbSim::advance(Clock::Duration d) {
  std::lock_guard lock(mutex_);
  offset_ += d;
}

Clock::TimePoint AdbSim::now_locked() const {
  return clock_->now() + offset_;
}

std::string AdbSim::stamp_locked() {
  const auto wall =
      clock_->wall_now() + std::chrono::duration_cast<Clock::WallTime::duration>(offset_);
  long long us =
      std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
  // Writes to a real database never share a timestamp, even when a fake
  // clock stands still: the recording's created_at and updated_at differ.
  us = std::max(us, last_stamp_us_ + 1);
  last_stamp_us_ = us;
  return iso_from_us(us);
}

bool AdbSim::key_valid_locked(long long node_id, const std::string& key) const {
  const auto it = nodes_.find(node_id);
  return it != nodes_.end() && !key.empty() && constant_time_equals(it->second.api_key, key);
}

std::string AdbSim::node_name_locked(long long node_id) const {
  const auto it = nodes_.find(node_id);
  return it == nodes_.end() ? std::string() : it->second.name;
}

// --- nodes ---

void AdbSim::add_node(AdbNode n) {
  if (n.id <= 0) {
    throw std::invalid_argument("a node id is a positive integer");
  }
  std::lock_guard lock(mutex_);
  if (nodes_.count(n.id) != 0) {
    throw std::invalid_argument("node " + std::to_string(n.id) + " exists");
  }
  if (n.name.empty()) {
    n.name = "pha-node-" + std::to_string(n.id);
  }
  if (n.api_key.empty()) {
    n.api_key = generated_key(rng_);
  }
  if (n.created_at.empty()) {
    n.created_at = stamp_locked();
  }
  if (n.updated_at.empty()) {
    n.updated_at = n.created_at;
  }
  const auto id = n.id;
  nodes_.emplace(id, std::move(n));
}

std::optional<AdbNode> AdbSim::node(long long id) const {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<AdbNode> AdbSim::nodes() const {
  std::lock_guard lock(mutex_);
  std::vector<AdbNode> out;
  for (const auto& [id, n] : nodes_) {
    out.push_back(n);
  }
  return out;
}

bool AdbSim::set_whitelist(long long node_id, std::vector<long long> vmids) {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return false;
  }
  it->second.whitelist = std::move(vmids);
  it->second.updated_at = stamp_locked();
  return true;
}

std::string AdbSim::rotate_key(long long node_id, std::string new_key) {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    throw std::out_of_range("no such node: " + std::to_string(node_id));
  }
  it->second.api_key = new_key.empty() ? generated_key(rng_) : std::move(new_key);
  return it->second.api_key;
}

// --- rows ---

AdbRow AdbSim::add_row(AdbRow r) {
  std::lock_guard lock(mutex_);
  if (r.id == 0) {
    r.id = next_row_id_;
  }
  if (rows_.count(r.id) != 0) {
    throw std::invalid_argument("row " + std::to_string(r.id) + " exists");
  }
  next_row_id_ = std::max(next_row_id_, r.id + 1);
  if (r.created_at.empty()) {
    r.created_at = stamp_locked();
  }
  if (r.updated_at.empty()) {
    r.updated_at = r.created_at;
  }
  row_writes_[r.id] = ++write_seq_;
  rows_[r.id] = r;
  return r;
}

bool AdbSim::edit_row(long long id, const std::function<void(AdbRow&)>& edit) {
  std::lock_guard lock(mutex_);
  const auto it = rows_.find(id);
  if (it == rows_.end()) {
    return false;
  }
  const auto before = it->second.updated_at;
  edit(it->second);
  it->second.id = id;
  if (it->second.updated_at == before) {
    it->second.updated_at = stamp_locked();
  }
  row_writes_[id] = ++write_seq_;
  return true;
}

bool AdbSim::delete_row(long long id) {
  std::lock_guard lock(mutex_);
  row_writes_.erase(id);
  return rows_.erase(id) != 0;
}

std::optional<AdbRow> AdbSim::row(long long id) const {
  std::lock_guard lock(mutex_);
  const auto it = rows_.find(id);
  if (it == rows_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<AdbRow> AdbSim::rows() const {
  std::lock_guard lock(mutex_);
  std::vector<AdbRow> out;
  for (const auto& [id, r] : rows_) {
    out.push_back(r);
  }
  return out;
}

std::vector<AdbRow> AdbSim::rows_of_node(long long node_id) const {
  std::lock_guard lock(mutex_);
  // E has no ORDER BY: PostgreSQL returns a heap scan, where a row that was
  // just updated tends to come last. The order of the last write stands in for it.
  std::vector<std::pair<unsigned long long, const AdbRow*>> picked;
  for (const auto& [id, r] : rows_) {
    if (r.proxmox_node_id == node_id) {
      picked.emplace_back(row_writes_.at(id), &r);
    }
  }
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<AdbRow> out;
  for (const auto& [seq, r] : picked) {
    out.push_back(*r);
  }
  return out;
}

// --- behaviour ---

void AdbSim::set_whitelist_endpoint(bool present) {
  std::lock_guard lock(mutex_);
  options_.whitelist_endpoint = present;
}

void AdbSim::set_reject_float_disk(bool reject) {
  std::lock_guard lock(mutex_);
  options_.reject_float_disk = reject;
}

void AdbSim::set_rate_limit(std::size_t limit, std::chrono::seconds window) {
  std::lock_guard lock(mutex_);
  options_.rate_limit = limit;
  options_.rate_window = window;
  windows_.clear();
}

void AdbSim::reset_rate_limits() {
  std::lock_guard lock(mutex_);
  windows_.clear();
}

// --- faults ---

void AdbSim::set_fault(const AdbFault& f, std::size_t index) {
  auto& ep = endpoint_at(index);
  bool was_down = false;
  {
    std::lock_guard lock(fault_mutex_);
    was_down = ep.fault && ep.fault->kind == AdbFaultKind::down;
    ep.fault = f;
    ep.fault_seen = 0;
    ep.fault_epoch->fetch_add(1);
  }
  ep.server->notify();
  if (f.kind == AdbFaultKind::down) {
    ep.server->set_accepting(false);
  } else if (was_down) {
    ep.server->set_accepting(true);
  }
}

void AdbSim::clear_fault(std::size_t index) {
  auto& ep = endpoint_at(index);
  {
    std::lock_guard lock(fault_mutex_);
    ep.fault.reset();
    ep.fault_seen = 0;
    ep.fault_epoch->fetch_add(1);
  }
  ep.server->notify();
  if (!ep.server->accepting()) {
    ep.server->set_accepting(true);
  }
}

std::optional<AdbFault> AdbSim::fault(std::size_t index) const {
  const auto& ep = endpoint_at(index);
  std::lock_guard lock(fault_mutex_);
  return ep.fault;
}

// --- requests ---

namespace {

template <typename Counts>
std::size_t count_in(const Counts& c, const std::string& pattern_or_path) {
  if (const auto it = c.by_pattern.find(pattern_or_path); it != c.by_pattern.end()) {
    return it->second;
  }
  const auto it = c.by_path.find(pattern_or_path);
  return it == c.by_path.end() ? 0 : it->second;
}

}  // namespace

std::map<std::string, std::size_t> AdbSim::counts() const {
  std::lock_guard lock(log_mutex_);
  return all_counts_.by_pattern;
}

std::map<std::string, std::size_t> AdbSim::path_counts() const {
  std::lock_guard lock(log_mutex_);
  return all_counts_.by_path;
}

std::size_t AdbSim::count(const std::string& pattern_or_path) const {
  std::lock_guard lock(log_mutex_);
  return count_in(all_counts_, pattern_or_path);
}

std::size_t AdbSim::total_requests() const {
  std::lock_guard lock(log_mutex_);
  return all_counts_.total;
}

std::uint64_t AdbSim::bytes_received() const {
  std::lock_guard lock(endpoints_mutex_);
  std::uint64_t n = 0;
  for (const auto& ep : endpoints_) {
    n += ep->server->bytes_received();
  }
  return n;
}

std::uint64_t AdbSim::bytes_sent() const {
  std::lock_guard lock(endpoints_mutex_);
  std::uint64_t n = 0;
  for (const auto& ep : endpoints_) {
    n += ep->server->bytes_sent();
  }
  return n;
}

std::size_t AdbSim::connections_accepted() const {
  std::lock_guard lock(endpoints_mutex_);
  std::size_t n = 0;
  for (const auto& ep : endpoints_) {
    n += ep->server->connections_accepted();
  }
  return n;
}

std::size_t AdbSim::count(const std::string& pattern_or_path, std::size_t index) const {
  endpoint_at(index);  // throws for an unknown endpoint
  std::lock_guard lock(log_mutex_);
  const auto it = endpoint_counts_.find(index);
  return it == endpoint_counts_.end() ? 0 : count_in(it->second, pattern_or_path);
}

std::size_t AdbSim::total_requests(std::size_t index) const {
  endpoint_at(index);  // throws for an unknown endpoint
  std::lock_guard lock(log_mutex_);
  const auto it = endpoint_counts_.find(index);
  return it == endpoint_counts_.end() ? 0 : it->second.total;
}

std::vector<AdbRecordedRequest> AdbSim::requests() const {
  std::lock_guard lock(log_mutex_);
  return log_;
}

void AdbSim::reset_counts() {
  std::lock_guard lock(log_mutex_);
  all_counts_ = {};
  endpoint_counts_.clear();
  log_.clear();
}

void AdbSim::record(AdbRecordedRequest r, const std::string& pattern) {
  std::lock_guard lock(log_mutex_);
  const auto path = r.method + " " + r.path;
  for (auto* c : {&all_counts_, &endpoint_counts_[r.endpoint]}) {
    ++c->by_pattern[pattern];
    ++c->by_path[path];
    ++c->total;
  }
  if (log_.size() < kLogLimit) {
    log_.push_back(std::move(r));
  }
}

// --- the server ---

namespace {

adb_detail::Reply json_reply(int status, const ojson& body) {
  adb_detail::Reply r;
  r.status = status;
  r.body = body.dump();
  return r;
}

}  // namespace

WireResponse AdbSim::handle(const WireRequest& req, Endpoint& ep) {
  const auto started = std::chrono::steady_clock::now();
  const auto path = decode(req.path, false);

  Route route;
  const auto s = split_path(path);
  const auto& m = req.method;
  const auto match = [&](char call, const char* method, const std::string& pattern,
                         std::string param) {
    route.call = call;
    route.pattern = m + " " + pattern;
    route.param = std::move(param);
    route.method_ok = m == method;
  };
  if (s.size() == 3 && s[0] == "proxmox-nodes" && s[1] == "agent-node" && !s[2].empty()) {
    match('A', "GET", "/proxmox-nodes/agent-node/{node_id}", s[2]);
  } else if (s.size() == 2 && s[0] == "proxmox-nodes" && s[1] == "heartbeat") {
    match('B', "POST", "/proxmox-nodes/heartbeat", "");
  } else if (s.size() == 5 && s[0] == "vm-access" && s[1] == "node" && !s[2].empty() &&
             s[3] == "whitelist" && s[4] == "agent") {
    match('C', "GET", "/vm-access/node/{node_id}/whitelist/agent", s[2]);
  } else if (s.size() == 3 && s[0] == "proxmox-nodes" && s[1] == "agent-whitelist" &&
             !s[2].empty()) {
    match('D', "GET", "/proxmox-nodes/agent-whitelist/{node_id}", s[2]);
  } else if (s.size() == 3 && s[0] == "proxmox-nodes" && s[1] == "agent-vms" && !s[2].empty()) {
    match('E', "GET", "/proxmox-nodes/agent-vms/{node_id}", s[2]);
  } else if (s.size() == 3 && s[0] == "vms" && s[1] == "agent" && !s[2].empty()) {
    match('F', "PUT", "/vms/agent/{id}", s[2]);
  } else {
    route.pattern = m + " " + req.path;
  }

  std::string request_id = req.header("x-request-id");
  if (request_id.empty()) {
    std::lock_guard lock(mutex_);
    request_id = hex16(rng_);
  }

  std::optional<AdbFault> active;
  std::uint64_t epoch = 0;
  {
    std::lock_guard lock(fault_mutex_);
    if (ep.fault && ep.fault->kind != AdbFaultKind::down) {
      const char call = effective_call(*ep.fault);
      if (call == 0 || call == route.call) {
        active = ep.fault;
        epoch = ep.fault_epoch->load();
        ++ep.fault_seen;
        if (ep.fault->count && ep.fault_seen >= *ep.fault->count) {
          ep.fault.reset();
        }
      }
    }
  }

  AdbRecordedRequest rec{.method = req.method,
                         .path = req.path,
                         .query = mask_key(req.query),
                         .body = req.body,
                         .call = route.call,
                         .client = client_address(req.peer),
                         .request_id = request_id,
                         .endpoint = ep.index};
  const auto kind = active ? active->kind : AdbFaultKind::status;
  if (active && kind == AdbFaultKind::hang) {
    record(std::move(rec), route.pattern);
    WireResponse res;
    res.status = 0;
    res.fault = WireFault::hang;
    res.hang_while = [e = ep.fault_epoch, epoch] { return e->load() == epoch; };
    return res;
  }

  Reply reply;
  if (active && (kind == AdbFaultKind::status || kind == AdbFaultKind::rate_limit ||
                 kind == AdbFaultKind::e_fails)) {
    reply = fault_reply(*active, route.call);
  } else {
    // The server's rate limit runs before its routes: it counts every
    // request, unknown paths and rejected ones too.
    bool limited = false;
    std::vector<std::pair<std::string, std::string>> rate_headers;
    {
      std::lock_guard lock(mutex_);
      const auto limit = options_.rate_limit;
      if (limit > 0) {
        const auto now = now_locked();
        if (now - last_cleanup_ > options_.rate_window) {
          // Like the server's store: ended windows are dropped now and then.
          std::erase_if(windows_, [&](const auto& kv) { return now > kv.second.reset_at; });
          last_cleanup_ = now;
        }
        auto& w = windows_[rec.client + ":" + path];
        if (w.count == 0 || now > w.reset_at) {
          w.count = 0;
          w.reset_at = now + options_.rate_window;
        }
        ++w.count;
        const auto left =
            std::chrono::duration_cast<std::chrono::seconds>(w.reset_at - now).count();
        limited = w.count > limit;
        rate_headers = {{"x-ratelimit-limit", std::to_string(limit)},
                        {"x-ratelimit-remaining", std::to_string(limited ? 0 : limit - w.count)},
                        {"x-ratelimit-reset", std::to_string(left)}};
        if (limited) {
          rate_headers.emplace_back("retry-after", std::to_string(left));
        }
      }
    }
    reply = limited ? json_reply(429, ojson{{"detail", "Too many requests"}}) : answer(route, req);
    reply.headers.insert(reply.headers.end(), rate_headers.begin(), rate_headers.end());
  }

  WireResponse res;
  res.status = reply.status;
  res.reason = reason_phrase(reply.status);
  res.compressible = false;  // uvicorn does not compress
  res.headers.emplace_back("content-type", reply.content_type);
  for (auto& h : reply.headers) {
    res.headers.push_back(std::move(h));
  }
  res.headers.emplace_back("x-request-id", request_id);
  const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
  res.headers.emplace_back("x-processing-time", std::to_string(took.count()));
  res.body = std::move(reply.body);
  if (active && kind == AdbFaultKind::slow) {
    res.delay = active->delay;
  }
  if (active && kind == AdbFaultKind::reset) {
    res.fault = WireFault::reset;
    res.cut_after = res.body.size() / 2;
  }
  rec.status = res.status;
  record(std::move(rec), route.pattern);
  return res;
}

AdbSim::Reply AdbSim::fault_reply(const AdbFault& f, char call) {
  if (f.kind == AdbFaultKind::rate_limit) {
    auto r = json_reply(429, ojson{{"detail", "Too many requests"}});
    std::size_t limit = 0;
    {
      std::lock_guard lock(mutex_);
      limit = options_.rate_limit;
    }
    r.headers = {{"x-ratelimit-limit", std::to_string(limit)},
                 {"x-ratelimit-remaining", "0"},
                 {"x-ratelimit-reset", std::to_string(f.retry_after)},
                 {"retry-after", std::to_string(f.retry_after)}};
    return r;
  }
  const int status = f.kind == AdbFaultKind::e_fails ? 500 : f.status;
  Reply r;
  r.status = status;
  if (!f.body.empty()) {
    r.body = f.body;
    if (!json::accept(f.body)) {
      // e.g. the HTML page of a reverse proxy
      r.content_type = f.body.starts_with("<") ? "text/html" : "text/plain; charset=utf-8";
    }
    return r;
  }
  switch (status) {
    case 500:
      return json_reply(500, server_error_body());
    case 401:
      return json_reply(401, ojson{{"detail", call == 0 || call == 'A' || call == 'B'
                                                  ? "Invalid API key"
                                                  : "Invalid API key or node not found"}});
    case 404:
      return json_reply(404, not_found_body());
    case 429: {
      auto limited = json_reply(429, ojson{{"detail", "Too many requests"}});
      limited.headers.emplace_back("retry-after", std::to_string(f.retry_after));
      return limited;
    }
    default:
      return json_reply(status, ojson{{"detail", reason_phrase(status)}});
  }
}

namespace {

// An HTTPException: FastAPI's {"detail"}, or the server's own format when the
// client asks for JSON (its handler looks at the Accept header).
adb_detail::Reply http_error(int status, const std::string& detail, const WireRequest& req) {
  if (req.header("accept").starts_with("application/json")) {
    return json_reply(status, ojson{{"error", "HTTP_ERROR"},
                                    {"message", detail},
                                    {"status_code", status},
                                    {"details", ojson::object()}});
  }
  return json_reply(status, ojson{{"detail", detail}});
}

// FastAPI's validation of an int path or query parameter.
std::optional<long long> int_param(const std::optional<std::string>& value,
                                   const std::string& field, bool required, ojson& errors) {
  if (!value) {
    if (required) {
      add_error(errors, field, kRequired);
    }
    return std::nullopt;
  }
  const auto v = py_int(*value);
  if (!v) {
    add_error(errors, field, kNotInt);
  }
  return v;
}

void required_param(const std::optional<std::string>& value, const std::string& field,
                    ojson& errors) {
  if (!value) {
    add_error(errors, field, kRequired);
  }
}

}  // namespace

AdbSim::Reply AdbSim::answer(const Route& route, const WireRequest& req) {
  if (route.call == 0) {
    return json_reply(404, not_found_body());
  }
  if (route.call == 'C') {
    std::lock_guard lock(mutex_);
    if (!options_.whitelist_endpoint) {
      return json_reply(404, not_found_body());
    }
  }
  if (!route.method_ok) {
    return http_error(405, "Method Not Allowed", req);
  }
  switch (route.call) {
    case 'A':
      return call_a(route, req);
    case 'B':
      return call_b(req);
    case 'C':
      return call_c(route, req);
    case 'D':
      return call_d(route, req);
    case 'E':
      return call_e(route, req);
    default:
      return call_f(route, req);
  }
}

AdbSim::Reply AdbSim::call_a(const Route& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto node_id = int_param(route.param, "path.node_id", true, errors);
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  const auto key = query_value(q, "api_key");
  if (!key || key->empty()) {
    return http_error(400, "Invalid api_key parameter", req);
  }
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(*node_id);
  if (it == nodes_.end()) {
    return json_reply(404, not_found_body());
  }
  if (!key_valid_locked(*node_id, *key)) {
    return http_error(401, "Invalid API key", req);
  }
  // The server answers with the node as it read it, before marking it connected.
  const auto body = node_body(it->second);
  it->second.status = "connected";
  it->second.last_seen = stamp_locked();
  return json_reply(200, body);
}

AdbSim::Reply AdbSim::call_b(const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto node_id = int_param(query_value(q, "node_id"), "query.node_id", false, errors);
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  const auto key = query_value(q, "api_key");
  if (!node_id || !key) {
    return http_error(400, "Missing required parameters: node_id and api_key", req);
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (key->empty()) {
    return http_error(400, "Invalid api_key parameter", req);
  }
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(*node_id);
  if (it == nodes_.end()) {
    return json_reply(404, not_found_body());
  }
  if (!key_valid_locked(*node_id, *key)) {
    return http_error(401, "Invalid API key", req);
  }
  it->second.status = "connected";
  it->second.last_seen = stamp_locked();
  return json_reply(200, ojson{{"message", "Heartbeat received"}});
}

AdbSim::Reply AdbSim::call_c(const Route& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto node_id = int_param(route.param, "path.node_id", true, errors);
  const auto key = query_value(q, "api_key");
  required_param(key, "query.api_key", errors);
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  std::lock_guard lock(mutex_);
  if (!key_valid_locked(*node_id, *key)) {
    return http_error(401, "Invalid API key or node not found", req);
  }
  return json_reply(200, ojson(nodes_.at(*node_id).whitelist));
}

AdbSim::Reply AdbSim::call_d(const Route& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto node_id = int_param(route.param, "path.node_id", true, errors);
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  const auto key = query_value(q, "api_key");
  if (!key || key->empty()) {
    return http_error(400, "Missing required parameter: api_key", req);
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  std::lock_guard lock(mutex_);
  if (!key_valid_locked(*node_id, *key)) {
    return http_error(401, "Invalid API key or node not found", req);
  }
  ojson body;
  body["node_id"] = *node_id;
  body["vmids"] = nodes_.at(*node_id).whitelist;
  body["success"] = true;
  body["message"] = "VMID whitelist retrieved successfully";
  return json_reply(200, body);
}

AdbSim::Reply AdbSim::call_e(const Route& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto node_id = int_param(route.param, "path.node_id", true, errors);
  const auto key = query_value(q, "api_key");
  required_param(key, "query.api_key", errors);
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (key->empty()) {
    return http_error(400, "Missing required parameter: api_key", req);
  }
  {
    std::lock_guard lock(mutex_);
    if (!key_valid_locked(*node_id, *key)) {
      return http_error(401, "Invalid API key or node not found", req);
    }
  }
  ojson vms = ojson::array();
  for (const auto& r : rows_of_node(*node_id)) {
    vms.push_back(e_row_body(r));
  }
  const auto n = vms.size();
  return json_reply(200, ojson{{"vms", std::move(vms)}, {"count", n}, {"node_id", *node_id}});
}

AdbSim::Reply AdbSim::call_f(const Route& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  ojson errors = ojson::object();
  const auto vm_id = int_param(route.param, "path.vm_id", true, errors);
  const auto node_id = int_param(query_value(q, "node_id"), "query.node_id", true, errors);
  const auto key = query_value(q, "api_key");
  required_param(key, "query.api_key", errors);

  bool reject_fraction = false;
  {
    std::lock_guard lock(mutex_);
    reject_fraction = options_.reject_float_disk;
  }
  // FastAPI reads the body as JSON when the content type says JSON or is
  // missing, else hands the bytes to the model; JSON null is a missing body.
  VmBody vm;
  if (req.body.empty()) {
    add_error(errors, "", kRequired);
  } else if (!is_json_type(req.header("content-type"))) {
    add_error(errors, "", "value is not a valid dict");
  } else {
    json body;
    bool parsed = false;
    try {
      body = json::parse(req.body);
      parsed = true;
    } catch (const json::parse_error& e) {
      const auto [field, message] = json_error(req.body, e.byte);
      add_error(errors, field, message);
    }
    if (parsed && body.is_null()) {
      add_error(errors, "", kRequired);
    } else if (parsed && !body.is_object()) {
      add_error(errors, "", "value is not a valid dict");
    } else if (parsed) {
      BodyValidator v(body, errors, reject_fraction);
      vm.vmid = v.integer("vmid", true).value_or(0);
      vm.name = v.text("name", true, 100).value_or("");
      vm.ip_address = v.text("ip_address", false, 45);
      vm.status = v.text("status", false, 20, false).value_or("stopped");
      vm.cpu_cores = v.integer("cpu_cores");
      vm.cpu_usage_percent = v.number("cpu_usage_percent");
      vm.memory_mb = v.integer("memory_mb");
      vm.disk_gb = v.integer("disk_gb", false, true);
      v.integer("uptime_seconds");
      v.integer("proxmox_node_id");
      v.text("proxmox_node", false, 0);
      vm.template_id = v.integer("template_id");
      vm.notes = v.text("notes", false, 0);
    }
  }
  if (!errors.empty()) {
    return json_reply(422, validation_body(errors));
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (key->empty()) {
    return http_error(400, "Missing required parameter: api_key", req);
  }
  if (vm.cpu_usage_percent) {
    vm.cpu_usage_percent = round_to_tenth(*vm.cpu_usage_percent);
  }

  std::lock_guard lock(mutex_);
  if (!key_valid_locked(*node_id, *key)) {
    return http_error(401, "Invalid API key or node not found", req);
  }
  auto it = rows_.find(*vm_id);
  if (it == rows_.end()) {
    // No such id: a new row with the next serial (a PUT to -vmid is a create).
    AdbRow r;
    r.id = next_row_id_++;
    r.vmid = vm.vmid;
    r.name = vm.name;
    r.status = vm.status;
    r.cpu_cores = vm.cpu_cores;
    r.cpu_usage_percent = vm.cpu_usage_percent;
    r.memory_mb = vm.memory_mb;
    r.disk_gb = vm.disk_gb;
    r.ip_address = vm.ip_address;
    r.proxmox_node_id = *node_id;
    r.template_id = vm.template_id;
    r.notes = vm.notes;
    r.owner_id = options_.created_row_owner_id;
    r.created_at = stamp_locked();
    r.updated_at = r.created_at;
    it = rows_.emplace(r.id, std::move(r)).first;
  } else {
    // COALESCE(new, stored) for every nullable field; vmid, name and status
    // are never null after validation (a missing status is "stopped"). The
    // row moves to the node of the request.
    auto& r = it->second;
    r.vmid = vm.vmid;
    r.name = vm.name;
    r.status = vm.status;
    const auto keep = [](auto& stored, const auto& sent) {
      if (sent) {
        stored = sent;
      }
    };
    keep(r.cpu_cores, vm.cpu_cores);
    keep(r.cpu_usage_percent, vm.cpu_usage_percent);
    keep(r.memory_mb, vm.memory_mb);
    keep(r.disk_gb, vm.disk_gb);
    keep(r.ip_address, vm.ip_address);
    keep(r.template_id, vm.template_id);
    keep(r.notes, vm.notes);
    r.proxmox_node_id = *node_id;
    r.updated_at = stamp_locked();
  }
  row_writes_[it->first] = ++write_seq_;
  const auto name = node_name_locked(it->second.proxmox_node_id);
  return json_reply(
      200, f_row_body(it->second, name.empty() ? std::nullopt : std::optional<std::string>(name)));
}

// --- JSON views ---

namespace {

json node_json(const AdbNode& n) {
  json j = {{"id", n.id},
            {"name", n.name},
            {"hostname", n.hostname},
            {"port", n.port},
            {"api_key", n.api_key},
            {"owner_id", n.owner_id},
            {"whitelist", n.whitelist},
            {"status", n.status},
            {"created_at", n.created_at},
            {"updated_at", n.updated_at}};
  j["last_seen"] = n.last_seen ? json(*n.last_seen) : json(nullptr);
  return j;
}

template <typename T>
json opt_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json row_json(const AdbRow& r) {
  return json{{"id", r.id},
              {"vmid", r.vmid},
              {"name", r.name},
              {"status", r.status},
              {"cpu_cores", opt_json(r.cpu_cores)},
              {"cpu_usage_percent", opt_json(r.cpu_usage_percent)},
              {"memory_mb", opt_json(r.memory_mb)},
              {"disk_gb", opt_json(r.disk_gb)},
              {"ip_address", opt_json(r.ip_address)},
              {"proxmox_node_id", r.proxmox_node_id},
              {"template_id", opt_json(r.template_id)},
              {"notes", opt_json(r.notes)},
              {"owner_id", r.owner_id},
              {"created_at", r.created_at},
              {"updated_at", r.updated_at}};
}

json fault_json(const AdbFault& f) {
  json j = {{"kind", to_string(f.kind)},
            {"call", f.call == 0 ? std::string() : std::string(1, f.call)},
            {"delay_ms", f.delay.count()},
            {"status", f.status},
            {"body", f.body},
            {"retry_after", f.retry_after}};
  j["count"] = f.count ? json(*f.count) : json(nullptr);
  return j;
}

}  // namespace

std::string AdbSim::state_json() const {
  json out;
  out["url"] = url();
  out["nodes"] = json::array();
  for (const auto& n : nodes()) {
    out["nodes"].push_back(node_json(n));
  }
  out["rows"] = json::array();
  for (const auto& r : rows()) {
    out["rows"].push_back(row_json(r));
  }
  const auto f = fault();
  out["fault"] = f ? fault_json(*f) : json(nullptr);
  out["endpoints"] = json::array();
  for (std::size_t i = 0, n = endpoints(); i < n; ++i) {
    const auto fi = fault(i);
    out["endpoints"].push_back({{"url", url(i)},
                                {"fault", fi ? fault_json(*fi) : json(nullptr)},
                                {"total_requests", total_requests(i)}});
  }
  {
    std::lock_guard lock(mutex_);
    out["settings"] = {{"rate_limit", options_.rate_limit},
                       {"rate_window", options_.rate_window.count()},
                       {"whitelist_endpoint", options_.whitelist_endpoint},
                       {"reject_float_disk", options_.reject_float_disk},
                       {"created_row_owner_id", options_.created_row_owner_id}};
  }
  out["total_requests"] = total_requests();
  return out.dump();
}

// --- control API ---

namespace {

struct ControlError : std::runtime_error {
  ControlError(int s, const std::string& what) : std::runtime_error(what), status(s) {}
  int status;
};

json body_of(const httplib::Request& req) {
  if (req.body.empty()) {
    return json::object();
  }
  auto j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) {
    throw ControlError(400, "the body must be JSON");
  }
  return j;
}

json object_of(const httplib::Request& req) {
  auto j = body_of(req);
  if (!j.is_object()) {
    throw ControlError(400, "the body must be a JSON object");
  }
  return j;
}

template <typename T>
void read_opt(const json& j, const char* key, std::optional<T>& into) {
  if (j.contains(key)) {
    into = j[key].is_null() ? std::nullopt : std::optional<T>(j[key].get<T>());
  }
}

template <typename T>
void read(const json& j, const char* key, T& into) {
  if (j.contains(key) && !j[key].is_null()) {
    into = j[key].get<T>();
  }
}

void apply_row(const json& j, AdbRow& r) {
  read(j, "vmid", r.vmid);
  read(j, "name", r.name);
  read(j, "status", r.status);
  read_opt(j, "cpu_cores", r.cpu_cores);
  read_opt(j, "cpu_usage_percent", r.cpu_usage_percent);
  read_opt(j, "memory_mb", r.memory_mb);
  read_opt(j, "disk_gb", r.disk_gb);
  read_opt(j, "ip_address", r.ip_address);
  read(j, "proxmox_node_id", r.proxmox_node_id);
  read_opt(j, "template_id", r.template_id);
  read_opt(j, "notes", r.notes);
  read(j, "owner_id", r.owner_id);
  read(j, "created_at", r.created_at);
  read(j, "updated_at", r.updated_at);
}

AdbFault fault_from(const json& j) {
  AdbFault f;
  const auto kind = parse_adb_fault_kind(j.value("kind", std::string()));
  if (!kind) {
    throw ControlError(400,
                       "kind must be one of down, slow, hang, status, rate_limit, reset, e_fails");
  }
  f.kind = *kind;
  const auto call = j.value("call", std::string());
  if (call.size() > 1 || (call.size() == 1 && (call[0] < 'A' || call[0] > 'F'))) {
    throw ControlError(400, "call must be one of A, B, C, D, E, F (or empty: every request)");
  }
  f.call = call.empty() ? '\0' : call[0];
  if (j.contains("count") && !j["count"].is_null()) {
    f.count = j["count"].get<std::size_t>();
  }
  f.delay = std::chrono::milliseconds(j.value("delay_ms", 2000LL));
  f.status = j.value("status", 500);
  f.body = j.contains("body") && !j["body"].is_string() ? j["body"].dump()
                                                        : j.value("body", std::string());
  f.retry_after = j.value("retry_after", 30LL);
  return f;
}

// The endpoint a fault call is about: "endpoint" in the JSON body, else
// ?endpoint=N, else 0. 404 for an unknown one.
std::size_t endpoint_of(const AdbSim& sim, const httplib::Request& req, const json& body) {
  long long index = 0;
  if (body.is_object() && body.contains("endpoint") && !body["endpoint"].is_null()) {
    if (!body["endpoint"].is_number_integer()) {
      throw ControlError(400, "endpoint must be an endpoint index");
    }
    index = body["endpoint"].get<long long>();
  } else if (req.has_param("endpoint")) {
    const auto v = parse_int(req.get_param_value("endpoint"));
    if (!v) {
      throw ControlError(400, "endpoint must be an endpoint index");
    }
    index = *v;
  }
  if (index < 0 || static_cast<std::size_t>(index) >= sim.endpoints()) {
    throw ControlError(404, "no such endpoint: " + std::to_string(index));
  }
  return static_cast<std::size_t>(index);
}

long long id_of(const std::string& s) {
  const auto v = parse_int(s);
  if (!v) {
    throw ControlError(400, "not an id: " + s);
  }
  return *v;
}

}  // namespace

AdbControlApi::AdbControlApi(AdbSim& sim)
    : sim_(sim), server_(std::make_unique<httplib::Server>()) {
  using Handler = std::function<json(const httplib::Request&)>;
  const auto wrap = [](Handler h) {
    return [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
      try {
        res.set_content(h(req).dump(), "application/json");
      } catch (const ControlError& e) {
        res.status = e.status;
        res.set_content(json{{"error", e.what()}}.dump(), "application/json");
      } catch (const std::exception& e) {
        res.status = 400;
        res.set_content(json{{"error", e.what()}}.dump(), "application/json");
      }
    };
  };
  auto& s = *server_;
  s.Get("/control/state",
        wrap([this](const httplib::Request&) { return json::parse(sim_.state_json()); }));
  s.Get("/control/rows", wrap([this](const httplib::Request&) {
          json rows = json::array();
          for (const auto& r : sim_.rows()) {
            rows.push_back(row_json(r));
          }
          return json{{"rows", rows}, {"count", rows.size()}};
        }));
  s.Post("/control/rows", wrap([this](const httplib::Request& req) {
           const auto j = object_of(req);
           AdbRow r;
           const auto all = sim_.nodes();
           if (!all.empty()) {
             r.proxmox_node_id = all.front().id;
           }
           apply_row(j, r);
           read(j, "id", r.id);
           if (r.name.empty()) {
             r.name = "VM-" + std::to_string(r.vmid);
           }
           try {
             return row_json(sim_.add_row(r));
           } catch (const std::invalid_argument& e) {
             throw ControlError(400, e.what());
           }
         }));
  s.Put(R"(/control/rows/(-?\d+))", wrap([this](const httplib::Request& req) {
          const auto id = id_of(req.matches[1]);
          const auto j = object_of(req);
          if (!sim_.edit_row(id, [&](AdbRow& r) { apply_row(j, r); })) {
            throw ControlError(404, "no such row: " + std::to_string(id));
          }
          return row_json(*sim_.row(id));
        }));
  s.Delete(R"(/control/rows/(-?\d+))", wrap([this](const httplib::Request& req) {
             const auto id = id_of(req.matches[1]);
             if (!sim_.delete_row(id)) {
               throw ControlError(404, "no such row: " + std::to_string(id));
             }
             return json{{"ok", true}};
           }));
  s.Get("/control/counts", wrap([this](const httplib::Request&) {
          json per_endpoint = json::array();
          for (std::size_t i = 0, n = sim_.endpoints(); i < n; ++i) {
            per_endpoint.push_back(sim_.total_requests(i));
          }
          return json{{"total", sim_.total_requests()},
                      {"counts", sim_.counts()},
                      {"paths", sim_.path_counts()},
                      {"endpoints", per_endpoint}};
        }));
  s.Post("/control/counts/reset", wrap([this](const httplib::Request&) {
           sim_.reset_counts();
           return json{{"ok", true}};
         }));
  s.Get("/control/requests", wrap([this](const httplib::Request&) {
          json out = json::array();
          for (const auto& r : sim_.requests()) {
            out.push_back({{"method", r.method},
                           {"path", r.path},
                           {"query", r.query},
                           {"body", r.body},
                           {"status", r.status},
                           {"call", r.call == 0 ? std::string() : std::string(1, r.call)},
                           {"client", r.client},
                           {"request_id", r.request_id},
                           {"endpoint", r.endpoint}});
          }
          return json{{"total", sim_.total_requests()}, {"requests", out}};
        }));
  s.Post("/control/fault", wrap([this](const httplib::Request& req) {
           const auto j = object_of(req);
           sim_.set_fault(fault_from(j), endpoint_of(sim_, req, j));
           return json{{"ok", true}};
         }));
  s.Get("/control/fault", wrap([this](const httplib::Request& req) {
          const auto f = sim_.fault(endpoint_of(sim_, req, json()));
          return f ? fault_json(*f) : json(nullptr);
        }));
  s.Delete("/control/fault", wrap([this](const httplib::Request& req) {
             sim_.clear_fault(endpoint_of(sim_, req, body_of(req)));
             return json{{"ok", true}};
           }));
  s.Get("/control/nodes", wrap([this](const httplib::Request&) {
          json out = json::array();
          for (const auto& n : sim_.nodes()) {
            out.push_back(node_json(n));
          }
          return out;
        }));
  s.Post("/control/nodes", wrap([this](const httplib::Request& req) {
           const auto j = object_of(req);
           AdbNode n;
           read(j, "id", n.id);
           read(j, "name", n.name);
           read(j, "hostname", n.hostname);
           read(j, "port", n.port);
           read(j, "api_key", n.api_key);
           read(j, "owner_id", n.owner_id);
           read(j, "whitelist", n.whitelist);
           read(j, "status", n.status);
           try {
             sim_.add_node(n);
           } catch (const std::invalid_argument& e) {
             throw ControlError(400, e.what());
           }
           return node_json(*sim_.node(n.id));
         }));
  s.Put(R"(/control/nodes/(\d+)/whitelist)", wrap([this](const httplib::Request& req) {
          const auto id = id_of(req.matches[1]);
          const auto j = body_of(req);
          if (!j.is_array()) {
            throw ControlError(400, "the body must be a JSON array of VMIDs");
          }
          if (!sim_.set_whitelist(id, j.get<std::vector<long long>>())) {
            throw ControlError(404, "no such node: " + std::to_string(id));
          }
          return json{{"ok", true}, {"whitelist", j}};
        }));
  s.Post(R"(/control/nodes/(\d+)/rotate-key)", wrap([this](const httplib::Request& req) {
           const auto id = id_of(req.matches[1]);
           const auto j = object_of(req);
           try {
             return json{{"api_key", sim_.rotate_key(id, j.value("api_key", std::string()))}};
           } catch (const std::out_of_range& e) {
             throw ControlError(404, e.what());
           }
         }));
  s.Post("/control/settings", wrap([this](const httplib::Request& req) {
           const auto j = object_of(req);
           if (j.contains("whitelist_endpoint")) {
             sim_.set_whitelist_endpoint(j["whitelist_endpoint"].get<bool>());
           }
           if (j.contains("reject_float_disk")) {
             sim_.set_reject_float_disk(j["reject_float_disk"].get<bool>());
           }
           if (j.contains("rate_limit") || j.contains("rate_window")) {
             const auto state = json::parse(sim_.state_json())["settings"];
             sim_.set_rate_limit(j.value("rate_limit", state["rate_limit"].get<std::size_t>()),
                                 std::chrono::seconds(j.value(
                                     "rate_window", state["rate_window"].get<long long>())));
           }
           return json::parse(sim_.state_json())["settings"];
         }));
  s.Post("/control/rate-limits/reset", wrap([this](const httplib::Request&) {
           sim_.reset_rate_limits();
           return json{{"ok", true}};
         }));
  s.Post("/control/clock/advance", wrap([this](const httplib::Request& req) {
           const auto j = object_of(req);
           const double seconds = j.value("seconds", 0.0);
           sim_.advance(
               std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds)));
           return json{{"ok", true}};
         }));
}

AdbControlApi::~AdbControlApi() {
  stop();
}

void AdbControlApi::start() {
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) {
    throw std::runtime_error("the control API cannot listen on 127.0.0.1");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running() && std::chrono::steady_clock::now() < end) {
    std::this_thread::yield();
  }
}

void AdbControlApi::stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace pha::sim
