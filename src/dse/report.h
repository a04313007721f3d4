#pragma once
// What `systrain dse` writes: points.csv, report.json, a human summary and gnuplot PNGs.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/dse/analysis.h"

namespace st::dse {

// Everything about one exploration run that the outputs show.
struct DseRun {
  nlohmann::json meta;                     // model, input, batch, mode, spec, lowering, sweeps / budget
  std::vector<DesignPoint> points;
  std::vector<PointResult> results;
  DesignPoint static_point;                // budget: equal split; sweep: the base spec
  PointResult static_result;
  size_t opt = 0, eco = 0;
  double economical_pct = 5;
  std::vector<size_t> front_sram, front_energy;
  double seconds = 0;                      // wall time of the evaluation
  int threads = 1;
  size_t distinct_per_point = 0;
  // Cycles by op kind of the optimum, the economical point and the static point (for the bars).
  std::map<std::string, double> kinds_opt, kinds_eco, kinds_static;
};

std::string points_csv(const DseRun& run);
nlohmann::json report_json(const DseRun& run);
std::string summary_text(const DseRun& run);

// Writes plots.gp (src/io: whole or not at all) and runs gnuplot in `dir`; returns the PNG names
// written. Without gnuplot, or when gnuplot fails, it says so on stderr and returns nothing (not an
// error).
std::vector<std::string> write_plots(const DseRun& run, const std::string& dir);

}  // namespace st::dse
