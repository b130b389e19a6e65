#include "tests/sim/adb_sim.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "tests/sim/adb_json.hpp"
#include "tests/sim/common/http_reason.hpp"
#include "tests/sim/common/query.hpp"

namespace pha::sim {

namespace {

AdbSettings settings_of(const AdbSimOptions& o) {
  return {.rate_limit = o.rate_limit,
          .rate_window = o.rate_window,
          .whitelist_endpoint = o.whitelist_endpoint,
          .reject_float_disk = o.reject_float_disk,
          .created_row_owner_id = o.created_row_owner_id};
}

std::string client_address(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    const auto close = peer.find(']');
    return peer.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return peer.substr(0, peer.rfind(':'));
}

// The faults that answer in place of the server.
bool answers(AdbFaultKind k) {
  return k == AdbFaultKind::status || k == AdbFaultKind::rate_limit ||
         k == AdbFaultKind::list_vms_fails;
}

}  // namespace

AdbSim::AdbSim(AdbSimOptions options)
    : bind_address_(options.bind_address), store_(settings_of(options), options.clock) {
  for (auto& n : options.nodes) {
    add_node(std::move(n));
  }
  for (auto& r : options.rows) {
    add_row(std::move(r));
  }
  auto first = make_endpoint(0, options.port);
  first->server.start();
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
    ep->fault.end_hangs();
    ep->server.stop();
  }
}

// --- endpoints ---

std::unique_ptr<AdbSim::Endpoint> AdbSim::make_endpoint(std::size_t index, int listen_port) {
  return std::make_unique<Endpoint>(
      index,
      WireServerOptions{.name = index == 0 ? "accountdb" : "accountdb-" + std::to_string(index),
                        .bind_address = bind_address_,
                        .port = listen_port,
                        .idle_timeout = std::chrono::milliseconds(5000),  // uvicorn: 5 s
                        .max_requests_per_connection = std::numeric_limits<std::size_t>::max(),
                        .max_connections = 256,
                        .max_body_bytes = 10u << 20,  // the server's size limit
                        .close_on_error_status = false,
                        .server_header = "uvicorn"},
      *this);
}

std::size_t AdbSim::add_endpoint() {
  std::lock_guard lock(endpoints_mutex_);
  if (stopped_) {
    throw std::logic_error("the AccountDB simulator is stopped");
  }
  auto ep = make_endpoint(endpoints_.size(), 0);
  ep->server.start();
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
  return endpoint_at(index).server.port();
}

std::string AdbSim::url(std::size_t index) const {
  return endpoint_at(index).server.url();
}

// --- the state, in the store ---

void AdbSim::advance(Clock::Duration d) {
  store_.advance(d);
}

void AdbSim::add_node(AdbNode node) {
  store_.add_node(std::move(node));
}

std::optional<AdbNode> AdbSim::node(long long id) const {
  return store_.node(id);
}

std::vector<AdbNode> AdbSim::nodes() const {
  return store_.nodes();
}

bool AdbSim::set_whitelist(long long node_id, std::vector<long long> vmids) {
  return store_.set_whitelist(node_id, std::move(vmids));
}

std::string AdbSim::rotate_key(long long node_id, std::string new_key) {
  return store_.rotate_key(node_id, std::move(new_key));
}

AdbRow AdbSim::add_row(AdbRow row) {
  return store_.add_row(std::move(row));
}

bool AdbSim::edit_row(long long id, const std::function<void(AdbRow&)>& edit) {
  return store_.edit_row(id, edit);
}

bool AdbSim::delete_row(long long id) {
  return store_.delete_row(id);
}

std::optional<AdbRow> AdbSim::row(long long id) const {
  return store_.row(id);
}

std::vector<AdbRow> AdbSim::rows() const {
  return store_.rows();
}

std::vector<AdbRow> AdbSim::rows_of_node(long long node_id) const {
  return store_.rows_of_node(node_id);
}

// --- behaviour ---

void AdbSim::set_whitelist_endpoint(bool present) {
  auto s = store_.settings();
  s.whitelist_endpoint = present;
  store_.set_settings(s);
}

void AdbSim::set_reject_float_disk(bool reject) {
  auto s = store_.settings();
  s.reject_float_disk = reject;
  store_.set_settings(s);
}

void AdbSim::set_rate_limit(std::size_t limit, std::chrono::seconds window) {
  auto s = store_.settings();
  s.rate_limit = limit;
  s.rate_window = window;
  store_.set_settings(s);
  rate_limit_.clear();
}

void AdbSim::reset_rate_limits() {
  rate_limit_.clear();
}

AdbSettings AdbSim::settings() const {
  return store_.settings();
}

// --- faults ---

void AdbSim::set_fault(const AdbFault& fault, std::size_t index) {
  endpoint_at(index).fault.set(fault);
}

void AdbSim::clear_fault(std::size_t index) {
  endpoint_at(index).fault.clear();
}

std::optional<AdbFault> AdbSim::fault(std::size_t index) const {
  return endpoint_at(index).fault.get();
}

// --- requests ---

namespace {

// By pattern, else by exact path.
std::size_t count_in(const RequestTally& t, const std::string& pattern_or_path) {
  const auto n = t.count(pattern_or_path, 0);
  return n != 0 ? n : t.count(pattern_or_path, 1);
}

}  // namespace

