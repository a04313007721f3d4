// systrain bpcompare: the backward pass it reports is the one training runs. The stem (the first
// layer, which reads the network's input) counts dW only by default, as src/train/network.cpp and
// the projection compute it; --include-stem-dx adds its dX and labels it (text, CSV and JSON).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

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

void expect_figures(const nlohmann::json& j, const BackwardFigures& f, const std::string& what) {
  EXPECT_EQ(j.at("cycles").get<double>(), f.cycles) << what;
  EXPECT_EQ(j.at("dram_bytes").get<double>(), f.dram) << what;
  EXPECT_EQ(j.at("sram_bytes").get<double>(), f.sram) << what;
  EXPECT_EQ(j.at("extra_storage_bytes").get<double>(), f.extra) << what;
  EXPECT_EQ(j.at("macs").get<double>(), f.macs) << what;
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

}  // namespace
}  // namespace st
