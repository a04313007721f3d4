// Bad input for every reader of a user's file (issue 11, "Bad input"): spec TOML, SCALE-Sim .cfg and
// topology .csv, conv topology .csv, IDX (plain, gzip), CIFAR-10 batches, the HDF5 dataset layout.
// Each class of malformed input is refused where it enters, with one line naming the file, the
// record or field and the problem; none crashes, hangs, allocates what the file cannot hold, or
// lets text that would break an output (invalid UTF-8, control characters) travel on.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "datasets/cifar.h"
#include "datasets/dataset.h"
#include "datasets/h5dataset.h"
#include "datasets/idx.h"
#include "src/base/error.h"
#include "src/cost/scalesim_run.h"
#include "src/io/h5.h"
#include "src/io/untrusted.h"
#include "src/spec/scalesim_import.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using st::UserError;
using st::test::dir_entries;
using st::test::is_user_error;
using st::test::run_cli;
using st::test::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "<no error>";
}

// The message names every needle and is one printable line.
::testing::AssertionResult names(const std::string& msg, std::initializer_list<std::string> needles) {
  if (msg == "<no error>") return ::testing::AssertionFailure() << "accepted";
  for (const auto& n : needles)
    if (msg.find(n) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << msg << "' does not name '" << n << "'";
  for (unsigned char c : msg)
    if (c < 0x20) return ::testing::AssertionFailure() << "'" << msg << "' holds a control character";
  if (!st::io::is_valid_utf8(msg)) return ::testing::AssertionFailure() << "message is not UTF-8";
  return ::testing::AssertionSuccess();
}

void write_text(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::string q(const std::string& p) { return "'" + p + "'"; }

bool have_cli() { return std::getenv("SYSTRAIN_BIN") != nullptr; }

// ---------------------------------------------------------------------------------------------
// Shared checks

TEST(Untrusted, Utf8AndPrintable) {
  EXPECT_TRUE(st::io::is_valid_utf8("plain ascii, émigré, 漢字, 😀"));
  EXPECT_FALSE(st::io::is_valid_utf8("\xff"));
  EXPECT_FALSE(st::io::is_valid_utf8("\xc0\xaf"));           // overlong '/'
  EXPECT_FALSE(st::io::is_valid_utf8("\xed\xa0\x80"));       // surrogate
  EXPECT_FALSE(st::io::is_valid_utf8("\xf4\x90\x80\x80"));   // above U+10FFFF
  EXPECT_FALSE(st::io::is_valid_utf8("\xe2\x82"));           // cut short
  EXPECT_EQ(st::io::printable("a\nb\xff" "c\x1b"), "a\\x0ab\\xffc\\x1b");
  EXPECT_EQ(st::io::printable("émigré"), "émigré");
  EXPECT_EQ(st::io::printable(std::string(100, 'x'), 10), "xxxxxxxxxx...");
  EXPECT_FALSE(st::io::text_problem("ok name").has_value());
  EXPECT_EQ(*st::io::text_problem("a\tb"), "holds a control character (byte 1 is 0x09)");
  EXPECT_EQ(*st::io::text_problem("a\xff"), "is not valid UTF-8 (byte 1 is 0xff)");
  EXPECT_FALSE(st::io::checked_mul(int64_t{1} << 32, int64_t{1} << 31).has_value());
  EXPECT_FALSE(st::io::checked_mul(3, 4, 11).has_value());
  EXPECT_EQ(*st::io::checked_mul(3, 4, 12), 12);
}

TEST(Untrusted, TextFilesMustBeRegularAndSmall) {
  TempDir t;
  EXPECT_TRUE(names(error_of([&] { st::io::read_text_file(t / "none", "spec", 100); }),
                    {"spec", "none", "no such file"}));
  EXPECT_TRUE(names(error_of([&] { st::io::read_text_file(t.path.string(), "spec", 100); }),
                    {"not a regular file"}));
  ASSERT_EQ(::mkfifo((t / "fifo").c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(names(error_of([&] { st::io::read_text_file(t / "fifo", "spec", 100); }), {"not a regular file"}));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // did not wait for a writer
  write_text(t / "big", std::string(101, '#'));
  EXPECT_TRUE(names(error_of([&] { st::io::read_text_file(t / "big", "spec", 100); }), {"101 bytes is too large"}));
}

// ---------------------------------------------------------------------------------------------
// Spec TOML

TEST(SpecToml, FreeTextMustBeOneLineOfUtf8) {
  // A control character would break the one-line report and the CSV/JSON outputs.
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("description = \"bell\\u0007\"\n", "s.toml"); }),
                    {"s.toml", "'description'", "control character"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("name = \"two\\nlines\"\n", "s.toml"); }),
                    {"'name'", "control character"}));
  // toml++ itself refuses invalid UTF-8 anywhere in the file.
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("name = \"a\xff\"\n", "s.toml"); }), {"s.toml", "utf-8"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("name = \"" + std::string(2000, 'n') + "\"\n", "s.toml"); }),
                    {"'name'", "2000 bytes long"}));
}

