// Deterministic shuffling: generator test vectors, golden permutations (a change in any bit of the
// order breaks them, so batch orders stay comparable across versions and machines), iterator
// epochs, and save/restore giving the exact same batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "datasets/dataset.h"

using namespace st::data;

TEST(Shuffle, SplitMix64ReferenceVector) {
  // Published output of the reference implementation for seed 1234567.
  uint64_t s = 1234567;
  const uint64_t want[] = {6457827717110365317ull, 3203168211198807973ull, 9817491932198370423ull,
                           4593380528125082431ull, 16408922859458223821ull};
  for (uint64_t w : want) EXPECT_EQ(splitmix64(s), w);
}

TEST(Shuffle, Xoshiro256StarStarReferenceVector) {
  // xoshiro256** from state {1, 2, 3, 4}, as in the reference C code.
  Xoshiro256 r(0);
  r.set_state({1, 2, 3, 4});
  const uint64_t want[] = {11520ull, 0ull, 1509978240ull, 1215971899390074240ull};
  for (uint64_t w : want) EXPECT_EQ(r.next(), w);
}

TEST(Shuffle, BoundedIsInRangeAndUniform) {
  Xoshiro256 r(7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r.bounded(1), 0u);
  // A bound just above 2^63 rejects almost half the draws: results must still be in range.
  const uint64_t big = (1ull << 63) + 1;
  for (int i = 0; i < 1000; ++i) EXPECT_LT(r.bounded(big), big);
  std::vector<int> hist(6, 0);
  const int draws = 60000;
  for (int i = 0; i < draws; ++i) hist[r.bounded(6)] += 1;
  for (int h : hist) EXPECT_NEAR(h, draws / 6, 400);  // ~4.4 sigma
}

// The golden lists were cross-checked against an independent Python re-implementation of
// SplitMix64 + xoshiro256** + Lemire bounded draws + Fisher-Yates (see datasets notes in README).
TEST(Shuffle, GoldenPermutation) {
  Xoshiro256 r(42);
  std::vector<int64_t> p = permutation(10, r);
  EXPECT_EQ(p, (std::vector<int64_t>{9, 1, 4, 2, 8, 7, 6, 5, 3, 0}));
  Xoshiro256 r2(42);
  std::vector<int64_t> q = permutation(60000, r2);
  EXPECT_EQ(std::vector<int64_t>(q.begin(), q.begin() + 8), (std::vector<int64_t>{15713, 33356, 10438, 14755, 201, 47338, 44135, 52645}));
  std::vector<int64_t> sorted = q;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 60000; ++i) ASSERT_EQ(sorted[i], i);
}

TEST(BatchIterator, GoldenFirstBatchesOfFashionMnistSizedSplit) {
  BatchIterator it(60000, 128, /*seed=*/1);
  EXPECT_EQ(it.batches_per_epoch(), 468);
  std::vector<int64_t> b = it.next();
  ASSERT_EQ(b.size(), 128u);
  EXPECT_EQ(std::vector<int64_t>(b.begin(), b.begin() + 8), (std::vector<int64_t>{21453, 36806, 21665, 49421, 40552, 55831, 4857, 24665}));
  // Same seed, same order; another seed, another order.
  EXPECT_EQ(BatchIterator(60000, 128, 1).next(), b);
  EXPECT_NE(BatchIterator(60000, 128, 2).next(), b);
}

TEST(BatchIterator, EpochsCoverEverySampleOnceAndReshuffle) {
  const int64_t n = 103, batch = 10;
  BatchIterator it(n, batch, 5);
  EXPECT_EQ(it.batches_per_epoch(), 10);  // the last 3 samples are dropped each epoch
  std::vector<int64_t> first_epoch;
  for (int k = 0; k < 10; ++k) {
    auto b = it.next();
    ASSERT_EQ(b.size(), 10u);
    first_epoch.insert(first_epoch.end(), b.begin(), b.end());
  }
  EXPECT_EQ(it.epoch(), 0);
  std::vector<int64_t> s = first_epoch;
  std::sort(s.begin(), s.end());
  EXPECT_EQ(std::unique(s.begin(), s.end()), s.end());  // no repeats within an epoch
  auto b = it.next();  // rolls over
  EXPECT_EQ(it.epoch(), 1);
  EXPECT_EQ(it.position(), 10);
  EXPECT_NE(b, std::vector<int64_t>(first_epoch.begin(), first_epoch.begin() + 10));

  // Without shuffling and dropping: 0..n-1 in order with a short final batch.
  BatchIterator ev(n, batch, 5, /*shuffle=*/false, /*drop_last=*/false);
  EXPECT_EQ(ev.batches_per_epoch(), 11);
  std::vector<int64_t> all;
  for (int k = 0; k < 11; ++k) {
    auto e = ev.next();
    all.insert(all.end(), e.begin(), e.end());
  }
  ASSERT_EQ(all.size(), 103u);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(all[i], i);
}

TEST(BatchIterator, SaveRestoreContinuesBitExactly) {
  for (int stop : {0, 3, 9, 10, 23}) {  // mid-epoch, at the epoch end, in a later epoch
    BatchIterator a(97, 9, 77);
    for (int k = 0; k < stop; ++k) a.next();
    const std::array<uint64_t, 4> saved = a.state().to_array();
    std::vector<std::vector<int64_t>> rest;
    for (int k = 0; k < 25; ++k) rest.push_back(a.next());

    BatchIterator b(97, 9, /*seed=*/12345);  // restored state carries the seed
    b.restore(IteratorState::from_array(saved));
    for (int k = 0; k < 25; ++k) ASSERT_EQ(b.next(), rest[k]) << "stop " << stop << " batch " << k;
    EXPECT_EQ(b.epoch(), a.epoch());
  }
  BatchIterator c(50, 5, 1);
  IteratorState wrong = c.state();
  wrong.num_samples = 51;
  EXPECT_THROW(c.restore(wrong), st::UserError);
  EXPECT_THROW(BatchIterator(5, 6, 1), st::UserError);
  EXPECT_THROW(BatchIterator(5, 0, 1), st::UserError);
}

TEST(BatchIterator, GatherCopiesTheChosenSamples) {
  Split s;
  s.images = st::Tensor({6, 2, 2, 3});
  for (int64_t i = 0; i < s.images.size(); ++i) s.images[i] = static_cast<float>(i);
  s.labels = {0, 1, 2, 3, 4, 5};
  BatchIterator it(6, 4, 3);
  st::Tensor x;
  std::vector<int32_t> y;
  it.next(s, x, y);
  const std::vector<int64_t>& order = it.order();
  ASSERT_EQ(x.shape_str(), "(4, 2, 2, 3)");
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(y[k], order[k]);
    EXPECT_EQ(0, std::memcmp(x.data() + k * 12, s.images.data() + order[k] * 12, 12 * sizeof(float)));
  }
}
