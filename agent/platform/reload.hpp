#pragma once
// `systemctl reload` with the agent's own verdict. The unit's ExecReload=
// runs `proxmox-host-agent --reload $MAINPID`, which sends SIGHUP and waits
// until the agent has recorded what it did with it in
// $RUNTIME_DIRECTORY/reload.json: applied, applied but for the start-only
// settings that changed (they wait for a restart), or refused with the
// agent's errors (the old settings stay).
//
// The agent reads the files itself, with its own credentials: the verdict is
// the one that counts, where a separate --check-config could not read a
// LoadCredential= secret (systemd does not mount credentials for
// ExecReload= in a sandboxed unit, systemd issue 35227).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace pha {

struct ReloadVerdict {
  std::uint64_t generation = 0;  // 0 at start, one more per SIGHUP
  bool applied = true;
  std::vector<std::string> errors;  // why it was refused, file and line included
  // Applied, except these settings: they changed but only a start applies
  // them, and they keep their running value until then (docs/settings.md "Reload").
  std::vector<std::string> restart_needed;
};

std::string verdict_json(const ReloadVerdict& v);
// nullopt for anything but a verdict_json() text (one without
// restart_needed, as an older agent writes it, has none).
std::optional<ReloadVerdict> parse_verdict(std::string_view text);

// reload.json in the first directory of $RUNTIME_DIRECTORY (systemd sets it
// for RuntimeDirectory=), or nullopt where there is none.
std::optional<std::string> reload_verdict_path(const char* runtime_directory);

// The agent's side: one verdict at start, then one per SIGHUP. Without a
// path it records nothing. A write that fails is logged, never fatal.
class ReloadRecorder {
 public:
  explicit ReloadRecorder(std::optional<std::string> path);
  void started();
  void reloaded(bool applied, std::vector<std::string> errors,
                std::vector<std::string> restart_needed = {});

 private:
  void write(const ReloadVerdict& v);
  std::optional<std::string> path_;
  std::uint64_t generation_ = 0;
};

// The ExecReload= side: what became of the request, and what to print on
// stderr (main maps the outcome to the exit code).
struct ReloadRequest {
  enum class Outcome {
    applied,  // the agent applied the new settings
    partial,  // it applied them except start-only ones, which wait for a restart
    refused,  // the agent refused them and kept the old ones
    failed,   // no agent to ask, or no answer in time
  };
  Outcome outcome = Outcome::applied;
  std::string message;
};
ReloadRequest request_reload(pid_t pid, const std::optional<std::string>& path,
                             std::chrono::milliseconds timeout);

}  // namespace pha
