#pragma once
// In-memory image-classification datasets and the deterministic batch order used for training.
//
// A Dataset holds two splits (train, test) of fp32 NCHW images, already normalized per channel
// (x = (pixel / 255 - mean[c]) / std[c]), and int32 labels in [0, num_classes). Loaders for the
// on-disk formats (IDX, CIFAR-10 binary, our HDF5 layout) first produce RawDataset (uint8 pixels,
// exactly the file contents), which the HDF5 converter writes as is and normalize() turns into a
// Dataset.
//
// Shuffling is ours end to end, so the order is the same on every machine, compiler and thread
// count: SplitMix64 seeds a xoshiro256** generator per (seed, epoch); the bounded draws use
// Lemire's multiply-shift with rejection; the permutation is a Fisher-Yates shuffle (see
// shuffle.cpp for the exact definitions). The iterator's whole state is (seed, epoch, position), so
// it can be saved to a checkpoint and restored for a bit-exact resume.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "src/base/tensor.h"

namespace st::data {

inline constexpr int kMaxChannels = 4;

struct RawSplit {
  std::vector<uint8_t> pixels;  // (N, C, H, W)
  std::vector<int32_t> labels;  // (N)
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct RawDataset {
  std::string name;    // "fashion-mnist", "cifar10", or the name stored in an HDF5 file
  std::string source;  // where it came from (directory or file), for messages and `info`
  int channels = 0, height = 0, width = 0;
  int num_classes = 0;
  std::vector<std::string> class_names;  // optional, num_classes entries when present
  std::vector<double> mean, std;         // per channel, of pixel/255 over the full train split
  RawSplit train, test;
  int64_t image_size() const { return int64_t{channels} * height * width; }
  // Keeps the first n_train / n_test samples (a negative count keeps the whole split).
  void truncate(int64_t n_train, int64_t n_test);
  // Checks shapes, sizes, label range and normalization constants; throws UserError naming `source`.
  void validate() const;
};

struct Split {
  Tensor images;                // (N, C, H, W), normalized
  std::vector<int32_t> labels;  // (N)
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct Dataset {
  std::string name, source;
  int channels = 0, height = 0, width = 0;
  int num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean, std;
  Split train, test;
  const Split& split(bool is_train) const { return is_train ? train : test; }
};

// Per-channel mean and std of pixel/255 over a split, from exact integer sums (so the result does
// not depend on summation order). The loaders' built-in constants come from this on the full
// train split.
void channel_stats(const RawSplit& s, int channels, std::vector<double>& mean,
                   std::vector<double>& std);

// Per-channel normalization through a 256-entry table computed in double and rounded once to fp32,
// so the same pixel always gives the same float on any machine.
Dataset normalize(const RawDataset& raw);

// Subset / loading options for the loaders.
struct LoadOptions {
  int64_t limit_train = -1;  // keep only the first N train samples (-1: all)
  int64_t limit_test = -1;   // keep only the first N test samples (-1: all)
};

// Loads by name: "fashion-mnist" (from `dir`, default /usr/share/datasets/fashion-mnist),
// "cifar10" (from `dir`, required), or a path ending in .h5 / .hdf5 (our HDF5 layout).
RawDataset load_raw(const std::string& name_or_file, const std::string& dir = "",
                    const LoadOptions& opt = {});
Dataset load_dataset(const std::string& name_or_file, const std::string& dir = "",
                     const LoadOptions& opt = {});

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers and shuffling.

uint64_t splitmix64(uint64_t& state);

// xoshiro256** 1.0 (Blackman & Vigna), seeded from SplitMix64 as its authors recommend.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed);
  uint64_t next();
  // Uniform integer in [0, bound), bound > 0: Lemire's multiply-shift with rejection of the
  // biased low products (threshold = 2^64 mod bound), so it is exactly uniform and fully specified.
  uint64_t bounded(uint64_t bound);
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_;
};

// Fisher-Yates: for i = n-1 down to 1, swap(p[i], p[bounded(i + 1)]). Starts from the identity.
std::vector<int64_t> permutation(int64_t n, Xoshiro256& rng);

// Where a BatchIterator stands. Saving these four numbers and restoring them continues the exact
// same sequence of batches (the epoch's permutation is a pure function of (seed, epoch, n)).
struct IteratorState {
  uint64_t seed = 0;
  int64_t epoch = 0;     // epochs completed so far
  int64_t position = 0;  // samples consumed in the current epoch
  int64_t num_samples = 0;
  std::array<uint64_t, 4> to_array() const;
  static IteratorState from_array(const std::array<uint64_t, 4>& a);
};

class BatchIterator {
 public:
  // shuffle = false gives 0..n-1 in order (evaluation). drop_last = true skips the final partial
  // batch of an epoch (training: every batch has `batch` samples); false yields it shorter.
  BatchIterator(int64_t num_samples, int64_t batch, uint64_t seed, bool shuffle = true,
                bool drop_last = true);

  // Indices of the next batch; moves to the next epoch (a fresh permutation) when one is exhausted.
  std::vector<int64_t> next();
  // Fills images (B, C, H, W) and labels (B) for the next batch of `split`.
  void next(const Split& split, Tensor& images, std::vector<int32_t>& labels);

  int64_t batches_per_epoch() const;
  int64_t epoch() const { return st_.epoch; }
  int64_t position() const { return st_.position; }
  const std::vector<int64_t>& order() const { return order_; }  // current epoch's permutation

  IteratorState state() const { return st_; }
  // Throws UserError if the state belongs to a different dataset size or is out of range.
  void restore(const IteratorState& s);

 private:
  void make_order();
  IteratorState st_;
  int64_t batch_;
  bool shuffle_, drop_last_;
  std::vector<int64_t> order_;
};

// Copies samples `idx` of `split` into images (B, C, H, W) and labels (B); reallocates `images`
// only when its shape differs.
void gather(const Split& split, const std::vector<int64_t>& idx, Tensor& images,
            std::vector<int32_t>& labels);

}  // namespace st::data