TEST(SpecToml, MessagesQuoteValuesOnOneLine) {
  // The value is shown escaped: the message stays one line whatever the file holds.
  const std::string e = error_of([] { st::parse_spec_toml("[array]\ndataflow = \"os\\nrm -rf\"\n", "s.toml"); });
  EXPECT_TRUE(names(e, {"'array.dataflow'", "\\x0arm -rf"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("[array]\nrows = 1e400\n", "s.toml"); }), {"s.toml"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("[array]\nrows = 99999999999999999999\n", "s.toml"); }),
                    {"s.toml"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("clock_ghz = nan\n", "s.toml"); }), {"'clock_ghz'", "nan"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("[array]\nrows = \"8\"\n", "s.toml"); }),
                    {"'array.rows'", "integer"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("name = \"a\"\nname = \"b\"\n", "s.toml"); }),
                    {"s.toml", "line 2"}));
  EXPECT_TRUE(names(error_of([] { st::parse_spec_toml("\xef\xbb\xbf[array]\nrows = 0\n", "s.toml"); }),
                    {"'array.rows'"}));  // a BOM is fine, the bad value is named
}

TEST(SpecToml, HugeOrSpecialFilesAreRefused) {
  TempDir t;
  write_text(t / "big.toml", std::string(2 << 20, '#'));
  EXPECT_TRUE(names(error_of([&] { st::load_spec(t / "big.toml"); }), {"big.toml", "too large"}));
  fs::create_directories(t / "dir.toml");
  EXPECT_TRUE(names(error_of([&] { st::load_spec(t / "dir.toml"); }), {"dir.toml", "not a regular file"}));
  ASSERT_EQ(::mkfifo((t / "fifo.toml").c_str(), 0600), 0);
  EXPECT_TRUE(names(error_of([&] { st::load_spec(t / "fifo.toml"); }), {"fifo.toml", "not a regular file"}));
}

// ---------------------------------------------------------------------------------------------
// SCALE-Sim config

std::string cfg(const std::string& extra_arch = "", const std::string& general = "run_name = t\n") {
  return "[general]\n" + general +
         "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nIfmapSramSzkB: 64\nFilterSramSzkB: 64\n"
         "OfmapSramSzkB: 64\nDataflow : ws\nBandwidth : 10\n" + extra_arch +
         "[run_presets]\nInterfaceBandwidth: USER\n";
}
const std::string kTopoHeader =
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";

TEST(ScaleSimConfig, DuplicatesAreRefusedAsConfigparserDoes) {
  EXPECT_NO_THROW(st::parse_scalesim_config(cfg(), "c.cfg"));
  // Before: the last value won silently.
  EXPECT_TRUE(names(error_of([] { st::parse_scalesim_config(cfg("ArrayHeight: 16\n"), "c.cfg"); }),
                    {"c.cfg", "line 11", "'arrayheight'", "already given on line 4"}));
  EXPECT_TRUE(names(error_of([] { st::parse_scalesim_config(cfg() + "[general]\nrun_name = u\n", "c.cfg"); }),
                    {"c.cfg", "section [general] already given on line 1"}));
  EXPECT_TRUE(names(error_of([] { st::parse_scalesim_config("[]\nx = 1\n", "c.cfg"); }), {"empty section"}));
}

