#include "agent/platform/journal.hpp"

#include <cstdlib>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

using namespace pha;

namespace {

// Sends every event to a list of entries instead of the journal.
struct JournalCapture {
  std::vector<log::JournalFields> entries;
  explicit JournalCapture(std::vector<std::string> secrets = {},
                          log::Format format = log::Format::text) {
    log::init(
        {log::Level::debug, format, true, std::move(secrets), [this](const log::JournalFields& e) {
           entries.push_back(e);
           return 0;
         }});
  }
  ~JournalCapture() { log::init({}); }
  JournalCapture(const JournalCapture&) = delete;
  JournalCapture& operator=(const JournalCapture&) = delete;

  // The fields of entry `i` by name (the last value of a repeated name).
  std::map<std::string, std::string> fields(std::size_t i = 0) const {
    std::map<std::string, std::string> m;
    for (const auto& f : entries.at(i)) {
      const auto eq = f.find('=');
      m[f.substr(0, eq)] = f.substr(eq + 1);
    }
    return m;
  }
};

}  // namespace

TEST_CASE("journal: JOURNAL_STREAM must name stderr's device and inode") {
  CHECK(log::journal_stream_matches("8:12345", 8, 12345));
  CHECK_FALSE(log::journal_stream_matches("8:12345", 8, 12346));  // stderr redirected
  CHECK_FALSE(log::journal_stream_matches("9:12345", 8, 12345));
  CHECK_FALSE(log::journal_stream_matches("", 8, 12345));
  CHECK_FALSE(log::journal_stream_matches("8", 8, 12345));
  CHECK_FALSE(log::journal_stream_matches("8:", 8, 0));
  CHECK_FALSE(log::journal_stream_matches(":12345", 0, 12345));
  CHECK_FALSE(log::journal_stream_matches("8:12345x", 8, 12345));
  CHECK_FALSE(log::journal_stream_matches("-8:12345", 8, 12345));
  CHECK(log::journal_stream_matches("18446744073709551615:1", 18446744073709551615ULL, 1));
}

TEST_CASE("journal: stderr_is_journal compares JOURNAL_STREAM with this process's stderr") {
  struct stat st {};
  REQUIRE(fstat(STDERR_FILENO, &st) == 0);
  const char* saved = std::getenv("JOURNAL_STREAM");
  const std::string before = saved != nullptr ? saved : "";
  const auto ours = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", ours.c_str(), 1);
  CHECK(log::stderr_is_journal());
  const auto other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  setenv("JOURNAL_STREAM", other.c_str(), 1);
  CHECK_FALSE(log::stderr_is_journal());
  unsetenv("JOURNAL_STREAM");
  CHECK_FALSE(log::stderr_is_journal());
  if (saved != nullptr) {
    setenv("JOURNAL_STREAM", before.c_str(), 1);
  }
}

TEST_CASE("journal: field names are upper-cased keys - kind and host are ERROR_KIND and TARGET") {
  CHECK(log::journal_field_name("vmid") == "VMID");
  CHECK(log::journal_field_name("request_id") == "REQUEST_ID");
  CHECK(log::journal_field_name("upstream") == "UPSTREAM");
  CHECK(log::journal_field_name("target") == "TARGET");
  CHECK(log::journal_field_name("host") == "TARGET");
  CHECK(log::journal_field_name("kind") == "ERROR_KIND");
  CHECK(log::journal_field_name("error_kind") == "ERROR_KIND");
  CHECK(log::journal_field_name("curl-error.x") == "CURL_ERROR_X");
  CHECK(log::journal_field_name("_private") == "F_PRIVATE");
  CHECK(log::journal_field_name("2nd") == "F2ND");
  CHECK(log::journal_field_name("") == "F");
  CHECK(log::journal_field_name("message") == "FIELD_MESSAGE");
  CHECK(log::journal_field_name("priority") == "FIELD_PRIORITY");
  CHECK(log::journal_field_name("event") == "FIELD_EVENT");
  CHECK(log::journal_field_name("syslog_identifier") == "FIELD_SYSLOG_IDENTIFIER");
  CHECK(log::journal_field_name(std::string(100, 'a')) == std::string(64, 'A'));
}

TEST_CASE(
    "journal: one entry per event with MESSAGE - PRIORITY - SYSLOG_IDENTIFIER - EVENT and the "
    "fields") {
  JournalCapture j;
  log::warn("sync_request_failed", "VMID 123 (update): timeout",
            {{"vmid", 123},
             {"upstream", "accountdb"},
             {"host", "https://adb1"},
             {"kind", "timeout"},
             {"request_id", "00ff00ff00ff00ff"},
             {"note", "two words"}});
  REQUIRE(j.entries.size() == 1);
  CHECK(j.entries[0].front() ==
        "MESSAGE=sync_request_failed: VMID 123 (update): timeout vmid=123 upstream=accountdb "
        "host=https://adb1 kind=timeout request_id=00ff00ff00ff00ff note=\"two words\"");
  const auto f = j.fields();
  CHECK(f.at("PRIORITY") == "4");
  CHECK(f.at("SYSLOG_IDENTIFIER") == "proxmox-host-agent");
  CHECK(f.at("EVENT") == "sync_request_failed");
  CHECK(f.at("VMID") == "123");
  CHECK(f.at("UPSTREAM") == "accountdb");
  CHECK(f.at("TARGET") == "https://adb1");
  CHECK(f.at("ERROR_KIND") == "timeout");
  CHECK(f.at("REQUEST_ID") == "00ff00ff00ff00ff");
  CHECK(f.at("NOTE") == "two words");  // a string as it is, not quoted
}

