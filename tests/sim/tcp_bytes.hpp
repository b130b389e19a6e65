#pragma once
// The TCP payload bytes a socket has received and sent so far, as the kernel
// counts them (TCP_INFO): TLS records and handshakes included, headers of
// the IP and TCP layers not. Kept apart because <linux/tcp.h>, which has
// these fields, cannot be included beside <netinet/tcp.h>.

#include <cstdint>

namespace pha::sim {

struct TcpBytes {
  std::uint64_t received = 0;
  std::uint64_t sent = 0;
};

// Zeros when the socket is not TCP or the kernel does not say.
TcpBytes tcp_bytes(int fd);

}  // namespace pha::sim