TEST(ScaleSimConfig, RunNameMustBeUtf8AndOneLine) {
  // Before: accepted, and `scalesim --json` died in nlohmann's dump (exit 4).
  EXPECT_TRUE(names(error_of([] { st::parse_scalesim_config(cfg("", "run_name = r\xff\n"), "c.cfg"); }),
                    {"c.cfg", "line 2", "not valid UTF-8", "r\\xff"}));
  EXPECT_TRUE(names(error_of([] { st::parse_scalesim_config(cfg("", "run_name = a\x1b[31mred\n"), "c.cfg"); }),
                    {"c.cfg", "line 2", "control character"}));
}

TEST(ScaleSimConfig, BandwidthBelowOneWordPerCycleIsRefused) {
  // Before: 1e-300 gave an infinite stall count converted to int64 (undefined behaviour).
  for (const char* bw : {"1e-300", "0.001", "0.5"}) {
    std::string c = cfg();
    c.replace(c.find("Bandwidth : 10"), 14, std::string("Bandwidth : ") + bw);
    EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_config(c, "c.cfg"); }), {"'bandwidth'", "[1, "})) << bw;
  }
}

TEST(ScaleSimTopology, LayerWorkMustFitTheCounters) {
  // Before: accepted; the products wrapped and `scalesim` printed total_cycles -1 and utilization nan.
  const std::string huge = kTopoHeader + "big, 16777216, 16777216, 16777216, 16777216, 16777216, 16777216, 1,\n";
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(huge, "t.csv"); }),
                    {"t.csv", "line 2", "layer 'big'", "exceeds 2^53"}));
  const std::string wide = kTopoHeader + "wide, 16777216, 16777216, 1, 1, 1, 64, 1,\n";
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(wide, "t.csv"); }), {"layer 'wide'", "ofmap"}));
  const std::string neg = kTopoHeader + "n, 8, 8, 3, 3, -4, 8, 1,\n";
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(neg, "t.csv"); }), {"layer 'n'", "'Channels'", "-4"}));
  // The largest layers accepted still cost quickly with sane figures (fuzz_scalesim_topology checks
  // this on every accepted input).
  const std::string ok = kTopoHeader + "ok, 16777216, 16777216, 1, 1, 1, 16, 1,\n";
  const auto layers = st::parse_scalesim_topology(ok, "t.csv");
  const auto r = st::run_scalesim_layer(st::parse_scalesim_config(cfg(), "c.cfg"), layers[0]);
  EXPECT_GT(r.total_cycles, 0);
  EXPECT_GT(r.utilization, 0);
}

TEST(ScaleSimTopology, LayerNamesMustBeUtf8) {
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(kTopoHeader + "b\xffg, 16, 16, 1, 1, 1, 1, 1,\n", "t.csv"); }),
                    {"t.csv", "line 2", "layer name is not valid UTF-8", "b\\xffg"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(kTopoHeader + "a\x7f, 16, 16, 1, 1, 1, 1, 1,\n", "t.csv"); }),
                    {"line 2", "control character"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_scalesim_topology(kTopoHeader + ", 16, 16, 1, 1, 1, 1, 1,\n", "t.csv"); }),
                    {"line 2", "empty layer name"}));
}

TEST(ScaleSimCli, InvalidUtf8NameIsAUserErrorAndLeavesNoJson) {
  if (!have_cli()) GTEST_SKIP() << "SYSTRAIN_BIN not set";
  TempDir t;
  write_text(t / "c.cfg", cfg());
  write_text(t / "t.csv", kTopoHeader + "b\xffg, 16, 16, 1, 1, 1, 1, 1,\n");
  const auto before = dir_entries(t.path);
  // Before: exit 4 ("unexpected failure: [json.exception.type_error.316] invalid UTF-8 byte").
  const auto r = run_cli("scalesim --config " + q(t / "c.cfg") + " --topology " + q(t / "t.csv") + " --json " +
                         q(t / "out.json"));
  EXPECT_TRUE(is_user_error(r, "layer name is not valid UTF-8"));
  EXPECT_EQ(dir_entries(t.path), before);
}

// ---------------------------------------------------------------------------------------------
// Conv topology

const std::string kConvHeader = std::string(st::kConvTopologyHeader) + "\n";