TEST_CASE("journal: the priority follows the level") {
  JournalCapture j;
  log::critical("a", "m");
  log::error("b", "m");
  log::info("c", "m");
  log::debug("d", "m");
  log::trace("e", "below the level");
  REQUIRE(j.entries.size() == 4);
  CHECK(j.fields(0).at("PRIORITY") == "2");
  CHECK(j.fields(1).at("PRIORITY") == "3");
  CHECK(j.fields(2).at("PRIORITY") == "6");
  CHECK(j.fields(3).at("PRIORITY") == "7");
}

TEST_CASE("journal: a secret is masked in every field - not only MESSAGE") {
  const std::string secret = "configured-secret-value";
  JournalCapture j({secret});
  log::error("failover", "failed over after " + secret,
             {{"target", "https://adb/x?api_key=LEAKED-KEY"},
              {"error", "login with " + secret + " refused"},
              {"vmid", secret},
              {"details", {{"nested", secret}}},
              {"cookie", "PVEAuthCookie=PVE:root@pam:65A1::sig"},
              {"authorization", "PVEAPIToken=a@pve!t=1111-2222"}});
  REQUIRE(j.entries.size() == 1);
  for (const auto& field : j.entries[0]) {
    CAPTURE(field);
    CHECK(field.find(secret) == std::string::npos);
    CHECK(field.find("LEAKED-KEY") == std::string::npos);
    CHECK(field.find("65A1::sig") == std::string::npos);
    CHECK(field.find("1111-2222") == std::string::npos);
  }
  const auto f = j.fields();
  CHECK(f.at("TARGET") == "https://adb/x?api_key=***");
  CHECK(f.at("ERROR") == "login with *** refused");
  CHECK(f.at("VMID") == "***");
  CHECK(f.at("DETAILS") == "{\"nested\":\"***\"}");
  CHECK(f.at("COOKIE") == "PVEAuthCookie=***");
}

TEST_CASE("journal: a secret set at a reload is masked from then on") {
  JournalCapture j;
  log::info("a", "m", {{"token", "rotated-secret-1"}});
  log::set_secrets({"rotated-secret-1"});
  log::info("b", "m", {{"token", "rotated-secret-1"}});
  REQUIRE(j.entries.size() == 2);
  CHECK(j.fields(0).at("TOKEN") == "rotated-secret-1");
  CHECK(j.fields(1).at("TOKEN") == "***");
}

TEST_CASE("journal: LOG_FORMAT=json makes MESSAGE the JSON line - the fields are the same") {
  JournalCapture j({}, log::Format::json);
  log::info("guest_written", "VMID 7 updated", {{"vmid", 7}});
  REQUIRE(j.entries.size() == 1);
  const auto f = j.fields();
  const auto line = nlohmann::json::parse(f.at("MESSAGE"));
  CHECK(line["event"] == "guest_written");
  CHECK(line["vmid"] == 7);
  CHECK(f.at("VMID") == "7");
}

TEST_CASE("scoped fields: every event of the thread carries them until the scope ends") {
  JournalCapture j;
  {
    const log::ScopedFields cycle({{"cycle", 42}});
    log::info("a", "in the cycle", {{"vmid", 1}});
    {
      const log::ScopedFields inner({{"vmid", 2}});
      CHECK(log::scoped_fields().size() == 2);
      log::info("b", "nested");
    }
    CHECK(log::scoped_fields().size() == 1);
  }
  log::info("c", "after the cycle");
  CHECK(log::scoped_fields().empty());
  REQUIRE(j.entries.size() == 3);
  CHECK(j.fields(0).at("CYCLE") == "42");
  CHECK(j.fields(0).at("VMID") == "1");
  CHECK(j.fields(1).at("CYCLE") == "42");
  CHECK(j.fields(1).at("VMID") == "2");
  CHECK(j.fields(2).count("CYCLE") == 0);
}

TEST_CASE("scoped fields: text lines carry them too") {
  std::vector<std::string> lines;
  log::init({log::Level::info, log::Format::text, false, {}});
  log::capture_for_test(&lines);
  {
    const log::ScopedFields cycle({{"cycle", 3}});
    log::info("sync_cycle", "synced");
  }
  log::capture_for_test(nullptr);
  log::init({});
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].ends_with(" info sync_cycle: synced cycle=3"));
}
