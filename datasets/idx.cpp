// IDX reader/writer (plain and gzip) and the Fashion-MNIST loader.
#include "datasets/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "src/error.h"

namespace st::data {
namespace {

// Largest decompressed file we accept: guards against a corrupt or hostile header/stream.
constexpr size_t kMaxFileBytes = size_t{1} << 31;
constexpr uint8_t kIdxUbyte = 0x08;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

std::vector<uint8_t> read_plain(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw UserError(fmt::format("{}: cannot open file", path));
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    out.insert(out.end(), buf, buf + got);
    if (out.size() > kMaxFileBytes) throw UserError(fmt::format("{}: file too large", path));
  }
  if (std::ferror(f.get())) throw UserError(fmt::format("{}: read error", path));
  return out;
}

// Inflates a complete gzip stream (possibly several concatenated members, as gzip allows).
std::vector<uint8_t> gunzip(const std::string& path, const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out;
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
    throw UserError(fmt::format("{}: cannot initialize zlib", path));
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  uint8_t buf[1 << 16];
  while (true) {
    z.next_out = buf;
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.insert(out.end(), buf, buf + (sizeof buf - z.avail_out));
    if (out.size() > kMaxFileBytes) throw UserError(fmt::format("{}: decompressed data too large", path));
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // another gzip member follows
      continue;
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0))
      throw UserError(fmt::format("{}: truncated gzip stream (ends after {} decompressed bytes)",
                                  path, out.size()));
    if (rc != Z_OK)
      throw UserError(fmt::format("{}: corrupt gzip data ({})", path, z.msg ? z.msg : "zlib error"));
  }
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + ")";
}

// The file for `base` in `dir`: base.gz if present, else base; names both when neither exists.
std::string find_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string gz = (fs::path(dir) / (base + ".gz")).string();
  const std::string plain = (fs::path(dir) / base).string();
  if (fs::exists(gz, ec)) return gz;
  if (fs::exists(plain, ec)) return plain;
  throw UserError(fmt::format("{}: file not found (nor {})", gz, plain));
}

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                                  "Ankle boot"};
// Mean and std of pixel/255 over the 60000 Fashion-MNIST train images (channel_stats on the files
// of Debian's dataset-fashion-mnist; test_datasets_real re-derives them when the files exist).
constexpr double kFashionMean = 0.28604059698879553;
constexpr double kFashionStd = 0.35302424451492259;

}  // namespace

std::vector<uint8_t> read_file_maybe_gz(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw UserError(fmt::format("{}: file not found", path));
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(fmt::format("{}: not a regular file", path));
  std::vector<uint8_t> raw = read_plain(path);
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) return gunzip(path, raw);
  return raw;
}

IdxArray read_idx(const std::string& path, int want_rank) {
  std::vector<uint8_t> bytes = read_file_maybe_gz(path);
  if (bytes.size() < 4)
    throw UserError(fmt::format("{}: truncated IDX file ({} bytes, the header alone needs at least 4)",
                                path, bytes.size()));
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0)
    throw UserError(fmt::format("{}: not an IDX file (magic bytes {:02x} {:02x} {:02x} {:02x})", path,
                                bytes[0], bytes[1], bytes[2], bytes[3]));
  if (bytes[2] != kIdxUbyte)
    throw UserError(fmt::format("{}: unsupported IDX element type 0x{:02x} (only unsigned byte 0x08)",
                                path, bytes[2]));
  const int rank = bytes[3];
  if (want_rank && rank != want_rank)
    throw UserError(fmt::format("{}: wrong magic: IDX file has {} dimensions, expected {} "
                                "(magic 00 00 08 {:02x}, expected 00 00 08 {:02x})",
                                path, rank, want_rank, rank, want_rank));
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header)
    throw UserError(fmt::format("{}: truncated IDX header ({} bytes, needs {})", path, bytes.size(),
                                header));
  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    a.dims.push_back(be32(bytes.data() + 4 + 4 * i));
    count *= static_cast<uint64_t>(a.dims.back());
    if (count > kMaxFileBytes)
      throw UserError(fmt::format("{}: IDX header dimensions too large", path));
  }
  const size_t have = bytes.size() - header;
  if (have < count)
    throw UserError(fmt::format("{}: truncated: header says {} = {} data bytes but the file holds {}",
                                path, dims_str(a.dims), count, have));
  if (have > count)
    throw UserError(fmt::format("{}: wrong size: header says {} = {} data bytes but the file holds {} "
                                "({} extra)",
                                path, dims_str(a.dims), count, have, have - count));
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

void write_idx(const std::string& path, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip) {
  std::vector<uint8_t> bytes = {0, 0, kIdxUbyte, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<uint8_t>(d >> s));
  bytes.insert(bytes.end(), data.begin(), data.end());
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw UserError(fmt::format("{}: cannot create file", path));
    const int wrote = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    if (gzclose(f) != Z_OK || wrote != static_cast<int>(bytes.size()))
      throw UserError(fmt::format("{}: write failed", path));
    return;
  }
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    throw UserError(fmt::format("{}: write failed", path));
}

RawDataset load_fashion_mnist_raw(const std::string& dir, const LoadOptions& opt) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw UserError(fmt::format("{}: Fashion-MNIST directory not found (install Debian's "
                                "dataset-fashion-mnist or pass --dir)", dir));
  RawDataset d;
  d.name = "fashion-mnist";
  d.source = dir;
  d.channels = 1;
  d.num_classes = 10;
  d.class_names = kFashionClasses;
  d.mean = {kFashionMean};
  d.std = {kFashionStd};
  auto load_split = [&](const std::string& prefix, RawSplit& s) {
    const std::string ipath = find_file(dir, prefix + "-images-idx3-ubyte");
    const std::string lpath = find_file(dir, prefix + "-labels-idx1-ubyte");
    IdxArray images = read_idx(ipath, 3);
    IdxArray labels = read_idx(lpath, 1);
    if (images.dims[0] != labels.dims[0])
      throw UserError(fmt::format("{}: holds {} labels but {} holds {} images", lpath,
                                  labels.dims[0], ipath, images.dims[0]));
    if (d.height == 0) {
      d.height = static_cast<int>(images.dims[1]);
      d.width = static_cast<int>(images.dims[2]);
    } else if (images.dims[1] != d.height || images.dims[2] != d.width) {
      throw UserError(fmt::format("{}: images are {}x{} but the train images are {}x{}", ipath,
                                  images.dims[1], images.dims[2], d.height, d.width));
    }
    for (size_t i = 0; i < labels.data.size(); ++i)
      if (labels.data[i] >= d.num_classes)
        throw UserError(fmt::format("{}: label {} at index {} is outside [0, {})", lpath,
                                    labels.data[i], i, d.num_classes));
    s.pixels = std::move(images.data);
    s.labels.assign(labels.data.begin(), labels.data.end());
  };
  load_split("train", d.train);
  load_split("t10k", d.test);
  d.truncate(opt.limit_train, opt.limit_test);
  d.validate();
  return d;
}

Dataset load_fashion_mnist(const std::string& dir, const LoadOptions& opt) {
  return normalize(load_fashion_mnist_raw(dir, opt));
}

}  // namespace st::data