TEST(ConvTopology, HugeSizesAreRefusedByField) {
  // Before: H = W = 10^12 was accepted and `bpcompare` never finished.
  EXPECT_TRUE(names(error_of([&] {
                      st::parse_conv_topology(kConvHeader + "big,1,1,1000000000000,1000000000000,1,1,1,1,1,0,0,0,0\n", "t.csv");
                    }),
                    {"t.csv:2", "layer big", "field H = 1000000000000", "[1, 65536]"}));
  // Values near INT64_MAX: before, ConvDesc::validate's own sums overflowed (undefined behaviour).
  EXPECT_TRUE(names(error_of([&] {
                      st::parse_conv_topology(kConvHeader + "p,1,1,8,8,1,9223372036854775807,3,1,1,9223372036854775807,1,1,1\n", "t.csv");
                    }),
                    {"t.csv:2", "field R"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "z,1,0,8,8,1,3,3,1,1,1,1,1,1\n", "t.csv"); }),
                    {"t.csv:2", "field C = 0"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "s,1,1,8,8,1,3,3,9,1,1,1,1,1\n", "t.csv"); }),
                    {"t.csv:2", "strides"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "x,1,1,8,8,1,3,3,1,1,1,1,1,1,extra\n", "t.csv"); }),
                    {"t.csv:2", "14 comma-separated fields, got 15"}));
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "n,1,1,8,8,1,3,3,1,1,1,1,1,nan\n", "t.csv"); }),
                    {"t.csv:2", "pad_r is not an integer: 'nan'"}));
}

TEST(ConvTopology, LayerWorkBoundedBy2To53) {
  // Every field in range, the product is not: before, N*K*P*Q*C*R*S wrapped.
  const std::string row = "w,1048576,65536,256,256,65536,3,3,1,1,1,1,1,1\n";
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + row, "t.csv"); }),
                    {"t.csv:2", "layer w", "exceeds 2^53"}));
  // The batch given on the command line replaces N: the bound holds for the layers as run.
  EXPECT_NO_THROW(st::load_conv_topology("resnet18", 256));
  EXPECT_TRUE(names(error_of([] { st::load_conv_topology("resnet18", int64_t{1} << 40); }),
                    {"resnet18", "batch 1099511627776", "field N"}));
  EXPECT_TRUE(names(error_of([] { st::load_conv_topology("resnet50", int64_t{1} << 30); }),
                    {"resnet50", "batch 1073741824", "exceeds 2^53"}));
}

TEST(ConvTopology, LayerNamesMustBeUtf8) {
  // Before: accepted, and `bpcompare --json` died in nlohmann's dump.
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "c\xc3(,1,1,8,8,1,3,3,1,1,1,1,1,1\n", "t.csv"); }),
                    {"t.csv:2", "layer name is not valid UTF-8", "c\\xc3("}));
  EXPECT_TRUE(names(error_of([&] { st::parse_conv_topology(kConvHeader + "tab\there,1,1,8,8,1,3,3,1,1,1,1,1,1\n", "t.csv"); }),
                    {"t.csv:2", "control character"}));
  EXPECT_NO_THROW(st::parse_conv_topology(kConvHeader + "émigré→1,1,1,8,8,1,3,3,1,1,1,1,1,1\n", "t.csv"));
}

TEST(ConvTopologyCli, HugeLayerFailsFastAndBadNameLeavesNoOutput) {
  if (!have_cli()) GTEST_SKIP() << "SYSTRAIN_BIN not set";
  TempDir t;
  write_text(t / "big.csv", kConvHeader + "big,1,1,1000000000000,1000000000000,1,1,1,1,1,0,0,0,0\n");
  write_text(t / "utf.csv", kConvHeader + "c\xff,1,1,8,8,1,3,3,1,1,1,1,1,1\n");
  const auto before = dir_entries(t.path);
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --topology " + q(t / "big.csv"), 60), "field H = 1000000000000"));
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --topology " + q(t / "utf.csv") + " --json " + q(t / "o.json") +
                                    " --csv " + q(t / "o.csv")),
                            "layer name is not valid UTF-8"));
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --topology resnet18 --batch 4611686018427387904"), "field N"));
  EXPECT_EQ(dir_entries(t.path), before);
}

