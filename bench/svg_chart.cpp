#include "bench/svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace pha::bench {

namespace {

constexpr double kPanelW = 460;
constexpr double kPanelH = 320;
constexpr double kLeft = 70;  // room for y tick labels
constexpr double kRight = 20;
constexpr double kTop = 40;
constexpr double kBottom = 50;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string label(double v) {
  char buf[32];
  if (v >= 1000 && std::fmod(v, 1000) == 0) {
    std::snprintf(buf, sizeof buf, "%.0fk", v / 1000);
  } else if (v >= 10 || std::fmod(v, 1) == 0) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Ticks 1, 2, 5 x 10^k inside [lo, hi] (log), or about five round steps (linear).
std::vector<double> ticks(double lo, double hi, bool log) {
  std::vector<double> out;
  if (log) {
    for (double decade = std::pow(10, std::floor(std::log10(lo))); decade <= hi; decade *= 10) {
      for (double m : {1.0, 2.0, 5.0}) {
        if (decade * m >= lo * 0.999 && decade * m <= hi * 1.001) {
          out.push_back(decade * m);
        }
      }
    }
    return out;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi * 1.0001; v += step) {
    out.push_back(v);
  }
  return out;
}

std::string panel_svg(const Panel& p, double ox) {
  double xmin = std::numeric_limits<double>::max();
  double xmax = 0;
  double ymin = std::numeric_limits<double>::max();
  double ymax = 0;
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  }
  if (xmax <= 0) {
    return "";
  }
  xmin = std::pow(10, std::floor(std::log10(xmin)));
  xmax = std::pow(10, std::ceil(std::log10(xmax)));
  if (p.log_y) {
    ymin = std::pow(10, std::floor(std::log10(std::max(ymin, 0.1))));
    ymax = std::pow(10, std::ceil(std::log10(std::max(ymax, ymin * 10))));
  } else {
    ymin = 0;
    ymax = ymax <= 0 ? 1 : ymax * 1.1;
  }
  const double w = kPanelW - kLeft - kRight;
  const double h = kPanelH - kTop - kBottom;
  const auto px = [&](double x) {
    return ox + kLeft +
           (std::log10(x) - std::log10(xmin)) / (std::log10(xmax) - std::log10(xmin)) * w;
  };
  const auto py = [&](double y) {
    const double f = p.log_y ? (std::log10(std::max(y, ymin)) - std::log10(ymin)) /
                                   (std::log10(ymax) - std::log10(ymin))
                             : (y - ymin) / (ymax - ymin);
    return kTop + h - f * h;
  };
  std::string s;
  s += "<text x=\"" + num(ox + kPanelW / 2) +
       "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape(p.title) + "</text>\n";
  s += "<rect x=\"" + num(ox + kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(w) +
       "\" height=\"" + num(h) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double t : ticks(xmin, xmax, true)) {
    s += "<line x1=\"" + num(px(t)) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(px(t)) +
         "\" y2=\"" + num(kTop + h) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(px(t)) + "\" y=\"" + num(kTop + h + 16) +
         "\" text-anchor=\"middle\" font-size=\"11\">" + label(t) + "</text>\n";
  }
  for (double t : ticks(ymin, ymax, p.log_y)) {
    s += "<line x1=\"" + num(ox + kLeft) + "\" y1=\"" + num(py(t)) + "\" x2=\"" +
         num(ox + kLeft + w) + "\" y2=\"" + num(py(t)) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(ox + kLeft - 6) + "\" y=\"" + num(py(t) + 4) +
         "\" text-anchor=\"end\" font-size=\"11\">" + label(t) + "</text>\n";
  }
  s += "<text x=\"" + num(ox + kLeft + w / 2) + "\" y=\"" + num(kPanelH - 12) +
       "\" text-anchor=\"middle\" font-size=\"12\">" + escape(p.x_label) + "</text>\n";
  s += "<text transform=\"translate(" + num(ox + 16) + "," + num(kTop + h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" + escape(p.y_label) + "</text>\n";
  double ly = kTop + 14;
  for (const auto& series : p.series) {
    std::string pts;
    for (const auto& [x, y] : series.points) {
      pts += num(px(x)) + "," + num(py(y)) + " ";
    }
    s += "<polyline fill=\"none\" stroke=\"" + series.color + "\" stroke-width=\"2\" points=\"" +
         pts + "\"/>\n";
    for (const auto& [x, y] : series.points) {
      s += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"3\" fill=\"" +
           series.color + "\"/>\n";
    }
    s += "<line x1=\"" + num(ox + kLeft + 10) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" +
         num(ox + kLeft + 30) + "\" y2=\"" + num(ly - 4) + "\" stroke=\"" + series.color +
         "\" stroke-width=\"2\"/>\n";
    s += "<text x=\"" + num(ox + kLeft + 36) + "\" y=\"" + num(ly) + "\" font-size=\"11\">" +
         escape(series.name) + "</text>\n";
    ly += 16;
  }
  return s;
}

}  // namespace

std::string svg_chart(const std::vector<Panel>& panels, const std::string& caption) {
  const double width = kPanelW * static_cast<double>(panels.size());
  const double height = kPanelH + 30;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) +
                  "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " +
                  num(height) + "\" font-family=\"sans-serif\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    s += panel_svg(panels[i], kPanelW * static_cast<double>(i));
  }
  s += "<text x=\"10\" y=\"" + num(height - 10) + "\" font-size=\"11\" fill=\"#555\">" +
       escape(caption) + "</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace pha::bench
