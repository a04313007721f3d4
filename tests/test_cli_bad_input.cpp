// Bad input to gemm, project, bpcompare, cost, gradcheck, scalesim, dse and spec (issue 11, "Bad input"):
// one line "systrain: error: ..." and exit 2, never a crash, a hang, a stray or partial file, or
// damage to something that is not ours. Every test here failed before its fix (crash, hang, exit 0
// on nonsense, a file left behind, a device replaced).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/ops/pool.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace st {
namespace {

using test::dir_entries;
using test::is_user_error;
using test::run_cli;
using test::TempDir;

std::string q(const std::string& s) { return "'" + s + "'"; }

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// (type, device number) of a path, to prove a device node was not replaced.
struct Node {
  bool chr = false;
  dev_t rdev = 0;
};
Node node_of(const char* p) {
  struct stat st {};
  if (::stat(p, &st) != 0) return {};
  return {S_ISCHR(st.st_mode), st.st_rdev};
}

// The small scalesim inputs of a run (CALC bandwidth, two layers).
void write_scalesim_inputs(const TempDir& t) {
  std::ofstream(t / "a.cfg") << "[general]\nrun_name = t\n\n[architecture_presets]\nArrayHeight:    32\n"
                                "ArrayWidth:     32\nIfmapSramSzkB:    64\nFilterSramSzkB:   64\n"
                                "OfmapSramSzkB:    64\nIfmapOffset:    0\nFilterOffset:   10000000\n"
                                "OfmapOffset:    20000000\nDataflow : ws\nBandwidth : 10\nMemoryBanks: 1\n\n"
                                "[run_presets]\nInterfaceBandwidth: CALC\n";
  std::ofstream(t / "t.csv") << "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                "Num Filter, Strides,\nConv1,29,29,7,7,3,16,2,\nConv2,14,14,3,3,16,16,1,\n";
}

// One small, fast run of every command that writes --json, with `json` as its output.
std::vector<std::string> json_runs(const TempDir& t, const std::string& json) {
  write_scalesim_inputs(t);
  return {
      "gemm --m 16 --n 16 --k 16 --json " + json,
      "project --model resnet8 --input 16 --batch 2 --json " + json,
      "bpcompare --json " + json,
      "cost --gemm 16,16,16 --json " + json,
      "scalesim -c " + q(t / "a.cfg") + " -t " + q(t / "t.csv") + " --json " + json,
      "dse --model resnet8 --input 16 --batch 2 --sweep array=16x16,32x32 --json " + json,
      "gradcheck --model resnet8 --width 0.25 --input 8 --batch 2 --json " + json,
  };
}

// ---- 1. outputs: devices, directories, stray and partial files --------------------------------

TEST(CliOutputs, JsonIntoDevNullStreamsAndLeavesTheDevice) {
  NEED_BIN();
  TempDir t;
  const Node before = node_of("/dev/null");
  ASSERT_TRUE(before.chr);
  for (const std::string& args : json_runs(t, "/dev/null")) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    const Node after = node_of("/dev/null");
    EXPECT_TRUE(after.chr && after.rdev == before.rdev) << args << ": /dev/null is no longer the device";
  }
}

TEST(CliOutputs, JsonIntoDevFullIsOneLineWriteErrorAndLeavesTheDevice) {
  NEED_BIN();
  TempDir t;
  const Node before = node_of("/dev/full");
  if (!before.chr) GTEST_SKIP() << "no /dev/full";
  for (const std::string& args : json_runs(t, "/dev/full")) {
    const auto r = run_cli(args);
    EXPECT_TRUE(is_user_error(r, "No space left on device")) << args;
    const Node after = node_of("/dev/full");
    EXPECT_TRUE(after.chr && after.rdev == before.rdev) << args << ": /dev/full is no longer the device";
  }
}

