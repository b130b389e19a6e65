#pragma once
// A client that is not on loopback: a network namespace of the test's own
// with a veth pair to the host's namespace (iproute2's `ip`, as root). The
// host end gets 198.18.N.1/30 and the namespace end 198.18.N.2/30, from the
// benchmarking range (RFC 2544) that no real network routes; a server bound
// to 0.0.0.0 on the host sees requests from `client_address()`.
//
// `run` executes a function on a thread that has entered the namespace
// (setns(2) changes the namespace of the calling thread only), so the rest of
// the test keeps the host's network.

#include <functional>
#include <string>

namespace pha::test {

class NetNs {
 public:
  NetNs();  // REQUIREs that the namespace and the link came up
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  const std::string& host_address() const { return host_address_; }
  const std::string& client_address() const { return client_address_; }

  // Runs `f` inside the namespace and waits for it; an exception from `f`
  // (a failed REQUIRE) is thrown again here.
  void run(const std::function<void()>& f) const;

 private:
  std::string name_;
  std::string host_link_;
  std::string host_address_;
  std::string client_address_;
};

}  // namespace pha::test
