#include "tests/sim/tcp_bytes.hpp"

#include <cstddef>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace pha::sim {

TcpBytes tcp_bytes(int fd) {
  struct tcp_info info {};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received) {
    return {};
  }
  return {.received = info.tcpi_bytes_received, .sent = info.tcpi_bytes_acked};
}

}  // namespace pha::sim