TEST(CliOutputs, JsonIntoDevStdoutStreamsAfterTheSummary) {
  NEED_BIN();
  TempDir t;
  // stdout is a FIFO read by cat: /dev/stdout resolves to it and must be streamed into, not replaced.
  const std::string fifo = t / "fifo", got = t / "got";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string cmd = "cat " + q(fifo) + " > " + q(got) + " & " + std::getenv("SYSTRAIN_BIN") +
                          " gemm --m 4 --n 4 --k 4 --json /dev/stdout > " + q(fifo) + "; rc=$?; wait; exit $rc";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  const std::string text = read_file(got);
  const auto summary = text.find("GEMM M=4"), brace = text.find("\n{");
  ASSERT_NE(summary, std::string::npos) << text;
  ASSERT_NE(brace, std::string::npos) << text;
  EXPECT_LT(summary, brace) << "the summary must come before the JSON:\n" << text;
  EXPECT_EQ(nlohmann::json::parse(text.substr(brace))["m"], 4);
  struct stat fs {};
  ASSERT_EQ(::stat(fifo.c_str(), &fs), 0);
  EXPECT_TRUE(S_ISFIFO(fs.st_mode)) << "the FIFO was replaced";
}

TEST(CliOutputs, JsonNamingADirectoryIsRefusedAndLeavesNothing) {
  NEED_BIN();
  TempDir t;
  std::filesystem::create_directory(t / "out");
  for (const std::string& args : json_runs(t, q(t / "out"))) {
    const auto r = run_cli(args);
    EXPECT_TRUE(is_user_error(r, "is a directory")) << args;  // gradcheck exited 0 and lost the JSON
    EXPECT_EQ(dir_entries(t.path), (std::vector<std::string>{"a.cfg", "out", "t.csv"})) << args;  // no out.tmp
    EXPECT_TRUE(dir_entries(t / "out").empty()) << args;
  }
}

TEST(CliOutputs, GemmJsonDirectoryIsRefusedBeforeAnyWork) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("gemm --m 512 --n 512 --k 512 --check --json " + q(t.path.string()));
  EXPECT_TRUE(is_user_error(r, "is a directory"));
  EXPECT_EQ(r.output.find("GEMM M="), std::string::npos) << "the GEMM ran before the output was checked";
}

TEST(CliOutputs, ProjectBadJsonLeavesNoCsv) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("project --model resnet8 --input 16 --batch 2 --csv " + q(t / "a.csv") +
                         " --json /nonexistent-dir/x.json");
  EXPECT_TRUE(is_user_error(r, "/nonexistent-dir"));
  EXPECT_TRUE(dir_entries(t.path).empty());
  EXPECT_EQ(r.output.find("step time"), std::string::npos) << "projected before checking the outputs";
}

TEST(CliOutputs, BpcompareBadJsonLeavesNoEmptyCsv) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("bpcompare --csv " + q(t / "a.csv") + " --json " + q(t / "missing/x.json"));
  EXPECT_TRUE(is_user_error(r, "missing"));
  EXPECT_TRUE(dir_entries(t.path).empty());
}

