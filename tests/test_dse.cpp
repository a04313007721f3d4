// Design-space exploration (src/dse): the chosen points are what they claim to be (optimum,
// economical, Pareto fronts), a point's cost equals a fresh projection of its spec exactly, results
// do not depend on the thread count, bad sweeps are refused with a message naming them, and the CLI
// writes one CSV row per point.
#include <gtest/gtest.h>
#include <unistd.h>
#include <omp.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cost/ledger.h"
#include "src/dse/explore.h"
#include "src/spec/spec_toml.h"
#include "tests/util/cli_run.h"

namespace st::dse {
namespace {

NetDesc small_net(const std::string& name = "resnet8", int64_t input = 32, int64_t batch = 4) {
  ResNetOptions o;
  o.name = name;
  o.batch = batch;
  o.in_c = 3;
  o.in_h = o.in_w = input;
  o.classes = 10;
  return build_resnet(o);
}

const std::vector<std::string> kSweeps = {"array=8x8,16x16", "dataflow=ws,os", "ifmap_kib=2..32:x4",
                                          "dram_gbps=8,32"};

ExploreOptions sweep_opts() {
  ExploreOptions o;
  o.sweeps = kSweeps;
  return o;
}

// A point dominates another when it is <= in both and differs in one.
bool dominates(double x1, double y1, double x2, double y2) {
  return x1 <= x2 && y1 <= y2 && (x1 < x2 || y1 < y2);
}

void check_front(const std::vector<PointResult>& r, const std::vector<size_t>& front, bool energy) {
  auto x = [&](size_t i) { return energy ? r[i].energy_j : r[i].sram_bytes; };
  std::vector<bool> on(r.size(), false);
  ASSERT_FALSE(front.empty());
  for (size_t f : front) on[f] = true;
  for (size_t f : front)
    for (size_t i = 0; i < r.size(); ++i)
      EXPECT_FALSE(dominates(x(i), r[i].cycles, x(f), r[f].cycles)) << "front point " << f << " dominated by " << i;
  for (size_t i = 0; i < r.size(); ++i) {
    if (on[i]) continue;
    bool dominated = false;
    for (size_t f : front) dominated = dominated || dominates(x(f), r[f].cycles, x(i), r[i].cycles);
    EXPECT_TRUE(dominated) << "point " << i << " is off the front but no front point dominates it";
  }
}

class DseSweep : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    net_ = new NetDesc(small_net());
    run_ = new DseRun(explore(*net_, load_spec("tpu-like"), sweep_opts()));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete net_;
  }
  static NetDesc* net_;
  static DseRun* run_;
};
NetDesc* DseSweep::net_ = nullptr;
DseRun* DseSweep::run_ = nullptr;

TEST_F(DseSweep, CartesianProductOfTheSweeps) {
  ASSERT_EQ(run_->points.size(), 2u * 2 * 3 * 2);
  EXPECT_EQ(run_->points[0].params[0], (std::pair<std::string, std::string>{"array", "8x8"}));
  EXPECT_EQ(run_->points[1].params[3].second, "32");  // last sweep innermost
  EXPECT_EQ(run_->points[2].spec.ifmap.kib, 8);
  EXPECT_EQ(run_->points.back().spec.array.rows, 16);
  EXPECT_EQ(run_->points.back().spec.array.dataflow, Dataflow::os);
}

TEST_F(DseSweep, OptimumIsNeverSlowerThanAnyPoint) {
  const auto& r = run_->results;
  const PointResult& o = r[run_->opt];
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_LE(o.cycles, r[i].cycles) << i;
    if (r[i].cycles == o.cycles) {
      EXPECT_LE(o.sram_bytes, r[i].sram_bytes) << "tie must go to less SRAM: " << i;
    }
  }
  // The sweep is not degenerate: the points really differ.
  double worst = 0;
  for (const auto& p : r) worst = std::max(worst, p.cycles);
  EXPECT_GT(worst, 1.2 * o.cycles);
}

TEST_F(DseSweep, EconomicalIsWithinPctAndNothingSmallerIs) {
  const auto& r = run_->results;
  const double limit = r[run_->opt].cycles * (1 + run_->economical_pct / 100);
  const PointResult& e = r[run_->eco];
  EXPECT_LE(e.cycles, limit);
  for (size_t i = 0; i < r.size(); ++i)
    if (r[i].sram_bytes < e.sram_bytes) {
      EXPECT_GT(r[i].cycles, limit) << i;
    }
  // With a looser tolerance the economical point never needs more memory.
  const size_t loose = economical(r, 50);
  EXPECT_LE(r[loose].sram_bytes, e.sram_bytes);
}

