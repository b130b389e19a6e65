#include "tests/sim/pve_control.hpp"

#include <functional>
#include <stdexcept>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/sim/pve_sim.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;

PveHost& host_of(PveSim& sim, const std::string& node) {
  try {
    return sim.host(node);
  } catch (const std::out_of_range&) {
    throw ControlError(404, "no such host: " + node);
  }
}

Fault fault_from(const json& j) {
  Fault f;
  const auto kind = parse_fault_kind(j.value("kind", std::string()));
  if (!kind) {
    throw ControlError(400,
                       "kind must be one of down, hang, slow, reset, truncated, non_json, "
                       "oversized, status, flap, empty_list, drop_entries");
  }
  f.kind = *kind;
  f.path_prefix = j.value("path_prefix", std::string());
  if (j.contains("count") && !j["count"].is_null()) {
    f.count = j["count"].get<std::size_t>();
  }
  f.delay = std::chrono::milliseconds(j.value("delay_ms", 2000LL));
  f.status = j.value("status", 500);
  f.reason = j.value("reason", std::string());
  f.every = j.value("every", std::size_t{1});
  f.oversized_bytes = j.value("oversized_bytes", std::size_t{20} << 20);
  f.drop = j.value("drop", std::size_t{1});
  if (j.contains("drop_vmids")) {
    f.drop_vmids = j["drop_vmids"].get<std::set<int>>();
  }
  return f;
}

json fault_json(const Fault& f) {
  json j = {{"kind", to_string(f.kind)},
            {"path_prefix", f.path_prefix},
            {"delay_ms", f.delay.count()},
            {"status", f.status},
            {"reason", f.reason},
            {"every", f.every},
            {"oversized_bytes", f.oversized_bytes},
            {"drop", f.drop},
            {"drop_vmids", f.drop_vmids}};
  if (f.count) {
    j["count"] = *f.count;
  }
  return j;
}

std::optional<std::string> optional_string(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) {
    return std::nullopt;
  }
  return j[key].get<std::string>();
}

Guest guest_from(PveSim& sim, const json& j) {
  Guest g;
  g.vmid = j.value("vmid", sim.cluster().next_vmid());
  g.node = j.value("node", sim.node_names().front());
  const auto type = parse_guest_type(j.value("type", std::string("qemu")));
  const auto status = parse_guest_status(j.value("status", std::string("running")));
  if (!type || !status) {
    throw ControlError(400, "type must be qemu or lxc; status running, stopped or paused");
  }
  g.type = *type;
  g.status = *status;
  g.name = optional_string(j, "name");
  g.cpus = j.value("cpus", 1.0);
  g.maxmem = j.value("maxmem", 1LL << 30);
  g.maxdisk = j.value("maxdisk", 32LL << 30);
  g.mem = g.status == GuestStatus::stopped ? 0 : j.value("mem", g.maxmem / 4);
  g.cpu = g.status == GuestStatus::stopped ? 0 : j.value("cpu", 0.05);
  g.template_ = j.value("template", false);
  g.tags = j.value("tags", std::string());
  g.lock = j.value("lock", std::string());
  g.pool = j.value("pool", std::string());
  g.description = optional_string(j, "description");
  g.agent_configured = j.value("agent_configured", false);
  g.agent_running = j.value("agent_running", g.agent_configured);
  g.net_rate = 1000;
  g.disk_rate = 4000;
  return g;
}

// The power and life-cycle actions, which leave tasks by "user" (default root@pam).
std::optional<bool> task_action(PveCluster& c, int vmid, const std::string& action, const json& j) {
  const auto user = j.value("user", kRootUser);
  if (action == "start") {
    return c.start(vmid, user);
  }
  if (action == "stop") {
    return c.stop(vmid, user);
  }
  if (action == "shutdown") {
    return c.shutdown(vmid, user);
  }
  if (action == "reboot") {
    return c.reboot(vmid, user);
  }
  if (action == "pause") {
    return c.pause(vmid, user);
  }
  if (action == "resume") {
    return c.resume(vmid, user);
  }
  if (action == "poweroff") {
    return c.power_off(vmid);  // from inside the guest, or a crash: no task
  }
  if (action == "destroy") {
    return c.destroy(vmid, user);
  }
  if (action == "delete") {
    // A running guest is stopped first, as one must before destroying it.
    const auto g = c.guest(vmid);
    return g && (g->status == GuestStatus::stopped || c.stop(vmid, user)) && c.destroy(vmid, user);
  }
  if (action == "clone") {
    return c.clone(vmid, j.value("newid", c.next_vmid()), j.value("node", std::string()),
                   optional_string(j, "name"), user);
  }
  if (action == "migrate") {
    return c.migrate(vmid, j.value("node", std::string()), user);
  }
  return std::nullopt;
}

