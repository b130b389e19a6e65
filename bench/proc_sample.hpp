#pragma once
// What the kernel says about a running process: CPU time (utime + stime of
// every thread, exited ones included) and memory (peak and current resident
// set, split into anonymous and file-backed pages, and the proportional set
// size that shares library pages fairly between the processes mapping them).

#include <sys/types.h>

namespace pha::bench {

struct ProcSample {
  bool ok = false;  // false: the process is gone or /proc could not be read
  double cpu_s = 0;
  long hwm_kb = 0;  // VmHWM, peak RSS
  long rss_kb = 0;  // VmRSS
  long anon_kb = 0;
  long file_kb = 0;
  long pss_kb = 0;  // smaps_rollup
  int threads = 0;
};

ProcSample sample_process(pid_t pid);

}  // namespace pha::bench
