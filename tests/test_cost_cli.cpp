// `systrain cost` (src/cli/cmd_cost.cpp): one GEMM or one conv layer through the fast model, its
// JSON, its user errors; with --reference / --trace the cost reference's comparison and timeline
// and
// the schedule size its work limits use (src/project/work_limits.h) against a step-by-step count of
// the contract's rules (docs/cost-schedule.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "src/cost/cost_model.h"
#include "src/ops/conv.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "src/topology/problem_string.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace st {
namespace {

using test::is_user_error;
using test::run_cli;
using test::TempDir;

#define NEED_REFERENCE() NEED_BIN()

std::string q(const std::string& s) { return "'" + s + "'"; }

nlohmann::json read_json(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

double sum_prefix(const nlohmann::json& counters, const std::string& prefix) {
  double s = 0;
  for (const auto& [k, v] : counters.items())
    if (k.rfind(prefix, 0) == 0) s += v.get<double>();
  return s;
}

Direction direction(const std::string& s) {
  for (Direction d : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
    if (to_string(d) == s) return d;
  ADD_FAILURE() << "no direction " << s;
  return Direction::fwd;
}

// ---- the schedule size against the contract's rules, step by step --------------------------------

ScheduleSize counted(const GemmWork& w, const Spec& spec, const GemmPlan& plan) {
  const int64_t copies = std::max<int64_t>(1, w.sub_gemms);
  const int64_t ext[3] = {(w.shape.M + copies - 1) / copies, w.shape.N, w.shape.K};
  const int64_t tile[3] = {plan.tile_m, plan.tile_n, plan.tile_k};
  int64_t trip[3];
  for (int d = 0; d < 3; ++d) trip[d] = (ext[d] + tile[d] - 1) / tile[d];
  int order[3];
  for (int i = 0; i < 3; ++i) order[i] = std::string("mnk").find(plan.loop_order[size_t(2 * i)]);
  const bool res_a = double(ext[0]) * ext[2] * w.a.sram_elems_per_virtual * w.a.elem_bytes <= spec.ifmap.kib * 1024;
  const bool res_b = double(ext[2]) * ext[1] * w.b.sram_elems_per_virtual * w.b.elem_bytes <= spec.weight.kib * 1024;
  const bool res_c = double(ext[0]) * ext[1] * 4 <= spec.output.kib * 1024;
  std::set<std::pair<int64_t, int64_t>> seen_a, seen_b, seen_c;
  std::pair<int64_t, int64_t> prev_a{-1, -1}, prev_b{-1, -1}, prev_c{-1, -1};
  double steps = 0, requests = 0;
  bool in_visit = false, holds_last = false;
  auto end_visit = [&] {
    if (in_visit && (holds_last || !res_c)) ++requests;  // the output, or a spill unless resident
  };
  int64_t i[3];
  for (i[0] = 0; i[0] < trip[order[0]]; ++i[0])
    for (i[1] = 0; i[1] < trip[order[1]]; ++i[1])
      for (i[2] = 0; i[2] < trip[order[2]]; ++i[2]) {
        int64_t idx[3];
        for (int p = 0; p < 3; ++p) idx[order[p]] = i[p];
        const std::pair<int64_t, int64_t> a{idx[0], idx[2]}, b{idx[2], idx[1]}, c{idx[0], idx[1]};
        if (res_a ? seen_a.insert(a).second : a != prev_a) ++requests;
        if (res_b ? seen_b.insert(b).second : b != prev_b) ++requests;
        if (c != prev_c) {
          end_visit();
          const bool first = seen_c.insert(c).second;
          if ((!first && !res_c) || (first && w.accumulate_into_c)) ++requests;
          in_visit = true;
          holds_last = false;
        }
        holds_last |= idx[2] == trip[2] - 1;
        prev_a = a, prev_b = b, prev_c = c;
        ++steps;
      }
  end_visit();
  for (const OperandDesc* o : {&w.a, &w.b, &w.c})
    for (double bytes : {o->extra_dram_read_bytes, o->extra_dram_write_bytes})
      requests += std::llround(bytes / double(copies)) > 0;
  return {steps * double(copies), requests * double(copies)};
}

TEST(CostSchedule, SizeEqualsTheContractsRulesStepByStep) {
  std::mt19937_64 rng(7);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const char* orders[] = {"m,n,k", "n,m,k", "m,k,n", "k,m,n", "n,k,m", "k,n,m"};
  Spec spec = load_spec("tpu-like");
  for (int t = 0; t < 3000; ++t) {
    GemmWork w = dense_gemm_work({pick(1, 200), pick(1, 200), pick(1, 200)}, Format::bf16);
    w.sub_gemms = pick(1, 3);
    w.accumulate_into_c = pick(0, 1);
    w.a.sram_elems_per_virtual = pick(0, 1) ? 1.0 : 0.25;
    if (pick(0, 3) == 0) w.a.extra_dram_read_bytes = double(pick(0, 5)), w.a.extra_dram_write_bytes = double(pick(0, 500));
    // Buffers from a few bytes to everything-fits: every residency combination.
    spec.ifmap.kib = double(pick(1, 64)) / 8;
    spec.weight.kib = double(pick(1, 64)) / 8;
    spec.output.kib = double(pick(1, 64)) / 8;
    const int64_t m = (w.shape.M + w.sub_gemms - 1) / w.sub_gemms;
    const GemmPlan plan{pick(1, m), pick(1, w.shape.N), pick(1, w.shape.K), orders[pick(0, 5)], 0};
    const ScheduleSize want = counted(w, spec, plan), got = schedule_size(w, spec, plan);
    ASSERT_EQ(got.steps, want.steps) << t;
    ASSERT_EQ(got.requests, want.requests) << "case " << t << ": " << w.shape.M << "x" << w.shape.N << "x"
                                           << w.shape.K << " tiles " << plan.tile_m << "x" << plan.tile_n << "x"
                                           << plan.tile_k << " " << plan.loop_order;
  }
}

// ---- the command ---------------------------------------------------------------------------------

TEST(CostCli, GemmPrintsItsPlanAndCycles) {
  NEED_BIN();
  const auto r = run_cli("cost --gemm 3136,64,576");
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* s : {"GEMM M=3136 N=64 K=576 on tpu-like", "plan: tile", "loop order", "candidates evaluated",
                        "cycles", "compute", "stall", "utilization", "dram.read.ifmap", "energy total (pJ)"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(CostCli, JsonHasEveryKeyAndConsistentFigures) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("cost --spec simdit-16x16 --gemm 1000,300,700 --json " + q(t / "c.json"));
  ASSERT_EQ(r.rc, 0) << r.output;
  const auto j = read_json(t / "c.json");
  for (const char* k : {"cycles", "compute_cycles", "stall_cycles", "seconds", "macs", "macs_useful", "utilization",
                        "dram_bytes", "sram_bytes", "energy_pj", "plan", "counters", "steps", "dma_requests", "gemm",
                        "spec"})
    EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"reference_cycles", "agree", "disagreements", "plans"}) EXPECT_FALSE(j.contains(k)) << k;
  const auto& c = j.at("counters");
  EXPECT_EQ(j.at("cycles").get<double>(), j.at("compute_cycles").get<double>() + j.at("stall_cycles").get<double>());
  EXPECT_EQ(j.at("cycles"), c.at("cycles.total"));
  EXPECT_EQ(j.at("dram_bytes").get<double>(), sum_prefix(c, "bytes.dram."));
  EXPECT_EQ(j.at("sram_bytes").get<double>(), sum_prefix(c, "bytes.sram."));
  EXPECT_DOUBLE_EQ(j.at("energy_pj").get<double>(), sum_prefix(c, "energy."));
  EXPECT_EQ(j.at("macs").get<double>(), 1000.0 * 300 * 700);
  EXPECT_EQ(j.at("macs"), c.at("macs.issued"));
  EXPECT_DOUBLE_EQ(j.at("seconds").get<double>(), j.at("cycles").get<double>() / 1.25e9);  // simdit: 1.25 GHz
  EXPECT_DOUBLE_EQ(j.at("utilization").get<double>(), 1000.0 * 300 * 700 / (16 * 16 * j.at("cycles").get<double>()));
  EXPECT_EQ(j.at("spec"), "simdit-16x16");
  EXPECT_EQ(j.at("gemm").at("m"), 1000);
  // The figures are the fast model's for a dense GEMM of the spec's format, and so is the plan.
  const Spec spec = load_spec("simdit-16x16");
  GemmPlan plan;
  const Stats s = cost_gemm(dense_gemm_work({1000, 300, 700}, spec.array.format), spec, &plan);
  EXPECT_EQ(j.at("cycles").get<double>(), s.get("cycles.total"));
  EXPECT_EQ(c.size(), s.values().size());
  const auto& p = j.at("plan");
  EXPECT_EQ(p.at("tile_m"), plan.tile_m);
  EXPECT_EQ(p.at("tile_n"), plan.tile_n);
  EXPECT_EQ(p.at("tile_k"), plan.tile_k);
  EXPECT_EQ(p.at("loop_order"), plan.loop_order);
  EXPECT_EQ(p.at("candidates_evaluated"), plan.candidates_evaluated);
  EXPECT_EQ(p.at("steps"), c.at("tiles"));
  EXPECT_EQ(j.at("steps"), p.at("steps"));
}

// ResNet-50 layers (torchvision v1.5): a stride-1 3x3, the stride-2 3x3 of layer2.0 and the stride-2
// 1x1 downsample, each in every direction and lowering; figures equal the fast model's sum over the
// layer's GEMMs, one plan per GEMM.
TEST(CostCli, ResNet50LayersInEveryDirectionAndLowering) {
  NEED_BIN();
  TempDir t;
  const Spec spec = load_spec("tpu-like");
  for (const std::string problem :
       {"mb4ic64ih56oc64kh3ph1n\"layer1.0.conv2\"", "mb4ic128ih56oc128kh3sh2ph1_nlayer2.0.conv2",
        "mb4ic256ih56oc512kh1sh2_nlayer2.0.downsample"})
    for (const char* dir : {"fwd", "bwd_data", "bwd_weights"})
      for (const char* low : {"explicit", "bp-im2col", "zero-skip"}) {
        SCOPED_TRACE(problem + " " + dir + " " + low);
        const auto r = run_cli("cost --conv " + q(problem) + " --direction " + dir + " --lowering " + low +
                               " --json " + q(t / "c.json"));
        ASSERT_EQ(r.rc, 0) << r.output;
        const auto j = read_json(t / "c.json");
        EXPECT_EQ(j.at("conv").at("direction"), dir);
        EXPECT_EQ(j.at("conv").at("lowering"), low);
        const ConvLayer layer = parse_conv_problem(problem);
        EXPECT_EQ(j.at("conv").at("name"), layer.name);
        double cycles = 0, dram = 0;
        const auto works = conv_work(layer.desc, direction(dir), lowering_from_flag(low), spec, layer.name);
        for (const GemmWork& w : works) {
          const Stats s = cost_gemm(w, spec);
          cycles += s.get("cycles.total");
          dram += s.sum_prefix("bytes.dram.");
        }
        EXPECT_EQ(j.at("cycles").get<double>(), cycles);
        EXPECT_EQ(j.at("dram_bytes").get<double>(), dram);
        EXPECT_EQ(j.at("cycles").get<double>(), j.at("compute_cycles").get<double>() + j.at("stall_cycles").get<double>());
        if (works.size() == 1) {
          EXPECT_TRUE(j.contains("plan"));
        } else {
          ASSERT_TRUE(j.contains("plans"));
          EXPECT_EQ(j.at("plans").size(), works.size());
          EXPECT_NE(r.output.find("GEMM 2 of"), std::string::npos);
          EXPECT_NE(r.output.find("sum of the"), std::string::npos);
        }
      }
  // The strided 3x3's zero-skip dX is one GEMM per stride phase.
  const auto r = run_cli("cost --conv mb4ic128ih56oc128kh3sh2ph1 --direction bwd_data --lowering zero-skip --json " +
                         q(t / "z.json"));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(read_json(t / "z.json").at("plans").size(), 4u);
}

TEST(CostCli, BadInputIsOneLineAndExitTwo) {
  NEED_BIN();
  TempDir t;
  std::filesystem::create_directory(t / "dir");
  const std::string ok = "--conv mb2ic3ih5oc4kh3";
  const std::pair<std::string, std::string> cases[] = {
      {"cost --conv mb2ic3ih5oc4kh3xy2", "unknown field 'xy'"},
      {"cost --conv mb2ic3ih5oc4kh3ih5", "field 'ih' is given twice"},
      {"cost --conv mb0ic3ih5oc4kh3", "field 'mb' (minibatch) must be a positive integer"},
      {"cost --conv mb2ic3ih2oc4kh5", "the kernel (kh 5) is larger than the padded input"},
      {"cost --conv mb2ic3ih5oc4", "field 'kh' (kernel height) is missing"},
      {"cost --conv 'mb2ic3ih5oc4kh3 !'", "unexpected ' '"},
      {"cost --conv mb2ic3ih5oc4kh3dh1", "dilation (dh1) is not supported"},
      {"cost --conv mb2ic3ih5oc4kh3g4", "groups (g4) are not supported"},
      {"cost --gemm 0,1,1", "a size is 0"},
      {"cost --gemm 1,2", "2 of 3 numbers"},
      {"cost --gemm 1,2,3,4", "unexpected ',4' after K"},
      {"cost --gemm 1,-2,3", "not a number"},
      {"cost --gemm 9999999999999999999,1,1", "does not fit 64 bits"},
      {"cost --gemm 3037000500,3037000500,1", "is more than 2^59 elements"},
      {"cost --gemm 2097152,2097152,2097152", "M x N x K MACs do not fit 64 bits"},
      {"cost --gemm 1,2,3 " + ok, "--gemm and --conv exclude each other"},
      {"cost", "give --gemm M,N,K or --conv PROBLEM"},
      {"cost --spec tpu-like", "give --gemm M,N,K or --conv PROBLEM"},
      {"cost " + ok + " --direction sideways", "--direction must be fwd, bwd_data or bwd_weights"},
      {"cost " + ok + " --lowering magic", "--lowering must be explicit, bp-im2col or zero-skip"},
      {"cost --gemm 4,4,4 --direction bwd_data", "--direction applies to --conv only"},
      {"cost --gemm 4,4,4 --lowering explicit", "--lowering applies to --conv only"},
      {"cost --gemm 4,4,4 --trace " + q(t / "dir"), "--trace"},
      {"cost --gemm 4,4,4 --json " + q(t / "dir"), "--json"},
      {"cost --gemm 4,4,4 --json " + q(t / "missing/c.json"), "--json"},
      {"cost --gemm 4,4,4 --json " + q(t / "x.json") + " --trace " + q(t / "x.json"), "name the same file"},
      {"cost --gemm 4,4,4 --spec " + q(t / "nosuch.toml"), "nosuch.toml"},
      // The reference's limits: steps (whatever the build), trace slices.
      {"cost --gemm 200000,200000,20000 --reference", "more than the limit of 5e+07"},
      {"cost --gemm 60000,60000,2000 --trace " + q(t / "t.json"), "more than the limit of 2e+06"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run_cli(args);
    EXPECT_TRUE(is_user_error(r, needle)) << args;
    EXPECT_EQ(r.output, r.err) << args << ": printed a report before refusing";
  }
  EXPECT_EQ(test::dir_entries(t.path), std::vector<std::string>{"dir"});
}

// ---- with the reference (run once simulate_gemm is merged) ---------------------------------------

TEST(CostCli, ReferenceAgreesOnGemmsAndLayers) {
  NEED_REFERENCE();
  TempDir t;
  for (const std::string args :
       {"--gemm 300,200,500", "--spec simdit-16x16 --gemm 1000,300,700",
        "--conv mb2ic64ih56oc64kh3ph1", "--conv mb2ic64ih56oc64kh3ph1 --direction bwd_data --lowering explicit",
        "--conv mb2ic128ih28oc128kh3sh2ph1 --direction bwd_data --lowering zero-skip",
        "--spec bp-im2col-16x16 --conv mb2ic128ih28oc128kh3sh2ph1 --direction bwd_weights --lowering bp-im2col",
        "--spec simdit-16x16 --conv mb2ic64ih28oc128kh1sh2 --direction bwd_weights --lowering explicit"}) {
    SCOPED_TRACE(args);
    const auto r = run_cli("cost " + args + " --reference --json " + q(t / "r.json"));
    EXPECT_EQ(r.rc, 0) << r.output;
    const auto j = read_json(t / "r.json");
    EXPECT_EQ(j.at("agree"), true) << j.at("disagreements").dump(1);
    EXPECT_TRUE(j.at("disagreements").empty());
    EXPECT_EQ(j.at("reference_dram_bytes"), j.at("dram_bytes"));
    EXPECT_EQ(j.at("reference_sram_bytes"), j.at("sram_bytes"));
    if (args.find("--conv") == std::string::npos) {  // dense GEMMs: every counter exactly
      EXPECT_FALSE(j.contains("reference_timing_difference"));
      EXPECT_EQ(j.at("reference_cycles"), j.at("cycles"));
      EXPECT_NEAR(j.at("reference_energy_pj").get<double>(), j.at("energy_pj").get<double>(),
                  1e-12 * j.at("energy_pj").get<double>());
    } else {  // an im2col-like operand: timing within the stated bound (leakage follows the cycles)
      const double bound = j.at("reference_timing_bound").get<double>();
      const double ref_cycles = j.at("reference_cycles").get<double>();
      EXPECT_LE(j.at("reference_timing_difference").get<double>(), bound);
      EXPECT_NEAR(j.at("cycles").get<double>(), ref_cycles, bound * ref_cycles);
      EXPECT_NEAR(j.at("reference_energy_pj").get<double>(), j.at("energy_pj").get<double>(),
                  bound * j.at("energy_pj").get<double>());
    }
    EXPECT_NE(r.output.find("reference: agrees"), std::string::npos);
  }
}

// The trace: valid JSON, one track for the array and one per DRAM link used, a slice per tile step
// and per DMA request, times in microseconds of the spec's clock.
TEST(CostCli, TraceHasATrackPerLinkAndASlicePerStepAndRequest) {
  NEED_REFERENCE();
  TempDir t;
  const struct {
    std::string args;
    size_t links;  // DRAM links the schedule uses
    double clock_ghz;
  } cases[] = {
      {"--gemm 300,200,500", 1, 1.0},                                            // tpu-like: the shared link
      {"--spec simdit-16x16 --gemm 1000,300,700", 3, 1.25},                      // own ifmap / weight / output links
      {"--spec simdit-16x16 --conv mb2ic64ih28oc64kh3ph1 --direction bwd_data --lowering explicit", 4, 1.25},  // + shared
      {"--conv mb2ic128ih28oc128kh3sh2ph1 --direction bwd_data --lowering zero-skip", 1, 1.0},  // 4 GEMMs
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_cli("cost " + c.args + " --trace " + q(t / "t.json") + " --json " + q(t / "j.json"));
    ASSERT_EQ(r.rc, 0) << r.output;
    const auto j = read_json(t / "j.json");
    const auto tr = read_json(t / "t.json");
    EXPECT_EQ(tr.at("displayTimeUnit"), "ns");
    std::map<int, std::string> tracks;
    int64_t slices = 0, array_slices = 0;
    double last_ts = -1;
    for (const auto& e : tr.at("traceEvents")) {
      if (e.at("ph") == "M" && e.at("name") == "thread_name") tracks[e.at("tid")] = e.at("args").at("name");
      if (e.at("ph") != "X") continue;
      ++slices;
      const std::string track = tracks.at(e.at("tid"));
      if (track == "array") ++array_slices;
      const auto& a = e.at("args");
      const double start = a.at("cycle_start"), end = a.at("cycle_end");
      EXPECT_NEAR(e.at("ts").get<double>(), start / (c.clock_ghz * 1e3), 1e-9 * start);
      EXPECT_NEAR(e.at("dur").get<double>(), (end - start) / (c.clock_ghz * 1e3), 1e-6);
      EXPECT_GE(e.at("ts").get<double>(), last_ts);
      last_ts = e.at("ts");
      if (track != "array") {
        EXPECT_TRUE(a.contains("bytes"));
      }
    }
    size_t array_tracks = 0;
    for (const auto& [tid, name] : tracks) array_tracks += name == "array";
    EXPECT_EQ(array_tracks, 1u);
    EXPECT_EQ(tracks.size(), 1 + c.links);  // max_outstanding 1: requests of a link never overlap
    EXPECT_EQ(double(slices), j.at("steps").get<double>() + j.at("dma_requests").get<double>());
    EXPECT_EQ(double(array_slices), j.at("counters").at("tiles").get<double>());
    EXPECT_EQ(j.at("trace_slices"), slices);
  }
}

}  // namespace
}  // namespace st