// rename and description: the synchronous PUT (no task), or with "async":
// true the POST of a VM's config, which leaves a qmconfig task.
bool config_action(PveCluster& c, int vmid, const json& j, const std::function<bool()>& change) {
  if (j.value("async", false)) {
    const auto g = c.guest(vmid);
    return g && g->type == GuestType::qemu && change() &&
           c.config_task(vmid, j.value("user", kRootUser));
  }
  return change();
}

void guest_action(PveSim& sim, int vmid, const std::string& action, const json& j) {
  auto& c = sim.cluster();
  bool done = false;
  if (const auto tasked = task_action(c, vmid, action, j)) {
    done = *tasked;
  } else if (action == "rename") {
    done = config_action(c, vmid, j, [&] { return c.rename(vmid, optional_string(j, "name")); });
  } else if (action == "usage") {
    std::optional<double> cpu;
    std::optional<long long> mem;
    if (j.contains("cpu")) {
      cpu = j["cpu"].get<double>();
    }
    if (j.contains("mem")) {
      mem = j["mem"].get<long long>();
    }
    done = c.set_usage(vmid, cpu, mem);
  } else if (action == "agent") {
    const bool running = j.value("running", true);
    done = c.set_agent(vmid, j.value("configured", running), running);
  } else if (action == "description") {
    done = config_action(
        c, vmid, j, [&] { return c.set_description(vmid, optional_string(j, "description")); });
  } else if (action == "tags") {
    done = c.set_tags(vmid, j.value("tags", std::string()));
  } else if (action == "lock") {
    done = c.set_lock(vmid, j.value("lock", std::string()));
  } else if (action == "pool") {
    done =
        c.set_pool(vmid, j.contains("pool") && !j["pool"].is_null() ? j["pool"].get<std::string>()
                                                                    : std::string());
  } else {
    throw ControlError(404, "no such action: " + action);
  }
  if (!done) {
    throw ControlError(404, "guest " + std::to_string(vmid) + ": " + action + " not possible");
  }
}

// {"node", "type", "id", "user", "starttime", "endtime", "status", "running"}
Task task_from(PveSim& sim, const json& j) {
  Task t;
  t.node = j.value("node", sim.node_names().front());
  t.type = j.value("type", std::string());
  t.id = j.contains("id") && j["id"].is_number() ? std::to_string(j["id"].get<long long>())
                                                 : j.value("id", std::string());
  t.user = j.value("user", kRootUser);
  t.starttime = j.value("starttime", 0LL);
  if (t.type.empty() || t.type.find_first_of(": /") != std::string::npos ||
      t.id.find_first_of(": /") != std::string::npos) {
    throw ControlError(400,
                       "a task is {\"type\": \"qmigrate\", \"id\", \"node\", \"user\", "
                       "\"status\", \"starttime\", \"endtime\", \"running\"}");
  }
  if (!j.value("running", false)) {
    t.endtime = j.value("endtime", t.starttime == 0 ? sim.cluster().now() : t.starttime);
    t.status = j.value("status", std::string("OK"));
  }
  return t;
}

json task_json(const Task& t) {
  json j = {{"upid", upid_of(t)}, {"node", t.node}, {"type", t.type},
            {"id", t.id},         {"user", t.user}, {"starttime", t.starttime}};
  if (t.endtime) {
    j["endtime"] = *t.endtime;
    j["status"] = t.status;
  }
  return j;
}

// {"path", "role", "privileges": [...], "propagate"}
Acl acl_from(const json& j) {
  if (!j.is_object() || !j.contains("path")) {
    throw ControlError(400, "an ACL entry is {\"path\", \"role\", \"privileges\", \"propagate\"}");
  }
  Acl a;
  a.path = j["path"].get<std::string>();
  a.role = j.value("role", std::string());
  a.privileges = j.value("privileges", std::set<std::string>{});
  a.propagate = j.value("propagate", true);
  if (!a.path.starts_with("/")) {
    throw ControlError(400, "an ACL path starts with /: " + a.path);
  }
  return a;
}

