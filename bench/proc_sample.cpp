#include "bench/proc_sample.hpp"

#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace pha::bench {

namespace {

// "VmHWM:     1234 kB" -> 1234 for the line starting with `key`.
long kb_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      return std::stol(line.substr(key.size()));
    }
  }
  return 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  const auto dir = "/proc/" + std::to_string(pid);
  const auto stat = slurp(dir + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) {
    return s;
  }
  // After "pid (comm)": field 3 (state) is index 0, utime (14) index 11, stime (15) index 12.
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string w; fields >> w && f.size() < 13;) {
    f.push_back(w);
  }
  const auto status = slurp(dir + "/status");
  if (f.size() < 13 || status.empty()) {
    return s;
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_s = static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / tick;
  s.hwm_kb = kb_field(status, "VmHWM:");
  s.rss_kb = kb_field(status, "VmRSS:");
  s.anon_kb = kb_field(status, "RssAnon:");
  s.file_kb = kb_field(status, "RssFile:");
  s.threads = static_cast<int>(kb_field(status, "Threads:"));
  s.pss_kb = kb_field(slurp(dir + "/smaps_rollup"), "Pss:");
  s.ok = true;
  return s;
}

}  // namespace pha::bench
