#include "agent/core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace pha {

Histogram::Histogram(std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  data_.counts.assign(bounds.size() + 1, 0);
  data_.bounds = std::move(bounds);
}

void Histogram::observe(double value) {
  std::lock_guard lock(mutex_);
  const auto it = std::lower_bound(data_.bounds.begin(), data_.bounds.end(), value);
  data_.counts[static_cast<std::size_t>(it - data_.bounds.begin())]++;
  data_.sum += value;
  data_.count++;
}

Histogram::Data Histogram::data() const {
  std::lock_guard lock(mutex_);
  return data_;
}

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

std::vector<double> cycle_buckets() {
  return {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += prefix_;
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += prefix_;
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::series(std::string_view name, std::string_view suffix, const Labels& labels,
                           std::string_view extra_label, const std::string& extra_value,
                           double value) {
  out_ += prefix_;
  out_ += name;
  out_ += suffix;
  if (!labels.empty() || !extra_label.empty()) {
    out_ += '{';
    bool first = true;
    auto add = [&](std::string_view k, std::string_view v) {
      if (!first) {
        out_ += ',';
      }
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    };
    for (const auto& [k, v] : labels) {
      add(k, v);
    }
    if (!extra_label.empty()) {
      add(extra_label, extra_value);
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_metric_value(value);
  out_ += '\n';
}

void MetricsWriter::sample(std::string_view name, const Labels& labels, double value) {
  series(name, "", labels, "", "", value);
}

void MetricsWriter::histogram(std::string_view name, const Labels& labels,
                              const Histogram::Data& d) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < d.bounds.size(); ++i) {
    cumulative += d.counts[i];
    series(name, "_bucket", labels, "le", format_metric_value(d.bounds[i]),
           static_cast<double>(cumulative));
  }
  cumulative += d.counts.back();
  series(name, "_bucket", labels, "le", "+Inf", static_cast<double>(cumulative));
  series(name, "_sum", labels, "", "", d.sum);
  series(name, "_count", labels, "", "", static_cast<double>(d.count));
}

}  // namespace pha
