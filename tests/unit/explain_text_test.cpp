// --explain's text (agent/app/explain.hpp): every field of /vms/{vmid}, and
// an answer of any shape never crashes it.

#include <doctest/doctest.h>

#include "agent/app/explain.hpp"

using namespace pha;

TEST_CASE("explain text: the fields of a failed write with a pending retry") {
  const auto answer = nlohmann::json::parse(R"({"vmid": 110, "name": "web", "in_proxmox": true,
    "node": "pve1", "accountdb": {"in_accountdb": true, "row_id": 5, "whitelisted": true,
    "kept_out_by": null, "summary": "in AccountDB (row 5); the last write failed",
    "last_write": {"at": 0, "kind": "update", "result": "failed", "reason": "changed: name",
                   "error": "500 boom"},
    "retry": {"pending": true, "at": 60}, "missing": {"reads": 0, "since": null,
    "marked": null, "marked_at": null}, "pending_fields": ["name", "status"]}})");
  const auto text = explain_text(answer);
  CHECK(text.find("VM 110 (web) on pve1") != std::string::npos);
  CHECK(text.find("row id:         5") != std::string::npos);
  CHECK(text.find("1970-01-01 00:00:00 UTC, failed (update: changed: name), error: 500 boom") !=
        std::string::npos);
  CHECK(text.find("retry pending:  yes, next cycle at 1970-01-01 00:01:00 UTC") !=
        std::string::npos);
  CHECK(text.find("waiting to send: name, status") != std::string::npos);
}

TEST_CASE("explain text: answers of the wrong shape are no crash") {
  for (const auto* body : {"{}", "[]", "null", R"({"accountdb": 3})", R"({"accountdb": {}})",
                           R"({"accountdb": {"retry": 1, "missing": [], "last_write": "x",
                              "pending_fields": {"a": 1}}, "vmid": "x", "name": 5})"}) {
    CHECK(!explain_text(nlohmann::json::parse(body)).empty());
  }
}
