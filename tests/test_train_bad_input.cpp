// `systrain train` with bad input, through the real binary (SYSTRAIN_BIN, set by ctest): every
// mistake gives one line "systrain: error: ..." naming the problem, exit code 2, before any work
// and with nothing written; a forged or foreign checkpoint is refused naming the file and the field.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/io/h5.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using st::test::CliResult;
using st::test::dir_entries;
using st::test::is_user_error;
using st::test::run_cli;

namespace {

bool have_fmnist() { return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

std::string q(const std::string& s) { return "'" + s + "'"; }

// A tiny plan (64 images, batches of 16: 4 steps per epoch) with some options replaced or added.
using Opts = std::map<std::string, std::string>;
std::string tiny(const Opts& over) {
  Opts o = {{"--model", "resnet8"}, {"--width", "0.25"}, {"--limit-train", "64"}, {"--limit-test", "32"},
            {"--batch", "16"},      {"--epochs", "2"}};
  for (const auto& [k, v] : over) o[k] = v;
  std::string s = "train --no-eval --quiet";
  for (const auto& [k, v] : o) s += " " + k + " " + q(v);
  return s;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

// --out naming something that is not a directory: refused up front, the file untouched (it used to
// abort with std::filesystem::error).
TEST(TrainBadInput, OutThatIsNotADirectoryIsRefused) {
  st::test::TempDir t;
  const std::string file = t / "file";
  std::ofstream(file) << "precious\n";
  const std::string passwd = slurp("/etc/passwd");
  fs::create_symlink(t / "missing", t / "dangling");
  for (const std::string& out : {file, std::string("/etc/passwd"), std::string("/dev/null"), t / "dangling",
                                 t / "no/such/parent", std::string("")}) {
    CliResult r = run_cli(tiny({{"--out", out}}));
    EXPECT_TRUE(is_user_error(r, "--out")) << out;
  }
  EXPECT_EQ(slurp(file), "precious\n");
  EXPECT_EQ(slurp("/etc/passwd"), passwd);
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_EQ(dir_entries(t.path), (std::vector<std::string>{"dangling", "file"}));
}

// --json naming a directory (or a file in a missing directory) fails before training, not after the
// whole run: the run directory is never created.
TEST(TrainBadInput, JsonPathIsCheckedBeforeTraining) {
  st::test::TempDir t;
  fs::create_directories(t / "dir");
  fs::create_symlink(t / "missing", t / "dangling");
  for (const std::string& json : {t / "dir", t / "no/such/dir/r.json", t / "dangling"}) {
    CliResult r = run_cli(tiny({{"--out", t / "run"}, {"--json", json}}));
    EXPECT_TRUE(is_user_error(r, "--json")) << json;
    EXPECT_FALSE(fs::exists(t / "run")) << json;
  }
  // The report written over the run's own checkpoint would destroy it.
  fs::create_directories(t / "own");
  CliResult r = run_cli(tiny({{"--out", t / "own"}, {"--json", t / "own/checkpoint.h5"}}));
  EXPECT_TRUE(is_user_error(r, "own checkpoint.h5"));
  EXPECT_TRUE(dir_entries(t / "own").empty());
}

// The outputs inside the run directory are checked up front too: a directory where report.json or
// checkpoint.h5 goes stops the run before it trains (it used to leave stats.h5.tmp behind).
TEST(TrainBadInput, RunDirectoryOutputsAreCheckedBeforeTraining) {
  st::test::TempDir t;
  for (const char* f : {"report.json", "checkpoint.h5", "stats.h5", "layers.csv"}) {
    const std::string run = t / (std::string("run_") + f);
    fs::create_directories(fs::path(run) / f);
    CliResult r = run_cli(tiny({{"--out", run}}));
    EXPECT_TRUE(is_user_error(r, f)) << f;
    EXPECT_EQ(dir_entries(run), std::vector<std::string>{f}) << f;
  }
}

// Every numeric flag with 0, -1, huge, nan, inf and every path flag with a directory, a missing
// file or a device: a user error naming the flag, and no run directory.
TEST(TrainBadInput, FlagsOutOfRangeAreRefused) {
  st::test::TempDir t;
  fs::create_directories(t / "dir");
  fs::create_symlink(t / "missing", t / "dangling");
  const std::string run = t / "run";
  struct Case {
    Opts opts;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{{"--warmup-steps", "-7"}}, "--warmup-steps"},
      {{{"--warmup-steps", "-2"}}, "--warmup-steps"},
      {{{"--warmup-steps", "9"}}, "--warmup-steps"},  // longer than the 8-step plan
      {{{"--warmup-steps", "9223372036854775807"}}, "--warmup-steps"},
      {{{"--lr", "0"}}, "--lr"},
      {{{"--lr", "-1"}}, "--lr"},
      {{{"--lr", "nan"}}, "--lr"},
      {{{"--lr", "inf"}}, "--lr"},
      {{{"--lr", "1e308"}}, "--lr"},
      {{{"--momentum", "-1"}}, "--momentum"},
      {{{"--momentum", "1"}}, "--momentum"},
      {{{"--momentum", "nan"}}, "--momentum"},
      {{{"--momentum", "inf"}}, "--momentum"},
      {{{"--weight-decay", "-1"}}, "--weight-decay"},
      {{{"--weight-decay", "nan"}}, "--weight-decay"},
      {{{"--weight-decay", "inf"}}, "--weight-decay"},
      {{{"--batch", "0"}}, "--batch"},
      {{{"--batch", "-1"}}, "--batch"},
      {{{"--batch", "99999999999999"}}, "--batch"},
      {{{"--batch", "128"}}, "fewer than one batch"},
      {{{"--epochs", "0"}}, "--epochs"},
      {{{"--epochs", "-1"}}, "--epochs"},
      {{{"--epochs", "9223372036854775807"}}, "--epochs"},  // x 4 batches per epoch overflows
      {{{"--epochs", "99999999999999999999"}}, "--epochs"},
      {{{"--steps", "-1"}}, "--steps"},
      {{{"--checkpoint-every", "-1"}}, "--checkpoint-every"},
      {{{"--limit-train", "0"}}, "--limit-train"},
      {{{"--limit-train", "-7"}}, "--limit-train"},
      {{{"--limit-test", "-7"}}, "--limit-test"},
      {{{"--width", "0"}}, "width"},
      {{{"--width", "-1"}}, "width"},
      {{{"--width", "nan"}}, "width"},
      {{{"--width", "inf"}}, "width"},
      {{{"--width", "1e9"}}, "width"},
      {{{"--width", "16"}, {"--batch", "4096"}, {"--limit-train", "5000"}}, "memory"},
      {{{"--seed", "-1"}}, "--seed"},
      {{{"--seed", "nan"}}, "--seed"},
      {{{"--seed", "18446744073709551616"}}, "--seed"},
      {{{"--seed", "0x10"}}, "--seed"},
      {{{"--model", "resnet99"}}, "resnet99"},
      {{{"--shortcut", "x"}}, "shortcut"},
      {{{"--schedule", "x"}}, "--schedule"},
      {{{"--lowering", "x"}}, "--lowering"},
      {{{"--spec", t / "dir"}}, "spec"},
      {{{"--spec", "/dev/null"}}, "spec"},
      {{{"--spec", t / "missing.toml"}}, "spec"},
      {{{"--dataset", "/dev/null"}}, "/dev/null"},
      {{{"--dataset", t / "dir"}}, t / "dir"},
      {{{"--dataset", t / "missing.h5"}}, "missing.h5"},
      {{{"--data-dir", t / "missing"}}, "missing"},
      {{{"--resume", t / "dir"}}, "checkpoint"},
      {{{"--resume", "/dev/null"}}, "checkpoint"},
      {{{"--resume", t / "missing.h5"}}, "checkpoint"},
      {{{"--resume", t / "dangling"}}, "checkpoint"},
  };
  for (const Case& c : cases) {
    Opts o = c.opts;
    o["--out"] = run;
    CliResult r = run_cli(tiny(o), 60);
    std::string what;
    for (const auto& [k, v] : c.opts) what += k + " " + v + " ";
    EXPECT_TRUE(is_user_error(r, c.needle)) << what;
    EXPECT_FALSE(fs::exists(run)) << what;
    fs::remove_all(run);
  }
}

// What is not a mistake keeps working: huge --steps and --checkpoint-every, the largest seed,
// --json into a device or through a symlink, --out through a symlink, --resume through a symlink.
TEST(TrainBadInput, EdgeValuesThatAreValidRun) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  st::test::TempDir t;
  fs::create_directories(t / "real");
  fs::create_symlink(t / "real", t / "link");
  std::ofstream(t / "target.json") << "old\n";
  fs::create_symlink(t / "target.json", t / "json_link");
  CliResult r = run_cli(tiny({{"--out", t / "link"}, {"--steps", "9223372036854775807"},
                              {"--checkpoint-every", "9223372036854775807"}, {"--seed", "18446744073709551615"},
                              {"--json", t / "json_link"}, {"--warmup-steps", "0"}}));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(fs::is_symlink(t / "json_link"));
  EXPECT_NE(slurp(t / "target.json").find("\"step_total\": 8"), std::string::npos);
  EXPECT_EQ(dir_entries(t / "real"),
            (std::vector<std::string>{"checkpoint.h5", "layers.csv", "report.json", "stats.h5"}));
  fs::create_symlink(t / "real/checkpoint.h5", t / "ckpt_link");
  r = run_cli(tiny({{"--out", t / "again"}, {"--epochs", "2"}, {"--seed", "18446744073709551615"},
                    {"--warmup-steps", "0"}, {"--resume", t / "ckpt_link"}, {"--json", "/dev/null"}}));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

// ---- forged and foreign checkpoints ---------------------------------------------------------

namespace {

// One valid checkpoint of the tiny plan at step 2, made once for the suite.
class TrainCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = fs::temp_directory_path() / ("st_" + std::to_string(::getpid()) + "_checkpoint_base");
    fs::remove_all(base_);
    if (have_fmnist()) made_ = run_cli(tiny({{"--out", base_.string()}, {"--steps", "2"}})).rc == 0;
  }
  static void TearDownTestSuite() { fs::remove_all(base_); }
  void SetUp() override {
    if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    ASSERT_TRUE(made_);
  }

  // A copy of the base checkpoint changed by `edit`, resumed into a fresh --out: must be refused
  // with one line naming the file and containing `needle`, before the run directory exists.
  void expect_refused(const std::function<void(st::h5::File&)>& edit, const std::string& needle,
                      const Opts& extra = {}) {
    st::test::TempDir t;
    const std::string forged = t / "forged.h5";
    fs::copy_file(base_ / "checkpoint.h5", forged);
    {
      st::h5::File f = st::h5::File::open(forged, st::h5::File::Mode::read_write);
      edit(f);
      f.close();
    }
    Opts o = extra;
    o["--resume"] = forged;
    o["--out"] = t / "run";
    CliResult r = run_cli(tiny(o), 60);
    EXPECT_TRUE(is_user_error(r, needle));
    EXPECT_NE(r.err.find(forged), std::string::npos) << "the message must name the file: " << r.err;
    EXPECT_FALSE(fs::exists(t / "run"));
  }

  static std::string plan_with(const std::function<void(nlohmann::json&)>& edit) {
    st::h5::File f = st::h5::File::open((base_ / "checkpoint.h5").string());
    auto plan = nlohmann::json::parse(f.read_string("plan"));
    edit(plan);
    return plan.dump();
  }

  static void remove(st::h5::File& f, const char* name) { ASSERT_GE(H5Ldelete(f.id(), name, H5P_DEFAULT), 0); }

  static inline fs::path base_;
  static inline bool made_ = false;
};

}  // namespace

