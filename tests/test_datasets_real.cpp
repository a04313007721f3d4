// The real Fashion-MNIST as installed by Debian's dataset-fashion-mnist; skipped when absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <iomanip>

#include "datasets/dataset.h"
#include "datasets/idx.h"

using namespace st::data;

namespace {

bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}

}  // namespace

TEST(FashionMnistReal, CountsShapeClassesHistogramAndConstants) {
  if (!have_fashion_mnist()) GTEST_SKIP() << kFashionMnistDir << " not installed";
  RawDataset r = load_fashion_mnist_raw();
  EXPECT_EQ(r.train.size(), 60000);
  EXPECT_EQ(r.test.size(), 10000);
  EXPECT_EQ(r.channels, 1);
  EXPECT_EQ(r.height, 28);
  EXPECT_EQ(r.width, 28);
  EXPECT_EQ(r.num_classes, 10);
  std::vector<int64_t> train_hist(10, 0), test_hist(10, 0);
  for (int32_t l : r.train.labels) train_hist[l] += 1;
  for (int32_t l : r.test.labels) test_hist[l] += 1;
  EXPECT_EQ(train_hist, std::vector<int64_t>(10, 6000));
  EXPECT_EQ(test_hist, std::vector<int64_t>(10, 1000));
  // First labels of each split, as published (train starts 9 0 0 3 0, test 9 2 1 1 6).
  EXPECT_EQ(std::vector<int32_t>(r.train.labels.begin(), r.train.labels.begin() + 5),
            (std::vector<int32_t>{9, 0, 0, 3, 0}));
  EXPECT_EQ(std::vector<int32_t>(r.test.labels.begin(), r.test.labels.begin() + 5),
            (std::vector<int32_t>{9, 2, 1, 1, 6}));
  // The built-in normalization constants are channel_stats of the full train split.
  std::vector<double> mean, std;
  channel_stats(r.train, 1, mean, std);
  EXPECT_EQ(mean[0], r.mean[0]) << std::setprecision(17) << mean[0];
  EXPECT_EQ(std[0], r.std[0]) << std::setprecision(17) << std[0];

  // Normalized train images have mean 0 and std 1 (up to fp32 rounding of each value).
  Dataset d = normalize(r);
  double s = 0, sq = 0;
  for (int64_t i = 0; i < d.train.images.size(); ++i) {
    s += d.train.images[i];
    sq += double(d.train.images[i]) * d.train.images[i];
  }
  const double n = static_cast<double>(d.train.images.size());
  EXPECT_NEAR(s / n, 0.0, 1e-6);
  EXPECT_NEAR(sq / n, 1.0, 1e-6);
}

TEST(FashionMnistReal, SubsetIsThePrefix) {
  if (!have_fashion_mnist()) GTEST_SKIP() << kFashionMnistDir << " not installed";
  Dataset d = load_fashion_mnist(kFashionMnistDir, {.limit_train = 256, .limit_test = 100});
  EXPECT_EQ(d.train.size(), 256);
  EXPECT_EQ(d.test.size(), 100);
  EXPECT_EQ(d.train.images.shape_str(), "(256, 1, 28, 28)");
  EXPECT_EQ(d.train.labels[0], 9);
}
