// The emulated all-reduce (src/scaleout/collective.h): schedules that reduce every element exactly
// once, the documented order of the additions, the wire format applied on every hop, the mean over
// the replicas, and gradient buckets. The same schedules run through MPI in mpi_allreduce_np*.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "src/base/error.h"
#include "src/scaleout/collective.h"
#include "src/spec/spec_toml.h"

using namespace st;

namespace {

std::vector<std::vector<float>> integers(int P, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<float>> b(P, std::vector<float>(static_cast<size_t>(n)));
  for (auto& v : b)
    for (float& x : v) x = float(int(rng() % 201) - 100);
  return b;
}

struct Case {
  Topology t;
  int P;
};

}  // namespace

TEST(Collective, EveryTopologyGivesEveryReplicaTheExactSum) {
  // Small integers: every order gives the exact sum, so the schedule alone is tested (each element
  // reduced exactly once, every replica ends with it).
  for (Case c : {Case{Topology::ring, 2}, Case{Topology::ring, 5}, Case{Topology::torus2d, 4},
                 Case{Topology::torus2d, 6}, Case{Topology::torus2d, 9}, Case{Topology::fully_connected, 3},
                 Case{Topology::switched, 4}}) {
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{1000}}) {
      auto bufs = integers(c.P, n, 7 * n + c.P);
      std::vector<float> want(static_cast<size_t>(n), 0.f);
      for (const auto& b : bufs)
        for (int64_t i = 0; i < n; ++i) want[i] += b[i];
      const CollectiveSchedule s = allreduce_schedule(c.t, c.P, n);
      // The owned ranges partition the buffer.
      std::vector<int> owners(static_cast<size_t>(n), 0);
      for (const auto& rs : s.owned)
        for (const Range& r : rs)
          for (int64_t i = r.off; i < r.off + r.len; ++i) ++owners[i];
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(owners[i], 1) << to_string(c.t) << " P=" << c.P << " n=" << n;
      run_allreduce_reference(s, bufs, Format::fp32, /*average=*/false);
      for (int r = 0; r < c.P; ++r)
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(bufs[r][i], want[i]) << to_string(c.t) << " P=" << c.P << " n=" << n << " rank " << r << " i=" << i;
    }
  }
}

TEST(Collective, OneReplicaLeavesTheBitsAlone) {
  for (Topology t : {Topology::ring, Topology::torus2d, Topology::fully_connected}) {
    const CollectiveSchedule s = allreduce_schedule(t, 1, 5);
    EXPECT_TRUE(s.steps.empty());
    std::vector<std::vector<float>> b = {{0.1f, -0.f, 1e-40f, NAN, 3.f}};
    const auto before = b;
    run_allreduce_reference(s, b, Format::bf16, /*average=*/true);
    EXPECT_EQ(std::memcmp(b[0].data(), before[0].data(), sizeof(float) * 5), 0);
  }
}

TEST(Collective, RingAddsInRingOrderWithTheWireFormatOnEveryHop) {
  // P = 3, one element per chunk. Chunk c starts at rank c and travels c -> c+1 -> c+2; each hop
  // puts the partial sum on the wire (bf16) and the receiver adds its own value in fp32. The owner
  // (rank c+2) divides by P and rounds to bf16; everyone ends with that.
  const int P = 3;
  std::vector<std::vector<float>> g = {{1.001f, 1.f, 3.3f}, {256.5f, 256.f, 0.125f}, {-256.f, -256.f, 1e5f}};
  auto bufs = g;
  run_allreduce_reference(allreduce_schedule(Topology::ring, P, 3), bufs, Format::bf16, /*average=*/true);
  auto w = [](float x) { return round_to(Format::bf16, x); };
  for (int c = 0; c < P; ++c) {
    float v = g[c][c];
    for (int k = 1; k < P; ++k) v = g[(c + k) % P][c] + w(v);
    const float want = w(v / 3.f);
    for (int r = 0; r < P; ++r) EXPECT_EQ(bufs[r][c], want) << "chunk " << c << " rank " << r;
  }
  // The order matters: chunk 1 summed in rank order would be (bf16(1 + 256) = 256) - 256 = 0; in
  // ring order (from rank 1) it is (256 - 256) + 1 = 1.
  EXPECT_EQ(bufs[0][1], w(1.f / 3.f));
}

