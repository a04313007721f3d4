// Deterministic shuffling and batching (see dataset.h). Every step is specified here rather than
// taken from <random>, whose distributions are implementation-defined, so a seed gives the same
// batches on any machine, compiler, standard library and thread count.
#include <fmt/format.h>

#include <cstring>

#include "datasets/dataset.h"

namespace st::data {

// SplitMix64 (Steele, Lea, Flood 2014), the reference seeding generator for xoshiro.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Xoshiro256::Xoshiro256(uint64_t seed) {
  uint64_t sm = seed;
  for (auto& w : s_) w = splitmix64(sm);
}

uint64_t Xoshiro256::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Xoshiro256::bounded(uint64_t bound) {
  ST_INVARIANT(bound > 0);
  // Lemire, "Fast random integer generation in an interval" (2019): the high word of x * bound is
  // uniform in [0, bound) once the low words below 2^64 mod bound are rejected.
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

std::vector<int64_t> permutation(int64_t n, Xoshiro256& rng) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.bounded(static_cast<uint64_t>(i) + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::array<uint64_t, 4> IteratorState::to_array() const {
  return {seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(position),
          static_cast<uint64_t>(num_samples)};
}

IteratorState IteratorState::from_array(const std::array<uint64_t, 4>& a) {
  return {a[0], static_cast<int64_t>(a[1]), static_cast<int64_t>(a[2]), static_cast<int64_t>(a[3])};
}

BatchIterator::BatchIterator(int64_t num_samples, int64_t batch, uint64_t seed, bool shuffle,
                             bool drop_last)
    : batch_(batch), shuffle_(shuffle), drop_last_(drop_last) {
  if (num_samples <= 0) throw UserError("the dataset split is empty");
  if (batch <= 0) throw UserError(fmt::format("batch size must be positive (got {})", batch));
  if (drop_last && batch > num_samples)
    throw UserError(fmt::format("batch size {} is larger than the {} samples of the split", batch,
                                num_samples));
  st_ = {seed, 0, 0, num_samples};
  make_order();
}

void BatchIterator::make_order() {
  if (!shuffle_) {
    order_.resize(static_cast<size_t>(st_.num_samples));
    for (int64_t i = 0; i < st_.num_samples; ++i) order_[i] = i;
    return;
  }
  // One generator per epoch, seeded from a hash of (seed, epoch): the permutation of epoch e does
  // not depend on how many draws earlier epochs made, which keeps restore() trivial.
  uint64_t h = st_.seed;
  const uint64_t epoch_seed = splitmix64(h) ^ static_cast<uint64_t>(st_.epoch);
  Xoshiro256 rng(epoch_seed);
  order_ = permutation(st_.num_samples, rng);
}

int64_t BatchIterator::batches_per_epoch() const {
  return drop_last_ ? st_.num_samples / batch_ : (st_.num_samples + batch_ - 1) / batch_;
}

std::vector<int64_t> BatchIterator::next() {
  const int64_t n = st_.num_samples;
  const bool exhausted = drop_last_ ? st_.position + batch_ > n : st_.position >= n;
  if (exhausted) {
    st_.epoch += 1;
    st_.position = 0;
    make_order();
  }
  const int64_t end = std::min(st_.position + batch_, n);
  std::vector<int64_t> idx(order_.begin() + st_.position, order_.begin() + end);
  st_.position = end;
  return idx;
}

void BatchIterator::next(const Split& split, Tensor& images, std::vector<int32_t>& labels) {
  if (split.size() != st_.num_samples)
    throw UserError(fmt::format("batch iterator made for {} samples used on a split of {}",
                                st_.num_samples, split.size()));
  gather(split, next(), images, labels);
}

void BatchIterator::restore(const IteratorState& s) {
  if (s.num_samples != st_.num_samples)
    throw UserError(fmt::format("saved batch order is for {} samples but the split has {}",
                                s.num_samples, st_.num_samples));
  if (s.epoch < 0 || s.position < 0 || s.position > s.num_samples)
    throw UserError(fmt::format("saved batch order state out of range (epoch {}, position {})",
                                s.epoch, s.position));
  st_ = s;
  make_order();
}

void gather(const Split& split, const std::vector<int64_t>& idx, Tensor& images,
            std::vector<int32_t>& labels) {
  const auto b = static_cast<int64_t>(idx.size());
  const int64_t c = split.images.dim(1), h = split.images.dim(2), w = split.images.dim(3);
  const int64_t per = c * h * w;
  if (images.rank() != 4 || images.dim(0) != b || images.dim(1) != c || images.dim(2) != h ||
      images.dim(3) != w)
    images = Tensor({b, c, h, w});
  labels.resize(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    ST_INVARIANT(idx[i] >= 0 && idx[i] < split.size());
    std::memcpy(images.data() + i * per, split.images.data() + idx[i] * per, per * sizeof(float));
    labels[i] = split.labels[idx[i]];
  }
}

}  // namespace st::data
