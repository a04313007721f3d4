// Reader and writer of the HDF5 dataset layout (see h5dataset.h).
#include "datasets/h5dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "src/error.h"
#include "src/io/h5.h"
#include "src/io/untrusted.h"

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

namespace {

// Bounds of a dataset file's attributes and shapes, checked before anything is read or allocated.
constexpr int64_t kMaxClasses = int64_t{1} << 16;
constexpr int64_t kMaxSide = int64_t{1} << 14;
constexpr int64_t kMaxSplitBytes = int64_t{1} << 31;  // pixels of one split, as read into memory
constexpr size_t kMaxNameBytes = 4096;

RawDataset read_h5_dataset(const std::string& path, const LoadOptions& opt) {
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
  // The name travels into reports (JSON) and messages.
  if (auto bad = io::text_problem(d.name, kMaxNameBytes))
    throw UserError(fmt::format("{}: attribute name {}: '{}'", path, *bad, io::printable(d.name)));
  d.source = path;
  auto small_int = [&](const char* key, int64_t hi) {
    const int64_t v = f.attr_int("/", key);
    if (v <= 0 || v > hi)
      throw UserError(fmt::format("{}: attribute {} = {} is out of range [1, {}]", path, key, v, hi));
    return static_cast<int>(v);
  };
  d.num_classes = small_int("num_classes", kMaxClasses);
  d.channels = small_int("channels", kMaxChannels);
  d.height = small_int("height", kMaxSide);
  d.width = small_int("width", kMaxSide);
  if (f.has_attr("/", "mean") && f.has_attr("/", "std")) {
    d.mean = f.attr_doubles("/", "mean");
    d.std = f.attr_doubles("/", "std");
  }
  if (f.exists("/class_names")) {
    const h5::Dims cd = f.dims("/class_names");
    if (cd.size() != 1 || cd[0] != d.num_classes)
      throw UserError(fmt::format("{}: /class_names has shape ({}) but there are {} classes", path,
                                  fmt::join(cd, ", "), d.num_classes));
    d.class_names = f.read_strings("/class_names");
    for (size_t i = 0; i < d.class_names.size(); ++i)
      if (auto bad = io::text_problem(d.class_names[i], kMaxNameBytes))
        throw UserError(fmt::format("{}: class name {} {}: '{}'", path, i, *bad,
                                    io::printable(d.class_names[i])));
  }
  auto get = [&](const std::string& g, RawSplit& s, int64_t limit) {
    const h5::Dims idims = f.dims(g + "/images"), ldims = f.dims(g + "/labels");
    const h5::Dims want = {idims.empty() ? 0 : idims[0], d.channels, d.height, d.width};
    if (idims != want)
      throw UserError(fmt::format("{}: {}/images has shape ({}) but the attributes say (N, {}, {}, {})",
                                  path, g, fmt::join(idims, ", "), d.channels, d.height, d.width));
    if (ldims.size() != 1 || ldims[0] != idims[0])
      throw UserError(fmt::format("{}: {}/labels has shape ({}) but there are {} images", path, g,
                                  fmt::join(ldims, ", "), idims[0]));
    if (idims[0] == 0)
      throw UserError(fmt::format("{}: {}/images holds no images (a dataset split needs at least one)", path, g));
    const h5::TypeInfo it = f.type_info(g + "/images"), lt = f.type_info(g + "/labels");
    if (it.cls != H5T_INTEGER || it.size != 1 || it.is_signed)
      throw UserError(fmt::format("{}: {}/images must hold uint8 pixels", path, g));
    if (lt.cls != H5T_INTEGER || lt.size > 8)
      throw UserError(fmt::format("{}: {}/labels must hold integers", path, g));
    const int64_t n = limit >= 0 ? std::min(limit, idims[0]) : idims[0];
    // (idims were bounded to 2^53 elements by File::dims; one image is at most 4 x 2^28 bytes.)
    if (n > kMaxSplitBytes / d.image_size())
      throw UserError(fmt::format("{}: {}/images holds {} images of {} bytes, more than {} bytes in "
                                  "all", path, g, n, d.image_size(), kMaxSplitBytes));
    s.pixels = f.read_rows<uint8_t>(g + "/images", 0, n);
    s.labels = f.read_rows<int32_t>(g + "/labels", 0, n);
  };
  get("/train", d.train, opt.limit_train);
  get("/test", d.test, opt.limit_test);
  if (d.mean.empty()) channel_stats(d.train, d.channels, d.mean, d.std);
  d.validate();
  return d;
}

}  // namespace

RawDataset load_h5_dataset_raw(const std::string& path, const LoadOptions& opt) {
  // An HDF5 file from elsewhere is untrusted: read it once in a child process, so a crash of the
  // HDF5 library on a malformed file becomes a message (h5.h, "Reading files we did not write").
  h5::check_untrusted(path, [&] { (void)read_h5_dataset(path, opt); });
  return read_h5_dataset(path, opt);
}

Dataset load_h5_dataset(const std::string& path, const LoadOptions& opt) {
  return normalize(load_h5_dataset_raw(path, opt));
}

}  // namespace st::data
