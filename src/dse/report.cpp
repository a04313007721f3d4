#include "src/dse/report.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "src/base/error.h"
#include "src/io/output_file.h"

namespace st::dse {

namespace {

constexpr double kKib = 1024;
constexpr int kPlotWidth = 1000, kPlotHeight = 700;

std::string params_text(const DesignPoint& p) {
  std::string s;
  for (const auto& [k, v] : p.params) s += fmt::format("{}{}={}", s.empty() ? "" : " ", k, v);
  return s.empty() ? "(base spec)" : s;
}

nlohmann::json point_json(const DseRun& run, const DesignPoint& p, const PointResult& r, long index) {
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [k, v] : p.params) params[k] = v;
  nlohmann::json j = {{"parameters", params},     {"cycles", r.cycles},         {"compute_cycles", r.compute_cycles},
                      {"stall_cycles", r.stall_cycles}, {"time_s", r.seconds}, {"energy_j", r.energy_j},
                      {"sram_bytes", r.sram_bytes}, {"dram_bytes", r.dram_bytes}};
  if (index >= 0) j["index"] = index;
  (void)run;
  return j;
}

}  // namespace

std::string points_csv(const DseRun& run) {
  std::string o = "index";
  if (!run.points.empty())
    for (const auto& [k, _] : run.points[0].params) o += "," + k;
  o += ",cycles,compute_cycles,stall_cycles,time_s,energy_j,sram_bytes,dram_bytes,pareto_time_sram,"
       "pareto_time_energy,optimum,economical\n";
  const std::set<size_t> fs(run.front_sram.begin(), run.front_sram.end());
  const std::set<size_t> fe(run.front_energy.begin(), run.front_energy.end());
  for (size_t i = 0; i < run.points.size(); ++i) {
    const PointResult& r = run.results[i];
    o += std::to_string(i);
    for (const auto& [_, v] : run.points[i].params) o += "," + v;
    o += fmt::format(",{},{},{},{},{},{},{},{},{},{},{}\n", r.cycles, r.compute_cycles, r.stall_cycles, r.seconds,
                     r.energy_j, r.sram_bytes, r.dram_bytes, int(fs.count(i)), int(fe.count(i)), int(i == run.opt),
                     int(i == run.eco));
  }
  return o;
}

nlohmann::json report_json(const DseRun& run) {
  auto front = [&](const std::vector<size_t>& f) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i : f) a.push_back(point_json(run, run.points[i], run.results[i], long(i)));
    return a;
  };
  const PointResult& o = run.results[run.opt];
  nlohmann::json j = run.meta;
  j["points_evaluated"] = run.points.size();
  j["optimum"] = point_json(run, run.points[run.opt], o, long(run.opt));
  j["economical"] = point_json(run, run.points[run.eco], run.results[run.eco], long(run.eco));
  j["economical_pct"] = run.economical_pct;
  j["static"] = point_json(run, run.static_point, run.static_result, -1);
  j["static_cycles"] = run.static_result.cycles;
  j["speedup_optimal_vs_static"] = o.cycles > 0 ? run.static_result.cycles / o.cycles : 0.0;
  j["pareto_time_sram"] = front(run.front_sram);
  j["pareto_time_energy"] = front(run.front_energy);
  j["seconds"] = run.seconds;
  j["points_per_second"] = run.seconds > 0 ? double(run.points.size()) / run.seconds : 0.0;
  j["threads"] = run.threads;
  j["distinct_costs_per_point"] = run.distinct_per_point;
  auto kinds = [](const std::map<std::string, double>& m) { return nlohmann::json(m); };
  j["cycles_by_kind"] = {{"optimum", kinds(run.kinds_opt)},
                         {"economical", kinds(run.kinds_eco)},
                         {"static", kinds(run.kinds_static)}};
  return j;
}