// A plan that is not a JSON object, not JSON at all, or misses / mistypes a field (a plan that is
// not an object used to abort with nlohmann's type_error).
TEST_F(TrainCheckpoint, PlanMustBeAValidObject) {
  expect_refused([](st::h5::File& f) { f.write_string("plan", "\"a string\""); }, "plan must be a JSON object");
  expect_refused([](st::h5::File& f) { f.write_string("plan", "[1, 2]"); }, "plan must be a JSON object");
  expect_refused([](st::h5::File& f) { f.write_string("plan", "{not json"); }, "plan is not valid JSON");
  expect_refused([](st::h5::File& f) { f.write_string("plan", ""); }, "plan is not valid JSON");
  expect_refused([](st::h5::File& f) { f.write_string("plan", "{\"model\": \"\xff\"}"); }, "plan is not valid JSON");
  expect_refused([](st::h5::File& f) { f.write<double>("plan", std::vector<double>{1.0}); }, "plan");
  expect_refused([](st::h5::File& f) { remove(f, "plan"); }, "plan is missing");
  const std::string no_batch = plan_with([](nlohmann::json& p) { p.erase("batch"); });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", no_batch); }, "plan.batch is missing");
  const std::string str_batch = plan_with([](nlohmann::json& p) { p["batch"] = "16"; });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", str_batch); }, "plan.batch must be");
  const std::string zero_batch = plan_with([](nlohmann::json& p) { p["batch"] = 0; });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", zero_batch); }, "plan.batch must be >= 1");
  const std::string neg_seed = plan_with([](nlohmann::json& p) { p["seed"] = -1; });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", neg_seed); }, "plan.seed");
  const std::string bad_horizon = plan_with([](nlohmann::json& p) { p["horizon"] = 12345; });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", bad_horizon); }, "plan.horizon");
  const std::string bad_input = plan_with([](nlohmann::json& p) { p["input"] = {1, 28}; });
  expect_refused([&](st::h5::File& f) { f.write_string("plan", bad_input); }, "plan.input");
}