json acl_json(const Acl& a) {
  return {
      {"path", a.path}, {"role", a.role}, {"privileges", a.privileges}, {"propagate", a.propagate}};
}

// What a user or token holds: its ACL entries (a token's privileges on / as
// an entry on /); 404 for a token the cluster does not have.
json acls_of(const PveCluster& c, const std::string& subject) {
  json out = json::array();
  if (subject.find('!') != std::string::npos) {
    const auto t = c.token(subject);
    if (!t) {
      throw ControlError(404, "no such token: " + subject);
    }
    if (!t->privileges.empty()) {
      out.push_back(acl_json({.path = "/", .privileges = t->privileges}));
    }
    for (const auto& a : t->acls) {
      out.push_back(acl_json(a));
    }
    return json{{"subject", subject}, {"privsep", t->privsep}, {"acls", out}};
  }
  const auto u = c.user(subject);
  if (!u || !u->acls) {
    return json{{"subject", subject}, {"acls", nullptr}};  // every privilege
  }
  for (const auto& a : *u->acls) {
    out.push_back(acl_json(a));
  }
  return json{{"subject", subject}, {"acls", out}};
}

}  // namespace

PveControlApi::PveControlApi(PveSim& sim) : sim_(sim) {
  auto& s = server_;
  s.get("/control/state", [this](const httplib::Request&) {
    json hosts = json::object();
    for (const auto& n : sim_.node_names()) {
      auto& h = sim_.host(n);
      const auto f = h.fault();
      hosts[n] = {{"url", h.url()}, {"down", h.down()}, {"requests", h.total_requests()}};
      if (f) {
        hosts[n]["fault"] = fault_json(*f);
      }
    }
    auto state = json::parse(sim_.cluster().snapshot_json());
    state["hosts"] = hosts;
    return state;
  });
  s.get(R"(/control/hosts/([^/]+)/counts)", [this](const httplib::Request& req) {
    auto& h = host_of(sim_, req.matches[1]);
    json requests = json::array();
    for (const auto& r : h.requests()) {
      requests.push_back({{"method", r.method},
                          {"path", r.path},
                          {"query", r.query},
                          {"status", r.status},
                          {"proxied_from", r.proxied_from}});
    }
    return json{{"total", h.total_requests()}, {"counts", h.counts()}, {"requests", requests}};
  });
  s.post(R"(/control/hosts/([^/]+)/counts/reset)", [this](const httplib::Request& req) {
    host_of(sim_, req.matches[1]).reset_counts();
    return json{{"ok", true}};
  });
  s.post(R"(/control/hosts/([^/]+)/fault)", [this](const httplib::Request& req) {
    host_of(sim_, req.matches[1]).set_fault(fault_from(control_object(req)));
    return json{{"ok", true}};
  });
  s.del(R"(/control/hosts/([^/]+)/fault)", [this](const httplib::Request& req) {
    host_of(sim_, req.matches[1]).clear_fault();
    return json{{"ok", true}};
  });
  s.post("/control/guests", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    auto g = guest_from(sim_, j);
    const int vmid = g.vmid;
    try {
      if (j.value("silent", false)) {
        sim_.cluster().add_guest(std::move(g));
      } else {
        sim_.cluster().create(std::move(g), j.value("user", kRootUser));
      }
    } catch (const std::invalid_argument& e) {
      throw ControlError(400, e.what());
    }
    return json{{"ok", true}, {"vmid", vmid}};
  });
  s.post(R"(/control/guests/(\d+)/([a-z]+))", [this](const httplib::Request& req) {
    guest_action(sim_, std::stoi(req.matches[1]), req.matches[2], control_object(req));
    return json{{"ok", true}};
  });
  s.get("/control/tasks", [this](const httplib::Request&) {
    json out = json::array();
    for (const auto& t : sim_.cluster().tasks()) {
      out.push_back(task_json(t));
    }
    return json{{"tasks", out}, {"broadcast_lag", sim_.cluster().task_broadcast_lag().count()}};
  });
  s.post("/control/tasks", [this](const httplib::Request& req) {
    try {
      return json{{"upid", sim_.cluster().add_task(task_from(sim_, control_object(req)))}};
    } catch (const std::invalid_argument& e) {
      throw ControlError(404, e.what());
    }
  });
  s.post("/control/tasks/end", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    if (!sim_.cluster().end_task(j.value("upid", std::string()),
                                 j.value("status", std::string("OK")))) {
      throw ControlError(404, "no running task " + j.value("upid", std::string()));
    }
    return json{{"ok", true}};
  });
  s.put("/control/tasks/lag", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    sim_.cluster().set_task_broadcast_lag(std::chrono::seconds(j.value("seconds", 0LL)));
    return json{{"ok", true}, {"broadcast_lag", j.value("seconds", 0LL)}};
  });
  s.get(R"(/control/acls/([^/]+))",
        [this](const httplib::Request& req) { return acls_of(sim_.cluster(), req.matches[1]); });
  s.put(R"(/control/acls/([^/]+))", [this](const httplib::Request& req) {
    const auto body = control_body(req);
    if (!body.is_array()) {
      throw ControlError(400, "the body is a JSON array of ACL entries");
    }
    std::vector<Acl> acls;
    for (const auto& a : body) {
      acls.push_back(acl_from(a));
    }
    if (!sim_.cluster().set_acls(req.matches[1], std::move(acls))) {
      throw ControlError(404, "no such token: " + std::string(req.matches[1]));
    }
    return acls_of(sim_.cluster(), req.matches[1]);
  });
  s.post(R"(/control/acls/([^/]+))", [this](const httplib::Request& req) {
    if (!sim_.cluster().add_acl(req.matches[1], acl_from(control_object(req)))) {
      throw ControlError(404, "no such token: " + std::string(req.matches[1]));
    }
    return acls_of(sim_.cluster(), req.matches[1]);
  });
  s.del(R"(/control/acls/([^/]+))", [this](const httplib::Request& req) {
    const auto path = req.get_param_value("path");
    if (path.empty()) {
      throw ControlError(400, "which entries: ?path=/vms/100");
    }
    if (!sim_.cluster().remove_acls(req.matches[1], path)) {
      throw ControlError(404, "no ACL entry on " + path + " for " + std::string(req.matches[1]));
    }
    return acls_of(sim_.cluster(), req.matches[1]);
  });
  s.put(R"(/control/roles/([^/]+))", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    sim_.cluster().set_role(req.matches[1], j.value("privileges", std::set<std::string>{}));
    return json{{"ok", true}};
  });
  s.del(R"(/control/roles/([^/]+))", [this](const httplib::Request& req) {
    if (!sim_.cluster().remove_role(req.matches[1])) {
      throw ControlError(404, "no such role: " + std::string(req.matches[1]));
    }
    return json{{"ok", true}};
  });
  s.post("/control/users", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    User u;
    u.userid = j.value("userid", std::string());
    if (u.userid.find('@') == std::string::npos) {
      throw ControlError(400, "a user is {\"userid\": \"USER@REALM\", ...}");
    }
    u.password = j.value("password", std::string());
    u.enabled = j.value("enabled", true);
    u.totp = optional_string(j, "totp");
    if (j.contains("acls") && !j["acls"].is_null()) {
      u.acls = std::vector<Acl>{};
      for (const auto& a : j["acls"]) {
        u.acls->push_back(acl_from(a));
      }
    }
    sim_.cluster().add_user(std::move(u));
    return json{{"ok", true}};
  });
  s.post("/control/clock/advance", [this](const httplib::Request& req) {
    const auto j = control_object(req);
    sim_.cluster().advance(std::chrono::seconds(j.value("seconds", 0LL)));
    return json{{"ok", true}, {"now", sim_.cluster().now()}};
  });
  s.post(R"(/control/nodes/([^/]+)/(online|offline))", [this](const httplib::Request& req) {
    try {
      sim_.cluster().set_node_online(req.matches[1], req.matches[2] == "online");
    } catch (const std::invalid_argument& e) {
      throw ControlError(404, e.what());
    }
    return json{{"ok", true}};
  });
}

PveControlApi::~PveControlApi() {
  stop();
}

}  // namespace pha::sim
