// systrain bpcompare: the backward pass it reports is the one training runs. The stem (the first
// layer, which reads the network's input) counts dW only by default, as src/train/network.cpp and
// the projection compute it; --include-stem-dx adds its dX and labels it (text, CSV and JSON).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "src/dse/bp_band.h"
#include "src/project/backward_cost.h"
#include "src/spec/spec_toml.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace st {
namespace {

using test::run_cli;
using test::TempDir;

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Every figure (the totals and their per-role refinements), exactly.
void expect_figures(const nlohmann::json& j, const BackwardFigures& f, const std::string& what) {
  ASSERT_EQ(j.size(), backward_figure_fields().size()) << what;
  for (const auto& [name, m] : backward_figure_fields())
    EXPECT_EQ(j.at(std::string(name)).get<double>(), f.*m) << what << " " << name;
}

TEST(BackwardCost, TheStemComputesDwOnlyUnlessAsked) {
  EXPECT_FALSE(backward_computes_dx(0, false));
  EXPECT_TRUE(backward_computes_dx(0, true));
  EXPECT_TRUE(backward_computes_dx(1, false));
  // dX adds cost: leaving it out is visible in every figure of the stem.
  const Spec spec = load_spec("bp-im2col-16x16");
  const ConvLayer stem = resnet18_convs(1).front();
  for (Lowering l : kAllLowerings) {
    const BackwardFigures dw = backward_figures(stem, l, spec, false), all = backward_figures(stem, l, spec, true);
    EXPECT_LT(dw.cycles, all.cycles);
    EXPECT_LT(dw.dram, all.dram);
    EXPECT_LT(dw.macs, all.macs);
  }
}

// The per-role figures refine the totals: the DRAM bytes by tensor sum to the DRAM total, the lowered
// operand's SRAM reads and writes and the other buffers' bytes to the SRAM total. The roles are the
// right ones: BP-im2col and zero-skip have no copy; explicit's copy is written once (at least its
// extra storage) and read by the tiles, and building it reads dY; dY, W and dX are each moved.
TEST(BackwardCost, PerRoleFiguresSumToTheTotalsTheyRefine) {
  int strided = 0;
  for (const std::string& preset : preset_names()) {
    const Spec spec = load_spec(preset);
    const auto layers = resnet18_convs(1);
    for (size_t i = 0; i < layers.size(); ++i) {
      const bool with_dx = backward_computes_dx(i, false);
      const BackwardFigures f[4] = {backward_figures(layers[i], Lowering::explicit_im2col, spec, with_dx),
                                    backward_figures(layers[i], Lowering::bp_im2col, spec, with_dx),
                                    backward_figures(layers[i], Lowering::zero_skip, spec, with_dx),
                                    bp_im2col_on_explicit_plan(layers[i], spec, with_dx)};
      const std::string what = preset + " " + layers[i].name;
      for (int v = 0; v < 4; ++v) {
        const BackwardFigures& x = f[v];
        const double dram = x.dram_src + x.dram_wei + x.dram_diff_dst + x.dram_diff_src + x.dram_diff_wei + x.dram_copy;
        const double sram = x.sram_lowered_read + x.sram_lowered_write + x.sram_other;
        EXPECT_NEAR(dram, x.dram, 1e-12 * x.dram) << what << " view " << v;
        EXPECT_NEAR(sram, x.sram, 1e-12 * x.sram) << what << " view " << v;
        for (double role : {x.dram_src, x.dram_diff_dst, x.sram_lowered_read, x.sram_lowered_write, x.sram_other})
          EXPECT_GT(role, 0) << what << " view " << v;
        EXPECT_EQ(x.dram_wei > 0, with_dx) << what;         // W is read by dX only
        EXPECT_EQ(x.dram_diff_src > 0, with_dx) << what;    // dX is written by dX only
        EXPECT_GT(x.dram_diff_wei, 0) << what;               // dW accumulates: read and written
        if (v != 0) {
          EXPECT_EQ(x.dram_copy, 0) << what << " view " << v;
        }
      }
      const BackwardFigures& e = f[0];
      EXPECT_EQ(e.dram_copy > 0, e.extra > 0) << what;
      if (e.extra > 0) {
        EXPECT_GT(e.dram_copy, e.extra) << what;   // written whole, then read
      }
      if (layers[i].desc.sh > 1) {
        ++strided;
        EXPECT_GT(e.dram_copy, 0) << what;   // inserted zeros: explicit builds the dilated dY
      }
      // Only A's backing changes between the lowerings on one plan: X, W, dX and dW move alike.
      for (double BackwardFigures::*m : {&BackwardFigures::dram_src, &BackwardFigures::dram_wei,
                                         &BackwardFigures::dram_diff_src, &BackwardFigures::dram_diff_wei,
                                         &BackwardFigures::sram_other})
        EXPECT_EQ(f[3].*m, e.*m) << what;
    }
  }
  EXPECT_GT(strided, 0);
}

// The CLI's figures, layer by layer, are the library's with the stem's dX left out (default) or in
// (--include-stem-dx), and say which.
TEST(BpcompareCli, StemDxLeftOutByDefaultIncludedAndLabelledOnRequest) {
  NEED_BIN();
  const Spec spec = load_spec("bp-im2col-16x16");
  const auto layers = resnet18_convs(1);
  for (bool include : {false, true}) {
    TempDir t;
    const auto r = run_cli(std::string("bpcompare --topology resnet18 --spec bp-im2col-16x16 --json '") +
                           (t / "a.json") + "' --csv '" + (t / "a.csv") + "'" + (include ? " --include-stem-dx" : ""));
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(read_file(t / "a.json"));
    EXPECT_EQ(j.at("stem_dx_included").get<bool>(), include);
    ASSERT_EQ(j.at("layers").size(), layers.size());
    BackwardFigures tot[3], shared;
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& jl = j["layers"][i];
      const bool with_dx = i > 0 || include;
      EXPECT_EQ(jl.at("dx_included").get<bool>(), with_dx) << layers[i].name;
      for (Lowering l : kAllLowerings) {
        const BackwardFigures f = backward_figures(layers[i], l, spec, with_dx);
        tot[int(l)] += f;
        expect_figures(jl.at(std::string(to_string(l))), f, layers[i].name);
      }
      const BackwardFigures f = bp_im2col_on_explicit_plan(layers[i], spec, with_dx);
      shared += f;
      expect_figures(jl.at("bp-im2col_on_explicit_plan"), f, layers[i].name);
    }
    for (Lowering l : kAllLowerings) expect_figures(j["totals"].at(std::string(to_string(l))), tot[int(l)], "totals");
    expect_figures(j["totals"].at("bp-im2col_on_explicit_plan"), shared, "totals");
    // Labelled where a reader looks: the stem's row and the header of the text, the CSV column.
    const std::string stem_row = layers[0].name + " [+dX]";
    EXPECT_EQ(r.output.find(stem_row) != std::string::npos, include) << r.output;
    EXPECT_NE(r.output.find(include ? "dX included (--include-stem-dx)" : "dW only"), std::string::npos);
    const std::string csv = read_file(t / "a.csv");
    EXPECT_EQ(csv.rfind("layer,dx_included,", 0), 0u);
    EXPECT_NE(csv.find("\n" + layers[0].name + (include ? ",1," : ",0,")), std::string::npos) << csv;
  }
}