TEST_F(DseSweep, ParetoFrontsAreNonDominatedAndCoverTheRest) {
  check_front(run_->results, run_->front_sram, false);
  check_front(run_->results, run_->front_energy, true);
}

TEST_F(DseSweep, StaticPointIsTheBaseSpecAndSpeedupIsItsRatio) {
  const auto rec = project(*net_, load_spec("tpu-like"), Lowering::bp_im2col, StepMode::train);
  double cycles = 0;
  for (const auto& x : rec) cycles += x.stats.get("cycles.total");
  EXPECT_EQ(run_->static_result.cycles, cycles);
  const auto j = report_json(*run_);
  EXPECT_DOUBLE_EQ(j["speedup_optimal_vs_static"].get<double>(), cycles / run_->results[run_->opt].cycles);
  EXPECT_EQ(j["points_evaluated"].get<size_t>(), run_->points.size());
  for (const char* k : {"optimum", "economical"})
    for (const char* f : {"parameters", "cycles", "sram_bytes", "energy_j"}) EXPECT_TRUE(j[k].contains(f)) << k << f;
  for (const char* k : {"static_cycles", "pareto_time_sram", "pareto_time_energy", "seconds", "points_per_second"})
    EXPECT_TRUE(j.contains(k)) << k;
}

// Each point's totals equal, counter for counter and bit for bit, a fresh Ledger projection.
void expect_exact(const NetDesc& net, const std::vector<DesignPoint>& pts, Lowering l, StepMode mode) {
  Evaluator ev(net, l, mode);
  std::vector<Stats> totals;
  const auto res = ev.run(pts, &totals);
  for (size_t i = 0; i < pts.size(); ++i) {
    Ledger ledger(pts[i].spec);
    project_into(ledger, net, l, mode);
    const Stats want = ledger.total();
    EXPECT_EQ(totals[i].values(), want.values()) << "point " << i;
    EXPECT_EQ(res[i].cycles, want.get("cycles.total"));
    EXPECT_EQ(res[i].dram_bytes, want.sum_prefix("bytes.dram."));
  }
}

TEST(Dse, PointResultsEqualAFreshProjection) {
  const NetDesc net = small_net();
  const Spec base = load_spec("tpu-like");
  std::vector<Axis> axes = {parse_sweep("array=8x16,32x32"), parse_sweep("array.count=1,3"), parse_sweep("dataflow=os,ws,is"),
                            parse_sweep("weight_kib=1,256"), parse_sweep("output_link_bits=0,64")};
  const auto pts = sweep_points(base, axes);
  expect_exact(net, pts, Lowering::bp_im2col, StepMode::train);
  expect_exact(net, pts, Lowering::explicit_im2col, StepMode::train);
  expect_exact(net, pts, Lowering::zero_skip, StepMode::infer);
  // Budget splits (per-buffer links, vector buffer) and points with different work keys in one run.
  auto bp = budget_points(load_spec("simdit-16x16"), parse_budget("sram_kib=256,dram_gbps=64,step=5"), {});
  Spec fused = base;
  fused.vector.fuse_with_conv = !fused.vector.fuse_with_conv;
  fused.vector.lanes = 8;
  bp.push_back({{}, fused});
  expect_exact(net, bp, Lowering::bp_im2col, StepMode::train);
  // The channel-tap mapping: its work depends on the rows and the dataflow (padding per tap), so its
  // points must not share im2col's work list, nor one another's across array shapes.
  const auto ct = sweep_points(base, {parse_sweep("conv_mapping=im2col,channel_tap"), parse_sweep("array=8x16,32x32"),
                                      parse_sweep("dataflow=os,ws")});
  ASSERT_EQ(ct.size(), 8u);
  expect_exact(net, ct, Lowering::bp_im2col, StepMode::train);
  expect_exact(net, ct, Lowering::zero_skip, StepMode::train);
}

TEST(Dse, ResultsDoNotDependOnThreadCount) {
  const NetDesc net = small_net();
  const auto pts = sweep_points(load_spec("tpu-like"), {parse_sweep("array=8x8,16x16"), parse_sweep("ifmap_kib=1..64:x2")});
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = Evaluator(net, Lowering::bp_im2col, StepMode::train).run(pts);
  omp_set_num_threads(2);
  const auto two = Evaluator(net, Lowering::bp_im2col, StepMode::train).run(pts);
  omp_set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i].cycles, two[i].cycles) << i;
    EXPECT_EQ(one[i].energy_j, two[i].energy_j) << i;
    EXPECT_EQ(one[i].dram_bytes, two[i].dram_bytes) << i;
  }
}