// step = -5, 2^62, beyond the plan, not an integer, not a scalar, missing (-5 and 2^62 used to be
// resumed).
TEST_F(TrainCheckpoint, StepMustBeWithinThePlan) {
  expect_refused([](st::h5::File& f) { f.write_scalar<int64_t>("step", -5); }, "step = -5");
  expect_refused([](st::h5::File& f) { f.write_scalar<int64_t>("step", int64_t{1} << 62); }, "step = 4611686018427387904");
  expect_refused([](st::h5::File& f) { f.write_scalar<int64_t>("step", 9); }, "step = 9 is outside the plan");
  expect_refused([](st::h5::File& f) { f.write_scalar<double>("step", 2.0); }, "step is not an integer");
  expect_refused([](st::h5::File& f) { f.write<int64_t>("step", std::vector<int64_t>{2, 2}); }, "step must be a single value");
  expect_refused([](st::h5::File& f) { remove(f, "step"); }, "step is missing");
  // A step the iterator state and series do not agree with.
  expect_refused([](st::h5::File& f) { f.write_scalar<int64_t>("step", 3); }, "rng/iterator_state");
}

TEST_F(TrainCheckpoint, IteratorStateMustMatchTheStep) {
  auto set = [](size_t i, uint64_t v) {
    return [i, v](st::h5::File& f) {
      auto s = f.read<uint64_t>("rng/iterator_state");
      s[i] = v;
      f.write<uint64_t>("rng/iterator_state", s);
    };
  };
  expect_refused(set(0, 12345), "rng/iterator_state");          // seed
  expect_refused(set(1, 7), "rng/iterator_state");              // epoch
  expect_refused(set(2, 48), "rng/iterator_state");             // position
  expect_refused(set(2, ~uint64_t{0}), "rng/iterator_state");   // position -1
  expect_refused(set(3, 1000000), "rng/iterator_state");        // samples
  expect_refused([](st::h5::File& f) { f.write<uint64_t>("rng/iterator_state", std::vector<uint64_t>{1, 0, 32}); },
                 "rng/iterator_state must hold 4 values");
  expect_refused([](st::h5::File& f) { remove(f, "rng/iterator_state"); }, "rng/iterator_state is missing");
}

