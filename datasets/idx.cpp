// IDX reader/writer (plain and gzip) and the Fashion-MNIST loader.
#include "datasets/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "src/base/error.h"

namespace st::data {
namespace {

// Largest decompressed file we accept: guards against a corrupt or hostile header/stream.
constexpr size_t kMaxFileBytes = size_t{1} << 31;
constexpr uint8_t kIdxUbyte = 0x08;
// Deflate cannot expand data by more than 1032:1 (RFC 1951: a 258-byte match per 2 bits at best);
// with the gzip framing, no gzip file of n bytes holds more than this many decompressed bytes.
constexpr uint64_t kMaxDeflateRatio = 1032;
// IDX images larger than this per side are not images (the cost of a training step grows with it).
constexpr int64_t kMaxImageSide = int64_t{1} << 14;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// A whole file, plain or gzip (detected by its magic bytes 1f 8b), read as one stream of bytes.
// Nothing is allocated beyond what the caller asks for: a gzip bomb or a header that declares
// more data than the file can hold is stopped before the memory is spent.
class ByteStream {
 public:
  ByteStream(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw UserError(fmt::format("{}: file not found", path));
    f_.reset(std::fopen(path.c_str(), "rb"));
    if (!f_) throw UserError(fmt::format("{}: cannot open file", path));
    struct stat st {};
    if (::fstat(::fileno(f_.get()), &st) != 0 || !S_ISREG(st.st_mode))
      throw UserError(fmt::format("{}: not a regular file", path));
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > kMaxFileBytes)
      throw UserError(fmt::format("{}: file too large ({} bytes, at most {})", path, size_, kMaxFileBytes));
    uint8_t magic[2];
    const size_t got = std::fread(magic, 1, 2, f_.get());
    gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::rewind(f_.get());
    if (gzip_) {
      in_ = read_all();
      if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK)
        throw UserError(fmt::format("{}: cannot initialize zlib", path));
      z_open_ = true;
      z_.next_in = in_.data();
      z_.avail_in = static_cast<uInt>(in_.size());
    }
  }
  ~ByteStream() {
    if (z_open_) inflateEnd(&z_);
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  bool gzip() const { return gzip_; }
  uint64_t file_size() const { return size_; }
  uint64_t consumed() const { return consumed_; }
  // The most decompressed bytes the file can hold.
  uint64_t max_bytes() const {
    return gzip_ ? std::min<uint64_t>(kMaxFileBytes, size_ * kMaxDeflateRatio) : size_;
  }

  // Reads up to n bytes; fewer only at the end of the data.
  size_t read(uint8_t* out, size_t n) {
    size_t got = gzip_ ? inflate_into(out, n) : read_plain(out, n);
    consumed_ += got;
    return got;
  }

 private:
  size_t read_plain(uint8_t* out, size_t n) {
    const size_t got = std::fread(out, 1, n, f_.get());
    if (got < n && std::ferror(f_.get())) throw UserError(fmt::format("{}: read error", path_));
    return got;
  }
  std::vector<uint8_t> read_all() {
    std::vector<uint8_t> b(size_);
    if (read_plain(b.data(), b.size()) != b.size())
      throw UserError(fmt::format("{}: file changed while being read", path_));
    return b;
  }
  // Inflates a complete gzip stream (possibly several concatenated members, as gzip allows).
  size_t inflate_into(uint8_t* out, size_t n) {
    size_t done = 0;
    while (done < n && !ended_) {
      z_.next_out = out + done;
      z_.avail_out = static_cast<uInt>(std::min<size_t>(n - done, size_t{1} << 30));
      const uInt before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      done += before - z_.avail_out;
      if (rc == Z_STREAM_END) {
        if (z_.avail_in == 0) {
          ended_ = true;
          break;
        }
        inflateReset(&z_);  // another gzip member follows
        continue;
      }
      if (rc == Z_BUF_ERROR || (rc == Z_OK && z_.avail_in == 0 && z_.avail_out != 0))
        throw UserError(fmt::format("{}: truncated gzip stream (ends after {} decompressed bytes)",
                                    path_, consumed_ + done));
      if (rc != Z_OK)
        throw UserError(fmt::format("{}: corrupt gzip data ({})", path_, z_.msg ? z_.msg : "zlib error"));
    }
    return done;
  }

  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> f_;
  uint64_t size_ = 0, consumed_ = 0;
  bool gzip_ = false, ended_ = false, z_open_ = false;
  std::vector<uint8_t> in_;
  z_stream z_{};
};

// Reads exactly n bytes or reports how many the stream held.
size_t read_fully(ByteStream& s, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const size_t k = s.read(out + got, n - got);
    if (k == 0) break;
    got += k;
  }
  return got;
}

