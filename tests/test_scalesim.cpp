// SCALE-Sim v2 import: the example rows of reference/scalesim-cycles.md reproduced exactly (CALC),
// SRAM counts in SCALE-Sim's formulas, USER mode never faster, bad files rejected with a message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cost/scalesim_run.h"
#include "src/spec/scalesim_import.h"

namespace st {
namespace {

std::string cfg_text(const char* df, const char* mode = "CALC") {
  return std::string("[general]\nrun_name = t\n\n[architecture_presets]\nArrayHeight:    32\n"
                     "ArrayWidth:     32\nIfmapSramSzkB:    64\nFilterSramSzkB:   64\n"
                     "OfmapSramSzkB:    64\nIfmapOffset:    0\nFilterOffset:   10000000\n"
                     "OfmapOffset:    20000000\nDataflow : ") + df +
         "\nBandwidth : 10\nMemoryBanks: 1\n\n[run_presets]\nInterfaceBandwidth: " + mode + "\n";
}
const char* kTopo =
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    "Conv1,229,229,7,7,3,64,2,\nConv2,58,58,3,3,64,64,1,\n";

TEST(ScaleSim, ExampleRowsExactly) {
  const auto layers = parse_scalesim_topology(kTopo, "topo.csv");
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].out_h(), 112);
  struct Row { const char* df; int64_t conv1, conv2; };
  for (const Row& r : {Row{"os", 163855, 125047}, Row{"ws", 126379, 116279}, Row{"is", 309679, 278711}}) {
    const ScaleSimConfig c = parse_scalesim_config(cfg_text(r.df), "x.cfg");
    EXPECT_TRUE(c.calc_bandwidth);
    const auto a = run_scalesim_layer(c, layers[0]), b = run_scalesim_layer(c, layers[1]);
    EXPECT_EQ(a.total_cycles, r.conv1) << r.df;
    EXPECT_EQ(b.total_cycles, r.conv2) << r.df;
    EXPECT_EQ(a.stall_cycles, 0);
    EXPECT_NEAR(a.utilization, a.macs / ((r.conv1 + 1) * 1024.0), 1e-12);
  }
}

TEST(ScaleSim, OutputSizeRoundsUpLikeScaleSim) {
  ScaleSimLayer l{"x", 56, 56, 1, 1, 64, 128, 2};
  EXPECT_EQ(l.out_h(), 29);  // not 28
}

TEST(ScaleSim, SramCountsFollowScaleSimFormulas) {
  const auto layers = parse_scalesim_topology(kTopo, "topo.csv");
  const double npix = 112.0 * 112, window = 147, K = 64;
  const auto os = run_scalesim_layer(parse_scalesim_config(cfg_text("os"), "c"), layers[0]);
  EXPECT_EQ(os.sram_ifmap_reads, 2 * npix * window);
  EXPECT_EQ(os.sram_filter_reads, std::ceil(npix / 32) * window * K);
  const auto ws = run_scalesim_layer(parse_scalesim_config(cfg_text("ws"), "c"), layers[0]);
  EXPECT_EQ(ws.sram_filter_reads, window * K);
  EXPECT_EQ(ws.sram_ofmap_writes, 5 * npix * K);
  const auto is = run_scalesim_layer(parse_scalesim_config(cfg_text("is"), "c"), layers[0]);
  EXPECT_EQ(is.sram_ifmap_reads, npix * window);
  // DRAM reads at least each operand once.
  for (const auto& r : {os, ws, is}) {
    EXPECT_GE(r.dram_ifmap_reads, 229.0 * 229 * 3);
    EXPECT_GE(r.dram_filter_reads, window * K);
    EXPECT_GE(r.dram_ofmap_writes, npix * K);
  }
}

TEST(ScaleSim, UserModeNeverFasterAndMoreBandwidthHelps) {
  const auto layers = parse_scalesim_topology(kTopo, "topo.csv");
  for (const char* df : {"os", "ws", "is"}) {
    const auto calc = run_scalesim_layer(parse_scalesim_config(cfg_text(df), "c"), layers[1]);
    ScaleSimConfig u = parse_scalesim_config(cfg_text(df, "USER"), "c");
    EXPECT_FALSE(u.calc_bandwidth);
    const auto slow = run_scalesim_layer(u, layers[1]);
    EXPECT_GE(slow.total_cycles, calc.total_cycles) << df;
    EXPECT_EQ(slow.stall_cycles, slow.total_cycles + 1 - slow.compute_cycles);
    u.bandwidth_words *= 10;
    EXPECT_LE(run_scalesim_layer(u, layers[1]).total_cycles, slow.total_cycles) << df;
  }
}

