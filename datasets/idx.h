#pragma once
// IDX files (LeCun's MNIST format, also used by Fashion-MNIST), plain or gzip-compressed.
//
// Layout: 2 zero bytes, 1 element-type byte (0x08 = unsigned byte, the only type we accept),
// 1 byte with the number of dimensions, then one big-endian uint32 per dimension, then the
// elements in row-major order. Images are idx3 (N, H, W), labels idx1 (N).
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace st::data {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads a whole file; gzip is detected by its magic bytes (1f 8b), anything else is read as is.
// Truncated, oversized (more than `max_bytes` decompressed, at most 2 GiB) or corrupt files throw
// UserError naming the file and the problem; a gzip bomb stops at `max_bytes`.
std::vector<uint8_t> read_file_maybe_gz(const std::string& path, size_t max_bytes = size_t{1} << 31);

// Parses an IDX file with `want_rank` dimensions (0: any). Throws UserError naming `path` on a
// wrong magic, an unsupported element type, a wrong rank or a size that disagrees with the header.
// The declared size is checked against what the file can hold before anything is allocated.
IdxArray read_idx(const std::string& path, int want_rank = 0);

// Writes an uncompressed or gzip-compressed ubyte IDX file (test fixtures, tools).
void write_idx(const std::string& path, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip);

// Fashion-MNIST train and test splits from `dir` (files train-images-idx3-ubyte[.gz],
// train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
RawDataset load_fashion_mnist_raw(const std::string& dir = kFashionMnistDir,
                                  const LoadOptions& opt = {});
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, const LoadOptions& opt = {});

}  // namespace st::data