std::string summary_text(const DseRun& run) {
  std::string s;
  s += fmt::format("  {} design points in {:.3f} s ({:.0f} points/s, {} threads, {} distinct costs per point)\n\n",
                   run.points.size(), run.seconds, run.seconds > 0 ? double(run.points.size()) / run.seconds : 0.0,
                   run.threads, run.distinct_per_point);
  s += fmt::format("  {:<11} {:>14} {:>11} {:>11} {:>11} {:>9}  {}\n", "point", "cycles", "time ms", "energy J",
                   "SRAM KiB", "vs opt", "parameters");
  const double opt = run.results[run.opt].cycles;
  auto row = [&](const char* name, const DesignPoint& p, const PointResult& r) {
    s += fmt::format("  {:<11} {:>14.6g} {:>11.5g} {:>11.5g} {:>11.6g} {:>8.3f}x  {}\n", name, r.cycles,
                     r.seconds * 1e3, r.energy_j, r.sram_bytes / kKib, opt > 0 ? r.cycles / opt : 0.0,
                     params_text(p));
  };
  row("optimum", run.points[run.opt], run.results[run.opt]);
  row(fmt::format("economical").c_str(), run.points[run.eco], run.results[run.eco]);
  row("static", run.static_point, run.static_result);
  s += fmt::format("\n  economical: smallest SRAM within {}% of the optimum's cycles\n", run.economical_pct);
  s += fmt::format("  speedup optimal vs static: {:.3f}x\n", opt > 0 ? run.static_result.cycles / opt : 0.0);
  s += fmt::format("  Pareto front: {} points (time vs SRAM), {} points (time vs energy)\n", run.front_sram.size(),
                   run.front_energy.size());
  return s;
}

