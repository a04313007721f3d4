// train --data-parallel (README "Scale-out"): P = 1 equals plain train bit for bit, P = 2 gives the
// same bits on every run and thread count, the wire format and --sync-bn change what they should,
// rank 0's checkpoint resumes with the same P (and is refused with another), a dying rank ends the
// job and leaves the last checkpoint intact, a set-up error is reported once.
// The runs go through mpirun (SYSTRAIN_MPIRUN, set by ctest) on one host: two ranks, shared memory.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "src/io/h5.h"
#include "tests/util/cli_run.h"
#include "tests/util/run_files.h"
#include "tests/util/temp_dir.h"
#include "tests/util/train_config.h"

using namespace st;
using test::run_cli;

namespace {

// mpirun as root in a container: allowed explicitly; more ranks than cores; shared memory only.
// The inner timeout (TERM) lets mpirun take its ranks down before the outer one (KILL) would.
std::string mpirun(int np) {
  const char* m = std::getenv("SYSTRAIN_MPIRUN");
  return std::string("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 100 ") +
         (m ? m : "mpirun") + " -np " + std::to_string(np) +
         " --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none";
}

// ResNet-8 at width 0.5 on 256 Fashion-MNIST images, global batch 32: a 16-step plan (2 epochs).
const std::string kArgs =
    "train --model resnet8 --width 0.5 --limit-train 256 --epochs 2 --lr 0.05 --quiet --no-eval ";

test::CliResult train(const std::string& extra, const std::string& out, int np = 0, const std::string& env = "") {
  const std::string launcher = (env.empty() ? "" : "env " + env + " ") + (np > 0 ? mpirun(np) : "");
  return run_cli(kArgs + "--batch 32 " + extra + " --out '" + out + "'", 120, launcher);
}

std::vector<float> state(const std::string& dir) { return test::checkpoint_state(dir); }
// Trainable parameters only (running statistics of per-replica BN are rank 0's).
std::vector<float> weights(const std::string& dir) {
  h5::File f = h5::File::open(dir + "/checkpoint.h5");
  std::vector<float> all;
  for (const auto& name : f.list("params"))
    if (name.find("running") == std::string::npos) {
      auto v = f.read<float>("params/" + name);
      all.insert(all.end(), v.begin(), v.end());
    }
  return all;
}

std::vector<double> losses(const std::string& dir) { return test::series_losses(dir); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

#define NEED_RUNS()                                                       \
  NEED_BIN();                                                             \
  if (!test::have_fmnist()) GTEST_SKIP() << "Fashion-MNIST not installed"

}  // namespace

TEST(DataParallel, OneReplicaEqualsPlainTrainBitForBit) {
  NEED_RUNS();
  test::TempDir d;
  ASSERT_EQ(train("--steps 4", d / "plain").rc, 0);
  const auto r1 = train("--steps 4 --data-parallel", d / "dp1");
  ASSERT_EQ(r1.rc, 0) << r1.output;
  const auto r2 = train("--steps 4 --data-parallel --sync-bn", d / "dp1sync", 1);
  ASSERT_EQ(r2.rc, 0) << r2.output;
  EXPECT_TRUE(same_bits(state(d / "plain"), state(d / "dp1")));
  EXPECT_TRUE(same_bits(state(d / "plain"), state(d / "dp1sync")));
  EXPECT_EQ(losses(d / "plain"), losses(d / "dp1"));
  EXPECT_EQ(losses(d / "plain"), losses(d / "dp1sync"));
  EXPECT_NE(r1.output.find("1 replicas x batch 32"), std::string::npos) << r1.output;
}

TEST(DataParallel, TwoReplicasGiveTheSameBitsEveryRunAndThreadCount) {
  NEED_RUNS();
  test::TempDir d;
  const auto a = train("--steps 4 --data-parallel", d / "a", 2, "OMP_NUM_THREADS=1");
  ASSERT_EQ(a.rc, 0) << a.output;
  ASSERT_EQ(train("--steps 4 --data-parallel", d / "b", 2, "OMP_NUM_THREADS=2").rc, 0);
  ASSERT_EQ(train("--steps 4", d / "plain").rc, 0);
  EXPECT_TRUE(same_bits(state(d / "a"), state(d / "b")));
  EXPECT_EQ(losses(d / "a"), losses(d / "b"));
  // Per-replica BN over 16 images is not BN over 32: the run differs from one replica's.
  EXPECT_FALSE(same_bits(weights(d / "a"), weights(d / "plain")));
  EXPECT_NE(a.output.find("2 replicas x batch 16 (per-replica BN, ring all-reduce"), std::string::npos) << a.output;
  // bf16 gradients on the wire change the bits (and stay close).
  std::ofstream(d / "bf16.toml") << "base = \"tpu-like\"\n[interconnect]\nwire_format = \"bf16\"\n";
  ASSERT_EQ(train("--steps 4 --data-parallel --spec '" + (d / "bf16.toml") + "'", d / "w", 2).rc, 0);
  const auto wa = weights(d / "a"), ww = weights(d / "w");
  ASSERT_EQ(wa.size(), ww.size());
  EXPECT_FALSE(same_bits(wa, ww));
  double maxdiff = 0;
  for (size_t i = 0; i < wa.size(); ++i) maxdiff = std::max(maxdiff, double(std::fabs(wa[i] - ww[i])));
  EXPECT_LT(maxdiff, 0.05);
}

TEST(DataParallel, SyncBnNormalizesWithTheGlobalBatch) {
  NEED_RUNS();
  test::TempDir d;
  // fp32 on the array: with bf16 a last-bit change of a BN statistic can flip the rounding of an
  // operand and the comparison would measure bf16, not BN.
  std::ofstream(d / "fp32.toml") << "base = \"tpu-like\"\n[array]\nformat = \"fp32\"\n";
  const std::string spec = "--steps 1 --spec '" + (d / "fp32.toml") + "' ";
  ASSERT_EQ(train(spec, d / "plain").rc, 0);
  ASSERT_EQ(train(spec + "--data-parallel --sync-bn", d / "sync", 2).rc, 0);
  ASSERT_EQ(train(spec + "--data-parallel", d / "local", 2).rc, 0);
  // Step 1 runs the same weights on the same 32 images: with synchronized statistics the loss is
  // the global batch's up to the order of the sums; per-replica statistics (16 images) give another.
  const double plain = losses(d / "plain")[0], sync = losses(d / "sync")[0], local = losses(d / "local")[0];
  EXPECT_NEAR(sync, plain, 1e-6 * plain);
  EXPECT_GT(std::fabs(local - plain), 1e-3 * plain) << local << " vs " << plain;
}

TEST(DataParallel, ResumeWithTheSameReplicasIsBitIdenticalAndAnotherPIsRefused) {
  NEED_RUNS();
  test::TempDir d;
  ASSERT_EQ(train("--steps 4 --data-parallel", d / "whole", 2).rc, 0);
  ASSERT_EQ(train("--steps 2 --data-parallel", d / "part", 2).rc, 0);
  const auto r = train("--steps 2 --data-parallel --resume '" + (d / "part") + "/checkpoint.h5'", d / "part", 2);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(same_bits(state(d / "whole"), state(d / "part")));
  EXPECT_EQ(losses(d / "whole"), losses(d / "part"));
  const auto one = train("--steps 2 --data-parallel --resume '" + (d / "part") + "/checkpoint.h5'", d / "other");
  EXPECT_TRUE(test::is_user_error(one, "made with 2 data-parallel replicas, this run has 1"));
  EXPECT_FALSE(std::filesystem::exists(d / "other"));
}

TEST(DataParallel, ADyingRankEndsTheJobAndTheCheckpointSurvives) {
  NEED_RUNS();
  test::TempDir d;
  // Rank 1 is killed right after step 3; the checkpoint of step 2 (rank 0's) must stay whole.
  // (mpirun exits 137 = 128 + SIGKILL, which run_cli reports like its own time limit as 124: a hang
  // is told apart by the clock instead, the inner limit being 100 s.)
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = train("--steps 6 --checkpoint-every 2 --data-parallel", d / "k", 2,
                       "SYSTRAIN_FAULT=KILL@step:3 SYSTRAIN_FAULT_RANK=1");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.rc, 0);
  EXPECT_LT(took, 90) << "the job hung instead of ending";
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;
  EXPECT_EQ(h5::File::open(d / "k/checkpoint.h5").read_scalar<int64_t>("step"), 2);
  // Resumed to the end, it equals the uninterrupted run.
  ASSERT_EQ(train("--steps 4 --data-parallel --resume '" + (d / "k") + "/checkpoint.h5'", d / "k", 2).rc, 0);
  ASSERT_EQ(train("--steps 6 --data-parallel", d / "whole", 2).rc, 0);
  EXPECT_TRUE(same_bits(state(d / "k"), state(d / "whole")));
}