std::string error_of_cfg(const std::string& t) {
  try {
    parse_scalesim_config(t, "bad.cfg");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
std::string error_of_topo(const std::string& t) {
  try {
    parse_scalesim_topology(t, "bad.csv");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(ScaleSim, BadFilesRejectedWithMessage) {
  std::string base = cfg_text("ws");
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  struct Case { std::string text, want; };
  const Case cfgs[] = {
      {replace("Dataflow : ws", "Dataflow : xs"), "Dataflow"},
      {replace("ArrayHeight:    32", "ArrayHeight:    -3"), "arrayheight"},
      {replace("ArrayWidth:     32", "ArrayWidth:     wide"), "arraywidth"},
      {replace("ArrayWidth:     32\n", ""), "missing key 'arraywidth'"},
      {replace("MemoryBanks: 1", "MemoryBankz: 1"), "memorybankz"},
      {replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: FAST"), "InterfaceBandwidth"},
      {replace("[run_presets]", "[weird]"), "[weird]"},
      {replace("IfmapSramSzkB:    64", "IfmapSramSzkB:    0"), "ifmapsramszkb"},
      {cfg_text("ws", "USER").replace(cfg_text("ws", "USER").find("Bandwidth : 10\n"), 15, ""),
       "missing key 'bandwidth'"},
      {"ArrayHeight = 3\n", "outside any [section]"},
      {"[general\n", "malformed section"},
  };
  for (const auto& c : cfgs) {
    const std::string m = error_of_cfg(c.text);
    ASSERT_FALSE(m.empty()) << c.text;
    EXPECT_NE(m.find(c.want), std::string::npos) << m;
    EXPECT_NE(m.find("bad.cfg"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
  const std::string head = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";
  const Case topos[] = {
      {head + "C,10,10,3,3,4,x,1,\n", "Num Filter"},
      {head + "C,10,10,3,3,4,8,0,\n", "Strides"},
      {head + "C,10,10,3,3,4,8\n", "8 columns"},
      {head + "C,2,10,3,3,4,8,1,\n", "larger than"},
      {"C,10,10,3,3,4,8,1,\n", "header"},
      {head, "no layers"},
  };
  for (const auto& c : topos) {
    const std::string m = error_of_topo(c.text);
    ASSERT_FALSE(m.empty()) << c.text;
    EXPECT_NE(m.find(c.want), std::string::npos) << m;
    EXPECT_NE(m.find("bad.csv"), std::string::npos) << m;
  }
  EXPECT_THROW(load_scalesim_config("/nonexistent.cfg"), UserError);
  EXPECT_THROW(load_scalesim_topology("/nonexistent.csv"), UserError);
}

TEST(ScaleSim, CliJsonAndErrors) {
  const char* bin = std::getenv("SYSTRAIN_BIN");
  if (!bin) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)";
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_scalesim");
  fs::create_directories(dir);
  std::ofstream(dir / "a.cfg") << cfg_text("os");
  std::ofstream(dir / "t.csv") << kTopo;
  std::ofstream(dir / "bad.cfg") << cfg_text("qs");
  const std::string base = std::string(bin) + " scalesim -c ";
  int rc = std::system((base + (dir / "a.cfg").string() + " -t " + (dir / "t.csv").string() +
                        " --json " + (dir / "o.json").string() + " >/dev/null 2>&1").c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir / "o.json"));
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["name"], "Conv1");
  EXPECT_EQ(j["layers"][0]["total_cycles"], 163855);
  EXPECT_EQ(j["layers"][1]["total_cycles"], 125047);
  EXPECT_EQ(j["layers"][0]["stall_cycles"], 0);
  EXPECT_TRUE(j["layers"][0].contains("utilization"));
  rc = std::system((base + (dir / "bad.cfg").string() + " -t " + (dir / "t.csv").string() +
                    " --json " + (dir / "bad.json").string() + " >/dev/null 2>" + (dir / "err").string()).c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  std::ifstream in(dir / "err");
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("Dataflow"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "bad.json"));  // no partial output
  fs::remove_all(dir);
}

}  // namespace
}  // namespace st
