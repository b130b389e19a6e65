#pragma once
// The socket calls that the raw test clients and servers share
// (tests/net/loopback.hpp, tests/net/http_server_support.hpp): a send that
// writes every byte, a read that waits at most until a deadline, and the
// option that makes close() a reset.

#include <chrono>
#include <cstddef>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace pha::test {

// Writes all of `bytes`; false when the peer is gone.
inline bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

enum class ReadResult { data, timeout, closed };

// Appends what one recv() returns, waiting at most until `end`. `closed` is
// the end of the stream or an error (a reset).
inline ReadResult read_some(int fd, std::chrono::steady_clock::time_point end,
                            std::string& buffer) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
  if (left.count() <= 0) {
    return ReadResult::timeout;
  }
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
    return ReadResult::timeout;
  }
  char buf[16384];
  const auto n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    return ReadResult::closed;
  }
  buffer.append(buf, static_cast<std::size_t>(n));
  return ReadResult::data;
}

// From now on close() sends a reset instead of an orderly FIN.
inline void reset_on_close(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace pha::test
