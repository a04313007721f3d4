#include "src/dse/explore.h"

#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <cmath>

#include "src/base/error.h"
#include "src/cost/ledger.h"
#include "src/scaleout/replicas.h"

namespace st::dse {

namespace {

std::map<std::string, double> cycles_by_kind(const NetDesc& net, const Spec& spec, const ExploreOptions& o) {
  Ledger ledger(spec);
  project_into(ledger, net, o.lowering, o.mode);
  std::map<std::string, double> m;
  for (const auto& [k, s] : ledger.by_kind()) m[k] = s.get("cycles.total");
  return m;
}

constexpr size_t kResultFields = 7;

std::vector<PointResult> evaluate_on_ranks(Evaluator& ev, const std::vector<DesignPoint>& pts, Replicas& ranks) {
  const size_t n = pts.size(), P = size_t(ranks.size()), block = (n + P - 1) / P;
  const size_t lo = std::min(n, block * size_t(ranks.rank())), hi = std::min(n, lo + block);
  const std::vector<PointResult> mine =
      ev.run(std::vector<DesignPoint>(pts.begin() + std::ptrdiff_t(lo), pts.begin() + std::ptrdiff_t(hi)));
  std::vector<double> packed(block * kResultFields, 0.0);
  for (size_t i = 0; i < mine.size(); ++i) {
    const PointResult& r = mine[i];
    const double f[kResultFields] = {r.cycles, r.compute_cycles, r.stall_cycles, r.seconds, r.energy_j, r.sram_bytes, r.dram_bytes};
    std::copy(f, f + kResultFields, packed.begin() + std::ptrdiff_t(i * kResultFields));
  }
  const std::vector<double> all = ranks.allgather(packed);  // rank r's block at r * block
  std::vector<PointResult> res(n);
  for (size_t i = 0; i < n; ++i) {
    const double* f = all.data() + i * kResultFields;  // blocks are contiguous in point order
    res[i] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6]};
  }
  return res;
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

  for (const std::string& s : o.sweeps)
    if (o.mode != StepMode::train && parse_sweep(s).key == "replicas")
      throw UserError("--sweep replicas needs --mode train");
  // Under mpirun every rank has checked the same inputs and built the same points: agreed here, so a
  // rank that failed does not leave the others waiting in the gather (run_replicated).
  if (o.ranks)
    if (const Replicas::Failure f = o.ranks->agree_setup(0); f.rank >= 0) throw ReplicaSetupFailed(f.code);
  Evaluator ev(net, o.lowering, o.mode);
  const auto t0 = std::chrono::steady_clock::now();
  run.results = o.ranks && o.ranks->size() > 1 ? evaluate_on_ranks(ev, run.points, *o.ranks) : ev.run(run.points);
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
