// CIFAR-10 binary reader.
#include "datasets/cifar.h"

#include <fmt/format.h>

#include <filesystem>

#include "datasets/idx.h"
#include "src/base/error.h"

namespace st::data {
namespace {

constexpr int kCifarClasses = 10;
const std::vector<std::string> kCifarClassNames = {"airplane", "automobile", "bird", "cat", "deer",
                                                   "dog", "frog", "horse", "ship", "truck"};
// Per-channel mean and std (population) of pixel/255 over the 50000 CIFAR-10 train images: the
// widely published 4-digit figures. CIFAR-10 is not installed on the development machine, so they
// were not re-derived here; `systrain dataset info` prints channel_stats of a converted file.
const std::vector<double> kCifarMean = {0.4914, 0.4822, 0.4465};
const std::vector<double> kCifarStd = {0.2470, 0.2435, 0.2616};

}  // namespace

void read_cifar_batch(const std::string& path, RawSplit& split) {
  // read_file_maybe_gz also accepts a gzip-compressed batch; the binaries are normally plain.
  // A real batch is 10000 records (30 MB); 2^30 bytes leaves room for larger custom batches and
  // stops a gzip bomb early.
  std::vector<uint8_t> bytes = read_file_maybe_gz(path, size_t{1} << 30);
  if (bytes.empty()) throw UserError(fmt::format("{}: empty CIFAR-10 batch file", path));
  if (bytes.size() % kCifarRecordBytes != 0)
    throw UserError(fmt::format("{}: wrong size: {} bytes is not a whole number of {}-byte records "
                                "(truncated or not a CIFAR-10 binary batch)",
                                path, bytes.size(), kCifarRecordBytes));
  const int64_t n = static_cast<int64_t>(bytes.size()) / kCifarRecordBytes;
  const int64_t image = kCifarRecordBytes - 1;
  split.pixels.reserve(split.pixels.size() + n * image);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes.data() + i * kCifarRecordBytes;
    if (rec[0] >= kCifarClasses)
      throw UserError(fmt::format("{}: label {} of record {} is outside [0, {}) (not a CIFAR-10 "
                                  "binary batch?)", path, rec[0], i, kCifarClasses));
    split.labels.push_back(rec[0]);
    split.pixels.insert(split.pixels.end(), rec + 1, rec + kCifarRecordBytes);
  }
}

RawDataset load_cifar10_raw(const std::string& dir, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir.empty()) throw UserError("cifar10: pass the directory holding data_batch_1.bin (--dir)");
  if (!fs::is_directory(dir, ec)) throw UserError(fmt::format("{}: CIFAR-10 directory not found", dir));
  fs::path base = dir;
  if (!fs::exists(base / "data_batch_1.bin", ec) && fs::is_directory(base / "cifar-10-batches-bin", ec))
    base /= "cifar-10-batches-bin";
  RawDataset d;
  d.name = "cifar10";
  d.source = base.string();
  d.channels = kCifarChannels;
  d.height = d.width = kCifarSide;
  d.num_classes = kCifarClasses;
  d.class_names = kCifarClassNames;
  d.mean = kCifarMean;
  d.std = kCifarStd;
  auto need = [&](const std::string& name) {
    std::string p = (base / name).string();
    if (!fs::exists(p, ec)) throw UserError(fmt::format("{}: file not found (CIFAR-10 binary version "
                                                        "needs data_batch_1..5.bin and test_batch.bin)", p));
    return p;
  };
  std::vector<std::string> train_files;
  for (int b = 1; b <= 5; ++b) train_files.push_back(need(fmt::format("data_batch_{}.bin", b)));
  const std::string test_file = need("test_batch.bin");
  // The whole dataset is held in memory (and as fp32, 4x, once normalized): at most 2^31 pixel bytes.
  auto check_total = [&] {
    if (d.train.pixels.size() + d.test.pixels.size() > (size_t{1} << 31))
      throw UserError(fmt::format("{}: the batches hold more than {} images, the most this build loads",
                                  d.source, (int64_t{1} << 31) / (kCifarRecordBytes - 1)));
  };
  for (const auto& f : train_files) {
    // Stop reading once the requested train subset is complete.
    if (opt.limit_train >= 0 && d.train.size() >= opt.limit_train) break;
    read_cifar_batch(f, d.train);
    check_total();
  }
  read_cifar_batch(test_file, d.test);
  check_total();
  d.truncate(opt.limit_train, opt.limit_test);
  d.validate();
  return d;
}

Dataset load_cifar10(const std::string& dir, const LoadOptions& opt) {
  return normalize(load_cifar10_raw(dir, opt));
}

}  // namespace st::data