// Bytes left in the stream (read and dropped, in small pieces).
uint64_t drain(ByteStream& s) {
  uint64_t n = 0;
  uint8_t buf[1 << 16];
  while (size_t k = s.read(buf, sizeof buf)) n += k;
  return n;
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

std::vector<uint8_t> read_file_maybe_gz(const std::string& path, size_t max_bytes) {
  max_bytes = std::min(max_bytes, kMaxFileBytes);
  ByteStream s(path);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  while (size_t k = s.read(buf, sizeof buf)) {
    if (out.size() + k > max_bytes)
      throw UserError(fmt::format("{}: decompressed data too large (more than {} bytes)", path, max_bytes));
    out.insert(out.end(), buf, buf + k);
  }
  return out;
}

IdxArray read_idx(const std::string& path, int want_rank) {
  ByteStream s(path);
  uint8_t magic[4];
  const size_t got_magic = read_fully(s, magic, 4);
  if (got_magic < 4)
    throw UserError(fmt::format("{}: truncated IDX file ({} bytes, the header alone needs at least 4)",
                                path, got_magic));
  if (magic[0] != 0 || magic[1] != 0 || magic[3] == 0)
    throw UserError(fmt::format("{}: not an IDX file (magic bytes {:02x} {:02x} {:02x} {:02x})", path,
                                magic[0], magic[1], magic[2], magic[3]));
  if (magic[2] != kIdxUbyte)
    throw UserError(fmt::format("{}: unsupported IDX element type 0x{:02x} (only unsigned byte 0x08)",
                                path, magic[2]));
  const int rank = magic[3];
  if (want_rank && rank != want_rank)
    throw UserError(fmt::format("{}: wrong magic: IDX file has {} dimensions, expected {} "
                                "(magic 00 00 08 {:02x}, expected 00 00 08 {:02x})",
                                path, rank, want_rank, rank, want_rank));
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  std::vector<uint8_t> dims_bytes(4 * static_cast<size_t>(rank));
  const size_t got_dims = read_fully(s, dims_bytes.data(), dims_bytes.size());
  if (got_dims < dims_bytes.size())
    throw UserError(fmt::format("{}: truncated IDX header ({} bytes, needs {})", path, 4 + got_dims, header));
  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    a.dims.push_back(be32(dims_bytes.data() + 4 * i));
    count *= static_cast<uint64_t>(a.dims.back());  // <= 2^31 * 2^32: no overflow
    if (count > kMaxFileBytes)
      throw UserError(fmt::format("{}: IDX header dimensions {}... declare more than {} data bytes",
                                  path, dims_str(a.dims), kMaxFileBytes));
  }
  // Before allocating: the header must not declare more than the file can hold.
  const uint64_t can_hold = s.max_bytes() >= header ? s.max_bytes() - header : 0;
  if (count > can_hold) {
    if (!s.gzip())
      throw UserError(fmt::format("{}: truncated: header says {} = {} data bytes but the file holds {}",
                                  path, dims_str(a.dims), count, can_hold));
    throw UserError(fmt::format("{}: truncated: header says {} = {} data bytes but a gzip file of {} "
                                "bytes cannot hold more than {}",
                                path, dims_str(a.dims), count, s.file_size(), can_hold));
  }
  a.data.resize(count);
  const size_t have = read_fully(s, a.data.data(), a.data.size());
  if (have < count)
    throw UserError(fmt::format("{}: truncated: header says {} = {} data bytes but the file holds {}",
                                path, dims_str(a.dims), count, have));
  if (const uint64_t extra = drain(s))
    throw UserError(fmt::format("{}: wrong size: header says {} = {} data bytes but the file holds {} "
                                "({} extra)",
                                path, dims_str(a.dims), count, count + extra, extra));
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
    if (images.dims[0] == 0)
      throw UserError(fmt::format("{}: holds no images (a dataset split needs at least one)", ipath));
    for (int i = 1; i <= 2; ++i)
      if (images.dims[i] < 1 || images.dims[i] > kMaxImageSide)
        throw UserError(fmt::format("{}: images of {}x{} pixels (each side must be in 1..{})", ipath,
                                    images.dims[1], images.dims[2], kMaxImageSide));
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