std::map<std::string, std::size_t> AdbSim::counts() const {
  return log_.tally().counts(0);
}

std::map<std::string, std::size_t> AdbSim::path_counts() const {
  return log_.tally().counts(1);
}

std::size_t AdbSim::count(const std::string& pattern_or_path) const {
  return count_in(log_.tally(), pattern_or_path);
}

std::size_t AdbSim::total_requests() const {
  return log_.tally().total();
}

std::size_t AdbSim::count(const std::string& pattern_or_path, std::size_t index) const {
  return count_in(endpoint_at(index).tally, pattern_or_path);
}

std::size_t AdbSim::total_requests(std::size_t index) const {
  return endpoint_at(index).tally.total();
}

std::vector<AdbRecordedRequest> AdbSim::requests() const {
  return log_.entries();
}

template <typename Of>
auto AdbSim::sum_over(Of of) const {
  std::lock_guard lock(endpoints_mutex_);
  decltype(of(*endpoints_.front())) n = 0;
  for (const auto& ep : endpoints_) {
    n += of(*ep);
  }
  return n;
}

std::uint64_t AdbSim::bytes_received() const {
  return sum_over([](const Endpoint& ep) { return ep.server.bytes_received(); });
}

std::uint64_t AdbSim::bytes_sent() const {
  return sum_over([](const Endpoint& ep) { return ep.server.bytes_sent(); });
}

std::size_t AdbSim::connections_accepted() const {
  return sum_over([](const Endpoint& ep) { return ep.server.connections_accepted(); });
}

void AdbSim::reset_counts() {
  std::lock_guard lock(endpoints_mutex_);
  for (const auto& ep : endpoints_) {
    ep->tally.clear();
  }
  log_.clear();
}

void AdbSim::record(Endpoint& ep, AdbRecordedRequest r, const std::string& pattern) {
  auto path = r.method + " " + r.path;
  ep.tally.add({pattern, path});
  log_.record(std::move(r), {pattern, std::move(path)});
}

// --- the server ---

WireResponse AdbSim::handle(const WireRequest& req, Endpoint& ep) {
  const auto started = std::chrono::steady_clock::now();
  const auto route = route_of(req);
  auto request_id = req.header("x-request-id");
  if (request_id.empty()) {
    request_id = store_.request_id();
  }
  const auto hit = ep.fault.take([&](const AdbFault& f) { return applies_to(f, route.call); });
  AdbRecordedRequest rec{.method = req.method,
                         .path = req.path,
                         .query = mask_query_value(req.query, "api_key"),
                         .body = req.body,
                         .call = route.call,
                         .client = client_address(req.peer),
                         .request_id = request_id,
                         .endpoint = ep.index};
  if (hit && hit->fault.kind == AdbFaultKind::hang) {
    record(ep, std::move(rec), route.pattern);
    return ep.fault.hang(hit->epoch);
  }
  auto reply = hit && answers(hit->fault.kind)
                   ? fault_reply(hit->fault, route.call, store_.settings().rate_limit)
                   : rate_limited_answer(route, req, rec.client);
  if (hit && is_lie(hit->fault.kind)) {
    reply = lie_reply(hit->fault, route.call, std::move(reply));
  }
  auto res = to_wire(std::move(reply), request_id, started);
  if (hit && hit->fault.kind == AdbFaultKind::slow) {
    res.delay = hit->fault.delay;
  }
  if (hit && hit->fault.kind == AdbFaultKind::reset) {
    res.fault = WireFault::reset;
    res.cut_after = res.body.size() / 2;
  }
  rec.status = res.status;
  record(ep, std::move(rec), route.pattern);
  return res;
}

AdbReply AdbSim::rate_limited_answer(const AdbRoute& route, const WireRequest& req,
                                     const std::string& client) {
  const auto settings = store_.settings();
  auto verdict = rate_limit_.count(client, route.path, store_.now(), settings.rate_limit,
                                   settings.rate_window);
  auto reply = verdict.limited ? too_many_requests_reply() : protocol_.answer(route, req);
  for (auto& h : verdict.headers) {
    reply.headers.push_back(std::move(h));
  }
  return reply;
}

WireResponse AdbSim::to_wire(AdbReply reply, const std::string& request_id,
                             std::chrono::steady_clock::time_point started) {
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
  return res;
}

std::string AdbSim::state_json() const {
  nlohmann::json out;
  out["url"] = url();
  out["nodes"] = nlohmann::json::array();
  for (const auto& n : nodes()) {
    out["nodes"].push_back(node_json(n));
  }
  out["rows"] = nlohmann::json::array();
  for (const auto& r : rows()) {
    out["rows"].push_back(row_json(r));
  }
  out["fault"] = fault_json(fault());
  out["endpoints"] = nlohmann::json::array();
  for (std::size_t i = 0, n = endpoints(); i < n; ++i) {
    out["endpoints"].push_back(
        {{"url", url(i)}, {"fault", fault_json(fault(i))}, {"total_requests", total_requests(i)}});
  }
  out["settings"] = settings_json(store_.settings());
  out["total_requests"] = total_requests();
  return out.dump();
}

}  // namespace pha::sim
