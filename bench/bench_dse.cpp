// Design points per second of `systrain dse` for ResNet-50 (224x224, batch 32) training steps:
// - BM_ProjectOnePoint: the baseline, one fresh project() (describe + Ledger) per point;
// - BM_DseBudget/steps: the Evaluator over a SimDIT-style budget split (simdit-16x16 base,
//   1 MiB SRAM, 32 GB/s), all threads (OMP_NUM_THREADS), counter points_per_second;
// - BM_Dse10k: a sweep of more than 10,000 points, once (the goal: under a minute).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <omp.h>

#include "src/dse/explore.h"
#include "src/spec/spec_toml.h"

namespace {

using namespace st;

NetDesc resnet50() {
  ResNetOptions o;
  o.name = "resnet50";
  o.batch = 32;
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.classes = 1000;
  return build_resnet(o);
}

void BM_ProjectOnePoint(benchmark::State& state) {
  const NetDesc net = resnet50();
  const Spec spec = load_spec("simdit-16x16");
  for (auto _ : state) benchmark::DoNotOptimize(project(net, spec, Lowering::bp_im2col, StepMode::train));
  state.counters["points_per_second"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ProjectOnePoint)->Unit(benchmark::kMillisecond)->UseRealTime();

void run_budget(benchmark::State& state, const std::string& budget) {
  const NetDesc net = resnet50();
  const auto pts = dse::budget_points(load_spec("simdit-16x16"), dse::parse_budget(budget), {});
  for (auto _ : state) {
    dse::Evaluator ev(net, Lowering::bp_im2col, StepMode::train);
    benchmark::DoNotOptimize(ev.run(pts));
  }
  state.counters["points"] = double(pts.size());
  state.counters["threads"] = omp_get_max_threads();
  state.counters["points_per_second"] =
      benchmark::Counter(double(pts.size()) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_DseBudget(benchmark::State& state) {
  run_budget(state, fmt::format("sram_kib=1024,dram_gbps=32,step={}", state.range(0)));
}
BENCHMARK(BM_DseBudget)->Arg(6)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

// C(10, 4) = 210 SRAM splits x C(8, 3) = 56 bandwidth splits = 11,760 points.
void BM_Dse10k(benchmark::State& state) { run_budget(state, "sram_kib=1024,dram_gbps=32,sram_steps=10,gbps_steps=9"); }
BENCHMARK(BM_Dse10k)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