// --band: the grid's savings bracket this spec's (the preset's 16 GB/s and 64 KiB are on the default
// grid), the grid point at the preset's own values is the comparison without --band, figure for
// figure, and the printed min / max are those of the points. JSON and CSV carry every point.
TEST(BpcompareCli, BandBracketsThePresetsPointWhichIsOnTheGrid) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("bpcompare --topology resnet18 --spec bp-im2col-16x16 --band --json '" + (t / "a.json") +
                         "' --band-csv '" + (t / "b.csv") + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(t / "a.json"));
  const auto& band = j.at("band");
  const auto& pts = band.at("points");
  ASSERT_EQ(pts.size(), 16u);
  int at_preset = 0;
  for (const auto& p : pts) {
    if (p.at("params").at("dram_gbps") != "16" || p.at("params").at("buffers_kib") != "64") continue;
    ++at_preset;
    for (const char* view : {"explicit", "bp-im2col", "zero-skip", "bp-im2col_on_explicit_plan"})
      EXPECT_EQ(p.at("totals").at(view), j.at("totals").at(view)) << view;
  }
  EXPECT_EQ(at_preset, 1);
  int differ = 0;
  for (const dse::BandSaving& s : dse::band_savings()) {
    const auto& sum = band.at("savings_vs_explicit").at(std::string(s.view)).at(std::string(s.figure));
    const double lo = sum.at("min"), hi = sum.at("max"), point = sum.at("point");
    double want_lo = 1e300, want_hi = -1e300;
    for (const auto& p : pts) {
      const double x = p.at("savings_vs_explicit").at(std::string(s.view)).at(std::string(s.figure));
      want_lo = std::min(want_lo, x), want_hi = std::max(want_hi, x);
    }
    EXPECT_EQ(lo, want_lo) << s.view << " " << s.figure;
    EXPECT_EQ(hi, want_hi) << s.view << " " << s.figure;
    EXPECT_LE(lo, point) << s.view << " " << s.figure;
    EXPECT_LE(point, hi) << s.view << " " << s.figure;
    differ += lo < hi;
  }
  EXPECT_GT(differ, 0);   // the grid moves some saving: a band, not a point
  EXPECT_NE(r.output.find("band over 16 grid points"), std::string::npos) << r.output;
  const std::string csv = read_file(t / "b.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 17) << csv;
  EXPECT_EQ(csv.rfind("dram_gbps,buffers_kib,point,saving.", 0), 0u) << csv;
}

