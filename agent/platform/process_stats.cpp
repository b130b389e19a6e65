#include "agent/platform/process_stats.hpp"

#include <dirent.h>
#include <fstream>
#include <sys/resource.h>
#include <unistd.h>

namespace pha {

ProcessStats read_process_stats() {
  ProcessStats s;
  if (std::ifstream statm("/proc/self/statm"); statm) {
    long long size = 0;
    long long resident = 0;
    if (statm >> size >> resident) {
      const long page = ::sysconf(_SC_PAGESIZE);
      s.virtual_bytes = size * page;  // /proc/self/stat's vsize, in pages
      s.rss_bytes = resident * page;
    }
  }
  if (DIR* dir = ::opendir("/proc/self/fd"); dir != nullptr) {
    std::int64_t n = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') {
        ++n;
      }
    }
    ::closedir(dir);
    s.open_fds = n - 1;  // the directory's own descriptor
  }
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) == 0) {
    s.cpu_seconds = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                    static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur != RLIM_INFINITY) {
    s.max_fds = static_cast<std::int64_t>(l.rlim_cur);
  }
  return s;
}

}  // namespace pha