TEST(Collective, TorusReducesAlongXThenY) {
  // 2 x 2 torus, 4 elements: element i ends owned after a ring along X (pairs {0,1}, {2,3}) and then
  // along Y (pairs {0,2}, {1,3}); with fp32 and these values the two orders differ in the last bit.
  std::vector<std::vector<float>> g = {{1e8f, 1e8f, 1e8f, 1e8f}, {1.f, 1.f, 1.f, 1.f}, {-1e8f, -1e8f, -1e8f, -1e8f},
                                       {1.f, 1.f, 1.f, 1.f}};
  auto bufs = g;
  run_allreduce_reference(allreduce_schedule(Topology::torus2d, 4, 4), bufs, Format::fp32, false);
  // Along X first: (1e8 + 1) = 1e8 in fp32 and (-1e8 + 1) = -1e8; then along Y: 1e8 + -1e8 = 0.
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(bufs[r][i], 0.f) << r << " " << i;
  // A ring over the 4 ranks adds 1e8 + 1 + -1e8 + 1 in ring order from the chunk's first rank: not 0
  // for every chunk (chunk 1 starts at rank 1: 1 + -1e8 + 1 + 1e8 = 0; chunk 2: -1e8 + 1 + 1e8 + 1 = 1).
  auto ring = g;
  run_allreduce_reference(allreduce_schedule(Topology::ring, 4, 4), ring, Format::fp32, false);
  EXPECT_EQ(ring[0][2], 1.f);
}

TEST(Collective, TorusDimensionsAndBadOnes) {
  EXPECT_EQ(torus_x_for(16, 0), 4);
  EXPECT_EQ(torus_x_for(12, 0), 3);
  EXPECT_EQ(torus_x_for(7, 0), 1);
  EXPECT_EQ(torus_x_for(8, 4), 4);
  EXPECT_THROW(torus_x_for(8, 3), UserError);
}

TEST(Collective, BucketsFollowBackwardOrderAndNeverSplitAParameter) {
  const std::vector<int64_t> sizes = {10, 5, 100, 3, 3};
  const auto b = gradient_buckets(sizes, 8);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], (std::vector<size_t>{4, 3, 2}));  // 3 + 3 < 8, then 100 closes it
  EXPECT_EQ(b[1], (std::vector<size_t>{1, 0}));     // 5 < 8, then 10
  EXPECT_EQ(gradient_buckets(sizes, 1).size(), 5u);  // one parameter per bucket
}

TEST(Collective, InterconnectSpecParsesAndRefusesBadValues) {
  const Spec s = parse_spec_toml("base = \"tpu-like\"\n[interconnect]\ntopology = \"torus2d\"\nlink_gbps = 50\n"
                                 "wire_format = \"bf16\"\noverlap = false\nbucket_mib = 4\ntorus_x = 8\n",
                                 "t.toml");
  EXPECT_EQ(s.interconnect.topology, Topology::torus2d);
  EXPECT_EQ(s.interconnect.link_gbps, 50);
  EXPECT_EQ(s.interconnect.wire_format, Format::bf16);
  EXPECT_FALSE(s.interconnect.overlap);
  EXPECT_EQ(s.interconnect.bucket_mib, 4);
  EXPECT_EQ(s.interconnect.torus_x, 8);
  // Printed and read back: the same section.
  const Spec t = parse_spec_toml(spec_to_toml(s), "round.toml");
  EXPECT_EQ(spec_to_toml(t), spec_to_toml(s));
  for (const char* bad : {"topology = \"mesh\"", "link_gbps = 0", "wire_format = \"int8\"", "bucket_mib = -1",
                          "latency_ns = \"x\"", "hops = 3"}) {
    try {
      parse_spec_toml(std::string("[interconnect]\n") + bad + "\n", "bad.toml");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("interconnect"), std::string::npos) << e.what();
    }
  }
}
