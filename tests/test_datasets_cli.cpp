// `systrain dataset convert|info` through the real binary (SYSTRAIN_BIN, set by ctest): exit codes,
// one-line messages, and no partial output file after a failure.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "datasets/h5dataset.h"
#include "datasets/idx.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using namespace st::data;

namespace {

using st::test::TempDir;

struct CliRun {
  int rc = -1;
  std::string out;
};

// Runs `systrain ARGS` with stdout and stderr captured together.
CliRun systrain(const std::string& args) {
  const char* bin = std::getenv("SYSTRAIN_BIN");
  CliRun r;
  if (!bin) return r;
  const std::string cmd = std::string(bin) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void write_fashion_fixture(const fs::path& dir, int64_t ntrain, int64_t ntest) {
  fs::create_directories(dir);
  auto split = [&](const std::string& prefix, int64_t n) {
    std::vector<uint8_t> px(n * 28 * 28), lb(n);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
    for (int64_t k = 0; k < n; ++k) lb[k] = static_cast<uint8_t>(k % 10);
    write_idx((dir / (prefix + "-images-idx3-ubyte.gz")).string(), {n, 28, 28}, px, true);
    write_idx((dir / (prefix + "-labels-idx1-ubyte.gz")).string(), {n}, lb, true);
  };
  split("train", ntrain);
  split("t10k", ntest);
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

class DatasetCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("SYSTRAIN_BIN")) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)";
  }
};

}  // namespace

TEST_F(DatasetCli, ConvertFashionFixtureThenInfo) {
  TempDir t;
  write_fashion_fixture(t.path / "fm", 12, 7);
  const std::string out = t / "fm.h5";
  CliRun r = systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --out " + out +
                   " --limit 5");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("5 train + 5 test images of 1x28x28, 10 classes"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_EQ(st::test::dir_entries(t.path), (std::vector<std::string>{"fm", "fm.h5"}));  // no temporary left
  RawDataset d = load_h5_dataset_raw(out);
  EXPECT_EQ(d.train.size(), 5);
  EXPECT_EQ(d.test.size(), 5);
  EXPECT_EQ(d.train.labels, (std::vector<int32_t>{0, 1, 2, 3, 4}));

  r = systrain("dataset info " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("dataset  fashion-mnist"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train        5 images   labels per class: 1 1 1 1 1 0 0 0 0 0"),
            std::string::npos)
      << r.out;
}

TEST_F(DatasetCli, ConvertCifarFixture) {
  TempDir t;
  std::vector<uint8_t> rec(2 * 3073, 9);
  rec[0] = 3;
  rec[3073] = 7;
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}) {
    std::ofstream o(t / f, std::ios::binary);
    o.write(reinterpret_cast<const char*>(rec.data()), static_cast<std::streamsize>(rec.size()));
  }
  CliRun r = systrain("dataset convert --from cifar10 --dir " + t.path.string() + " --out " + t / "c.h5");
  ASSERT_EQ(r.rc, 0) << r.out;
  RawDataset d = load_h5_dataset_raw(t / "c.h5");
  EXPECT_EQ(d.train.size(), 10);
  EXPECT_EQ(d.test.labels, (std::vector<int32_t>{3, 7}));
  EXPECT_EQ(d.channels, 3);
}

TEST_F(DatasetCli, BadInputsExitTwoWithOneLineAndNoOutput) {
  TempDir t;
  write_fashion_fixture(t.path / "fm", 12, 7);
  // A previous good output must survive a failed conversion untouched.
  const std::string out = t / "keep.h5";
  ASSERT_EQ(systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --out " + out).rc, 0);
  const auto before = fs::file_size(out);

  const std::string images = t / "fm/train-images-idx3-ubyte.gz";
  // Truncated gzip stream.
  fs::resize_file(images, fs::file_size(images) / 2);
  CliRun r = systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --out " + out);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_EQ(r.out.rfind("systrain: error: " + images + ": truncated gzip stream (ends after ", 0), 0u)
      << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_EQ(fs::file_size(out), before);
  EXPECT_EQ(st::test::dir_entries(t.path), (std::vector<std::string>{"fm", "keep.h5"}));

  // Wrong size against the header (plain IDX, one byte missing).
  fs::remove(images);
  write_idx(t / "fm/train-images-idx3-ubyte", {12, 28, 28}, std::vector<uint8_t>(12 * 784 - 1), false);
  r = systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --out " + t / "new.h5");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "systrain: error: " + t / "fm/train-images-idx3-ubyte" +
                       ": truncated: header says (12, 28, 28) = 9408 data bytes but the file holds 9407\n");
  EXPECT_EQ(st::test::dir_entries(t.path), (std::vector<std::string>{"fm", "keep.h5"}));  // no new.h5, no temporary

  // Missing directory, unknown source, wrong extension, bad limit, unwritable output, bad info file.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dataset convert --from fashion-mnist --dir " + t / "nope" + " --out " + t / "x.h5",
       t / "nope" + ": Fashion-MNIST directory not found"},
      {"dataset convert --from mnist --out " + t / "x.h5", "--from must be fashion-mnist or cifar10"},
      {"dataset convert --from fashion-mnist --out " + t / "x.txt", "--out must name an .h5"},
      {"dataset convert --from fashion-mnist --limit 0 --out " + t / "x.h5", "--limit must be"},
      {"dataset convert --from cifar10 --dir " + t / "fm" + " --out " + t / "x.h5",
       t / "fm/data_batch_1.bin: file not found"},
      {"dataset info " + t / "missing.h5", t / "missing.h5: file not found"},
      {"dataset info " + images.substr(0, images.size() - 3), "unknown dataset"},
  };
  for (const auto& [args, msg] : cases) {
    r = systrain(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(msg), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(count_lines(r.out), 1) << args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(t / "x.h5"));
  }
  // Output directory that does not exist.
  r = systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --limit 3 --out " +
               t / "no/dir/x.h5");
  EXPECT_EQ(r.rc, 2);  // the images are broken too; either way one line, exit 2
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
}

TEST_F(DatasetCli, UnwritableOutputDirectory) {
  TempDir t;
  write_fashion_fixture(t.path / "fm", 4, 3);
  CliRun r = systrain("dataset convert --from fashion-mnist --dir " + t / "fm" + " --out " +
                   t / "no/dir/x.h5");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_EQ(r.out, "systrain: error: " + t / "no/dir/x.h5" + ": output directory " + t / "no/dir" +
                       " does not exist\n");
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
}