TEST(CliOutputs, BpcompareOutputsAreWholeAndAgree) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("bpcompare --csv " + q(t / "a.csv") + " --json " + q(t / "a.json"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(dir_entries(t.path), (std::vector<std::string>{"a.csv", "a.json"}));
  const auto j = nlohmann::json::parse(read_file(t / "a.json"));
  const std::string csv = read_file(t / "a.csv");
  EXPECT_EQ(size_t(std::count(csv.begin(), csv.end(), '\n')), j["layers"].size() + 1);
}

TEST(CliOutputs, TwoOutputsNamingTheSameFileAreRefused) {
  NEED_BIN();
  TempDir t;
  const auto r = run_cli("project --model resnet8 --input 16 --batch 2 --csv " + q(t / "x") + " --json " + q(t / "x"));
  EXPECT_TRUE(is_user_error(r, "name the same file"));
  EXPECT_TRUE(dir_entries(t.path).empty());
}

TEST(CliOutputs, GradcheckDumpMustBeARegularFile) {
  NEED_BIN();
  const auto r = run_cli("gradcheck --model resnet8 --width 0.25 --input 8 --batch 2 --dump /dev/null");
  EXPECT_TRUE(is_user_error(r, "--dump"));
  EXPECT_TRUE(node_of("/dev/null").chr);
}

TEST(CliOutputs, DseOutDirIsCreatedOnlyWhenResultsAreWritten) {
  NEED_BIN();
  TempDir t;
  // A bad sweep fails before the run directory exists: nothing is left.
  auto r = run_cli("dse --model resnet8 --input 16 --batch 2 --sweep weight_kib=0..8:+4 --no-plots --out " +
                   q(t / "runs/a"));
  EXPECT_TRUE(is_user_error(r, "weight_kib"));
  EXPECT_TRUE(dir_entries(t.path).empty());
  // A good run creates it, missing parents included (as before), with exactly its two files.
  r = run_cli("dse --model resnet8 --input 16 --batch 2 --sweep array=16x16,32x32 --no-plots --out " + q(t / "runs/a"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(dir_entries(t / "runs/a"), (std::vector<std::string>{"points.csv", "report.json"}));
  // A file where the directory should be is refused before the work.
  std::ofstream(t / "file") << "x";
  r = run_cli("dse --model resnet8 --input 16 --batch 2 --sweep array=16x16 --no-plots --out " + q(t / "file"));
  EXPECT_TRUE(is_user_error(r, "not a directory"));
  r = run_cli("dse --model resnet8 --input 16 --batch 2 --sweep array=16x16 --no-plots --out " + q(t / "file/sub"));
  EXPECT_TRUE(is_user_error(r, "--out"));
}

// Runs the binary with `args` and a standard output whose reader is already gone (what `| head`
// leaves once head exits), stderr captured.
test::CliResult run_with_closed_stdout(const std::vector<std::string>& args, const std::string& errfile) {
  test::CliResult r;
  int fds[2];
  if (::pipe(fds) != 0) return r;
  ::close(fds[0]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int e = ::open(errfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fds[1], 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    const char* bin = std::getenv("SYSTRAIN_BIN");
    argv.push_back(const_cast<char*>(bin));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin, argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.err = read_file(errfile);
  return r;
}

TEST(CliOutputs, ClosedOrFullStdoutIsOneLineNotACrash) {
  NEED_BIN();
  TempDir t;
  // A full disk behind stdout: the report is lost, so the run must not exit 0.
  EXPECT_TRUE(is_user_error(run_cli("spec tpu-like > /dev/full"), "standard output"));
  // A closed pipe (`| head`): SIGPIPE is ignored, so a long report made fmt::print throw into main's
  // last net (exit 4), and a short one, still buffered at exit, was lost with exit 0.
  EXPECT_TRUE(is_user_error(run_with_closed_stdout({"bpcompare", "--topology", "resnet50"}, t / "err"),
                            "standard output: write failed (Broken pipe)"));
  EXPECT_TRUE(is_user_error(run_with_closed_stdout({"spec", "tpu-like"}, t / "err"),
                            "standard output: write failed (Broken pipe)"));
}

TEST(CliOutputs, InvalidUtf8LayerNameIsRefusedBeforeAnyOutput) {
  NEED_BIN();
  TempDir t;
  std::ofstream(t / "topo.csv") << "name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r\n"
                                   "b\xff" "d,1,2,8,8,2,3,3,1,1,1,1,1,1\n";
  // nlohmann threw type_error 316 after the whole run (exit 4); the topology reader now names the
  // line and the byte, and nothing is written.
  const auto r = run_cli("bpcompare --topology " + q(t / "topo.csv") + " --json " + q(t / "o.json"));
  EXPECT_TRUE(is_user_error(r, "topo.csv:2: the layer name is not valid UTF-8"));
  EXPECT_EQ(dir_entries(t.path), std::vector<std::string>{"topo.csv"});
}

// ---- 2. overflow ------------------------------------------------------------------------------

TEST(CliOverflow, GemmSizesWhoseProductsWrap) {
  NEED_BIN();
  // Segfaulted: M*K wrapped to 0 and passed the size check.
  EXPECT_TRUE(is_user_error(run_cli("gemm --m 4294967296 --n 4294967296 --k 4294967296"), "64 bits"));
  // std::length_error from a vector (exit 4).
  EXPECT_TRUE(is_user_error(run_cli("gemm --m 3037000500 --n 3037000500 --k 3037000500"), "64 bits"));
}

TEST(CliOverflow, BpcompareHugeBatch) {
  NEED_BIN();
  // Printed nonsense percentages (-1152% SRAM) and exited 0.
  const auto r = run_cli("bpcompare --batch 4611686018427387904");
  EXPECT_TRUE(is_user_error(r, "with batch 4611686018427387904, layer conv1: field N = 4611686018427387904 is outside"));
  EXPECT_EQ(r.output.find("reduction"), std::string::npos);
}

TEST(CliOverflow, NetworkSizesWhoseProductsWrap) {
  NEED_BIN();
  // Ran on wrapped tensor sizes and exited 0.
  EXPECT_TRUE(is_user_error(run_cli("project --model resnet8 --input 32 --channels 99999999999999999"),
                            "more than 2^59 elements"));
  EXPECT_TRUE(is_user_error(run_cli("project --model resnet8 --input 32 --classes 99999999999999999"),
                            "more than 2^59 elements"));
  EXPECT_TRUE(is_user_error(run_cli("dse --model resnet8 --input 32 --channels 99999999999999999 --sweep array=16x16"),
                            "more than 2^59 elements"));
}

TEST(WorkLimits, CheckedProduct) {
  EXPECT_EQ(checked_product({3, 5, 7}), 105);
  EXPECT_EQ(checked_product({}), 1);
  EXPECT_EQ(checked_product({int64_t{1} << 62, 2}), std::nullopt);
  EXPECT_EQ(checked_product({4294967296, 4294967296}), std::nullopt);
  EXPECT_EQ(checked_product({-1, 2}), std::nullopt);
  EXPECT_EQ(checked_product({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  EXPECT_NO_THROW(checked_elements({int64_t{1} << 29, int64_t{1} << 30}, "x", "y"));
  EXPECT_THROW(checked_elements({int64_t{1} << 30, int64_t{1} << 30}, "x", "y"), UserError);
}

TEST(WorkLimits, ConvSizesIncludeTheLoweredMatrices) {
  ConvDesc d;
  d.N = 1, d.C = 64, d.H = d.W = int64_t{1} << 24, d.K = 64, d.R = d.S = 7, d.sh = d.sw = 2;
  d.pt = d.pl = d.pb = d.pr = 3;
  // The tensors (2^54 elements) and the im2col matrix (2^57.6) fit, the backward-data matrix
  // (K R S N H W = 2^59.6) does not.
  try {
    check_conv_sizes(d, "layer x");
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("backward-data"), std::string::npos) << e.what();
  }
}

// ---- 3. hangs ---------------------------------------------------------------------------------

TEST(CliHangs, HugeInputOrBatchIsRefusedQuickly) {
  NEED_BIN();
  const std::pair<const char*, const char*> cases[] = {
      {"project --input 2147483648", "more than 2^59 elements"},
      {"project --batch 99999999999999", "more than 2^59 elements"},
      {"bpcompare --batch 99999999999999", "field N = 99999999999999 is outside"},  // the topology's bounds
      {"dse --batch 99999999999999 --sweep array=16x16", "more than 2^59 elements"}};
  for (const auto& [args, needle] : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(is_user_error(run_cli(args, 30), needle)) << args;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10) << args;
  }
}

TEST(CliHangs, TopologyWithAHugeLayerIsRefusedQuickly) {
  NEED_BIN();
  TempDir t;
  // Fits 64 bits (10^12 elements) but the lowering counts loop over every row: a hang.
  std::ofstream(t / "tall.csv") << "name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r\n"
                                   "tall,1,1,1000000000000,1,1,3,1,1,1,1,0,1,0\n";
  // Refused by the topology reader's bounds (the layer's height is beyond any real network's).
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --topology " + q(t / "tall.csv"), 30), "field H = 1000000000000 is outside"));
  std::ofstream(t / "wide.csv") << "name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r\n"
                                   "wide,1,1,1000000000000,1000000000000,1,3,3,1,1,1,1,1,1\n";
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --topology " + q(t / "wide.csv"), 30), "layer wide"));
}

TEST(CliHangs, ProjectionIsLinearInTheInputSize) {
  NEED_BIN();
  // The pooling work count walked every output pixel (quadratic): a 2^20 input took minutes.
  const auto r = run_cli("project --model resnet50 --input 1048576 --batch 1", 60);
  EXPECT_EQ(r.rc, 0) << r.err;
  // Beyond the costing limit it says so instead of running for minutes.
  EXPECT_TRUE(is_user_error(run_cli("project --model resnet8 --input 8388608 --batch 1", 30), "host steps"));
}

TEST(CliHangs, ProjectionTimeDoesNotDependOnTheBatch) {
  NEED_BIN();
  // The tiler's candidate tile sizes doubled past 2^62 and wrapped: a batch whose GEMM rows exceed
  // 2^62 looped forever. A valid huge batch must cost what batch 1 costs.
  for (const char* args : {"project --model resnet50 --batch 1", "project --model resnet50 --batch 1073741824"}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(run_cli(args, 30).rc, 0) << args;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5) << args;
  }
}

TEST(CostGemm, TileCandidatesDoNotOverflowOnHugeExtents) {
  const Spec spec = load_spec("tpu-like");
  GemmWork w;
  const int64_t M = (int64_t{1} << 62) + 1, N = 64, K = 64;
  w.shape = {M, N, K};
  w.a.rows = M, w.a.cols = K, w.a.dram_elems = double(M) * K;
  w.b.rows = K, w.b.cols = N, w.b.dram_elems = double(K * N);
  w.c.rows = M, w.c.cols = N, w.c.elem_bytes = 4, w.c.dram_elems = double(M) * N;
  w.useful_macs = double(M) * N * K;
  const Stats s = cost_gemm(w, spec);  // looped forever
  EXPECT_GT(s.get("cycles.total"), double(M));
}

TEST(Pool, WorkCountsEqualABruteForceCount) {
  // The window element count is now a product of per-axis sums; it must equal the plain count.
  const Spec spec = load_spec("tpu-like");
  const ExecContext ctx{&spec, nullptr, "p"};
  for (int ih : {1, 2, 5, 7, 12})
    for (int k : {1, 2, 3})
      for (int s : {1, 2, 3})
        for (int p = 0; p < k; ++p) {
          if (ih + 2 * p < k) continue;
          PoolDesc d{k, k, s, s, p, p, PoolAlg::avg_exclude_padding};
          const int64_t oh = pool_out_dim(ih, k, s, p), iw = ih + 1, ow = pool_out_dim(iw, k, s, p);
          if (iw + 2 * p < k) continue;
          double brute = 0;
          for (int64_t y = 0; y < oh; ++y)
            for (int64_t x = 0; x < ow; ++x) {
              const int64_t h0 = std::max<int64_t>(y * s - p, 0), h1 = std::min<int64_t>(y * s - p + k, ih);
              const int64_t w0 = std::max<int64_t>(x * s - p, 0), w1 = std::min<int64_t>(x * s - p + k, iw);
              brute += double((h1 - h0) * (w1 - w0));
            }
          const VectorWork f = pool_fwd_work(ctx, d, 2, 3, ih, iw);
          EXPECT_EQ(f.adds, brute * 6) << ih << " k" << k << " s" << s << " p" << p;
          const VectorWork b = pool_bwd_work(ctx, d, 2, 3, ih, iw);
          EXPECT_EQ(b.adds, brute * 6) << ih << " k" << k << " s" << s << " p" << p;
        }
}

TEST(CliHangs, GemmWorkIsBoundedByTheEstimate) {
  NEED_BIN();
  // The PE reference steps 16M PEs a cycle: it ran for hours.
  auto r = run_cli("gemm --rows 4096 --cols 4096 --check", 30);
  EXPECT_TRUE(is_user_error(r, "--force"));
  EXPECT_NE(r.err.find("PE-cycles"), std::string::npos) << r.err;
  // The emulation itself, by its MACs.
  r = run_cli("gemm --m 8192 --n 8192 --k 8192", 30);
  EXPECT_TRUE(is_user_error(r, "--force"));
  // Operands beyond the host's memory: refused before allocating, whatever --force says.
  r = run_cli("gemm --m 200000 --n 200000 --k 16 --force", 30);
  EXPECT_TRUE(is_user_error(r, "host memory"));
  // A small --check is unchanged.
  r = run_cli("gemm --m 40 --n 24 --k 70 --rows 8 --cols 8 --check", 60);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.output.find("bits identical"), std::string::npos) << r.output;
}

TEST(CliHangs, GradcheckIsBoundedByMemoryAndWork) {
  NEED_BIN();
  // std::bad_alloc before ("out of memory"): now the estimate names the cause.
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --input 100000", 30), "host memory"));
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --model resnet18 --input 128 --batch 64", 30), "--force"));
}

// ---- 4. accepted nonsense ---------------------------------------------------------------------

TEST(CliNonsense, GradcheckTolerance) {
  NEED_BIN();
  // Printed PASSED for every one of these.
  for (const char* v : {"-1", "nan", "inf", "1", "-inf"}) {
    const auto r = run_cli(std::string("gradcheck --model resnet8 --width 0.25 --input 8 --batch 2 --tolerance ") + v);
    EXPECT_TRUE(is_user_error(r, "--tolerance")) << v;
    EXPECT_EQ(r.output.find("PASSED"), std::string::npos) << v;
  }
}

TEST(CliNonsense, GradcheckShapes) {
  NEED_BIN();
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --input -1"), "--input"));
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --channels -2"), "--channels"));
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --width nan"), "width"));
  EXPECT_TRUE(is_user_error(run_cli("gradcheck --model resnet18 --input 1"), "stem.conv"));
}

TEST(CliNonsense, ResNet50OnAOnePixelInput) {
  NEED_BIN();
  const auto r = run_cli("project --model resnet50 --input 1");
  EXPECT_TRUE(is_user_error(r, "stem.conv"));
  EXPECT_NE(r.err.find("at least 17x17"), std::string::npos) << r.err;
}

TEST(CliNonsense, FloatingFlags) {
  NEED_BIN();
  EXPECT_TRUE(is_user_error(run_cli("dse --model resnet8 --input 16 --batch 2 --sweep array=16x16 --economical-pct inf"),
                            "--economical-pct"));
  EXPECT_TRUE(is_user_error(run_cli("project --model resnet8 --input 16 --width nan"), "--width"));
  EXPECT_TRUE(is_user_error(run_cli("project --model resnet8 --input 16 --width -1"), "--width"));
  EXPECT_TRUE(is_user_error(run_cli("bpcompare --batch 0"), "--batch"));
}

TEST(ResNet, EveryStridedLayerMustDownsample) {
  auto min_input = [](const std::string& name) {
    ResNetOptions o;
    o.name = name;
    o.in_c = 3;
    for (int64_t side = 1;; ++side) {
      o.in_h = o.in_w = side;
      try {
        build_resnet(o);
        return side;
      } catch (const UserError&) {
      }
    }
  };
  // CIFAR-style: two stride-2 stages; ImageNet-style: stem, pool and three stride-2 stages.
  EXPECT_EQ(min_input("resnet8"), 3);
  EXPECT_EQ(min_input("resnet20"), 3);
  EXPECT_EQ(min_input("resnet18"), 17);
  EXPECT_EQ(min_input("resnet50"), 17);
  // Every layer's output of an accepted network has H, W >= 1 and the architecture's halvings.
  ResNetOptions o;
  o.name = "resnet50";
  o.in_c = 3;
  o.in_h = o.in_w = 28;  // 28 -> 14 -> 7 -> 4 -> 2 -> 1
  const NetDesc d = build_resnet(o);
  for (const auto& n : d.nodes) EXPECT_GE(std::min(n.out.h, n.out.w), 1) << n.name;
  ResNetOptions bad = o;
  bad.in_h = bad.in_w = 9;
  try {
    build_resnet(bad);
    FAIL() << "accepted a 9x9 input";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("layer4.0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace st
