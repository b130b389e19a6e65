#include "tests/support/process.hpp"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <set>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pha::test {

Process::Process(const std::string& program, const ProcessOptions& options) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : options.env) {
    env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : options.args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);

  pid_ = ::fork();
  if (pid_ < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid_ == 0) {
    // The child starts with no blocked signals whatever the test runner did.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) {
      ::_exit(126);
    }
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  reader_ = std::thread([this] { pump(); });
}

Process::~Process() {
  if (!result_) {
    signal(SIGKILL);
    wait(std::chrono::seconds(10));
  }
  if (reader_.joinable()) {
    reader_.join();
  }
}

void Process::pump() {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) {
      break;
    }
    for (auto& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      const auto n = ::read(p.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(p.fd);
        p.fd = -1;
        --open_fds;
        continue;
      }
      std::lock_guard lock(mutex_);
      (p.fd == out_fd_ ? out_ : err_).append(buf, static_cast<std::size_t>(n));
    }
  }
}

void Process::signal(int sig) {
  if (pid_ > 0 && !result_) {
    ::kill(pid_, sig);
  }
}

std::string Process::err_so_far() {
  std::lock_guard lock(mutex_);
  return err_;
}

std::string Process::out_so_far() {
  std::lock_guard lock(mutex_);
  return out_;
}

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    {
      std::lock_guard lock(mutex_);
      if (err_.find(text) != std::string::npos || out_.find(text) != std::string::npos) {
        return true;
      }
    }
    int status = 0;
    rusage usage{};
    if (!result_ && ::wait4(pid_, &status, WNOHANG, &usage) == pid_) {
      ProcessResult r;
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      r.max_rss_kb = usage.ru_maxrss;
      result_ = r;
    }
    if (result_) {
      std::lock_guard lock(mutex_);
      return err_.find(text) != std::string::npos || out_.find(text) != std::string::npos;
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(5));  // polling interval, bounded by `timeout`
  }
  return false;
}

ProcessResult Process::wait(std::chrono::milliseconds timeout) {
  if (!result_) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    ProcessResult r;
    for (;;) {
      rusage usage{};
      const auto done = ::wait4(pid_, &status, WNOHANG, &usage);
      if (done == pid_) {
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.max_rss_kb = usage.ru_maxrss;
        break;
      }
      if (std::chrono::steady_clock::now() >= end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        r.timed_out = true;
        break;
      }
      std::this_thread::sleep_for(
          std::chrono::milliseconds(5));  // polling interval, bounded by `timeout`
    }
    result_ = r;
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  ProcessResult r = *result_;
  std::lock_guard lock(mutex_);
  r.out = out_;
  r.err = err_;
  return r;
}

ProcessResult run_process(const std::string& program, const ProcessOptions& options,
                          std::chrono::milliseconds timeout) {
  Process p(program, options);
  return p.wait(timeout);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pha-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content,
                           unsigned mode) const {
  const auto full = path_ + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(full).parent_path());
  {
    std::ofstream f(full, std::ios::binary | std::ios::trunc);
    f << content;
  }
  ::chmod(full.c_str(), static_cast<mode_t>(mode));
  return full;
}

std::vector<int> listening_ports(pid_t pid) {
  const auto proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.starts_with("socket:[") && target.ends_with("]")) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  std::vector<int> ports;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      std::istringstream row(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      row >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
          inode;
      const auto colon = local.rfind(':');
      if (state == "0A" && inodes.contains(inode) && colon != std::string::npos) {
        ports.push_back(static_cast<int>(std::stoul(local.substr(colon + 1), nullptr, 16)));
      }
    }
  }
  return ports;
}

}  // namespace pha::test
