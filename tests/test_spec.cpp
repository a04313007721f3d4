// Accelerator spec: presets load, round trip through TOML, and every kind of bad spec is rejected
// with one message naming the file and the key (also through the CLI: exit code 2, one line).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "src/base/error.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

std::string error_of(const std::string& text, const std::string& source = "t.toml") {
  try {
    parse_spec_toml(text, source);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Spec, PresetsLoadWithDocumentedValues) {
  EXPECT_EQ(preset_names().size(), 4u);
  const Spec t = load_spec("");  // default
  EXPECT_EQ(t.name, "tpu-like");
  EXPECT_EQ(t.array.rows, 32);
  EXPECT_EQ(t.array.cols, 32);
  EXPECT_EQ(t.array.dataflow, Dataflow::ws);
  EXPECT_EQ(t.array.format, Format::bf16);
  EXPECT_DOUBLE_EQ(t.clock_ghz, 1.0);
  EXPECT_EQ(t.source, "preset:tpu-like");

  const Spec s = load_spec("simdit-16x16");
  EXPECT_EQ(s.array.rows, 16);
  EXPECT_DOUBLE_EQ(s.clock_ghz, 1.25);
  EXPECT_DOUBLE_EQ(s.ifmap.kib * 2, 64);
  EXPECT_DOUBLE_EQ(s.weight.kib * 2, 64);
  EXPECT_DOUBLE_EQ(s.output.kib, 64);
  EXPECT_TRUE(s.output.double_buffered);
  EXPECT_DOUBLE_EQ(s.vector.buffer_kib, 64);
  EXPECT_DOUBLE_EQ(s.ifmap.dram_link_bits_per_cycle, 128);
  EXPECT_DOUBLE_EQ(s.weight.dram_link_bits_per_cycle, 256);
  EXPECT_DOUBLE_EQ(s.output.dram_link_bits_per_cycle, 128);
  EXPECT_DOUBLE_EQ(s.vector.dram_link_bits_per_cycle, 256);
  EXPECT_EQ(s.vector.lanes, 16);

  const Spec b = load_spec("bp-im2col-16x16");
  EXPECT_EQ(b.array.dataflow, Dataflow::is);
  EXPECT_EQ(b.array.rows, 16);

  // One TPU v3 TensorCore, from its public facts (models/presets/tpu-v3.toml cites each).
  const Spec v3 = load_spec("tpu-v3");
  EXPECT_EQ(v3.array.rows, 128);
  EXPECT_EQ(v3.array.cols, 128);
  EXPECT_EQ(v3.array.count, 2);
  EXPECT_EQ(v3.array.dataflow, Dataflow::ws);
  EXPECT_EQ(v3.array.format, Format::bf16);
  EXPECT_DOUBLE_EQ(v3.clock_ghz, 0.94);
  EXPECT_DOUBLE_EQ(v3.dram.bandwidth_gbps, 450);
  EXPECT_EQ(v3.dram.kind, "hbm2");
  EXPECT_DOUBLE_EQ(v3.dram.energy_pj_per_bit, 3.9);   // from the kind
  EXPECT_EQ(v3.dram.granule_bytes, 32);
  EXPECT_EQ(v3.vector.lanes, 1024);
  EXPECT_EQ(v3.tech_nm, 16);
  // The vector memory: 16 MiB, split over our buffers (double-buffered banks).
  EXPECT_DOUBLE_EQ(2 * (v3.ifmap.kib + v3.weight.kib + v3.output.kib + v3.vector.buffer_kib), 16384);

  // Storage formats: every preset keeps an array-format weight copy; a cast costs ~ an int32 add
  // (0.1 pJ at 45 nm, x 0.18 at 16 nm).
  for (const auto& name : preset_names()) {
    EXPECT_EQ(load_spec(name).storage.weights, WeightStorage::copy) << name;
    EXPECT_DOUBLE_EQ(load_spec(name).energy.cast, name == "tpu-v3" ? 0.018 : 0.1) << name;
  }
  EXPECT_EQ(Spec{}.storage.weights, WeightStorage::copy);
  const Spec m = parse_spec_toml("base = \"tpu-like\"\n[storage]\nweights = \"master\"\n", "m.toml");
  EXPECT_EQ(m.storage.weights, WeightStorage::master);
  EXPECT_EQ(parse_spec_toml(spec_to_toml(m), "back").storage.weights, WeightStorage::master);
}

TEST(Spec, RoundTripThroughToml) {
  for (const auto& name : preset_names()) {
    const Spec s = load_spec(name);
    const std::string t = spec_to_toml(s);
    const Spec back = parse_spec_toml(t, "roundtrip");
    EXPECT_EQ(spec_to_toml(back), t) << name;
    EXPECT_EQ(back.name, s.name);
    EXPECT_EQ(back.energy.mac_bf16, s.energy.mac_bf16);
    EXPECT_EQ(back.dram.bandwidth_gbps, s.dram.bandwidth_gbps);
  }
  // Non-round values survive exactly.
  Spec s = load_spec("tpu-like");
  s.clock_ghz = 0.1 + 0.2;
  s.energy.sram_read_64b_32kib = 1.0 / 3.0;
  s.description = "quote \" and 'single' and \\ backslash";
  s.weight.halo = Halo::refetch;
  s.array.count = 3;
  const Spec back = parse_spec_toml(spec_to_toml(s), "x");
  EXPECT_EQ(back.array.count, 3);
  s.array.conv_mapping = ConvMapping::channel_tap;
  EXPECT_EQ(parse_spec_toml(spec_to_toml(s), "x").array.conv_mapping, ConvMapping::channel_tap);
  for (const auto& name : preset_names()) EXPECT_EQ(load_spec(name).array.conv_mapping, ConvMapping::im2col) << name;
  EXPECT_NE(spec_to_toml(s).find("count = 3"), std::string::npos);
  for (const auto& name : preset_names()) EXPECT_EQ(load_spec(name).array.count, name == "tpu-v3" ? 2 : 1) << name;
  EXPECT_EQ(back.weight.halo, Halo::refetch);
  EXPECT_EQ(back.ifmap.halo, Halo::keep);
  EXPECT_EQ(back.clock_ghz, s.clock_ghz);
  EXPECT_EQ(back.energy.sram_read_64b_32kib, s.energy.sram_read_64b_32kib);
  EXPECT_EQ(back.description, s.description);
}

TEST(Spec, BaseAndTechNode) {
  const Spec s = parse_spec_toml("base = \"tpu-like\"\n[array]\nrows = 64\n", "my.toml");
  EXPECT_EQ(s.array.rows, 64);
  EXPECT_EQ(s.array.cols, 32);  // from the base
  EXPECT_EQ(s.name, "my");      // file stem
  const Spec n = parse_spec_toml("base = \"tpu-like\"\ntech_nm = 16\n[energy]\nmac_fp32 = 1.0\n", "n.toml");
  EXPECT_DOUBLE_EQ(n.energy.mac_bf16, 0.27);  // the 16 nm default
  EXPECT_DOUBLE_EQ(n.energy.cast, 0.018);     // 0.1 pJ x 0.18 (logic)
  EXPECT_DOUBLE_EQ(n.energy.mac_fp32, 1.0);   // overridden
}

// [dram] kind sets the DRAM energy per bit unless the same table gives it.
TEST(Spec, DramKindSetsTheEnergyUnlessGiven) {
  EXPECT_DOUBLE_EQ(parse_spec_toml("[dram]\nkind = \"hbm2\"\n", "h.toml").dram.energy_pj_per_bit, 3.9);
  EXPECT_DOUBLE_EQ(parse_spec_toml("[dram]\nkind = \"gddr5\"\n", "g.toml").dram.energy_pj_per_bit, 14);
  EXPECT_DOUBLE_EQ(parse_spec_toml("[dram]\nkind = \"hbm2\"\nenergy_pj_per_bit = 5.0\n", "h.toml").dram.energy_pj_per_bit, 5);
  EXPECT_DOUBLE_EQ(parse_spec_toml("[dram]\nkind = \"custom\"\nenergy_pj_per_bit = 2.5\n", "c.toml").dram.energy_pj_per_bit, 2.5);
  // A base's energy stays when the file names no kind; a file naming a kind replaces it.
  EXPECT_DOUBLE_EQ(parse_spec_toml("base = \"tpu-v3\"\n[dram]\nlatency_ns = 10.0\n", "b.toml").dram.energy_pj_per_bit, 3.9);
  EXPECT_DOUBLE_EQ(parse_spec_toml("base = \"tpu-v3\"\n[dram]\nkind = \"lpddr4\"\n", "b.toml").dram.energy_pj_per_bit, 8);
  EXPECT_EQ(Spec{}.dram.kind, "lpddr4");
  EXPECT_EQ(Spec{}.dram.granule_bytes, 1);
}

TEST(Spec, BadSpecsNameFileAndKey) {
  struct Case { const char* text; const char* must_contain[3]; };
  const Case cases[] = {
      {"[array]\nrowz = 4\n", {"t.toml", "array.rowz", "allowed"}},
      {"[array]\nrows = \"four\"\n", {"t.toml", "array.rows", "integer in [1, 4096]"}},
      {"[array]\nrows = 0\n", {"t.toml", "array.rows", "got 0"}},
      {"[array]\nrows = 4.5\n", {"t.toml", "array.rows", "integer"}},
      {"[array]\ncount = 0\n", {"t.toml", "array.count", "integer in [1, 64]"}},
      {"[array]\ncount = 65\n", {"t.toml", "array.count", "got 65"}},
      {"[array]\ncount = 1.5\n", {"t.toml", "array.count", "integer"}},
      {"[array]\ndataflow = \"xs\"\n", {"t.toml", "array.dataflow", "\"os\", \"ws\", \"is\""}},
      {"[array]\nconv_mapping = \"winograd\"\n", {"t.toml", "array.conv_mapping", "\"im2col\", \"channel_tap\""}},
      {"[array]\nformat = \"fp8\"\n", {"t.toml", "array.format", "bf16"}},
      {"[array]\nformat = \"int8\"\naccumulator = \"fp32\"\n", {"t.toml", "array.accumulator", "int32"}},
      {"[buffers.ifmap]\nkib = -1\n", {"t.toml", "buffers.ifmap.kib", "(0,"}},
      {"[buffers.ifmap]\nport_bits = 12\n", {"t.toml", "buffers.ifmap.port_bits", "multiple of 8"}},
      {"[buffers.weight]\nhalo = \"drop\"\n", {"t.toml", "buffers.weight.halo", "\"keep\", \"refetch\""}},
      {"[buffers.scratch]\nkib = 1\n", {"t.toml", "buffers.scratch", "ifmap, weight, output"}},
      {"[dram]\nbandwidth_gbps = 0\n", {"t.toml", "dram.bandwidth_gbps", "number"}},
      {"[dram]\ngranule_bytes = 0\n", {"t.toml", "dram.granule_bytes", "got 0"}},
      {"[dram]\nkind = \"sram\"\n", {"t.toml", "dram.kind", "\"hbm2\""}},
      {"[dram]\nkind = \"custom\"\n", {"t.toml", "dram.kind", "energy_pj_per_bit"}},
      {"[vector]\nfuse_with_conv = 1\n", {"t.toml", "vector.fuse_with_conv", "true or false"}},
      {"[energy]\nmac_bf16 = -2\n", {"t.toml", "energy.mac_bf16", "[0,"}},
      {"[energy]\ncast = -0.1\n", {"t.toml", "energy.cast", "[0,"}},
      {"[storage]\nweights = \"bf16\"\n", {"t.toml", "storage.weights", "\"copy\", \"master\""}},
      {"[storage]\nactivations = \"bf16\"\n", {"t.toml", "storage.activations", "allowed"}},
      {"clock_ghz = 0\n", {"t.toml", "clock_ghz", "(0,"}},
      {"tech_nm = 7\n", {"t.toml", "tech_nm", "45, 28, 16"}},
      {"base = \"nope\"\n", {"t.toml", "base", "tpu-like"}},
      {"array = 3\n", {"t.toml", "array", "table"}},
      {"frequency = 1\n", {"t.toml", "frequency", "clock_ghz"}},
      {"[array\nrows = 4\n", {"t.toml", "TOML syntax error", "line 1"}},
  };
  for (const auto& c : cases) {
    const std::string msg = error_of(c.text);
    ASSERT_FALSE(msg.empty()) << "accepted: " << c.text;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const char* m : c.must_contain) EXPECT_NE(msg.find(m), std::string::npos) << msg << "  (wanted " << m << ")";
  }
}

