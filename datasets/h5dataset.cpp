// Reader and writer of the HDF5 dataset layout (see h5dataset.h).
#include "datasets/h5dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#include "src/base/error.h"
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

// A RawDataset as bytes, to come back from the reading process: fields in a fixed order, each
// number as 8 little-endian bytes, each string and array with its length first.
class Packer {
 public:
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void f64(double v) {
    uint64_t u;
    std::memcpy(&u, &v, 8);
    u64(u);
  }
  void bytes(const void* p, size_t n) {
    u64(n);
    out_.append(static_cast<const char*>(p), n);
  }
  void str(const std::string& v) { bytes(v.data(), v.size()); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Unpacker {
 public:
  explicit Unpacker(const std::string& in) : in_(in) {}
  uint64_t u64() {
    need(8);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return v;
  }
  double f64() {
    const uint64_t u = u64();
    double v;
    std::memcpy(&v, &u, 8);
    return v;
  }
  const char* bytes(size_t& n) {
    n = u64();
    need(n);
    const char* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string str() {
    size_t n;
    const char* p = bytes(n);
    return std::string(p, n);
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  // We wrote these bytes ourselves (pack): a short message is a broken invariant, not bad input.
  void need(size_t n) const { ST_INVARIANT(n <= in_.size() - pos_); }
  const std::string& in_;
  size_t pos_ = 0;
};

std::string pack(const RawDataset& d) {
  Packer p;
  p.str(d.name);
  p.str(d.source);
  for (int v : {d.channels, d.height, d.width, d.num_classes}) p.u64(static_cast<uint64_t>(v));
  p.u64(d.class_names.size());
  for (const auto& c : d.class_names) p.str(c);
  for (const auto* v : {&d.mean, &d.std}) {
    p.u64(v->size());
    for (double x : *v) p.f64(x);
  }
  for (const RawSplit* s : {&d.train, &d.test}) {
    p.bytes(s->pixels.data(), s->pixels.size());
    p.bytes(s->labels.data(), s->labels.size() * sizeof(int32_t));
  }
  return p.take();
}

RawDataset unpack(const std::string& bytes) {
  Unpacker u(bytes);
  RawDataset d;
  d.name = u.str();
  d.source = u.str();
  for (int* v : {&d.channels, &d.height, &d.width, &d.num_classes}) *v = static_cast<int>(u.u64());
  d.class_names.resize(u.u64());
  for (auto& c : d.class_names) c = u.str();
  for (auto* v : {&d.mean, &d.std}) {
    v->resize(u.u64());
    for (double& x : *v) x = u.f64();
  }
  for (RawSplit* s : {&d.train, &d.test}) {
    size_t n;
    const char* p = u.bytes(n);
    s->pixels.assign(reinterpret_cast<const uint8_t*>(p), reinterpret_cast<const uint8_t*>(p) + n);
    p = u.bytes(n);
    ST_INVARIANT(n % sizeof(int32_t) == 0);
    s->labels.resize(n / sizeof(int32_t));
    if (n) std::memcpy(s->labels.data(), p, n);
  }
  ST_INVARIANT(u.done());
  return d;
}

}  // namespace

RawDataset load_h5_dataset_raw(const std::string& path, const LoadOptions& opt) {
  // An HDF5 file from elsewhere is untrusted: only a child process hands it to libhdf5 (which can
  // crash, hang or corrupt its heap on a malformed file); we get the dataset back as plain bytes
  // (h5.h, "Reading files we did not write"). Without isolation (fuzzing) it is read in-process.
  if (!h5::untrusted_isolation()) return read_h5_dataset(path, opt);
  RawDataset d = unpack(h5::read_in_child(path, [&] { return pack(read_h5_dataset(path, opt)); }));
  d.validate();
  return d;
}

Dataset load_h5_dataset(const std::string& path, const LoadOptions& opt) {
  return normalize(load_h5_dataset_raw(path, opt));
}

}  // namespace st::data