TEST(Dse, BudgetEnumeratesSplitsWithinTheBudget) {
  const Spec base = load_spec("tpu-like");
  const Budget b = parse_budget("sram_kib=512,dram_gbps=32,step=6");
  const auto pts = budget_points(base, b, {parse_sweep("dataflow=ws,os")});
  // C(6, 4) SRAM splits (sum <= 6 units, each >= 1) x C(5, 3) bandwidth splits (sum = 6) x 2.
  ASSERT_EQ(pts.size(), 15u * 10 * 2);
  for (const auto& p : pts) {
    EXPECT_LE(sram_bytes(p.spec), 512 * 1024 * (1 + 1e-12));
    const double gbps = (p.spec.ifmap.dram_link_bits_per_cycle + p.spec.weight.dram_link_bits_per_cycle +
                         p.spec.output.dram_link_bits_per_cycle) / 8 * p.spec.clock_ghz + p.spec.dram.bandwidth_gbps;
    EXPECT_NEAR(gbps, 32, 1e-9);
  }
  const DesignPoint s = budget_static_point(base, b);
  EXPECT_DOUBLE_EQ(sram_bytes(s.spec), 512 * 1024);
  EXPECT_DOUBLE_EQ(s.spec.ifmap.kib, 64);  // a quarter of the storage, double-buffered
  EXPECT_DOUBLE_EQ(s.spec.dram.bandwidth_gbps, 8);
}

TEST(Dse, ParetoFrontOnHandData) {
  // (x, y): (1,5) (2,3) (2,3) (3,3) (4,1) (5,2) (1,6)
  const std::vector<double> x = {1, 2, 2, 3, 4, 5, 1}, y = {5, 3, 3, 3, 1, 2, 6};
  EXPECT_EQ(pareto_front(x, y), (std::vector<size_t>{0, 1, 2, 4}));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Dse, BadSweepsAreRefusedNamingThem) {
  const Spec base = load_spec("tpu-like");
  auto sweep_err = [&](const std::string& s) { return error_of([&] { sweep_points(base, {parse_sweep(s)}); }); };
  struct Case {
    std::string expr, want;
  };
  const std::vector<Case> cases = {
      {"sram=1,2", "unknown key 'sram'"},
      {"ifmap_kib=", "empty set"},
      {"ifmap_kib=64..16:x2", "is empty"},
      {"ifmap_kib=16..64:x1", "factor must be > 1"},
      {"ifmap_kib=16..64", "needs a step"},
      {"ifmap_kib=16,abc", "'abc' is not a number"},
      {"ifmap_kib", "expected KEY=VALUES"},
      {"dataflow=ws,xs", "dataflow 'xs'"},
      {"array=16x", "is not ROWSxCOLS"},
      {"ifmap_kib=0,16", "buffers.ifmap.kib"},          // the loader's range check
      {"array=8x8,0x16", "array.rows"},
      {"dram_gbps=-4", "dram.bandwidth_gbps"},
      {"array_count=1,0", "array.count"},                // the loader's range check
      {"array_count=65", "array.count"},
      {"array_count=1.5", "is not an integer"},
      {"conv_mapping=im2col,winograd", "conv_mapping 'winograd' is not im2col or channel_tap"},
      {"vector_link_bits=1e9", "vector.dram_link_bits_per_cycle"},
  };
  for (const auto& c : cases) {
    const std::string e = sweep_err(c.expr);
    EXPECT_NE(e.find(c.want), std::string::npos) << c.expr << " -> " << e;
    EXPECT_NE(e.find(c.expr), std::string::npos) << "message must name the sweep: " << e;
  }
  EXPECT_NE(error_of([&] { sweep_points(base, {parse_sweep("dram_gbps=1"), parse_sweep("dram_gbps=2")}); })
                .find("swept twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_budget("sram_kib=64"); }).find("dram_gbps"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_budget("sram_kib=64,dram_gbps=8,step=2"); }).find("at least 4"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_budget("sram_kib=64,dram_gbps=8,foo=1"); }).find("unknown key 'foo'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { budget_points(base, parse_budget("sram_kib=64,dram_gbps=8"), {parse_sweep("ifmap_kib=8")}); })
                .find("decided by --budget"),
            std::string::npos);
  EXPECT_NE(error_of([&] { budget_points(base, parse_budget("sram_kib=1e12,dram_gbps=8"), {}); }).find("--budget"),
            std::string::npos);
}

// CLI through the real binary.
std::pair<int, std::string> run_cli(const std::string& args) {
  const char* bin = std::getenv("SYSTRAIN_BIN");
  const auto err = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_dse_err.txt");
  const std::string cmd = std::string(bin) + " " + args + " >/dev/null 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  std::string text;
  {
    std::ifstream in(err);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::filesystem::remove(err);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text};
}

