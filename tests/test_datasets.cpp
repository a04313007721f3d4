// Dataset readers on tiny fixtures written by the test: IDX (plain and gzip), CIFAR-10 binary,
// the HDF5 layout, normalization, and every bad-file case with its exact message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "datasets/cifar.h"
#include "datasets/dataset.h"
#include "datasets/h5dataset.h"
#include "datasets/idx.h"
#include "src/io/h5.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using namespace st::data;

namespace {

using st::test::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const st::UserError& e) {
    return e.what();
  }
  return "<no error>";
}

uint8_t pixel(int64_t n, int64_t i) { return static_cast<uint8_t>((n * 31 + i * 7) % 256); }

// A Fashion-MNIST-like directory: `ntrain` / `ntest` images of h x w, labels n % 10.
void write_fashion_fixture(const fs::path& dir, int64_t ntrain, int64_t ntest, int64_t h, int64_t w,
                           bool gzip) {
  fs::create_directories(dir);
  auto split = [&](const std::string& prefix, int64_t n, int64_t offset) {
    std::vector<uint8_t> px(n * h * w), lb(n);
    for (int64_t k = 0; k < n; ++k) {
      for (int64_t i = 0; i < h * w; ++i) px[k * h * w + i] = pixel(k + offset, i);
      lb[k] = static_cast<uint8_t>((k + offset) % 10);
    }
    const std::string ext = gzip ? ".gz" : "";
    write_idx((dir / (prefix + "-images-idx3-ubyte" + ext)).string(), {n, h, w}, px, gzip);
    write_idx((dir / (prefix + "-labels-idx1-ubyte" + ext)).string(), {n}, lb, gzip);
  };
  split("train", ntrain, 0);
  split("t10k", ntest, 1000);
}

std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A CIFAR-10 binary directory with `per_batch` records in each of the 6 files.
void write_cifar_fixture(const fs::path& dir, int64_t per_batch) {
  fs::create_directories(dir);
  auto batch = [&](const std::string& name, int64_t offset) {
    std::vector<uint8_t> b;
    for (int64_t k = 0; k < per_batch; ++k) {
      b.push_back(static_cast<uint8_t>((k + offset) % 10));
      for (int64_t i = 0; i < 3072; ++i) b.push_back(pixel(k + offset, i));
    }
    write_bytes((dir / name).string(), b);
  };
  for (int i = 1; i <= 5; ++i) batch("data_batch_" + std::to_string(i) + ".bin", (i - 1) * per_batch);
  batch("test_batch.bin", 5000);
}

}  // namespace

TEST(Idx, PlainAndGzipReadBackTheSameBytes) {
  TempDir t;
  std::vector<uint8_t> data(3 * 4 * 5);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
  write_idx(t / "a.idx", {3, 4, 5}, data, false);
  write_idx(t / "a.idx.gz", {3, 4, 5}, data, true);
  auto bytes = read_bytes(t / "a.idx");
  ASSERT_EQ(bytes.size(), 16u + data.size());
  EXPECT_EQ((std::vector<uint8_t>(bytes.begin(), bytes.begin() + 8)),
            (std::vector<uint8_t>{0, 0, 8, 3, 0, 0, 0, 3}));
  EXPECT_EQ(read_bytes(t / "a.idx.gz")[0], 0x1f);  // really compressed
  for (const char* f : {"a.idx", "a.idx.gz"}) {
    IdxArray a = read_idx(t / f, 3);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 4, 5})) << f;
    EXPECT_EQ(a.data, data) << f;
  }
}