// ---------------------------------------------------------------------------------------------
// IDX and CIFAR

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, size_t data_bytes) {
  std::vector<uint8_t> b = {0, 0, 8, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.resize(b.size() + data_bytes, 7);
  return b;
}

void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_gz(const std::string& p, const std::vector<uint8_t>& b) {
  gzFile f = gzopen(p.c_str(), "wb9");
  gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
}

TEST(Idx, DeclaredSizeIsCheckedBeforeAllocating) {
  TempDir t;
  // A 2 GB image file declared in a 24-byte header: refused from the file size, nothing read.
  write_bytes(t / "big.idx", idx_bytes({40000, 224, 224}, 8));
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "big.idx", 3); }),
                    {"big.idx", "truncated", "(40000, 224, 224) = 2007040000 data bytes", "holds 8"}));
  // The same header in a small gzip file: deflate cannot expand 1032:1, so it cannot hold that.
  write_gz(t / "big.idx.gz", idx_bytes({40000, 224, 224}, 8));
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "big.idx.gz", 3); }),
                    {"big.idx.gz", "a gzip file of", "cannot hold more than"}));
  write_bytes(t / "huge.idx", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, 0));
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "huge.idx", 3); }), {"huge.idx", "declare more than"}));
}

TEST(Idx, GzipBombStopsAtTheDeclaredSize) {
  TempDir t;
  // 16 data bytes declared, 64 MB of zeros follow: counted as extra without being kept in memory.
  std::vector<uint8_t> b = idx_bytes({4, 2, 2}, 16);
  b.resize(b.size() + (64u << 20), 0);
  write_gz(t / "bomb.gz", b);
  EXPECT_LT(fs::file_size(t / "bomb.gz"), 200u << 10);
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "bomb.gz", 3); }),
                    {"bomb.gz", "wrong size", "= 16 data bytes", "(67108864 extra)"}));
  // Garbage after the gzip member, a cut stream, a wrong magic behind gzip.
  auto gz = [&](const std::vector<uint8_t>& raw) {
    write_gz(t / "x.gz", raw);
    std::ifstream f(t / "x.gz", std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
  };
  auto ok = gz(idx_bytes({2, 2, 2}, 8));
  auto trailing = ok;
  trailing.insert(trailing.end(), {'j', 'u', 'n', 'k'});
  write_bytes(t / "trail.gz", trailing);
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "trail.gz", 3); }), {"trail.gz", "corrupt gzip data"}));
  write_bytes(t / "cut.gz", std::vector<uint8_t>(ok.begin(), ok.begin() + 12));
  EXPECT_TRUE(names(error_of([&] { st::data::read_idx(t / "cut.gz", 3); }), {"cut.gz", "truncated"}));
}

// A Fashion-MNIST directory with the given image and label files.
void fashion_dir(const fs::path& d, uint32_t ntrain, uint32_t ntest, uint32_t side = 4) {
  fs::create_directories(d);
  for (auto [prefix, n] : {std::pair{"train", ntrain}, std::pair{"t10k", ntest}}) {
    write_bytes((d / (std::string(prefix) + "-images-idx3-ubyte")).string(), idx_bytes({n, side, side}, size_t{n} * side * side));
    auto lb = idx_bytes({n}, 0);
    for (uint32_t k = 0; k < n; ++k) lb.push_back(static_cast<uint8_t>(k % 10));
    write_bytes((d / (std::string(prefix) + "-labels-idx1-ubyte")).string(), lb);
  }
}

TEST(FashionMnist, EmptyOrAbsurdSplitsAreRefused) {
  TempDir t;
  fashion_dir(t.path / "zero", 0, 3);
  EXPECT_TRUE(names(error_of([&] { st::data::load_fashion_mnist_raw((t.path / "zero").string()); }),
                    {"train-images-idx3-ubyte", "holds no images"}));
  fashion_dir(t.path / "zerotest", 3, 0);
  EXPECT_TRUE(names(error_of([&] { st::data::load_fashion_mnist_raw((t.path / "zerotest").string()); }),
                    {"t10k-images-idx3-ubyte", "holds no images"}));
  fashion_dir(t.path / "wide", 1, 1, 1);
  write_bytes((t.path / "wide/train-images-idx3-ubyte").string(), idx_bytes({1, 1, 100000}, 100000));
  EXPECT_TRUE(names(error_of([&] { st::data::load_fashion_mnist_raw((t.path / "wide").string()); }),
                    {"train-images-idx3-ubyte", "1x100000", "1..16384"}));
}

