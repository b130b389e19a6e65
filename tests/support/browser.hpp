#pragma once
// A real browser for tests of the status page: headless Chromium (Debian's
// `chromium` package) loads a URL, runs its scripts and prints the DOM as it
// stands afterwards. Timers run on virtual time (--virtual-time-budget), so a
// page that polls every few seconds is rendered in about a second of wall
// time, and the budget bounds how long the page may keep the browser busy.

#include <chrono>
#include <optional>
#include <string>

namespace pha::test {

// The Chromium executable: $PHA_CHROMIUM when set, else the first of
// /usr/bin/chromium, /usr/bin/chromium-browser that is executable.
std::optional<std::string> find_chromium();

struct RenderResult {
  bool ok = false;
  std::string dom;    // the serialized DOM after the page's scripts ran
  std::string error;  // why not ok: no browser, a timeout, the exit status and stderr
};

// Loads `url` in a fresh profile (a temporary directory, removed afterwards)
// and lets the page run for 10 s of virtual time before dumping the DOM.
// `timeout` is wall time; the browser is killed after it.
RenderResult render_dom(const std::string& url,
                        std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace pha::test
