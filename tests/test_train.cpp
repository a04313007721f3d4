// The training loop: it learns, it resumes bit for bit, it is the same with 1 and 2 threads, it
// stops on a diverging loss, and it rejects bad input.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "src/base/error.h"
#include "src/io/h5.h"
#include "src/train/trainer.h"
#include "tests/util/cli_run.h"
#include "tests/util/run_files.h"
#include "tests/util/temp_dir.h"
#include "tests/util/train_config.h"

using namespace st;
namespace fs = std::filesystem;

namespace {

using test::have_fmnist;
TrainConfig small_config(const std::string& out) { return test::small_train_config(out); }

// Scratch run directories, removed when the test program ends (no stray files in /tmp).
struct ScratchDirs {
  std::vector<fs::path> dirs;
  ~ScratchDirs() {
    std::error_code ec;
    for (const fs::path& p : dirs) fs::remove_all(p, ec);
  }
};

std::string tmpdir(const std::string& name) {
  static ScratchDirs scratch;
  fs::path p = fs::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_test_train_" + name);
  fs::remove_all(p);
  scratch.dirs.push_back(p);
  return p.string();
}

std::vector<float> checkpoint_state(const std::string& dir) { return test::checkpoint_state(dir); }
std::vector<double> losses(const std::string& dir) { return test::series_losses(dir); }

}  // namespace

TEST(Train, LossGoesDownAndMatchesTheFixedSeedTable) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainConfig c = small_config(tmpdir("loss"));
  c.steps = 16;
  TrainResult r = train(c);
  EXPECT_EQ(r.steps_run, 16);
  auto l = losses(c.out_dir);
  ASSERT_EQ(l.size(), 16u);
  double first = (l[0] + l[1] + l[2] + l[3]) / 4, last = (l[12] + l[13] + l[14] + l[15]) / 4;
  EXPECT_LT(last, 0.8 * first) << "first 4 steps " << first << ", last 4 " << last;
  // Golden losses of this seed (steps 1, 8, 16): a change here means the numerics changed.
  const double golden[] = {2.8189749717712402, 2.1041526794433594, 1.9318090677261353};
  EXPECT_NEAR(l[0], golden[0], 1e-5 * golden[0]);
  EXPECT_NEAR(l[7], golden[1], 1e-5 * golden[1]);
  EXPECT_NEAR(l[15], golden[2], 1e-5 * golden[2]);
  for (const char* f : {"report.json", "layers.csv", "stats.h5", "checkpoint.h5"})
    EXPECT_TRUE(fs::exists(fs::path(c.out_dir) / f)) << f;
  EXPECT_GT(r.report["cycles"].get<double>(), 0);
  EXPECT_GT(r.report["energy_j"].get<double>(), 0);
}

TEST(Train, ResumeIsBitIdentical) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainConfig one = small_config(tmpdir("resume_one"));
  one.steps = 8;
  train(one);
  TrainConfig a = small_config(tmpdir("resume_a"));
  a.steps = 3;
  train(a);
  TrainConfig b = small_config(tmpdir("resume_b"));
  b.steps = 5;
  b.resume = a.out_dir + "/checkpoint.h5";
  TrainResult rb = train(b);
  EXPECT_EQ(rb.report["step_total"].get<int64_t>(), 8);
  auto x = checkpoint_state(one.out_dir), y = checkpoint_state(b.out_dir);
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
}

TEST(Train, SameBitsWithOneAndTwoThreads) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const int saved = omp_get_max_threads();
  std::vector<float> state[2];
  for (int t = 1; t <= 2; ++t) {
    omp_set_num_threads(t);
    TrainConfig c = small_config(tmpdir("threads" + std::to_string(t)));
    c.steps = 3;
    train(c);
    state[t - 1] = checkpoint_state(c.out_dir);
  }
  omp_set_num_threads(saved);
  ASSERT_EQ(state[0].size(), state[1].size());
  EXPECT_EQ(0, std::memcmp(state[0].data(), state[1].data(), state[0].size() * sizeof(float)));
}