TEST(DatasetCli, ConvertRefusesIdxWithNoImages) {
  if (!have_cli()) GTEST_SKIP() << "SYSTRAIN_BIN not set";
  TempDir t;
  fashion_dir(t.path / "fm", 0, 0);
  const auto before = dir_entries(t.path);
  // Before: exit 0 and an HDF5 dataset with no images.
  const auto r = run_cli("dataset convert --from fashion-mnist --dir " + q(t / "fm") + " --out " + q(t / "x.h5"));
  EXPECT_TRUE(is_user_error(r, "holds no images"));
  EXPECT_EQ(dir_entries(t.path), before);
}

TEST(Cifar10, GzipBombIsCappedAndNotARegularFile) {
  TempDir t;
  // 1 GiB + 1 record of zeros: refused at the cap, never fully held.
  {
    gzFile f = gzopen((t / "data_batch_1.bin").c_str(), "wb1");
    std::vector<uint8_t> zeros(1 << 20, 0);
    for (int i = 0; i < 1025; ++i) gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size()));
    gzclose(f);
  }
  st::data::RawSplit s;
  EXPECT_TRUE(names(error_of([&] { st::data::read_cifar_batch(t / "data_batch_1.bin", s); }),
                    {"data_batch_1.bin", "decompressed data too large", "1073741824"}));
  fs::create_directories(t / "test_batch.bin");
  EXPECT_TRUE(names(error_of([&] { st::data::read_cifar_batch(t / "test_batch.bin", s); }), {"not a regular file"}));
}

// ---------------------------------------------------------------------------------------------
// HDF5 dataset

st::data::RawDataset tiny(int side = 28, int ntrain = 3, int ntest = 2) {
  st::data::RawDataset d;
  d.name = "tiny";
  d.source = "test";
  d.channels = 1;
  d.height = d.width = side;
  d.num_classes = 3;
  d.class_names = {"a", "b", "c"};
  for (int k = 0; k < ntrain; ++k) d.train.labels.push_back(k % 3);
  for (int k = 0; k < ntest; ++k) d.test.labels.push_back(k % 3);
  d.train.pixels.assign(static_cast<size_t>(ntrain) * side * side, 9);
  d.test.pixels.assign(static_cast<size_t>(ntest) * side * side, 9);
  st::data::channel_stats(d.train, 1, d.mean, d.std);
  d.std = {0.5};
  return d;
}

// Replaces `name` in a valid dataset file with what `make` creates (C API on the open file).
void replace(const std::string& path, const std::string& name, const std::function<void(hid_t)>& make) {
  st::h5::File f = st::h5::File::open(path, st::h5::File::Mode::read_write);
  if (H5Lexists(f.id(), name.c_str(), H5P_DEFAULT) > 0) {
    ASSERT_GE(H5Ldelete(f.id(), name.c_str(), H5P_DEFAULT), 0);
  }
  make(f.id());
}

