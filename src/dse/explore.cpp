#include "src/dse/explore.h"

#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <cmath>

#include "src/base/error.h"
#include "src/cost/ledger.h"

namespace st::dse {

namespace {

std::map<std::string, double> cycles_by_kind(const NetDesc& net, const Spec& spec, const ExploreOptions& o) {
  Ledger ledger(spec);
  project_into(ledger, net, o.lowering, o.mode);
  std::map<std::string, double> m;
  for (const auto& [k, s] : ledger.by_kind()) m[k] = s.get("cycles.total");
  return m;
}

}  // namespace

DseRun explore(const NetDesc& net, const Spec& base, const ExploreOptions& o) {
  if (!(o.economical_pct >= 0) || !std::isfinite(o.economical_pct))
    throw UserError(fmt::format("--economical-pct must be a finite percentage >= 0 (got {})", o.economical_pct));
  std::vector<Axis> axes;
  for (const std::string& s : o.sweeps) axes.push_back(parse_sweep(s));
  DseRun run;
  run.economical_pct = o.economical_pct;
  if (o.budget.empty()) {
    run.points = sweep_points(base, axes);
    run.static_point = DesignPoint{{}, base};
  } else {
    const Budget b = parse_budget(o.budget);
    run.points = budget_points(base, b, axes);
    run.static_point = budget_static_point(base, b);
  }
  nlohmann::json sweeps = nlohmann::json::array();
  for (const auto& s : o.sweeps) sweeps.push_back(s);
  run.meta = {{"model", net.name},  {"input", net.in_h},        {"batch", net.batch},
              {"mode", o.mode == StepMode::train ? "train" : o.mode == StepMode::infer ? "infer" : "infer (fold-bn)"},
              {"spec", base.name},  {"lowering", to_string(o.lowering)},
              {"sweeps", sweeps},   {"budget", o.budget}};

  Evaluator ev(net, o.lowering, o.mode);
  const auto t0 = std::chrono::steady_clock::now();
  run.results = ev.run(run.points);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.distinct_per_point = ev.distinct_per_point();
  run.threads = omp_get_max_threads();
  run.static_result = ev.run({run.static_point})[0];

  run.opt = optimum(run.results);
  run.eco = economical(run.results, o.economical_pct);
  run.front_sram = pareto_time_sram(run.results);
  run.front_energy = pareto_time_energy(run.results);
  run.kinds_opt = cycles_by_kind(net, run.points[run.opt].spec, o);
  run.kinds_eco = cycles_by_kind(net, run.points[run.eco].spec, o);
  run.kinds_static = cycles_by_kind(net, run.static_point.spec, o);
  return run;
}

}  // namespace st::dse
