#pragma once
// The journal's own protocol (docs/packaging.md "Under systemd"). Under systemd, when
// stderr is the journal stream, each event is one journal entry: MESSAGE (the
// line the agent would have written to stderr), PRIORITY, SYSLOG_IDENTIFIER,
// EVENT, and each of the event's fields under its upper-cased key (VMID,
// UPSTREAM, TARGET, CYCLE, REQUEST_ID, ERROR_KIND, ...), every value masked
// like the line.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/platform/logging.hpp"

namespace pha::log {

// JOURNAL_STREAM ("DEV:INODE", set by systemd for a unit whose stderr is the
// journal) names the file with this device and inode. A redirected stderr
// (2>file under a unit) keeps the variable but not the match.
bool journal_stream_matches(std::string_view journal_stream, std::uint64_t dev, std::uint64_t ino);
// Whether this process's stderr is the journal stream it inherited.
bool stderr_is_journal();

// syslog priorities, as sd-daemon.h's SD_* prefixes: debug and trace 7,
// info 6, warning 4, error 3, critical 2.
int syslog_priority(Level level);

// The journal field of an event field's key: upper-cased, other characters
// than A-Z 0-9 _ as _, no leading _ or digit (a "F" before them), at most 64
// characters. "kind" and "host" are ERROR_KIND and TARGET (what they mean in
// the agent's events); a key that would take one of the entry's own fields
// (MESSAGE, PRIORITY, EVENT, ...) gets a "FIELD_" before it.
std::string journal_field_name(std::string_view key);

// The entry of one event, "NAME=value" strings as sd_journal_sendv takes them.
JournalFields journal_entry(Level level, std::string_view event, std::string_view line,
                            const Fields& fields, const std::vector<std::string>& secrets);

// sd_journal_sendv; 0 or a negative errno.
int send_to_journal(const JournalFields& fields);

}  // namespace pha::log