// An uint8 images dataset of (n, 1, side, side), chunked and compressed like ours, never written.
void declare_images(hid_t file, const std::string& name, hsize_t n, hsize_t side) {
  const hsize_t dims[4] = {n, 1, side, side}, chunk[4] = {64, 1, side, side};
  hid_t space = H5Screate_simple(4, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 4, chunk);
  H5Pset_deflate(dcpl, 4);
  hid_t d = H5Dcreate2(file, name.c_str(), H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}
void declare_labels(hid_t file, const std::string& name, hsize_t n) {
  const hsize_t dims[1] = {n}, chunk[1] = {4096};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, chunk);
  hid_t d = H5Dcreate2(file, name.c_str(), H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

TEST(H5Dataset, DeclaredImagesMustBeStored) {
  TempDir t;
  for (hsize_t n : {hsize_t{1} << 30, hsize_t{1} << 24, hsize_t{1} << 20}) {
    // Before: 2^30 images of 28x28 threw std::bad_alloc; 2^24 read 13 GB of fill values (a hang);
    // 2^20 read 822 MB of fill values as if they were images.
    const std::string p = t / ("n" + std::to_string(n) + ".h5");
    st::data::write_h5_dataset(tiny(), p);
    replace(p, "/train/images", [&](hid_t f) { declare_images(f, "/train/images", n, 28); });
    replace(p, "/train/labels", [&](hid_t f) { declare_labels(f, "/train/labels", n); });
    EXPECT_LT(fs::file_size(p), 100u << 10);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string e = error_of([&] { st::data::load_h5_dataset_raw(p); });
    if (n * 28 * 28 > (hsize_t{1} << 31))  // more than a split may hold in memory
      EXPECT_TRUE(names(e, {p, "/train/images holds " + std::to_string(n) + " images", "more than"}));
    else
      EXPECT_TRUE(names(e, {p, "'/train/images' stores 0 of its 16384 chunks", "a damaged or unfinished file"}));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  }
}

TEST(H5Dataset, ContiguousDataOutsideTheFileIsRefused) {
  TempDir t;
  const std::string p = t / "cut.h5";
  st::data::write_h5_dataset(tiny(64, 40, 2), p);
  replace(p, "/train/images", [&](hid_t f) {
    const hsize_t dims[4] = {40, 1, 64, 64};
    hid_t space = H5Screate_simple(4, dims, nullptr);
    hid_t d = H5Dcreate2(f, "/train/images", H5T_NATIVE_UINT8, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<uint8_t> px(40 * 64 * 64, 3);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px.data());
    H5Dclose(d);
    H5Sclose(space);
  });
  // Cut the file in the middle of the images (the metadata sits at its start).
  const auto size = fs::file_size(p);
  fs::resize_file(p, size - 100000);
  const std::string e = error_of([&] { st::data::load_h5_dataset_raw(p); });
  EXPECT_NE(e, "<no error>");
  EXPECT_TRUE(names(e, {p}));
}

TEST(H5Dataset, ExternalStorageAndLinksAreNotFollowed) {
  TempDir t;
  // Before: pixels were read from any file the dataset named (here one of ours; could be any).
  write_text(t / "secret.bin", std::string(3 * 28 * 28, 'S'));
  const std::string p = t / "ext.h5";
  st::data::write_h5_dataset(tiny(), p);
  replace(p, "/train/images", [&](hid_t f) {
    const hsize_t dims[4] = {3, 1, 28, 28};
    hid_t space = H5Screate_simple(4, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, (t / "secret.bin").c_str(), 0, 3 * 28 * 28);
    hid_t d = H5Dcreate2(f, "/train/images", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
  });
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(p); }), {p, "'/train/images'", "external files"}));

  const std::string s = t / "soft.h5";
  st::data::write_h5_dataset(tiny(28, 2, 2), s);
  replace(s, "/train/images", [&](hid_t f) { H5Lcreate_soft("/test/images", f, "/train/images", H5P_DEFAULT, H5P_DEFAULT); });
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(s); }), {s, "'/train/images' is a soft link"}));

  const std::string x = t / "extlink.h5";
  st::data::write_h5_dataset(tiny(), x);
  replace(x, "/train/images", [&](hid_t f) {
    H5Lcreate_external(p.c_str(), "/test/images", f, "/train/images", H5P_DEFAULT, H5P_DEFAULT);
  });
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(x); }), {x, "is an external link"}));
}

TEST(H5Dataset, TypesNamesAndEmptySplits) {
  TempDir t;
  const std::string p = t / "int32.h5";
  st::data::write_h5_dataset(tiny(), p);
  {
    // Before: int32 pixels were converted (and clamped) to uint8 silently.
    st::h5::File f = st::h5::File::open(p, st::h5::File::Mode::read_write);
    std::vector<int32_t> px(3 * 28 * 28, 1000);
    f.write<int32_t>("/train/images", px.data(), {3, 1, 28, 28});
  }
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(p); }), {p, "/train/images must hold uint8"}));

  const std::string z = t / "zero.h5";
  st::data::RawDataset d = tiny();
  st::data::write_h5_dataset(d, z);
  {
    st::h5::File f = st::h5::File::open(z, st::h5::File::Mode::read_write);
    f.write<uint8_t>("/test/images", nullptr, {0, 1, 28, 28});
    f.write<int32_t>("/test/labels", std::vector<int32_t>{});
  }
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(z); }), {z, "/test/images holds no images"}));

  for (const std::string& bad : {std::string("a\xff"), std::string("line\nbreak")}) {
    const std::string n = t / "names.h5";
    st::data::RawDataset e = tiny();
    e.class_names[1] = bad;
    st::data::write_h5_dataset(e, n);
    EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(n); }), {n, "class name 1"}));
    e = tiny();
    e.name = bad;
    st::data::write_h5_dataset(e, n);
    EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(n); }), {n, "attribute name"}));
  }

  const std::string c = t / "classes.h5";
  st::data::write_h5_dataset(tiny(), c);
  {
    st::h5::File f = st::h5::File::open(c, st::h5::File::Mode::read_write);
    f.write_strings("/class_names", std::vector<std::string>(70000, "x"));
  }
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(c); }), {c, "/class_names has shape (70000)"}));
}