TEST(Train, DivergingLossStopsAndKeepsTheLastGoodCheckpoint) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainConfig c = small_config(tmpdir("nan"));
  c.checkpoint_every = 1;
  c.inject_nan_at_step = 3;
  try {
    train(c);
    FAIL() << "training went on with a NaN loss";
  } catch (const TrainingDiverged& e) {
    EXPECT_NE(std::string(e.what()).find("step 3"), std::string::npos) << e.what();
  }
  // The checkpoint on disk is a complete, readable one from before the divergence.
  auto s = checkpoint_state(c.out_dir);
  ASSERT_FALSE(s.empty());
  for (float v : s) ASSERT_TRUE(std::isfinite(v));
  for (const auto& f : test::dir_entries(c.out_dir)) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
  // The series of the steps before the divergence is kept.
  EXPECT_EQ(losses(c.out_dir).size(), 2u);
}

TEST(Train, BadInputIsAUserError) {
  TrainConfig c = small_config(tmpdir("bad"));
  c.data_dir = "/nonexistent/dir";
  EXPECT_THROW(train(c), UserError);
  c = small_config(tmpdir("bad2"));
  c.lowering = "implicit";
  EXPECT_THROW(train(c), UserError);
  c = small_config(tmpdir("bad3"));
  c.batch = 0;
  EXPECT_THROW(train(c), UserError);
}

namespace {

// The series of a run directory (rows x 8) without the host_seconds column (wall time differs).
std::vector<std::vector<double>> series_rows(const std::string& dir) {
  h5::File f = h5::File::open(dir + "/stats.h5");
  h5::Dims dims;
  auto v = f.read<double>("series", &dims);
  std::vector<std::vector<double>> rows;
  for (int64_t r = 0; r < dims[0]; ++r) rows.emplace_back(v.begin() + r * dims[1], v.begin() + r * dims[1] + 7);
  return rows;
}

int64_t checkpoint_step(const std::string& dir) {
  return h5::File::open(dir + "/checkpoint.h5").read_scalar<int64_t>("step");
}

bool has_temporary(const std::string& dir) {
  for (const auto& f : test::dir_entries(dir))
    if (f.find(".tmp") != std::string::npos) return true;
  return false;
}

}  // namespace

// The stats series of a resumed run continues the checkpoint's rows: N steps + resume for M steps
// gives the same series as N+M steps in one run (only the wall-clock column differs).
TEST(Train, ResumedRunContinuesTheSeries) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainConfig one = small_config(tmpdir("series_one"));
  one.steps = 6;
  train(one);
  TrainConfig a = small_config(tmpdir("series_a"));
  a.steps = 2;
  train(a);
  TrainConfig b = small_config(tmpdir("series_b"));
  b.steps = 4;
  b.resume = a.out_dir + "/checkpoint.h5";
  train(b);
  auto x = series_rows(one.out_dir), y = series_rows(b.out_dir);
  ASSERT_EQ(x.size(), 6u);
  ASSERT_EQ(y.size(), 6u);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], y[i]) << "row " << i;
}

// ---- crashes, signals, a second run, a full disk: through the real binary ----------------------

namespace {

using test::CliResult;
using test::run_cli;

// A tiny plan: 64 images, batches of 16, 4 steps per epoch.
const std::string kTiny = "train --model resnet8 --width 0.25 --limit-train 64 --limit-test 32 --batch 16 --no-eval --quiet ";

// Starts the binary in the background (stdout and stderr to `log`); returns its pid.
pid_t spawn(const std::string& args, const std::string& fault, const std::string& log) {
  const char* bin = std::getenv("SYSTRAIN_BIN");
  if (!bin) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!fault.empty()) ::setenv("SYSTRAIN_FAULT", fault.c_str(), 1);
    const std::string cmd = "exec " + std::string(bin) + " " + args + " >" + log + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Runs the binary with SYSTRAIN_FAULT set (fault injection, see trainer.cpp) and waits for it;
// returns the raw wait status (run_cli cannot tell a SIGKILL from its own timeout).
int run_faulty(const std::string& fault, const std::string& args, const std::string& log) {
  pid_t pid = spawn(args, fault, log);
  int st = -1;
  if (pid > 0) ::waitpid(pid, &st, 0);
  return st;
}

bool killed_by(int status, int sig) { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }

}  // namespace

