#pragma once
// The Prometheus text exposition format 0.0.4 (docs/http-api.md "GET /metrics"): a
// writer that puts HELP and TYPE before each family and escapes label
// values, and a thread-safe histogram.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pha {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class Histogram {
 public:
  struct Data {
    std::vector<double> bounds;         // upper bounds, ascending, +Inf implied
    std::vector<std::uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1
    double sum = 0;
    std::uint64_t count = 0;
  };
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  Data data() const;

 private:
  mutable std::mutex mutex_;
  Data data_;
};

// Bucket bounds in seconds for request latencies and cycle durations.
std::vector<double> latency_buckets();
std::vector<double> cycle_buckets();

inline constexpr std::string_view kMetricPrefix = "proxmox_host_agent_";

// Every name it writes starts with `prefix`: the agent's own families with
// kMetricPrefix, the standard process_* families (as the Prometheus client
// libraries export them) with none.
class MetricsWriter {
 public:
  explicit MetricsWriter(std::string_view prefix = kMetricPrefix) : prefix_(prefix) {}
  // Starts a family: "# HELP" and "# TYPE" lines. `name` without the prefix.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  // The _bucket (cumulative, with le="+Inf"), _sum and _count lines of one series.
  void histogram(std::string_view name, const Labels& labels, const Histogram::Data& data);
  const std::string& text() const { return out_; }

 private:
  void series(std::string_view name, std::string_view suffix, const Labels& labels,
              std::string_view extra_label, const std::string& extra_value, double value);
  std::string prefix_;
  std::string out_;
};

std::string escape_label_value(std::string_view v);
std::string format_metric_value(double v);

}  // namespace pha
