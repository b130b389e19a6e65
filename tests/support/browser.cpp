#include "tests/support/browser.hpp"

#include <cstdlib>
#include <unistd.h>
#include <vector>

#include "tests/support/process.hpp"

namespace pha::test {

std::optional<std::string> find_chromium() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("PHA_CHROMIUM"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  }
  candidates.emplace_back("/usr/bin/chromium");
  candidates.emplace_back("/usr/bin/chromium-browser");
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) {
      return c;
    }
  }
  return std::nullopt;
}

RenderResult render_dom(const std::string& url, std::chrono::seconds timeout) {
  RenderResult result;
  const auto chromium = find_chromium();
  if (!chromium) {
    result.error =
        "Chromium not found (looked at $PHA_CHROMIUM, /usr/bin/chromium, "
        "/usr/bin/chromium-browser); install it with: apt-get install --no-install-recommends "
        "chromium";
    return result;
  }
  // Everything the browser writes (profile, caches, crash reports) goes to a
  // directory of our own; the environment is minimal so that the user's
  // settings and session bus do not leak in.
  const TempDir home;
  ProcessOptions options;
  options.env = {{"PATH", "/usr/bin:/bin"},
                 {"HOME", home.path()},
                 {"XDG_CONFIG_HOME", home.path() + "/config"},
                 {"XDG_CACHE_HOME", home.path() + "/cache"},
                 {"LANG", "C.UTF-8"},
                 {"TZ", "UTC"}};
  options.args = {
      "--headless=new",
      // Root (CI containers) cannot use the setuid/namespace sandbox.
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-extensions",
      "--disable-sync",
      "--mute-audio",
      "--user-data-dir=" + home.path() + "/profile",
      // Timers run on virtual time and the DOM is dumped when 10 s of it have
      // passed; virtual time stands still while a fetch is in flight.
      "--virtual-time-budget=10000",
      "--dump-dom",
      url,
  };
  const auto r = run_process(*chromium, options, timeout);
  result.dom = r.out;
  if (r.timed_out) {
    result.error = "chromium did not finish within " + std::to_string(timeout.count()) + " s";
  } else if (r.exit_code != 0) {
    result.error = "chromium exited with status " + std::to_string(r.exit_code);
  } else if (r.out.find("<html") == std::string::npos) {
    result.error = "chromium printed no DOM";
  } else {
    result.ok = true;
    return result;
  }
  // The end of stderr says why; the start is mostly D-Bus noise.
  constexpr std::size_t kTail = 4000;
  result.error +=
      "; stderr: " + (r.err.size() > kTail ? r.err.substr(r.err.size() - kTail) : r.err);
  return result;
}

}  // namespace pha::test