// kill -9 between checkpoints: the checkpoint and the stats series of the last checkpoint survive,
// and --resume continues both bit for bit (the series equals the uninterrupted run's).
TEST(TrainCrash, KillDuringTrainingKeepsCheckpointAndSeriesAndResumeIsBitIdentical) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string ref = t / "ref", run = t / "run";
  ASSERT_EQ(run_cli(kTiny + "--epochs 2 --checkpoint-every 2 --out " + ref).rc, 0);
  ASSERT_TRUE(killed_by(run_faulty("KILL@step:5", kTiny + "--epochs 2 --checkpoint-every 2 --out " + run, t / "log"),
                        SIGKILL));
  EXPECT_EQ(test::dir_entries(run), (std::vector<std::string>{"checkpoint.h5", "stats.h5"}));
  EXPECT_EQ(checkpoint_step(run), 4);
  auto head = series_rows(run), full = series_rows(ref);
  ASSERT_EQ(head.size(), 4u);
  for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(head[i], full[i]) << "row " << i;

  CliResult r = run_cli(kTiny + "--epochs 2 --checkpoint-every 2 --resume " + run + "/checkpoint.h5 --out " + run);
  ASSERT_EQ(r.rc, 0) << r.output;
  auto x = checkpoint_state(ref), y = checkpoint_state(run);
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
  EXPECT_EQ(series_rows(run), full);
}

// kill -9 while a checkpoint is being written (its temporary complete, not yet renamed): the
// previous checkpoint is intact, and the resumed run removes the dead run's temporary.
TEST(TrainCrash, KillDuringCheckpointWriteKeepsThePreviousCheckpoint) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string ref = t / "ref", run = t / "run";
  ASSERT_EQ(run_cli(kTiny + "--epochs 2 --checkpoint-every 2 --out " + ref).rc, 0);
  ASSERT_TRUE(killed_by(
      run_faulty("KILL@checkpoint:4", kTiny + "--epochs 2 --checkpoint-every 2 --out " + run, t / "log"), SIGKILL));
  EXPECT_EQ(checkpoint_step(run), 2);
  EXPECT_EQ(series_rows(run).size(), 4u);  // the series is written just before the checkpoint
  EXPECT_TRUE(has_temporary(run)) << "kill -9 cannot clean up; the next run does";

  CliResult r = run_cli(kTiny + "--epochs 2 --checkpoint-every 2 --resume " + run + "/checkpoint.h5 --out " + run);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_FALSE(has_temporary(run));
  auto x = checkpoint_state(ref), y = checkpoint_state(run);
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
  EXPECT_EQ(series_rows(run), series_rows(ref));
}

// Ctrl-C while a checkpoint is being written: the temporary is removed, the previous checkpoint
// stays, and the series (written just before) holds the steps up to the interrupted checkpoint.
TEST(TrainCrash, SigintDuringCheckpointWriteRemovesTheTemporary) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string run = t / "run";
  ASSERT_TRUE(killed_by(
      run_faulty("INT@checkpoint:3", kTiny + "--epochs 2 --checkpoint-every 1 --out " + run, t / "log"), SIGINT));
  EXPECT_EQ(test::dir_entries(run), (std::vector<std::string>{"checkpoint.h5", "stats.h5"}));
  EXPECT_EQ(checkpoint_step(run), 2);
  EXPECT_EQ(series_rows(run).size(), 3u);  // the series is written just before the checkpoint
}

// Ctrl-C from outside at whatever point the run has reached: no temporary left, the checkpoint on
// disk is complete and a resumed run finishes the plan.
TEST(TrainCrash, SigintFromOutsideLeavesACompleteCheckpoint) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string run = t / "run";
  pid_t pid = spawn(kTiny + "--epochs 50 --checkpoint-every 1 --out " + run, "", t / "log");
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 3000 && !fs::exists(run + "/checkpoint.h5"); ++i) ::usleep(10000);
  ASSERT_TRUE(fs::exists(run + "/checkpoint.h5"));
  ::usleep(300000);  // a few more steps and checkpoints
  ::kill(pid, SIGINT);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << "status " << st;
  EXPECT_FALSE(has_temporary(run));
  // The series holds at least the checkpoint's rows (one checkpoint ahead if the signal came
  // between the two writes).
  const int64_t s = checkpoint_step(run);
  EXPECT_GE(s, 1);
  const size_t rows = series_rows(run).size();
  EXPECT_TRUE(rows == size_t(s) || rows == size_t(s + 1)) << rows << " rows, checkpoint at step " << s;
  CliResult r = run_cli(kTiny + "--epochs 50 --steps 2 --resume " + run + "/checkpoint.h5 --out " + run);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(checkpoint_step(run), s + 2);
  EXPECT_EQ(series_rows(run).size(), size_t(s + 2));
}

