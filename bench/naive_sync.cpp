#include "bench/naive_sync.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <sys/resource.h>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

namespace pha::bench {

namespace {

using nlohmann::json;

struct Reply {
  long status = 0;
  std::string body;
  std::string error;
};

std::size_t append(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One request on a connection of its own, as a script without a session does it.
Reply request(const std::string& method, const std::string& url, const std::string& body,
              const std::vector<std::string>& headers, const std::string& ca_file) {
  Reply r;
  CURL* h = curl_easy_init();
  if (h == nullptr) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* list = nullptr;
  for (const auto& header : headers) {
    list = curl_slist_append(list, header.c_str());
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  if (!ca_file.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_file.c_str());
  }
  if (method == "PUT") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const auto rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    r.error = curl_easy_strerror(rc);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(h);
  return r;
}

double thread_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  const auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1000.0 + static_cast<double>(t.tv_usec) / 1000.0;
  };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

long long as_int(const json& v) {
  if (v.is_string()) {
    return std::stoll(v.get<std::string>());
  }
  return v.is_number() ? static_cast<long long>(std::ceil(v.get<double>())) : 0;
}

}  // namespace

NaiveCycle run_naive_cycle(const NaiveTarget& t) {
  NaiveCycle c;
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_ms();
  const std::vector<std::string> pve_headers = {"Authorization: PVEAPIToken=" + t.token_id + "=" +
                                                t.token_secret};
  const auto fail = [&c](const std::string& what, const Reply& r) {
    if (c.error.empty()) {
      c.error = what + ": " + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error);
    }
  };
  const auto pve_get = [&](const std::string& path) -> json {
    ++c.proxmox_requests;
    const auto r = request("GET", t.proxmox_url + "/api2/json" + path, "", pve_headers, t.ca_file);
    if (r.status != 200) {
      fail("GET " + path, r);
      return nullptr;
    }
    return json::parse(r.body, nullptr, false).value("data", json(nullptr));
  };
  const auto key = "api_key=" + t.api_key;
  const auto adb = [&](const std::string& method, const std::string& path,
                       const std::string& body) -> json {
    ++c.accountdb_requests;
    const auto sep = path.find('?') == std::string::npos ? "?" : "&";
    const auto r = request(method, t.accountdb_url + path + sep + key, body,
                           {"Content-Type: application/json"}, "");
    if (r.status != 200) {
      fail(method + " " + path, r);
      return nullptr;
    }
    return json::parse(r.body, nullptr, false);
  };

  const auto node = std::to_string(t.node_id);
  adb("GET", "/vm-access/node/" + node + "/whitelist/agent", "");
  const auto have = adb("GET", "/proxmox-nodes/agent-vms/" + node, "");
  std::map<long long, long long> row_of;  // vmid -> AccountDB id
  if (have.is_object()) {
    for (const auto& row : have.value("vms", json::array())) {
      row_of[row.value("vmid", 0LL)] = row.value("id", 0LL);
    }
  }
  for (const auto* type : {"qemu", "lxc"}) {
    const auto base = "/nodes/" + t.node + "/" + type;
    const auto list = pve_get(base);
    if (!list.is_array()) {
      continue;
    }
    for (const auto& entry : list) {
      const auto vmid = as_int(entry.value("vmid", json(0)));
      const auto config = pve_get(base + "/" + std::to_string(vmid) + "/config");
      const auto st = pve_get(base + "/" + std::to_string(vmid) + "/status/current");
      if (!st.is_object()) {
        continue;
      }
      const bool running = st.value("status", "") == "running";
      json body = {
          {"vmid", vmid},
          {"name", st.value("name", "VM-" + std::to_string(vmid))},
          {"status", st.value("status", "unknown")},
          {"cpu_cores", as_int(st.value("cpus", json(1)))},
          {"cpu_usage_percent", running ? std::round(st.value("cpu", 0.0) * 1000.0) / 10.0 : 0.0},
          {"memory_mb", st.value("maxmem", 0LL) >> 20},
          {"disk_gb", st.value("maxdisk", 0LL) >> 30},
          {"ip_address", nullptr},
          {"uptime_seconds", st.value("uptime", 0LL)},
          {"proxmox_node", t.node},
          {"template_id", st.contains("template") ? json(1) : json(nullptr)},
          {"notes", config.is_object() ? config.value("description", json(nullptr)) : nullptr}};
      const auto it = row_of.find(vmid);
      const auto id = it == row_of.end() ? -vmid : it->second;
      ++c.writes;
      adb("PUT", "/vms/agent/" + std::to_string(id) + "?node_id=" + node, body.dump());
    }
  }
  c.cpu_ms = thread_cpu_ms() - cpu0;
  c.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  c.ok = c.error.empty();
  return c;
}

}  // namespace pha::bench
