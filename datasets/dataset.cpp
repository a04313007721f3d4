// Dataset containers: subsets, validation, normalization, and loading by name.
#include "datasets/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "datasets/cifar.h"
#include "datasets/h5dataset.h"
#include "datasets/idx.h"
#include "src/base/error.h"

namespace st::data {

void RawDataset::truncate(int64_t n_train, int64_t n_test) {
  auto cut = [&](RawSplit& s, int64_t n) {
    if (n < 0 || n >= s.size()) return;
    s.labels.resize(static_cast<size_t>(n));
    s.pixels.resize(static_cast<size_t>(n * image_size()));
  };
  cut(train, n_train);
  cut(test, n_test);
}

void RawDataset::validate() const {
  if (channels <= 0 || channels > kMaxChannels || height <= 0 || width <= 0)
    throw UserError(fmt::format("{}: bad image shape {}x{}x{} (channels must be 1..{})", source,
                                channels, height, width, kMaxChannels));
  if (num_classes <= 0) throw UserError(fmt::format("{}: num_classes must be positive", source));
  if (mean.size() != static_cast<size_t>(channels) || std.size() != static_cast<size_t>(channels))
    throw UserError(fmt::format("{}: mean/std must have one value per channel ({})", source, channels));
  for (int c = 0; c < channels; ++c)
    if (!std::isfinite(mean[c]) || !(std[c] > 0) || !std::isfinite(std[c]))
      throw UserError(fmt::format("{}: channel {} has mean {} and std {} (std must be positive)",
                                  source, c, mean[c], std[c]));
  if (!class_names.empty() && class_names.size() != static_cast<size_t>(num_classes))
    throw UserError(fmt::format("{}: {} class names for {} classes", source, class_names.size(),
                                num_classes));
  auto check = [&](const char* which, const RawSplit& s) {
    if (s.pixels.size() != static_cast<size_t>(s.size() * image_size()))
      throw UserError(fmt::format("{}: {} split holds {} pixel bytes for {} images of {}", source,
                                  which, s.pixels.size(), s.size(), image_size()));
    for (size_t i = 0; i < s.labels.size(); ++i)
      if (s.labels[i] < 0 || s.labels[i] >= num_classes)
        throw UserError(fmt::format("{}: {} label {} at index {} is outside [0, {})", source, which,
                                    s.labels[i], i, num_classes));
  };
  check("train", train);
  check("test", test);
}

void channel_stats(const RawSplit& s, int channels, std::vector<double>& mean,
                   std::vector<double>& std) {
  mean.assign(channels, 0.0);
  std.assign(channels, 0.0);
  if (s.size() == 0 || channels <= 0) return;
  const int64_t plane = static_cast<int64_t>(s.pixels.size()) / (s.size() * channels);
  for (int c = 0; c < channels; ++c) {
    // Integer sums are exact (a pixel square is < 2^16, 2^31 of them fit in 64 bits).
    uint64_t sum = 0, sq = 0;
    for (int64_t n = 0; n < s.size(); ++n) {
      const uint8_t* p = s.pixels.data() + (n * channels + c) * plane;
      for (int64_t i = 0; i < plane; ++i) {
        sum += p[i];
        sq += uint64_t{p[i]} * p[i];
      }
    }
    const double count = static_cast<double>(s.size()) * static_cast<double>(plane);
    const double m = static_cast<double>(sum) / count;
    const double var = static_cast<double>(sq) / count - m * m;
    mean[c] = m / 255.0;
    std[c] = std::sqrt(std::max(var, 0.0)) / 255.0;
  }
}

Dataset normalize(const RawDataset& raw) {
  raw.validate();
  Dataset d;
  d.name = raw.name;
  d.source = raw.source;
  d.channels = raw.channels;
  d.height = raw.height;
  d.width = raw.width;
  d.num_classes = raw.num_classes;
  d.class_names = raw.class_names;
  d.mean = raw.mean;
  d.std = raw.std;
  // (C, 256): the fp32 value of every pixel byte in every channel, rounded once from double.
  std::vector<std::array<float, 256>> lut(raw.channels);
  for (int c = 0; c < raw.channels; ++c)
    for (int p = 0; p < 256; ++p)
      lut[c][p] = static_cast<float>((p / 255.0 - raw.mean[c]) / raw.std[c]);
  const int64_t plane = int64_t{raw.height} * raw.width;
  auto convert = [&](const RawSplit& in, Split& out) {
    out.images = Tensor({in.size(), raw.channels, raw.height, raw.width});
    out.labels = in.labels;
    float* dst = out.images.data();
    const uint8_t* src = in.pixels.data();
    for (int64_t n = 0; n < in.size(); ++n)
      for (int c = 0; c < raw.channels; ++c, src += plane, dst += plane)
        for (int64_t i = 0; i < plane; ++i) dst[i] = lut[c][src[i]];
  };
  convert(raw.train, d.train);
  convert(raw.test, d.test);
  return d;
}

namespace {
bool is_h5_path(const std::string& s) {
  auto ends = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
  };
  return ends(".h5") || ends(".hdf5");
}
}  // namespace

RawDataset load_raw(const std::string& name_or_file, const std::string& dir, const LoadOptions& opt) {
  if (name_or_file == "fashion-mnist")
    return load_fashion_mnist_raw(dir.empty() ? kFashionMnistDir : dir, opt);
  if (name_or_file == "cifar10") return load_cifar10_raw(dir, opt);
  if (is_h5_path(name_or_file)) return load_h5_dataset_raw(name_or_file, opt);
  throw UserError(fmt::format("unknown dataset '{}' (fashion-mnist, cifar10 or FILE.h5)", name_or_file));
}

Dataset load_dataset(const std::string& name_or_file, const std::string& dir, const LoadOptions& opt) {
  return normalize(load_raw(name_or_file, dir, opt));
}

}  // namespace st::data
