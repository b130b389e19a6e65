// The status page in a real browser: an in-process server answers `/` with the
// embedded page and `/status` with canned JSON (or an error), headless Chromium
// runs the page's scripts, and the tests read the DOM it leaves.

#include "agent/http/status_page.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"
#include "tests/net/loopback.hpp"
#include "tests/support/browser.hpp"

namespace {

using nlohmann::json;

constexpr long kNow = 1'700'000'000;
constexpr const char* kHostile = R"(<img src=x onerror="document.body.dataset.pwned=1">)";
constexpr const char* kHostileEscaped =
    R"(&lt;img src=x onerror="document.body.dataset.pwned=1"&gt;)";

json host(const std::string& url, const std::string& status, const std::string& circuit,
          long failures, long consecutive, const json& last_error) {
  return {{"url", url},
          {"source", "config"},
          {"status", status},
          {"circuit", circuit},
          {"response_time_ms", nullptr},
          {"failure_count", failures},
          {"consecutive_failures", consecutive},
          {"last_seen", kNow - 620},
          {"last_error", last_error},
          {"score", nullptr}};
}

json entry(const std::string& status, const std::string& message, long ago) {
  return {{"status", status}, {"message", message}, {"timestamp", kNow - ago}};
}

// Distinctive values in every section, hostile strings in two of them.
json canned_status() {
  json pve_a = host("https://pve-a.test:8006", "unhealthy", "open", 17, 5,
                    std::string(kHostile) + "connect timeout");
  pve_a["node_name"] = "pve-a";
  json pve_b = host("https://pve-b.test:8006", "healthy", "closed", 0, 0, nullptr);
  pve_b.update({{"source", "discovered"},
                {"response_time_ms", 42.7},
                {"last_seen", kNow - 12},
                {"score", 0.93},
                {"node_name", "pve-node-7"}});
  json adb_1 = host("https://adb-1.test/api", "unhealthy", "half_open", 4, 2, "HTTP 503");
  adb_1.update({{"priority", 1}, {"weight", 10}, {"in_flight", 0}, {"response_time_ms", 812}});
  json adb_2 = host("https://adb-2.test/api", "healthy", "closed", 0, 0, nullptr);
  adb_2.update({{"priority", 2}, {"weight", 20}, {"in_flight", 1}, {"response_time_ms", 35}});
  return {
      {"timestamp", kNow},
      {"agent",
       {{"version", "9.8.7-test"},
        {"node", "pve-node-7"},
        {"started_at", kNow - 90000},
        {"uptime_seconds", 90000},
        {"dry_run", false}}},
      {"current", entry("warning", "Proxmox failover to pve-b", 300)},
      {"history",
       {entry("ok", "history-one first sync done", 3600),
        entry("error", std::string("history-two pve-a down ") + kHostile, 600),
        entry("warning", "Proxmox failover to pve-b", 300)}},
      {"proxmox",
       {{"host", "https://pve-b.test:8006"},
        {"node", "pve-node-7"},
        {"connected", true},
        {"primary", "https://pve-a.test:8006"},
        {"preferred", nullptr},
        {"redundancy", "dual"},
        {"degraded", true},
        {"hosts", {pve_a, pve_b}}}},
      {"accountdb",
       {{"url", "https://adb-2.test/api"},
        {"node_id", 12},
        {"connected", true},
        {"owner_id", nullptr},
        {"strategy", "priority"},
        {"endpoints", {adb_1, adb_2}}}},
      {"sync",
       {{"last_sync_time", kNow - 12},
        {"next_sync_time", kNow + 48},
        {"update_interval", 60},
        {"last_attempt_time", kNow - 12},
        {"cycle_count", 1234},
        {"consecutive_failures", 0},
        {"is_syncing", false},
        {"last_result",
         {{"status", "ok"},
          {"message", "sync complete"},
          {"duration_ms", 1534},
          {"created", 31},
          {"updated", 52},
          {"unchanged", 117},
          {"filtered", 93},
          {"marked_missing", 24},
          {"errors", 7},
          {"total_proxmox_vms", 136}}},
        {"connection_health",
         {{"last_successful_call", kNow - 12},
          {"consecutive_failures", 0},
          {"total_calls", 5012},
          {"total_failures", 23},
          {"average_response_time_ms", nullptr}}}}},
      {"whitelist",
       {{"count", 4321},
        {"enabled", true},
        {"last_updated", kNow - 240},
        {"age_seconds", 240},
        {"stale", false},
        {"source", "accountdb"}}},
  };
}

// What /status answers: each request takes the next of `answers`, the last
// one repeating. Records the Authorization headers it saw.
struct StatusServer {
  struct Answer {
    int status;
    std::string body;
  };
  explicit StatusServer(std::vector<Answer> answers_in) : answers(std::move(answers_in)) {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(pha::http::status_page_html()), "text/html; charset=utf-8");
    });
    server.Get("/status", [this](const httplib::Request& req, httplib::Response& res) {
      std::size_t n = 0;
      {
        std::lock_guard lock(mutex);
        n = authorizations.size();
        authorizations.push_back(req.get_header_value("Authorization"));
      }
      const auto& a = answers[std::min(n, answers.size() - 1)];
      res.status = a.status;
      res.set_content(a.body, "application/json");
    });
    // Stores a token the way the page's form does, then opens the page.
    server.Get("/seed-token", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(
          "<!doctype html><script>sessionStorage.setItem('pha-status-token','s3cret-token');"
          "location.replace('./');</script>",
          "text/html");
    });
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex);
    return authorizations;
  }

  httplib::Server server;
  std::vector<Answer> answers;
  std::mutex mutex;
  std::vector<std::string> authorizations;
};

