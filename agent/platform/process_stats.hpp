#pragma once
// The process's own resource figures, for /metrics.

#include <cstdint>
#include <optional>

namespace pha {

struct ProcessStats {
  std::optional<std::int64_t> rss_bytes;
  std::optional<std::int64_t> virtual_bytes;
  std::optional<std::int64_t> open_fds;
  std::optional<double> cpu_seconds;
  std::optional<std::int64_t> max_fds;
};
// From /proc/self; a figure that cannot be read is left empty.
ProcessStats read_process_stats();

}  // namespace pha
