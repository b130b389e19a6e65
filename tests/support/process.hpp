#pragma once
// Starts a real program as a child process with a given environment and
// working directory, feeds nothing to stdin, and collects stdout and stderr.
// Every wait is bounded by a timeout.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace pha::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  long max_rss_kb = 0;  // the child's peak resident set size
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::vector<std::string> args;           // without argv[0]
  std::map<std::string, std::string> env;  // the whole environment
  std::string cwd;                         // empty: inherit
};

class Process {
 public:
  Process(const std::string& program, const ProcessOptions& options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits until stderr (or stdout) contains `text`; false on timeout or exit.
  bool wait_for_output(const std::string& text,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the exit; kills the child (SIGKILL) after the timeout.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string err_so_far();
  std::string out_so_far();

 private:
  void pump();
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::mutex mutex_;
  std::string out_;
  std::string err_;
  std::thread reader_;
  std::optional<ProcessResult> result_;
};

// Runs to completion.
ProcessResult run_process(const std::string& program, const ProcessOptions& options,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The TCP ports a process listens on (IPv4 and IPv6), from its socket
// descriptors in /proc/PID/fd and the LISTEN rows of /proc/PID/net/tcp{,6}:
// how a test finds the port of a server it started with port 0 that does not
// say which port it got.
std::vector<int> listening_ports(pid_t pid);

// A fresh, empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes a file below the directory and returns its full path.
  std::string write(const std::string& name, const std::string& content,
                    unsigned mode = 0600) const;

 private:
  std::string path_;
};

}  // namespace pha::test