TEST(Spec, MissingFileOrUnknownName) {
  try {
    load_spec("/nonexistent/dir/spec.toml");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/spec.toml"), std::string::npos);
  }
  EXPECT_THROW(load_spec("tpu-lik"), UserError);
}

TEST(Spec, LoadsFromFile) {
  const auto path = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_spec.toml");
  std::ofstream(path) << "base = \"simdit-16x16\"\n[dram]\nlatency_ns = 50\n";
  const Spec s = load_spec(path.string());
  EXPECT_DOUBLE_EQ(s.dram.latency_ns, 50);
  EXPECT_EQ(s.array.rows, 16);
  EXPECT_EQ(s.source, path.string());
  std::filesystem::remove(path);
}

// Runs the CLI, returns (exit code, stderr).
std::pair<int, std::string> run_cli(const std::string& args) {
  const char* bin = std::getenv("SYSTRAIN_BIN");
  if (!bin) return {-1, ""};
  const auto err = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_spec_err.txt");
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

TEST(Spec, CliRejectsBadSpecWithExitCode2AndOneLine) {
  if (!std::getenv("SYSTRAIN_BIN")) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)";
  const auto path = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_bad.toml");
  std::ofstream(path) << "[array]\nrows = -1\n";
  auto [rc, err] = run_cli("spec " + path.string());
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("array.rows"), std::string::npos) << err;
  std::filesystem::remove(path);
  auto [rc2, err2] = run_cli("spec tpu-like");
  EXPECT_EQ(rc2, 0) << err2;
}

}  // namespace
}  // namespace st