// Files that crash or hang libhdf5 1.10 itself (found by fuzz_h5_dataset; see src/io/h5.h).
std::string libhdf5_case(const std::string& name) {
  return (fs::path(SYSTRAIN_SOURCE_DIR) / "tests/fuzz/libhdf5" / name).string();
}

TEST(H5Dataset, LibraryCrashOnAMalformedFileIsAMessage) {
  const std::string p = libhdf5_case("crash_accum_read.h5");
  ASSERT_TRUE(fs::exists(p)) << p;
  // Before: SIGSEGV inside H5Lexists (H5F__accum_read's memcpy).
  EXPECT_TRUE(names(error_of([&] { st::data::load_h5_dataset_raw(p); }),
                    {p, "the HDF5 library crashed reading it", "malformed or hostile HDF5 file"}));
  if (!have_cli()) return;
  EXPECT_TRUE(is_user_error(run_cli("dataset info " + q(p)), "the HDF5 library crashed reading it"));
}

TEST(H5Dataset, LibraryHangOnAMalformedFileIsAMessage) {
  const std::string p = libhdf5_case("hang_global_heap.h5");
  ASSERT_TRUE(fs::exists(p)) << p;
  // Before: H5Aread looped for ever in the global heap (H5HG_read under H5T__conv_vlen).
  st::h5::set_untrusted_time_limit(2);
  const std::string e = error_of([&] { st::data::load_h5_dataset_raw(p); });
  st::h5::set_untrusted_time_limit(0);
  EXPECT_TRUE(names(e, {p, "did not finish in 2 s"}));
}

TEST(H5Read, StructureChecksKeepGoodFilesReadable) {
  // Long fixed-length and variable-length strings, compact and chunked numbers, an empty dataset.
  TempDir t;
  const std::string p = t / "ok.h5";
  const std::vector<std::string> long_names = {std::string(300, 'a'), "b", std::string(5000, 'c')};
  {
    st::h5::File f = st::h5::File::create(p);
    f.write_strings("/fixed", long_names, /*fixed=*/true);
    f.write_strings("/vlen", long_names);
    std::vector<float> v(100000, 1.5f);
    f.write<float>("/chunked", v.data(), {1000, 100}, {.deflate = 4});
    f.write<float>("/empty", nullptr, {0, 3});
    f.write_scalar<int64_t>("/scalar", 7);
  }
  st::h5::File f = st::h5::File::open(p);
  EXPECT_EQ(f.read_strings("/fixed"), long_names);
  EXPECT_EQ(f.read_strings("/vlen"), long_names);
  EXPECT_EQ(f.read<float>("/chunked").size(), 100000u);
  EXPECT_EQ(f.read_rows<float>("/chunked", 10, 5).size(), 500u);
  EXPECT_TRUE(f.read<float>("/empty").empty());
  EXPECT_EQ(f.read_scalar<int64_t>("/scalar"), 7);
}

TEST(H5Dataset, GoodFileStillLoadsThroughTheChecker) {
  TempDir t;
  const std::string p = t / "ok.h5";
  st::data::write_h5_dataset(tiny(), p);
  const auto before = dir_entries(t.path);
  const st::data::RawDataset d = st::data::load_h5_dataset_raw(p, {.limit_train = 2, .limit_test = -1});
  EXPECT_EQ(d.train.size(), 2);
  EXPECT_EQ(d.test.size(), 2);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(dir_entries(t.path), before);
}

}  // namespace