// The element whose start tag carries id="<id>", from '<' to its end tag.
std::string element(const std::string& dom, const std::string& id) {
  const auto at = dom.find(" id=\"" + id + "\"");
  REQUIRE_MESSAGE(at != std::string::npos, "no element with id " << id);
  const auto start = dom.rfind('<', at);
  const auto name_end = dom.find_first_of(" >", start);
  const auto tag = dom.substr(start + 1, name_end - start - 1);
  // The next start tag of the same name (not one that merely begins with it).
  const auto next_open = [&](std::size_t from) {
    auto o = dom.find("<" + tag, from);
    while (o != std::string::npos && dom.find_first_of(" >", o) != o + tag.size() + 1) {
      o = dom.find("<" + tag, o + 1);
    }
    return o;
  };
  int depth = 0;
  for (auto p = start; p < dom.size();) {
    const auto open = next_open(p);
    const auto close = dom.find("</" + tag + ">", p);
    REQUIRE_MESSAGE(close != std::string::npos, "element " << id << " is not closed");
    if (open != std::string::npos && open < close) {
      ++depth;
      p = open + 1;
    } else if (--depth == 0) {
      return dom.substr(start, close + tag.size() + 3 - start);
    } else {
      p = close + 1;
    }
  }
  FAIL("unreachable");
  return {};
}

std::string start_tag(const std::string& html) {
  return html.substr(0, html.find('>') + 1);
}

// The text of an HTML fragment: tags dropped, entities left as they are.
std::string text(const std::string& html) {
  std::string out;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<') {
      in_tag = true;
    } else if (c == '>') {
      in_tag = false;
    } else if (!in_tag) {
      out += c;
    }
  }
  return out;
}

// The <tr>...</tr> rows of a table body.
std::vector<std::string> rows(const std::string& tbody) {
  std::vector<std::string> out;
  for (auto p = tbody.find("<tr"); p != std::string::npos; p = tbody.find("<tr", p + 1)) {
    out.push_back(tbody.substr(p, tbody.find("</tr>", p) + 5 - p));
  }
  return out;
}

std::string render(const pha::test::HttplibRunner& runner, const std::string& path = "/") {
  REQUIRE_MESSAGE(pha::test::find_chromium().has_value(),
                  "Chromium is required for the browser tests and was not found: "
                  "apt-get install --no-install-recommends chromium (or set PHA_CHROMIUM)");
  const auto r = pha::test::render_dom(runner.url(path));
  REQUIRE_MESSAGE(r.ok, r.error);
  return r.dom;
}

std::string body_tag(const std::string& dom) {
  return start_tag(dom.substr(dom.find("<body")));
}

bool hidden(const std::string& dom, const std::string& id) {
  return start_tag(element(dom, id)).find(" hidden") != std::string::npos;
}

}  // namespace