// Tensors of another shape, non-finite, extra or missing; the series of another length; a header
// that declares more data than the file holds; a wrong or missing format; not HDF5 at all.
TEST_F(TrainCheckpoint, TensorsSeriesAndFormatAreChecked) {
  expect_refused([](st::h5::File& f) { f.write_tensor("params/fc.bias", st::Tensor({3})); }, "params/fc.bias has shape");
  expect_refused(
      [](st::h5::File& f) {
        auto v = f.read<float>("params/fc.bias");
        v[1] = std::nanf("");
        f.write<float>("params/fc.bias", v);
      },
      "params/fc.bias holds a non-finite value");
  expect_refused([](st::h5::File& f) { f.write_tensor("params/bogus.weight", st::Tensor({2})); },
                 "params/bogus.weight is not a tensor of this network");
  expect_refused([](st::h5::File& f) { remove(f, "velocity/fc.weight"); }, "velocity/fc.weight is missing");
  expect_refused([](st::h5::File& f) { f.write<double>("series", std::vector<double>(8, 1.0)); }, "series must have 2 rows");
  expect_refused(
      [](st::h5::File& f) {
        auto v = f.read<double>("series");
        v[8] = 7;  // row 1 claims step 7
        f.write<double>("series", v.data(), st::h5::Dims{2, 8});
      },
      "series row 1");
  // A series header that declares 2^40 rows in a small file (chunked, nothing stored).
  expect_refused(
      [](st::h5::File& f) {
        remove(f, "series");
        f.create_series<double>("series", 8);
        st::h5::Handle d(H5Dopen2(f.id(), "/series", H5P_DEFAULT), H5Dclose);
        hsize_t ext[2] = {hsize_t{1} << 40, 8};
        ASSERT_GE(H5Dset_extent(d.get(), ext), 0);
      },
      "more than the");
  expect_refused([](st::h5::File& f) { ASSERT_GE(H5Adelete(f.id(), "format"), 0); }, "not a systrain checkpoint");
  expect_refused([](st::h5::File& f) { f.set_attr("/", "format", "systrain-checkpoint-9\nsecond line"); },
                 "not a systrain checkpoint");
  {
    st::test::TempDir t;
    std::ofstream(t / "text.h5") << "not an HDF5 file\n";
    CliResult r = run_cli(tiny({{"--resume", t / "text.h5"}, {"--out", t / "run"}}));
    EXPECT_TRUE(is_user_error(r, t / "text.h5"));
  }
}