TEST(DataParallel, ASetUpErrorIsReportedOnceAndNothingIsWritten) {
  NEED_RUNS();
  test::TempDir d;
  const auto r = run_cli(kArgs + "--batch 30 --data-parallel --out '" + (d / "x") + "'", 120, mpirun(4));
  EXPECT_EQ(r.rc, 2) << r.output;
  size_t count = 0;
  for (size_t p = r.err.find("systrain: error:"); p != std::string::npos; p = r.err.find("systrain: error:", p + 1))
    ++count;
  EXPECT_EQ(count, 1u) << r.err;
  EXPECT_NE(r.err.find("--batch 30 is not a multiple of the 4 data-parallel replicas"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(d / "x"));
  EXPECT_TRUE(test::is_user_error(run_cli(kArgs + "--batch 32 --sync-bn --out '" + (d / "y") + "'"), "--sync-bn needs --data-parallel"));
}

TEST(DataParallel, DseSplitAcrossRanksWritesTheSameReport) {
  NEED_BIN();
  test::TempDir d;
  const std::string args =
      "dse --model resnet18 --input 64 --batch 4 --sweep array=16x16,32x32 --sweep buffers_kib=32,64,128 "
      "--sweep replicas=1,4 --no-plots --out ";
  auto file = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  ASSERT_EQ(run_cli(args + "'" + (d / "one") + "'").rc, 0);
  const std::string want = file(d / "one/points.csv");
  ASSERT_GT(want.size(), 100u);
  for (int np : {1, 2, 3}) {
    const std::string out = d / ("np" + std::to_string(np));
    const auto r = run_cli(args + "'" + out + "'", 120, mpirun(np));
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_EQ(file(out + "/points.csv"), want) << "np " << np;
    // Rank 0 alone reports.
    size_t headers = 0;
    for (size_t p = r.output.find("== systrain dse"); p != std::string::npos; p = r.output.find("== systrain dse", p + 1))
      ++headers;
    EXPECT_EQ(headers, 1u) << r.output;
  }
  const auto bad = run_cli("dse --model resnet18 --input 64 --sweep array=0x4 --no-plots", 120, mpirun(2));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(bad.err.find("systrain: error:"), bad.err.rfind("systrain: error:")) << bad.err;
  EXPECT_NE(bad.err.find("array"), std::string::npos) << bad.err;
}
