// Reader and writer of the HDF5 dataset layout (see h5dataset.h).
#include "datasets/h5dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "src/error.h"
#include "src/io/h5.h"

namespace st::data {
namespace {
constexpr int kDeflateLevel = 4;
}  // namespace

void write_h5_dataset(const RawDataset& d, const std::string& path) {
  d.validate();
  h5::atomic_write(path, [&](h5::File& f) {
    f.set_attr("/", "format", kH5DatasetFormat);
    f.set_attr("/", "version", kH5DatasetVersion);
    f.set_attr("/", "name", d.name);
    f.set_attr("/", "source", d.source);
    f.set_attr("/", "num_classes", int64_t{d.num_classes});
    f.set_attr("/", "channels", int64_t{d.channels});
    f.set_attr("/", "height", int64_t{d.height});
    f.set_attr("/", "width", int64_t{d.width});
    f.set_attr("/", "mean", d.mean);
    f.set_attr("/", "std", d.std);
    if (!d.class_names.empty()) f.write_strings("/class_names", d.class_names);
    auto put = [&](const std::string& g, const RawSplit& s) {
      const h5::Dims dims = {s.size(), d.channels, d.height, d.width};
      f.write<uint8_t>(g + "/images", s.pixels.data(), dims, {.deflate = kDeflateLevel});
      f.write<int32_t>(g + "/labels", s.labels);
    };
    put("/train", d.train);
    put("/test", d.test);
  });
}

RawDataset load_h5_dataset_raw(const std::string& path, const LoadOptions& opt) {
  h5::File f = h5::File::open(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kH5DatasetFormat)
    throw UserError(fmt::format("{}: not a systrain dataset file (root attribute format != '{}'; "
                                "make one with `systrain dataset convert`)", path, kH5DatasetFormat));
  const int64_t version = f.attr_int("/", "version");
  if (version != kH5DatasetVersion)
    throw UserError(fmt::format("{}: dataset format version {} is not supported (this build reads {})",
                                path, version, kH5DatasetVersion));
  RawDataset d;
  d.name = f.attr_string("/", "name");
  d.source = path;
  auto small_int = [&](const char* key) {
    const int64_t v = f.attr_int("/", key);
    if (v <= 0 || v > (int64_t{1} << 16))
      throw UserError(fmt::format("{}: attribute {} = {} is out of range", path, key, v));
    return static_cast<int>(v);
  };
  d.num_classes = small_int("num_classes");
  d.channels = small_int("channels");
  d.height = small_int("height");
  d.width = small_int("width");
  if (f.has_attr("/", "mean") && f.has_attr("/", "std")) {
    d.mean = f.attr_doubles("/", "mean");
    d.std = f.attr_doubles("/", "std");
  }
  if (f.exists("/class_names")) d.class_names = f.read_strings("/class_names");
  auto get = [&](const std::string& g, RawSplit& s, int64_t limit) {
    const h5::Dims idims = f.dims(g + "/images"), ldims = f.dims(g + "/labels");
    const h5::Dims want = {idims.empty() ? 0 : idims[0], d.channels, d.height, d.width};
    if (idims != want)
      throw UserError(fmt::format("{}: {}/images has shape ({}) but the attributes say (N, {}, {}, {})",
                                  path, g, fmt::join(idims, ", "), d.channels, d.height, d.width));
    if (ldims.size() != 1 || ldims[0] != idims[0])
      throw UserError(fmt::format("{}: {}/labels has shape ({}) but there are {} images", path, g,
                                  fmt::join(ldims, ", "), idims[0]));
    const int64_t n = limit >= 0 ? std::min(limit, idims[0]) : idims[0];
    s.pixels = f.read_rows<uint8_t>(g + "/images", 0, n);
    s.labels = f.read_rows<int32_t>(g + "/labels", 0, n);
  };
  get("/train", d.train, opt.limit_train);
  get("/test", d.test, opt.limit_test);
  if (d.mean.empty()) channel_stats(d.train, d.channels, d.mean, d.std);
  d.validate();
  return d;
}

Dataset load_h5_dataset(const std::string& path, const LoadOptions& opt) {
  return normalize(load_h5_dataset_raw(path, opt));
}

}  // namespace st::data
