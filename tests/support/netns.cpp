#include "tests/support/netns.hpp"

#include <atomic>
#include <exception>
#include <fcntl.h>
#include <sched.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/process.hpp"

namespace pha::test {

namespace {

constexpr const char* kIp = "/usr/sbin/ip";

ProcessResult ip(std::vector<std::string> args) {
  return run_process(kIp, {std::move(args), {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, ""},
                     std::chrono::seconds(10));
}

void require_ip(std::vector<std::string> args) {
  std::string line = "ip";
  for (const auto& a : args) {
    line += " " + a;
  }
  const auto r = ip(std::move(args));
  REQUIRE_MESSAGE(r.exit_code == 0, line, " failed (the test needs root and iproute2): ", r.err);
}

// A /30 of 198.18.0.0/15 per namespace: the process id and a counter keep
// tests that run in parallel apart.
std::string subnet_base(unsigned index) {
  const unsigned block = index % (1U << 15U);  // 2^17 addresses, 4 per /30
  const unsigned offset = block * 4;
  return "198." + std::to_string(18 + (offset >> 16U)) + "." +
         std::to_string((offset >> 8U) & 0xffU) + "." + std::to_string(offset & 0xffU);
}

std::string with_last(const std::string& base, int add) {
  const auto dot = base.rfind('.');
  return base.substr(0, dot + 1) + std::to_string(std::stoi(base.substr(dot + 1)) + add);
}

}  // namespace

NetNs::NetNs() {
  static std::atomic<unsigned> counter{0};
  const auto n = counter++;
  const auto pid = static_cast<unsigned>(::getpid());
  const auto id = std::to_string(pid) + "n" + std::to_string(n);
  name_ = "pha-" + id;
  host_link_ = "ph" + id + "h";  // at most 15 characters: "ph" + 7 + "n" + 3 + "h"
  const std::string ns_link = "ph" + id + "c";
  const auto base = subnet_base(pid * 8 + n);
  host_address_ = with_last(base, 1);
  client_address_ = with_last(base, 2);

  // Left over by a killed run whose process id this one has now.
  ip({"netns", "del", name_});
  ip({"link", "del", host_link_});
  require_ip({"netns", "add", name_});
  require_ip({"link", "add", host_link_, "type", "veth", "peer", "name", ns_link});
  require_ip({"link", "set", ns_link, "netns", name_});
  require_ip({"addr", "add", host_address_ + "/30", "dev", host_link_});
  require_ip({"link", "set", host_link_, "up"});
  require_ip({"-n", name_, "addr", "add", client_address_ + "/30", "dev", ns_link});
  require_ip({"-n", name_, "link", "set", ns_link, "up"});
  require_ip({"-n", name_, "link", "set", "lo", "up"});
}

NetNs::~NetNs() {
  // Deleting the namespace destroys its veth end, and with it the host's end.
  ip({"netns", "del", name_});
  ip({"link", "del", host_link_});
}

void NetNs::run(const std::function<void()>& f) const {
  std::exception_ptr failure;
  std::string setns_error;
  std::thread t([&] {
    const int fd = ::open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      setns_error = "cannot enter network namespace " + name_;
      if (fd >= 0) {
        ::close(fd);
      }
      return;
    }
    ::close(fd);
    try {
      f();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  t.join();
  REQUIRE_MESSAGE(setns_error.empty(), setns_error);
  if (failure) {
    std::rethrow_exception(failure);
  }
}

}  // namespace pha::test