TEST(Idx, BadFilesNameTheFileAndTheProblem) {
  TempDir t;
  std::vector<uint8_t> data(2 * 3 * 3, 7);
  write_idx(t / "ok.idx", {2, 3, 3}, data, false);
  const auto good = read_bytes(t / "ok.idx");

  EXPECT_EQ(error_of([&] { read_idx(t / "missing.idx"); }), t / "missing.idx" + ": file not found");

  auto trunc = good;
  trunc.resize(good.size() - 5);
  write_bytes(t / "trunc.idx", trunc);
  EXPECT_EQ(error_of([&] { read_idx(t / "trunc.idx", 3); }),
            t / "trunc.idx" + ": truncated: header says (2, 3, 3) = 18 data bytes but the file holds 13");

  auto longer = good;
  longer.push_back(1);
  write_bytes(t / "long.idx", longer);
  EXPECT_EQ(error_of([&] { read_idx(t / "long.idx", 3); }),
            t / "long.idx" + ": wrong size: header says (2, 3, 3) = 18 data bytes but the file holds "
                             "19 (1 extra)");

  auto magic = good;
  magic[0] = 0x12;
  write_bytes(t / "magic.idx", magic);
  EXPECT_EQ(error_of([&] { read_idx(t / "magic.idx", 3); }),
            t / "magic.idx" + ": not an IDX file (magic bytes 12 00 08 03)");

  // A labels file where images are expected.
  write_idx(t / "labels.idx", {4}, {1, 2, 3, 4}, false);
  EXPECT_EQ(error_of([&] { read_idx(t / "labels.idx", 3); }),
            t / "labels.idx" + ": wrong magic: IDX file has 1 dimensions, expected 3 "
                               "(magic 00 00 08 01, expected 00 00 08 03)");

  auto type = good;
  type[2] = 0x0D;  // float elements
  write_bytes(t / "type.idx", type);
  EXPECT_EQ(error_of([&] { read_idx(t / "type.idx"); }),
            t / "type.idx" + ": unsupported IDX element type 0x0d (only unsigned byte 0x08)");

  write_bytes(t / "tiny.idx", {0, 0});
  EXPECT_NE(error_of([&] { read_idx(t / "tiny.idx"); }).find("tiny.idx: truncated IDX file"),
            std::string::npos);

  // Truncated and corrupted gzip streams.
  write_idx(t / "ok.idx.gz", {2, 3, 3}, data, true);
  auto gz = read_bytes(t / "ok.idx.gz");
  write_bytes(t / "cut.idx.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + gz.size() / 2));
  EXPECT_NE(error_of([&] { read_idx(t / "cut.idx.gz"); }).find("cut.idx.gz: truncated gzip stream"),
            std::string::npos);
  auto bad = gz;
  bad[bad.size() - 6] ^= 0xff;  // CRC32 trailer
  write_bytes(t / "crc.idx.gz", bad);
  EXPECT_NE(error_of([&] { read_idx(t / "crc.idx.gz"); }).find("crc.idx.gz: corrupt gzip data"),
            std::string::npos);
}

TEST(FashionMnist, LoadsFixtureDirectoryPlainAndGzip) {
  for (bool gzip : {false, true}) {
    TempDir t;
    write_fashion_fixture(t.path, 23, 7, 4, 5, gzip);
    RawDataset r = load_fashion_mnist_raw(t.path.string());
    EXPECT_EQ(r.name, "fashion-mnist");
    EXPECT_EQ(r.train.size(), 23);
    EXPECT_EQ(r.test.size(), 7);
    EXPECT_EQ(r.channels, 1);
    EXPECT_EQ(r.height, 4);
    EXPECT_EQ(r.width, 5);
    EXPECT_EQ(r.num_classes, 10);
    EXPECT_EQ(r.train.labels[13], 3);
    EXPECT_EQ(r.test.labels[2], 2);  // (2 + 1000) % 10
    EXPECT_EQ(r.train.pixels[6 * 20 + 11], pixel(6, 11));
    EXPECT_EQ(r.test.pixels[3 * 20 + 19], pixel(1003, 19));

    Dataset d = load_fashion_mnist(t.path.string(), {.limit_train = 10, .limit_test = 3});
    EXPECT_EQ(d.train.size(), 10);
    EXPECT_EQ(d.test.size(), 3);
    ASSERT_EQ(d.train.images.shape_str(), "(10, 1, 4, 5)");
    // Normalization: (p/255 - mean)/std rounded once to fp32.
    const double p = pixel(6, 11);
    EXPECT_EQ(d.train.images.at(6, 0, 2, 1), static_cast<float>((p / 255.0 - r.mean[0]) / r.std[0]));
  }
}

TEST(FashionMnist, MissingAndMismatchedFiles) {
  TempDir t;
  EXPECT_EQ(error_of([&] { load_fashion_mnist_raw(t / "nodir"); }),
            t / "nodir" + ": Fashion-MNIST directory not found (install Debian's "
                          "dataset-fashion-mnist or pass --dir)");
  write_fashion_fixture(t.path, 5, 3, 2, 2, true);
  fs::remove(t / "t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(error_of([&] { load_fashion_mnist_raw(t.path.string()); }),
            t / "t10k-labels-idx1-ubyte.gz" + ": file not found (nor " + t / "t10k-labels-idx1-ubyte" + ")");
  // Label count disagrees with image count.
  write_idx(t / "t10k-labels-idx1-ubyte.gz", {2}, {1, 2}, true);
  EXPECT_EQ(error_of([&] { load_fashion_mnist_raw(t.path.string()); }),
            t / "t10k-labels-idx1-ubyte.gz" + ": holds 2 labels but " + t / "t10k-images-idx3-ubyte.gz" +
                " holds 3 images");
  // A label outside the 10 classes.
  write_idx(t / "t10k-labels-idx1-ubyte.gz", {3}, {1, 12, 2}, true);
  EXPECT_EQ(error_of([&] { load_fashion_mnist_raw(t.path.string()); }),
            t / "t10k-labels-idx1-ubyte.gz" + ": label 12 at index 1 is outside [0, 10)");
}

TEST(Cifar10, LoadsFixtureAndSubsets) {
  TempDir t;
  write_cifar_fixture(t.path / "cifar-10-batches-bin", 4);
  RawDataset r = load_cifar10_raw(t.path.string());  // parent directory accepted
  EXPECT_EQ(r.train.size(), 20);
  EXPECT_EQ(r.test.size(), 4);
  EXPECT_EQ(r.channels, 3);
  EXPECT_EQ(r.height, 32);
  EXPECT_EQ(r.train.labels[13], 3);
  EXPECT_EQ(r.train.pixels[13 * 3072 + 1024 + 5], pixel(13, 1024 + 5));  // green plane
  EXPECT_EQ(r.test.labels[1], 1);
  Dataset d = load_cifar10((t.path / "cifar-10-batches-bin").string(), {.limit_train = 6, .limit_test = 2});
  EXPECT_EQ(d.train.size(), 6);
  EXPECT_EQ(d.train.images.shape_str(), "(6, 3, 32, 32)");
  const double p = pixel(5, 2 * 1024 + 33);
  EXPECT_EQ(d.train.images.at(5, 2, 1, 1), static_cast<float>((p / 255.0 - d.mean[2]) / d.std[2]));
}

TEST(Cifar10, BadFiles) {
  TempDir t;
  write_cifar_fixture(t.path, 2);
  const std::string b3 = t / "data_batch_3.bin";
  auto bytes = read_bytes(b3);
  write_bytes(b3, std::vector<uint8_t>(bytes.begin(), bytes.end() - 100));
  EXPECT_EQ(error_of([&] { load_cifar10_raw(t.path.string()); }),
            b3 + ": wrong size: 6046 bytes is not a whole number of 3073-byte records (truncated or "
                 "not a CIFAR-10 binary batch)");
  bytes[3073] = 200;  // label of record 1
  write_bytes(b3, bytes);
  EXPECT_EQ(error_of([&] { load_cifar10_raw(t.path.string()); }),
            b3 + ": label 200 of record 1 is outside [0, 10) (not a CIFAR-10 binary batch?)");
  bytes[3073] = 1;
  write_bytes(b3, bytes);
  fs::remove(t / "test_batch.bin");
  EXPECT_NE(error_of([&] { load_cifar10_raw(t.path.string()); })
                .find(t / "test_batch.bin" + ": file not found"),
            std::string::npos);
  write_bytes(t / "test_batch.bin", {});
  EXPECT_NE(error_of([&] { load_cifar10_raw(t.path.string()); }).find("empty CIFAR-10 batch file"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { load_cifar10_raw(""); }),
            "cifar10: pass the directory holding data_batch_1.bin (--dir)");
}

TEST(H5Dataset, RoundTripAndLimits) {
  TempDir t;
  write_fashion_fixture(t.path, 30, 9, 6, 7, true);
  RawDataset r = load_fashion_mnist_raw(t.path.string());
  write_h5_dataset(r, t / "fm.h5");
  for (const auto& e : st::test::dir_entries(t.path))  // no temporary left beside fm.h5
    EXPECT_EQ(e.find(".tmp"), std::string::npos) << e;
  RawDataset b = load_h5_dataset_raw(t / "fm.h5");
  EXPECT_EQ(b.name, "fashion-mnist");
  EXPECT_EQ(b.train.pixels, r.train.pixels);
  EXPECT_EQ(b.train.labels, r.train.labels);
  EXPECT_EQ(b.test.pixels, r.test.pixels);
  EXPECT_EQ(b.test.labels, r.test.labels);
  EXPECT_EQ(b.mean, r.mean);
  EXPECT_EQ(b.std, r.std);
  EXPECT_EQ(b.class_names, r.class_names);
  EXPECT_EQ(b.height, 6);
  EXPECT_EQ(b.width, 7);
  // Limits read only the first rows; normalized values equal those from the IDX source.
  Dataset d = load_dataset(t / "fm.h5", "", {.limit_train = 4, .limit_test = 2});
  Dataset s = load_fashion_mnist(t.path.string(), {.limit_train = 4, .limit_test = 2});
  ASSERT_TRUE(d.train.images.same_shape(s.train.images));
  EXPECT_EQ(0, std::memcmp(d.train.images.data(), s.train.images.data(), s.train.images.bytes()));
  EXPECT_EQ(d.test.labels, s.test.labels);
  // The file is plain HDF5 with the documented layout.
  st::h5::File f = st::h5::File::open(t / "fm.h5");
  EXPECT_EQ(f.dims("/train/images"), (st::h5::Dims{30, 1, 6, 7}));
  EXPECT_EQ(f.attr_string("/", "format"), "systrain-dataset");
  EXPECT_EQ(f.attr_int("/", "num_classes"), 10);
}

TEST(H5Dataset, BadFiles) {
  TempDir t;
  EXPECT_EQ(error_of([&] { load_h5_dataset_raw(t / "none.h5"); }), t / "none.h5" + ": file not found");
  {
    st::h5::File f = st::h5::File::create(t / "other.h5");
    f.write<float>("/x", std::vector<float>{1.0f});
  }
  EXPECT_EQ(error_of([&] { load_h5_dataset_raw(t / "other.h5"); }),
            t / "other.h5" + ": not a systrain dataset file (root attribute format != "
                             "'systrain-dataset'; make one with `systrain dataset convert`)");
  write_fashion_fixture(t.path, 5, 3, 2, 2, false);
  write_h5_dataset(load_fashion_mnist_raw(t.path.string()), t / "fm.h5");
  {
    st::h5::File f = st::h5::File::open(t / "fm.h5", st::h5::File::Mode::read_write);
    f.write<int32_t>("/test/labels", std::vector<int32_t>{1, 2});
  }
  EXPECT_EQ(error_of([&] { load_h5_dataset_raw(t / "fm.h5"); }),
            t / "fm.h5" + ": /test/labels has shape (2) but there are 3 images");
  EXPECT_EQ(error_of([&] { load_dataset("mnist"); }),
            "unknown dataset 'mnist' (fashion-mnist, cifar10 or FILE.h5)");
  // Writing into a missing directory fails cleanly and leaves nothing behind.
  EXPECT_EQ(error_of([&] { write_h5_dataset(load_fashion_mnist_raw(t.path.string()), t / "no/x.h5"); }),
            "output file '" + t / "no/x.h5" + "': directory '" + t / "no" + "' does not exist");
  EXPECT_FALSE(fs::exists(t / "no"));
}

TEST(Normalize, ChannelStatsAndTable) {
  RawDataset r;
  r.name = r.source = "synthetic";
  r.channels = 2;
  r.height = 1;
  r.width = 2;
  r.num_classes = 2;
  // (N=2, C=2, H=1, W=2): channel 0 holds {0, 255, 255, 0}, channel 1 holds {51, 51, 51, 51}.
  r.train.pixels = {0, 255, 51, 51, 255, 0, 51, 51};
  r.train.labels = {0, 1};
  channel_stats(r.train, 2, r.mean, r.std);
  EXPECT_DOUBLE_EQ(r.mean[0], 0.5);
  EXPECT_DOUBLE_EQ(r.std[0], 0.5);
  EXPECT_DOUBLE_EQ(r.mean[1], 0.2);
  EXPECT_EQ(r.std[1], 0.0);
  EXPECT_NE(error_of([&] { normalize(r); }).find("channel 1 has mean 0.2 and std 0"), std::string::npos);
  r.std[1] = 0.1;
  Dataset d = normalize(r);
  EXPECT_EQ(d.train.images.at(0, 0, 0, 0), -1.0f);
  EXPECT_EQ(d.train.images.at(0, 0, 0, 1), 1.0f);
  EXPECT_EQ(d.train.images.at(1, 1, 0, 0), 0.0f);
}