// A checkpoint of another model, width, dataset size or seed: refused naming what differs.
TEST_F(TrainCheckpoint, CheckpointOfAnotherRunIsRefused) {
  st::test::TempDir t;
  const std::string ckpt = (base_ / "checkpoint.h5").string();
  struct Case {
    Opts opts;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{{{{"--model", "resnet20"}}, "model"},
                                         {{{"--width", "0.5"}}, "width"},
                                         {{{"--limit-train", "128"}}, "train_samples"},
                                         {{{"--seed", "2"}}, "seed"},
                                         {{{"--epochs", "3"}}, "epochs"},
                                         {{{"--spec", "simdit-16x16"}}, "spec"}}) {
    Opts o = c.opts;
    o["--resume"] = ckpt;
    o["--out"] = t / "run";
    CliResult r = run_cli(tiny(o), 60);
    EXPECT_TRUE(is_user_error(r, c.needle)) << c.needle;
    EXPECT_FALSE(fs::exists(t / "run"));
  }
  // A foreign plan with tensors of another shape (a forged plan that matches this run): the
  // tensor check names the field.
  const std::string plan = plan_with([](nlohmann::json&) {});
  expect_refused(
      [&](st::h5::File& f) {
        f.write_string("plan", plan);
        f.write_tensor("params/stem.conv.weight", st::Tensor({1, 1, 1, 1}));
      },
      "params/stem.conv.weight has shape");
}

// A checkpoint of the previous format (no series) still resumes; the series then has rows for the
// earlier steps with the values it cannot know (loss, accuracy, cost) as NaN.
TEST_F(TrainCheckpoint, PreviousFormatResumes) {
  st::test::TempDir t;
  const std::string old = t / "old.h5";
  fs::copy_file(base_ / "checkpoint.h5", old);
  {
    st::h5::File f = st::h5::File::open(old, st::h5::File::Mode::read_write);
    remove(f, "series");
    remove(f, "series_columns");
    f.set_attr("/", "format", "systrain-checkpoint-1");
    f.close();
  }
  CliResult r = run_cli(tiny({{"--resume", old}, {"--out", t / "run"}, {"--steps", "2"}}));
  ASSERT_EQ(r.rc, 0) << r.output;
  st::h5::File f = st::h5::File::open(t / "run/stats.h5");
  st::h5::Dims d;
  auto v = f.read<double>("series", &d);
  ASSERT_EQ(d, (st::h5::Dims{4, 8}));
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(v[i * 8], double(i + 1));
  EXPECT_TRUE(std::isnan(v[0 * 8 + 3]) && std::isnan(v[1 * 8 + 3]));  // loss of steps 1, 2: unknown
  EXPECT_TRUE(std::isfinite(v[2 * 8 + 3]) && std::isfinite(v[3 * 8 + 3]));
  EXPECT_EQ(st::h5::File::open(t / "run/checkpoint.h5").read_scalar<int64_t>("step"), 4);
}
