#pragma once
// A small SVG line chart, enough for a benchmark's scaling plot: panels side
// by side, each with a logarithmic x axis, a linear or logarithmic y axis,
// labelled ticks, a legend and a marker per point.

#include <string>
#include <utility>
#include <vector>

namespace pha::bench {

struct Series {
  std::string name;
  std::string color;                              // "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y), x > 0
};

struct Panel {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;
  std::vector<Series> series;
};

// One SVG document with the panels in a row; `caption` goes under them.
std::string svg_chart(const std::vector<Panel>& panels, const std::string& caption);

}  // namespace pha::bench