// Two runs on the same --out: the second stops with one line and touches nothing; the first
// finishes normally.
TEST(TrainCli, SecondRunOnTheSameOutIsRefused) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string run = t / "run";
  // The first run stops itself (SIGSTOP) after step 1, holding the directory.
  pid_t pid = spawn(kTiny + "--epochs 1 --out " + run, "STOP@step:1", t / "log");
  ASSERT_GT(pid, 0);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(st)) << "status " << st;
  const auto before = test::dir_entries(run);
  CliResult b = run_cli(kTiny + "--epochs 1 --out " + run + " --json " + t / "b.json");
  EXPECT_TRUE(test::is_user_error(b, "in use by another systrain run"));
  EXPECT_EQ(test::dir_entries(run), before);
  EXPECT_FALSE(fs::exists(t / "b.json"));
  ::kill(pid, SIGCONT);
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  EXPECT_TRUE(fs::exists(run + "/report.json"));
}

// A checkpoint write on a full disk fails with one line; the previous checkpoint and series are
// untouched and nothing is left behind. Needs root (mounts a small tmpfs).
TEST(TrainCli, FullDiskKeepsThePreviousCheckpoint) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string mnt = t / "mnt";
  fs::create_directories(mnt);
  if (::mount("none", mnt.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << ")";
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string run = mnt + "/run";
  ASSERT_EQ(run_cli(kTiny + "--epochs 2 --steps 1 --out " + run).rc, 0);
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string ckpt = slurp(run + "/checkpoint.h5"), stats = slurp(run + "/stats.h5");
  ASSERT_FALSE(ckpt.empty());
  const auto before = test::dir_entries(run);
  // Leaves `left` bytes free on the tmpfs (a filler file takes the rest).
  auto fill_leaving = [&](int64_t left) {
    fs::remove(mnt + "/filler");
    struct statvfs vfs {};
    ASSERT_EQ(::statvfs(mnt.c_str(), &vfs), 0);
    const int64_t avail = int64_t(vfs.f_bavail) * int64_t(vfs.f_bsize);
    ASSERT_GT(avail, left + int64_t(ckpt.size()));
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    filler << std::string(size_t(avail - left), 'x');
  };
  const std::string resume = kTiny + "--epochs 2 --steps 1 --resume " + run + "/checkpoint.h5 --out " + run;
  // A full disk: the series (written first) is refused, nothing changes.
  fill_leaving(1024);
  CliResult r = run_cli(resume);
  EXPECT_TRUE(test::is_user_error(r, "stats.h5")) << r.err;
  EXPECT_EQ(test::dir_entries(run), before);
  EXPECT_TRUE(slurp(run + "/checkpoint.h5") == ckpt) << "the previous checkpoint changed";
  EXPECT_TRUE(slurp(run + "/stats.h5") == stats) << "the previous series changed";
  // Room for the series but not for the checkpoint beside the old one: the checkpoint is refused,
  // the previous one stays (the series then holds the step after it, as after a kill).
  fill_leaving(16 * 1024);
  r = run_cli(resume);
  EXPECT_TRUE(test::is_user_error(r, "checkpoint.h5")) << r.err;
  EXPECT_EQ(test::dir_entries(run), before);
  EXPECT_TRUE(slurp(run + "/checkpoint.h5") == ckpt) << "the previous checkpoint changed";
  EXPECT_EQ(checkpoint_step(run), 1);
  EXPECT_EQ(series_rows(run).size(), 2u);
  // With space again, the same checkpoint resumes.
  fs::remove(mnt + "/filler");
  CliResult again = run_cli(kTiny + "--epochs 2 --steps 1 --resume " + run + "/checkpoint.h5 --out " + run);
  EXPECT_EQ(again.rc, 0) << again.output;
  EXPECT_EQ(checkpoint_step(run), 2);
}