// Bad --band-axis input: one clear message naming the option, exit 2, no output file.
// --mapping channel_tap: the figures are the library's under the channel-tap mapping (not im2col's),
// the header and the JSON say which; a bad mapping is one line (bpcompare, project, dse, cost).
TEST(BpcompareCli, MappingFlagCostsTheChannelTapMapping) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("bpcompare --topology resnet18 --spec simdit-16x16 --mapping channel_tap --json '" +
                         (t / "a.json") + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.output.find("channel_tap mapping"), std::string::npos);
  const auto j = nlohmann::json::parse(read_file(t / "a.json"));
  EXPECT_EQ(j.at("mapping").get<std::string>(), "channel_tap");
  Spec ct = load_spec("simdit-16x16");
  ct.array.conv_mapping = ConvMapping::channel_tap;
  const auto layers = resnet18_convs(1);
  BackwardFigures tot[3], im[3];
  for (size_t i = 0; i < layers.size(); ++i)
    for (Lowering l : kAllLowerings) {
      tot[int(l)] += backward_figures(layers[i], l, ct, i > 0);
      im[int(l)] += backward_figures(layers[i], l, load_spec("simdit-16x16"), i > 0);
    }
  for (Lowering l : kAllLowerings) {
    expect_figures(j["totals"].at(std::string(to_string(l))), tot[int(l)], "totals");
    EXPECT_NE(tot[int(l)].dram, im[int(l)].dram) << to_string(l);
  }
  const std::pair<std::string, const char*> bad[] = {
      {"bpcompare --topology resnet18 --mapping winograd", "--mapping must be im2col or channel_tap (got 'winograd')"},
      {"project --model resnet18 --input 32 --batch 1 --mapping tap", "--mapping must be im2col or channel_tap"},
      {"dse --model resnet8 --input 32 --batch 2 --sweep conv_mapping=tap", "conv_mapping 'tap' is not im2col"},
      {"cost --conv mb1ic3ih8oc4kh3 --mapping x", "--mapping must be im2col or channel_tap"},
      {"cost --gemm 8,8,8 --mapping channel_tap", "--mapping applies to --conv only"},
  };
  for (const auto& [args, needle] : bad) EXPECT_TRUE(test::is_user_error(run_cli(args), needle)) << args;
}

TEST(BpcompareCli, BadBandInputIsOneClearMessage) {
  NEED_BIN();
  TempDir t;
  const std::string out = " --json '" + (t / "o.json") + "' --band-csv '" + (t / "o.csv") + "'";
  const std::pair<const char*, const char*> cases[] = {
      {"--band-axis array=32x32", "--band-axis 'array=32x32': 'array' is not a memory parameter"},
      {"--band-axis vector_kib=64", "'vector_kib' is not a memory parameter"},
      {"--band-axis dram_gbps", "--band-axis 'dram_gbps': expected KEY=VALUES"},
      {"--band-axis dram_gbps=fast", "--band-axis 'dram_gbps=fast': value 'fast' is not a number"},
      {"--band-axis dram_gbps=0", "--band-axis 'dram_gbps=0' (value 0)"},
      {"--band-axis dram_gbps=1..1000:+1", "more than the 256 a band allows"},
      {"--band-axis dram_gbps=8 --band-axis dram_gbps=16", "swept twice"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run_cli(std::string("bpcompare --topology resnet18 ") + args + out);
    EXPECT_TRUE(test::is_user_error(r, needle)) << args;
    EXPECT_TRUE(test::dir_entries(t.path).empty()) << args;
  }
}

}  // namespace
}  // namespace st