TEST(DseCli, CsvHasOneRowPerPointAndReportHasTheKeys) {
  if (!std::getenv("SYSTRAIN_BIN")) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)";
  const auto dir = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_dse_out");
  std::filesystem::remove_all(dir);
  auto [rc, err] = run_cli("dse --model resnet8 --input 32 --batch 4 --mode train --sweep array=16x16,32x32 "
                           "--sweep ifmap_kib=4..128:x2 --sweep dram_gbps=8,32 --no-plots --out " + dir.string());
  ASSERT_EQ(rc, 0) << err;
  std::ifstream csv(dir / "points.csv");
  std::string line, header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("index,array,ifmap_kib,dram_gbps,cycles,", 0), 0u) << header;
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 2 * 6 * 2);
  std::ifstream js(dir / "report.json");
  const auto j = nlohmann::json::parse(js);
  EXPECT_EQ(j["points_evaluated"].get<int>(), rows);
  EXPECT_GE(j["speedup_optimal_vs_static"].get<double>(), 1.0 - 1e-12);  // tpu-like (32x32, 128 KiB, 32 GB/s) is a point
  // Exactly the two outputs: no temporary left behind, whatever its name.
  EXPECT_EQ(st::test::dir_entries(dir), (std::vector<std::string>{"points.csv", "report.json"}));
  std::filesystem::remove_all(dir);
}

TEST(DseCli, BadSweepExitsTwoWithOneLineNamingIt) {
  if (!std::getenv("SYSTRAIN_BIN")) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)";
  const auto dir = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_dse_bad");
  std::filesystem::remove_all(dir);
  auto [rc, err] = run_cli("dse --model resnet8 --input 32 --batch 4 --sweep weight_kib=0..8:+4 --out " + dir.string());
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("weight_kib=0..8:+4"), std::string::npos) << err;
  EXPECT_NE(err.find("buffers.weight.kib"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir / "points.csv"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace st::dse

namespace st::dse {
namespace {

// The tiler's pruned search (cost_gemm, what dse and every projection use) chooses exactly what the
// exhaustive search chooses: same Stats bit for bit, same plan, on every distinct GEMM of ResNet-18
// and ResNet-50 steps in all lowerings, over presets and budget splits (shared and own links, single
// and double buffering, tiny and huge buffers), plus odd hand-made shapes.
TEST(DseTiler, PrunedSearchEqualsExhaustiveSearch) {
  std::vector<Spec> specs;
  for (const char* p : {"tpu-like", "simdit-16x16", "bp-im2col-16x16"}) specs.push_back(load_spec(p));
  for (const auto& p : budget_points(load_spec("simdit-16x16"), parse_budget("sram_kib=512,dram_gbps=48,step=4"), {}))
    specs.push_back(p.spec);
  Spec tiny = load_spec("tpu-like");
  tiny.ifmap.kib = tiny.weight.kib = 1;
  tiny.output.kib = 0.5;
  tiny.output.double_buffered = false;
  tiny.array.dataflow = Dataflow::os;
  specs.push_back(tiny);
  Spec huge = load_spec("tpu-like");
  huge.ifmap.kib = huge.weight.kib = huge.output.kib = 65536;
  huge.array.dataflow = Dataflow::is;
  huge.array.rows = 128;
  huge.array.cols = 8;
  specs.push_back(huge);

  std::vector<GemmWork> works;
  for (const char* model : {"resnet18", "resnet50"})
    for (Lowering l : kAllLowerings) {
      const StepWork w = describe_distinct(small_net(model, 64, 2), specs[0], l, StepMode::train);
      works.insert(works.end(), w.gemms.begin(), w.gemms.end());
    }
  for (int64_t m : {1, 7, 33, 1000})
    for (int64_t k : {3, 64, 4608}) {
      GemmWork g;
      g.shape = {m, 17 * m % 257 + 1, k};
      g.a.elem_bytes = g.b.elem_bytes = 2;
      g.c.elem_bytes = 4;
      g.accumulate_into_c = k == 64;
      works.push_back(g);
    }
  size_t compared = 0;
  for (const Spec& s : specs)
    for (const GemmWork& w : works) {
      GemmPlan fast, ref;
      const Stats a = cost_gemm(w, s, &fast), b = cost_gemm_exhaustive(w, s, &ref);
      ASSERT_EQ(a.values(), b.values()) << s.name << " " << w.shape.M << "x" << w.shape.N << "x" << w.shape.K;
      EXPECT_EQ(fast.tile_m, ref.tile_m);
      EXPECT_EQ(fast.tile_n, ref.tile_n);
      EXPECT_EQ(fast.tile_k, ref.tile_k);
      EXPECT_EQ(fast.loop_order, ref.loop_order);
      EXPECT_EQ(fast.candidates_evaluated, ref.candidates_evaluated);
      ++compared;
    }
  EXPECT_GT(compared, 1000u);
}

}  // namespace
}  // namespace st::dse