namespace {

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Runs `gnuplot plots.gp` in `dir` with its stderr in dir/plots.log; true when it exits 0. No shell:
// the directory name is passed as it is, whatever characters it holds.
bool run_gnuplot(const std::string& dir) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    const int log = ::open("plots.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    ::execlp("gnuplot", "gnuplot", "plots.gp", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A gnuplot data block of (x, y) rows.
std::string block(const std::string& name, const std::vector<std::pair<double, double>>& xy) {
  std::string o = "$" + name + " << EOD\n";
  for (const auto& [x, y] : xy) o += fmt::format("{} {}\n", x, y);
  return o + "EOD\n";
}

std::string pareto_plot(const DseRun& run, const std::string& png, const std::string& name, bool energy,
                        const std::vector<size_t>& front) {
  std::vector<std::pair<double, double>> all, fr;
  auto x = [&](const PointResult& r) { return energy ? r.energy_j : r.sram_bytes / kKib; };
  for (const auto& r : run.results) all.emplace_back(x(r), r.seconds * 1e3);
  for (size_t i : front) fr.emplace_back(x(run.results[i]), run.results[i].seconds * 1e3);
  std::string o = block(name + "_all", all) + block(name + "_front", fr);
  o += fmt::format("set output '{}'\nset title 'Pareto front: step time vs {}'\n", png,
                   energy ? "energy" : "on-chip memory");
  o += fmt::format("set xlabel '{}'\nset ylabel 'step time (ms)'\nset logscale x\nset key top right\n",
                   energy ? "energy per step (J)" : "on-chip SRAM (KiB, double buffering incl.)");
  o += fmt::format("plot ${0}_all with points pt 7 ps 0.5 lc rgb '#bbbbbb' title 'all points', "
                   "${0}_front with linespoints pt 7 ps 1 lw 2 lc rgb '#d62728' title 'Pareto front'\n",
                   name);
  return o + "unset logscale x\n";
}

}  // namespace

std::vector<std::string> write_plots(const DseRun& run, const std::string& dir) {
  if (!have_gnuplot()) {
    std::fprintf(stderr, "systrain dse: gnuplot not found, skipping plots (scripts/setup.sh installs gnuplot-nox)\n");
    return {};
  }
  std::vector<std::string> pngs = {"pareto_time_sram.png", "pareto_time_energy.png"};
  std::string gp = fmt::format("set terminal pngcairo size {},{} noenhanced\nset grid\n", kPlotWidth, kPlotHeight);
  gp += pareto_plot(run, pngs[0], "sram", false, run.front_sram);
  gp += pareto_plot(run, pngs[1], "energy", true, run.front_energy);

  // Heatmap of the best time per (SRAM size, DRAM bandwidth) when both vary.
  std::map<double, size_t> sx;
  std::map<double, size_t> by;
  bool has_bw = false;
  for (size_t i = 0; i < run.points.size(); ++i)
    for (const auto& [k, v] : run.points[i].params)
      if (k == "dram_gbps") has_bw = true, by.emplace(run.points[i].spec.dram.bandwidth_gbps, 0);
  for (const auto& r : run.results) sx.emplace(r.sram_bytes, 0);
  if (has_bw && sx.size() > 1 && by.size() > 1) {
    size_t k = 0;
    for (auto& [_, i] : sx) i = k++;
    k = 0;
    for (auto& [_, i] : by) i = k++;
    std::vector<double> best(sx.size() * by.size(), -1);
    for (size_t i = 0; i < run.points.size(); ++i) {
      const size_t cx = sx[run.results[i].sram_bytes], cy = by[run.points[i].spec.dram.bandwidth_gbps];
      double& b = best[cy * sx.size() + cx];
      const double t = run.results[i].seconds * 1e3;
      if (b < 0 || t < b) b = t;
    }
    std::string d = "$heat << EOD\n";
    for (size_t cy = 0; cy < by.size(); ++cy) {
      for (size_t cx = 0; cx < sx.size(); ++cx) {
        const double b = best[cy * sx.size() + cx];
        d += fmt::format("{} {} {}\n", cx, cy, b < 0 ? std::string("NaN") : fmt::format("{}", b));
      }
      d += "\n";
    }
    d += "EOD\n";
    std::string xt, yt;
    for (const auto& [v, i] : sx) xt += fmt::format("{}'{:.4g}' {}", xt.empty() ? "" : ", ", v / kKib, i);
    for (const auto& [v, i] : by) yt += fmt::format("{}'{:.4g}' {}", yt.empty() ? "" : ", ", v, i);
    gp += d + "set output 'heatmap_time_sram_bw.png'\nset title 'best step time (ms) over SRAM size x DRAM bandwidth'\n";
    gp += fmt::format("set xlabel 'on-chip SRAM (KiB)'\nset ylabel 'DRAM bandwidth (GB/s)'\nset xtics ({}) rotate by 45 right\n"
                      "set ytics ({})\nset palette defined (0 '#2c7bb6', 1 '#ffffbf', 2 '#d7191c')\nset view map\n"
                      "plot $heat using 1:2:3 with image title '', $heat using 1:2:(sprintf('%.3g', $3)) with labels "
                      "font ',8' title ''\nset xtics autofreq norotate\nset ytics autofreq\n",
                      xt, yt);
    pngs.push_back("heatmap_time_sram_bw.png");
  }

  // Cycles by op kind for the optimum, the economical and the static point (stacked bars).
  std::set<std::string> kinds;
  for (const auto* m : {&run.kinds_opt, &run.kinds_eco, &run.kinds_static})
    for (const auto& [k, _] : *m) kinds.insert(k);
  if (!kinds.empty()) {
    std::string d = "$kinds << EOD\npoint";
    for (const auto& k : kinds) d += " " + k;
    d += "\n";
    auto row = [&](const char* name, const std::map<std::string, double>& m) {
      d += name;
      for (const auto& k : kinds) d += fmt::format(" {}", m.count(k) ? m.at(k) / 1e6 : 0.0);
      d += "\n";
    };
    row("optimum", run.kinds_opt);
    row("economical", run.kinds_eco);
    row("static", run.kinds_static);
    d += "EOD\n";
    gp += d + "set output 'cycles_by_kind.png'\nset title 'cycles by op kind (millions)'\nset xlabel ''\n"
              "set ylabel 'Mcycles'\nset style data histograms\nset style histogram rowstacked\n"
              "set style fill solid 0.9 border -1\nset boxwidth 0.6\nset key outside right\n";
    // 21 distinguishable colors (one per op kind; gnuplot's default cycle has only 8).
    gp += "colors = '#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf #393b79 "
          "#e7ba52 #637939 #ad494a #a55194 #6b6ecf #b5cf6b #843c39 #d6616b #3182bd #31a354'\n";
    gp += fmt::format("plot for [i=2:{}] $kinds using i:xtic(1) title columnheader(i) lc rgb word(colors, (i-2)%21+1)\n",
                      kinds.size() + 1);
    pngs.push_back("cycles_by_kind.png");
  }

  const std::string script = (std::filesystem::path(dir) / "plots.gp").string();
  io::write_text_file(script, gp, "--out plots.gp");
  if (!run_gnuplot(dir)) {
    std::fprintf(stderr, "systrain dse: gnuplot failed (see %s/plots.log); plots skipped\n", dir.c_str());
    return {};
  }
  return pngs;
}

}  // namespace st::dse