TEST_CASE("the page is small and self-contained and is embedded byte for byte") {
  const auto page = pha::http::status_page_html();
  CHECK(page.size() < 24u * 1024u);
  CHECK(page.find("http://") == std::string_view::npos);
  CHECK(page.find("https://") == std::string_view::npos);
  CHECK(page.find("<link") == std::string_view::npos);
  CHECK(page.find(" src=") == std::string_view::npos);
  CHECK(page.find("@import") == std::string_view::npos);
  CHECK(page.find("url(") == std::string_view::npos);
  // A relative URL, so that the page works behind a path prefix.
  CHECK(page.find("fetch(\"status\"") != std::string_view::npos);
  CHECK(page.find("innerHTML") == std::string_view::npos);
  const auto non_ascii = std::find_if(page.begin(), page.end(),
                                      [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  CHECK_MESSAGE(non_ascii == page.end(), "the page is ASCII: use entities and \\u escapes");
  std::ifstream file(PHA_SOURCE_DIR "/agent/http/status_page.html", std::ios::binary);
  std::stringstream source;
  source << file.rdbuf();
  CHECK(source.str() == page);
}

TEST_CASE("the page renders /status with the data as text and refreshes itself") {
  StatusServer s({{200, canned_status().dump()}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);

  CHECK(body_tag(dom).find("data-loaded=\"1\"") != std::string::npos);
  CHECK(start_tag(element(dom, "banner")).find("data-status=\"warning\"") != std::string::npos);
  CHECK(text(element(dom, "state")) == "warning");
  CHECK(text(element(dom, "state-message")) == "Proxmox failover to pve-b");
  CHECK(text(element(dom, "node")) == "pve-node-7");
  CHECK(text(element(dom, "version")) == "9.8.7-test");
  CHECK(hidden(dom, "fetch-error"));
  CHECK(hidden(dom, "auth"));
  CHECK(hidden(dom, "dry-run"));
  CHECK(hidden(dom, "stale"));

  const auto hosts = rows(element(dom, "hosts"));
  REQUIRE(hosts.size() == 2);
  CHECK(hosts[0].find("https://pve-a.test:8006") != std::string::npos);
  CHECK(hosts[0].find("data-in-use") == std::string::npos);
  CHECK(hosts[0].find(kHostileEscaped) != std::string::npos);
  CHECK(hosts[0].find("17 (5 in a row)") != std::string::npos);
  CHECK(hosts[1].find("https://pve-b.test:8006") != std::string::npos);
  CHECK(start_tag(hosts[1]).find("data-in-use=\"1\"") != std::string::npos);
  CHECK(hosts[1].find(">0.93<") != std::string::npos);

  const auto endpoints = rows(element(dom, "endpoints"));
  REQUIRE(endpoints.size() == 2);
  CHECK(endpoints[0].find("https://adb-1.test/api") != std::string::npos);
  CHECK(endpoints[0].find("data-in-use") == std::string::npos);
  CHECK(endpoints[0].find("half_open") != std::string::npos);
  CHECK(endpoints[1].find("https://adb-2.test/api") != std::string::npos);
  CHECK(start_tag(endpoints[1]).find("data-in-use=\"1\"") != std::string::npos);

  // Newest first.
  const auto history = element(dom, "history");
  const auto third = history.find("Proxmox failover to pve-b");
  const auto second = history.find("history-two pve-a down");
  const auto first = history.find("history-one first sync done");
  REQUIRE(third != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(first != std::string::npos);
  CHECK(third < second);
  CHECK(second < first);
  CHECK(history.find(kHostileEscaped) != std::string::npos);
  CHECK(history.find("data-t=\"" + std::to_string(kNow - 600) + "\"") != std::string::npos);

  const auto whitelist = element(dom, "whitelist");
  CHECK(whitelist.find("data-k=\"count\">4321<") != std::string::npos);
  CHECK(whitelist.find("data-k=\"source\">accountdb<") != std::string::npos);

  const auto sync = element(dom, "last-sync");
  for (const auto* count :
       {"data-k=\"created\"><b>31</b>", "data-k=\"updated\"><b>52</b>",
        "data-k=\"unchanged\"><b>117</b>", "data-k=\"marked_missing\"><b>24</b>",
        "data-k=\"filtered\"><b>93</b>", "data-k=\"errors\"><b>7</b>"}) {
    CHECK_MESSAGE(sync.find(count) != std::string::npos, count);
  }
  CHECK(sync.find("data-t=\"" + std::to_string(kNow - 12) + "\"") != std::string::npos);
  CHECK(sync.find("1.53 s") != std::string::npos);

  // The hostile strings stayed text: no element was made of them, no handler ran.
  CHECK(dom.find("<img") == std::string::npos);
  CHECK(dom.find("data-pwned") == std::string::npos);

  // Polled every 5 s of the 10 s of virtual time: more than once, never in a loop.
  const auto seen = s.seen();
  CHECK(seen.size() >= 2);
  CHECK(seen.size() <= 4);
  CHECK(seen.front().empty());
  CHECK(text(element(dom, "updated")).find("updated ") == 0);
}

TEST_CASE("the page shows what the change brake holds and why a read does not count") {
  auto status = canned_status();
  status["sync"]["held"] = {
      {"id", "h0123456789ab"},
      {"since", kNow - 600},
      {"holds",
       {{{"kind", "mark_deleted"},
         {"reason", std::string("the node's read dropped from 12 guests to none ") + kHostile},
         {"vmids", {101, 102}},
         {"planned", 2},
         {"threshold", 3},
         {"rows", 12},
         {"corroborate_after_cycles", 0}}}},
      {"requests", nlohmann::json::array()}};
  status["sync"]["read"] = {{"counts_for_missing", false},
                            {"reason", "the Proxmox user or token lacks VM.Audit on /vms"},
                            {"hidden", nlohmann::json::array()}};
  StatusServer s({{200, status.dump()}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);
  const auto held = text(element(dom, "held"));
  CHECK(held.find("Held by the change brake: 2 deleted marks") != std::string::npos);
  CHECK(held.find("proxmox-host-agent --confirm h0123456789ab") != std::string::npos);
  CHECK(held.find("Gone guests are not counted: the Proxmox user or token lacks VM.Audit") !=
        std::string::npos);
  CHECK(element(dom, "held").find(kHostileEscaped) != std::string::npos);
  CHECK(dom.find("data-pwned") == std::string::npos);
  // Without a hold and with a read that counts, there is nothing to say.
  StatusServer quiet({{200, canned_status().dump()}});
  pha::test::HttplibRunner quiet_runner(quiet.server);
  REQUIRE(quiet_runner.ok());
  CHECK(render(quiet_runner).find(" id=\"held\"") == std::string::npos);
}

TEST_CASE("the page asks for a token when /status answers 401") {
  StatusServer s({{401, R"({"error":"unauthorized","message":"token required"})"}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);

  CHECK_FALSE(hidden(dom, "auth"));
  CHECK(element(dom, "auth").find("type=\"password\"") != std::string::npos);
  CHECK_FALSE(hidden(dom, "fetch-error"));
  CHECK(text(element(dom, "fetch-error")).find("401") != std::string::npos);
  CHECK(body_tag(dom).find("data-loaded") == std::string::npos);
  // It waits for the token instead of polling on.
  CHECK(s.seen().size() == 1);
}

TEST_CASE("the page sends the token kept in sessionStorage as a bearer token") {
  StatusServer s({{200, canned_status().dump()}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner, "/seed-token");

  CHECK(body_tag(dom).find("data-loaded=\"1\"") != std::string::npos);
  const auto seen = s.seen();
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.front() == "Bearer s3cret-token");
}

TEST_CASE("the page says so when /status refuses the stored token with 403") {
  StatusServer s({{403, R"({"error":"forbidden","message":"wrong token"})"}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner, "/seed-token");

  CHECK_FALSE(hidden(dom, "auth"));
  CHECK(text(element(dom, "auth-message")).find("refused") != std::string::npos);
  CHECK(text(element(dom, "fetch-error")).find("403") != std::string::npos);
  CHECK(s.seen() == std::vector<std::string>{"Bearer s3cret-token"});
}

TEST_CASE("the page shows a fetch error when /status answers 500") {
  StatusServer s({{500, R"({"error":"internal","message":"boom"})"}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);

  CHECK_FALSE(hidden(dom, "fetch-error"));
  CHECK(text(element(dom, "fetch-error")).find("HTTP 500") != std::string::npos);
  CHECK(hidden(dom, "auth"));
  CHECK(body_tag(dom).find("data-loaded") == std::string::npos);
  CHECK(text(element(dom, "state")) == "no data");
  // It keeps trying.
  CHECK(s.seen().size() >= 2);
}

TEST_CASE("the page keeps the last data marked stale when a later fetch fails") {
  StatusServer s({{200, canned_status().dump()}, {500, "oops"}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);

  CHECK(body_tag(dom).find("data-stale=\"1\"") != std::string::npos);
  CHECK(text(element(dom, "node")) == "pve-node-7");
  CHECK(rows(element(dom, "hosts")).size() == 2);
  const auto error = text(element(dom, "fetch-error"));
  CHECK(error.find("HTTP 500") != std::string::npos);
  CHECK(error.find("showing data from") != std::string::npos);
  CHECK(text(element(dom, "updated")).find("(stale)") != std::string::npos);
  CHECK_FALSE(hidden(dom, "stale"));
}

TEST_CASE("the page survives a /status of the wrong shape") {
  StatusServer s(
      {{200,
        R"({"current":{"status":7},"history":"x","proxmox":{"hosts":[null,5,{"url":["u"],"source":{}}]},)"
        R"("accountdb":[],"sync":{"last_result":{"errors":"many"}},"whitelist":null})"}});
  pha::test::HttplibRunner runner(s.server);
  REQUIRE(runner.ok());
  const auto dom = render(runner);

  CHECK(body_tag(dom).find("data-loaded=\"1\"") != std::string::npos);
  CHECK(hidden(dom, "fetch-error"));
  CHECK(rows(element(dom, "hosts")).size() == 3);
}

TEST_CASE("the page served by the running agent shows its state hosts endpoints and last sync") {
  pha::test::World w;
  pha::test::RunningAgent agent(w, {{"PROXMOX_DISCOVER_HOSTS", "false"}});
  REQUIRE(agent.wait_cycles(1));
  REQUIRE(pha::test::find_chromium().has_value());
  const auto r = pha::test::render_dom(agent.url() + "/");
  REQUIRE_MESSAGE(r.ok, r.error);
  const auto& dom = r.dom;
  CHECK(body_tag(dom).find("data-loaded=\"1\"") != std::string::npos);
  CHECK(text(element(dom, "state")) == "ok");
  CHECK(text(element(dom, "state-message")) == "in sync");
  CHECK(text(element(dom, "node")) == "pve1");
  CHECK(hidden(dom, "fetch-error"));
  CHECK(hidden(dom, "auth"));
  const auto hosts = rows(element(dom, "hosts"));
  REQUIRE(hosts.size() == 1);
  CHECK(hosts[0].find(w.pve.host("pve1").url()) != std::string::npos);
  CHECK(start_tag(hosts[0]).find("data-in-use=\"1\"") != std::string::npos);
  const auto endpoints = rows(element(dom, "endpoints"));
  REQUIRE(endpoints.size() == 1);
  CHECK(endpoints[0].find(w.adb.url()) != std::string::npos);
  const auto last_sync = element(dom, "last-sync");
  CHECK(last_sync.find("data-k=\"created\"><b>" + std::to_string(w.running.size()) + "</b>") !=
        std::string::npos);
  CHECK(text(element(dom, "history")).find("in sync") != std::string::npos);
  CHECK(element(dom, "whitelist")
            .find("data-k=\"count\">" + std::to_string(w.running.size() + 1) + "<") !=
        std::string::npos);
}

TEST_CASE("the page lists the guests with their reason - a filter from the hash and a detail") {
  pha::test::World w;
  pha::test::RunningAgent agent(w, {{"PROXMOX_DISCOVER_HOSTS", "false"}});
  REQUIRE(agent.wait_cycles(1));
  REQUIRE(pha::test::find_chromium().has_value());
  auto r = pha::test::render_dom(agent.url() + "/");
  REQUIRE_MESSAGE(r.ok, r.error);
  const auto all = rows(element(r.dom, "guests"));
  CHECK(all.size() == w.pve.cluster().guests_on("pve1").size());
  const auto vmid = "data-vmid=\"" + std::to_string(w.stopped) + "\"";
  const auto it = std::find_if(all.begin(), all.end(),
                               [&](const std::string& row) { return row.find(vmid) != row.npos; });
  REQUIRE(it != all.end());
  CHECK(it->find("data-reason=\"stopped\"") != std::string::npos);
  CHECK(it->find("href=\"#vm=" + std::to_string(w.stopped) + "\"") != std::string::npos);
  // The filter box, filled from the hash; and the detail a guest's link opens.
  r = pha::test::render_dom(agent.url() +
                            "/#filter=not_whitelisted&vm=" + std::to_string(w.stopped));
  REQUIRE_MESSAGE(r.ok, r.error);
  const auto filtered = rows(element(r.dom, "guests"));
  CHECK(filtered.size() < all.size());
  for (const auto& row : filtered) {
    CHECK(row.find("data-reason=\"not_whitelisted\"") != std::string::npos);
  }
  CHECK(element(r.dom, "guests").find("data-vmid=\"" + std::to_string(w.outside) + "\"") !=
        std::string::npos);
  CHECK_FALSE(hidden(r.dom, "guest-detail"));
  CHECK(text(element(r.dom, "guest-detail")).find("stopped guests are only created") !=
        std::string::npos);
}

TEST_CASE("the page says the guest list needs the read token when /vms answers 401") {
  pha::test::World w;
  pha::test::RunningAgent agent(w, {{"PROXMOX_DISCOVER_HOSTS", "false"},
                                    {"AGENT_READ_TOKEN", "read-token-0123456789abcdef0123456789"}});
  REQUIRE(agent.wait_cycles(1));
  REQUIRE(pha::test::find_chromium().has_value());
  const auto r = pha::test::render_dom(agent.url() + "/");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(body_tag(r.dom).find("data-loaded=\"1\"") != std::string::npos);  // /status stays open
  CHECK(text(element(r.dom, "guests-message")).find("needs the read token") != std::string::npos);
}
