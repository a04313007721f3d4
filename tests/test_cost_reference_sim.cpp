// The cost reference on its own (docs/cost-schedule.md), without the fast model: small schedules
// whose whole timeline is worked out by hand from the doc's rules, invariants of the counters and the
// trace on random small GEMMs, the sub-GEMM rule, monotonicity in the link parameters, and plans that
// do not describe a tiling.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "src/costref/gemm_ref.h"
#include "src/costref/schedule.h"

namespace st::costref {
namespace {

// The hand-worked cases: a WS 4x4 array (a tile of tm x tn x tk with tk, tn <= 4 is one fold of
// 2R + C + tm - 2 = 10 + tm cycles, 14 for tm = 4), 1 GHz, the shared link 2 GB/s = 2 bytes/cycle,
// latency 10 ns = L = 10 cycles, one request in flight. Buffers of 32 bytes, double-buffered: none
// of the operands below is resident (each is at least 64 bytes). A and B in 2 bytes, C stored in 2
// bytes, partial sums in 4. A 4x4 tile of A or B is 32 bytes = 16 cycles on the link.
Spec hand_spec() {
  Spec s;
  s.clock_ghz = 1;
  s.array.rows = 4;
  s.array.cols = 4;
  s.array.dataflow = Dataflow::ws;
  s.array.format = Format::bf16;
  s.dram.bandwidth_gbps = 2;
  s.dram.latency_ns = 10;
  s.dram.max_outstanding = 1;
  for (BufferSpec* b : {&s.ifmap, &s.weight, &s.output}) {
    b->kib = 1.0 / 32;
    b->double_buffered = true;
    b->dram_link_bits_per_cycle = 0;
  }
  return s;
}

// docs/cost-schedule.md "Ports", written from the docs: the cycles the ports of the ifmap, weight and
// output buffers need for one step of tile g (the broadcast operand read once per fold slot).
int64_t docs_port_cycles(const GemmWork& w, const Spec& sp, const GemmShape& g) {
  const ArrayConfig& a = sp.array;
  auto cd = [](int64_t x, int64_t y) { return (x + y - 1) / y; };
  int64_t a_reads = 0, b_reads = 0, chunks = 0;   // elements
  const int64_t count = std::max(1, a.count);
  switch (a.dataflow) {
    case Dataflow::os:   // M on rows, N on cols (dealt, A broadcast), K in time
      a_reads = g.M * g.K * cd(cd(g.N, a.cols), count);
      b_reads = g.K * g.N * cd(g.M, a.rows);
      chunks = g.M * g.N;
      break;
    case Dataflow::ws:   // K on rows, N on cols (dealt, A broadcast), M in time
      a_reads = g.M * g.K * cd(cd(g.N, a.cols), count);
      b_reads = g.K * g.N;
      chunks = g.M * g.N * cd(g.K, a.rows);
      break;
    case Dataflow::is:   // K on rows, M on cols (dealt, B broadcast), N in time
      a_reads = g.M * g.K;
      b_reads = g.K * g.N * cd(cd(g.M, a.cols), count);
      chunks = g.M * g.N * cd(g.K, a.rows);
      break;
  }
  auto t = [](double bytes, int bits) { return int64_t(std::ceil(bytes * 8.0 / double(bits))); };
  return std::max({t(double(a_reads * w.a.elem_bytes) * w.a.fetched_fraction, sp.ifmap.port_bits),
                   t(double(b_reads * w.b.elem_bytes) * w.b.fetched_fraction, sp.weight.port_bits),
                   t(double(chunks * 4), sp.output.port_bits)});
}

GemmWork dense(int64_t M, int64_t N, int64_t K) {
  GemmWork w;
  w.shape = {M, N, K};
  w.a.rows = M, w.a.cols = K, w.a.elem_bytes = 2;
  w.b.rows = K, w.b.cols = N, w.b.elem_bytes = 2;
  w.c.rows = M, w.c.cols = N, w.c.elem_bytes = 2;
  return w;
}

GemmPlan plan_of(int64_t tm, int64_t tn, int64_t tk, const std::string& order) {
  GemmPlan p;
  p.tile_m = tm, p.tile_n = tn, p.tile_k = tk;
  p.loop_order = order;
  return p;
}

// One slice as the tests write it: name, [start, end) (transfers: issued, complete).
using Span = std::tuple<std::string, int64_t, int64_t>;

std::vector<Span> timeline(const Result& r) {
  std::vector<Span> v;
  for (const Slice& s : r.slices) v.emplace_back(s.name, s.start, s.end);
  std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) {
    return std::tie(std::get<1>(a), std::get<2>(a), std::get<0>(a)) <
           std::tie(std::get<1>(b), std::get<2>(b), std::get<0>(b));
  });
  return v;
}

std::string show(const std::vector<Span>& v) {
  std::string s;
  for (const auto& [n, a, b] : v) s += "  " + n + " [" + std::to_string(a) + ", " + std::to_string(b) + ")\n";
  return s;
}

double get(const Result& r, const std::string& k) {
  auto it = r.counters.find(k);
  return it == r.counters.end() ? 0.0 : it->second;
}

// Checks total, compute and the six stall causes (materialize, slot, queue, latency, bandwidth, drain).
void expect_cycles(const Result& r, int64_t total, int64_t compute, std::array<int64_t, 6> causes) {
  EXPECT_EQ(get(r, "cycles.total"), double(total));
  EXPECT_EQ(get(r, "cycles.compute"), double(compute));
  EXPECT_EQ(get(r, "cycles.stall"), double(total - compute));
  const char* names[6] = {"stall.materialize", "stall.slot",      "stall.queue",
                          "stall.latency",     "stall.bandwidth", "stall.drain"};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(get(r, names[i]), double(causes[size_t(i)])) << names[i];
}

// M=4, N=4, K=8, tiles 4x4x4, order m,n,k: two steps (k = 0, 1), one C visit, no input, one store.
// Program on the shared link: round -1: load A0, load B0; round 0: load A1, load B1; round 2: store.
TEST(CostReferenceHand, TwoTilesDoubleBuffered) {
  const Result r = simulate_gemm(dense(4, 4, 8), hand_spec(), plan_of(4, 4, 4, "m,n,k"), true);
  // Every load is eligible at t_mat = 0 (loads 0 and 1 of a double-buffered operand).
  //   A0: start 0, data 0+10 = 10, complete 10+16 = 26
  //   B0: start max(0, 0, complete A0 = 26) = 26, data 36, complete 52
  //   A1: start 52, data 62, complete 78;   B1: start 78, data 88, complete 104
  //   step 0: start max(end(-1) = 0, A0 26, B0 52, C 0) = 52, end 52 + 14 = 66
  //   step 1: start max(66, A1 78, B1 104) = 104, end 118
  //   store (32 bytes): eligible end(1) = 118, start 118, data 128, complete 144 = total
  const std::vector<Span> want = {{"load A", 0, 26},    {"load B", 26, 52},   {"compute", 52, 66},
                                  {"load A", 52, 78},   {"load B", 78, 104},  {"compute", 104, 118},
                                  {"store C", 118, 144}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Stalls: step 0's gap [0, 52) goes to B0 (ready 52 > A0's 26): queue [0, 26) 26, latency [26, 36)
  // 10, bandwidth [36, 52) 16. Step 1's gap [66, 104) to B1 (eligible 0, start 78, data 88):
  // queue [66, 78) 12, latency 10, bandwidth 16. Drain: 144 - 118 = 26.
  expect_cycles(r, 144, 28, {0, 0, 26 + 12, 10 + 10, 16 + 16, 26});
  EXPECT_EQ(r.tracks, (std::vector<std::string>{"array", "dram link (shared)"}));
  EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), 64);
  EXPECT_EQ(get(r, "bytes.dram.read.weight"), 64);
  EXPECT_EQ(get(r, "bytes.dram.read.output"), 0);
  EXPECT_EQ(get(r, "bytes.dram.write.output"), 32);
  EXPECT_EQ(r.counters.count("bytes.dram.write.ifmap"), 0u);
  EXPECT_EQ(get(r, "tiles"), 2);
  EXPECT_EQ(get(r, "folds"), 2);
  EXPECT_EQ(get(r, "macs.issued"), 128);
}

// The same GEMM with A stored in DRAM in fp32 (activations) and cast to 2 bytes on the fill
// (docs/cost-schedule.md "Casts"): an A tile is 64 bytes = 32 cycles on the link, 32 bytes in SRAM.
TEST(CostReferenceHand, TwoTilesFp32ActivationsCastOnTheFill) {
  GemmWork w = dense(4, 4, 8);
  w.a.dram_elem_bytes = 4;
  const Spec spec = hand_spec();
  const Result r = simulate_gemm(w, spec, plan_of(4, 4, 4, "m,n,k"), true);
  //   A0: start 0, data 10, complete 10+32 = 42;   B0: start 42, data 52, complete 68
  //   A1: start 68, data 78, complete 110;         B1: start 110, data 120, complete 136
  //   step 0: start max(0, A0 42, B0 68) = 68, end 82;  step 1: start max(82, 110, 136) = 136, end 150
  //   store (16 elements of C in 2 bytes, nothing cast): start 150, data 160, complete 176 = total
  const std::vector<Span> want = {{"load A", 0, 42},    {"load B", 42, 68},   {"compute", 68, 82},
                                  {"load A", 68, 110},  {"load B", 110, 136}, {"compute", 136, 150},
                                  {"store C", 150, 176}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0's gap [0, 68) goes to B0: queue [0, 42), latency [42, 52), bandwidth [52, 68). Step 1's
  // gap [82, 136) to B1: queue [82, 110), latency [110, 120), bandwidth [120, 136). Drain 26.
  expect_cycles(r, 176, 28, {0, 0, 42 + 28, 10 + 10, 16 + 16, 26});
  EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), 128);   // 2 tiles x 16 elements x 4 bytes
  EXPECT_EQ(get(r, "bytes.sram.ifmap.write"), 64);   // ... landing as 2-byte elements
  EXPECT_EQ(get(r, "bytes.dram.read.weight"), 64);
  EXPECT_EQ(get(r, "bytes.sram.weight.write"), 64);
  EXPECT_EQ(get(r, "casts"), 32);
  EXPECT_DOUBLE_EQ(get(r, "energy.cast"), 32 * spec.energy.cast);
}

// The same GEMM with A single-buffered: A1 waits for the end of step 0, the step that used A0.
TEST(CostReferenceHand, TwoTilesSingleBufferedA) {
  Spec s = hand_spec();
  s.ifmap.double_buffered = false;
  const Result r = simulate_gemm(dense(4, 4, 8), s, plan_of(4, 4, 4, "m,n,k"), true);
  //   A0: 0 -> data 10 -> 26;  B0: start 26, data 36, complete 52
  //   step 0: start max(0, 26, 52) = 52, end 66
  //   A1 (load 1, single-buffered): eligible end(l_1 - 1) = end(0) = 66; start max(66, 26, 52) = 66,
  //       data 76, complete 92
  //   B1: eligible 0, start max(0, 66, 92) = 92, data 102, complete 118
  //   step 1: start max(66, 92, 118) = 118, end 132
  //   store: eligible 132, start 132, data 142, complete 158
  const std::vector<Span> want = {{"load A", 0, 26},   {"load B", 26, 52},  {"compute", 52, 66},
                                  {"load A", 66, 92},  {"load B", 92, 118}, {"compute", 118, 132},
                                  {"store C", 132, 158}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0: B0 as above (queue 26, latency 10, bandwidth 16). Step 1's gap [66, 118) goes to B1
  // (ready 118 > A1's 92): queue [66, 92) 26, latency [92, 102) 10, bandwidth [102, 118) 16.
  // Drain 158 - 132 = 26.
  expect_cycles(r, 158, 28, {0, 0, 26 + 26, 10 + 10, 16 + 16, 26});
}

// max_outstanding = 2: a request may start while the previous one is in flight, so latencies
// overlap; data stay serial.
TEST(CostReferenceHand, TwoTilesTwoOutstandingOverlapLatency) {
  Spec s = hand_spec();
  s.dram.max_outstanding = 2;
  const Result r = simulate_gemm(dense(4, 4, 8), s, plan_of(4, 4, 4, "m,n,k"), true);
  //   start_i = max(eligible, start_{i-1}, complete_{i-2}); data_i = max(start_i + 10, complete_{i-1})
  //   A0: start 0, data 10, complete 26
  //   B0: start max(0, 0, -) = 0, data max(10, 26) = 26, complete 42
  //   A1: start max(0, 0, complete A0 26) = 26, data max(36, 42) = 42, complete 58
  //   B1: start max(0, 26, complete B0 42) = 42, data max(52, 58) = 58, complete 74
  //   step 0: start max(0, 26, 42) = 42, end 56;  step 1: start max(56, 58, 74) = 74, end 88
  //   store: eligible 88, start max(88, 42, complete A1 58) = 88, data max(98, 74) = 98, complete 114
  const std::vector<Span> want = {{"load A", 0, 26},  {"load B", 0, 42},   {"load A", 26, 58},
                                  {"compute", 42, 56}, {"load B", 42, 74}, {"compute", 74, 88},
                                  {"store C", 88, 114}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0's gap [0, 42) -> B0 (start 0, latency [0, 10), data from 26): latency 10, queue [10, 26)
  // 16 (latency over, the link still busy with A0), bandwidth [26, 42) 16.
  // Step 1's gap [56, 74) -> B1 (latency [42, 52), data from 58): queue [56, 58) 2, bandwidth 16.
  // Drain 114 - 88 = 26.
  expect_cycles(r, 114, 28, {0, 0, 16 + 2, 10, 16 + 16, 26});
}

// Spill and read-back: M=4, N=8, K=8, tiles 4, order k,n,m (K outermost), C single-buffered.
// Steps: s0 (n0,k0), s1 (n1,k0), s2 (n0,k1), s3 (n1,k1); A (m,k) changes at s2 only; B every step;
// every step is its own C visit v0..v3. v0, v1: first visits, no input, end before the last K: spill
// 4*4*4 = 64 bytes (32 cycles). v2, v3: read the partial sums back (64 bytes, 32 cycles), end at the
// last K: store the output, 4*4*2 = 32 bytes (16 cycles).
// Program (C single-buffered: a visit's input in the round of its first step, after the store):
//   round -1: A0 (s0), B0 (s0) | 0: B1 (s1) | 1: spill v0, A1 (s2), B2 (s2)
//   round 2: spill v1, input v2, B3 (s3) | 3: store v2, input v3 | 4: store v3
TEST(CostReferenceHand, SpillAndReadBackSingleBufferedC) {
  Spec s = hand_spec();
  s.output.double_buffered = false;
  const Result r = simulate_gemm(dense(4, 8, 8), s, plan_of(4, 4, 4, "k,n,m"), true);
  //   A0: 0 -> 26;  B0: 26 (data 36) -> 52;  B1 (load 1): 52 (data 62) -> 78
  //   step 0: max(0, A0 26, B0 52, C: no input, no earlier visit -> t_mat 0) = 52, end 66
  //   spill v0: eligible end(0) = 66, start max(66, 78) = 78, data 88, complete 120
  //   A1 (load 1): eligible 0, start 120, data 130, complete 146
  //   step 1 (v1, no input: its slot is free when v0's spill completes): max(66, A0 26, B1 78, 120)
  //       = 120, end 134
  //   B2 (load 2): eligible end(l_1 - 1) = end(0) = 66, start 146, data 156, complete 172
  //   spill v1: eligible end(1) = 134, start 172, data 182, complete 214
  //   input v2: eligible = complete of v1's spill = 214, start 214, data 224, complete 256
  //   step 2: max(134, A1 146, B2 172, input v2 256) = 256, end 270
  //   B3 (load 3): eligible end(l_2 - 1) = end(1) = 134, start 256, data 266, complete 282
  //   store v2: eligible end(2) = 270, start max(270, 282) = 282, data 292, complete 308
  //   input v3: eligible 308 (store v2 complete), start 308, data 318, complete 350
  //   step 3: max(270, A1 146, B3 282, input v3 350) = 350, end 364
  //   store v3: eligible 364, start 364, data 374, complete 390 = total
  const std::vector<Span> want = {
      {"load A", 0, 26},     {"load B", 26, 52},    {"compute", 52, 66},   {"load B", 52, 78},
      {"spill C", 78, 120},  {"compute", 120, 134}, {"load A", 120, 146},  {"load B", 146, 172},
      {"spill C", 172, 214}, {"input C", 214, 256}, {"compute", 256, 270}, {"load B", 256, 282},
      {"store C", 282, 308}, {"input C", 308, 350}, {"compute", 350, 364}, {"store C", 364, 390}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Stalls: step 0 [0, 52) -> B0: queue 26, latency 10, bandwidth 16.
  //   step 1 [66, 120) -> C (120 > B1 78), a visit without input waiting on its slot: drain 54.
  //   step 2 [134, 256) -> input v2 (eligible 214): slot [134, 214) 80, latency 10, bandwidth 32.
  //   step 3 [270, 350) -> input v3 (eligible 308): slot [270, 308) 38, latency 10, bandwidth 32.
  //   tail 390 - 364 = 26: drain.
  expect_cycles(r, 390, 56, {0, 80 + 38, 26, 10 + 10 + 10, 16 + 32 + 32, 54 + 26});
  EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), 64);
  EXPECT_EQ(get(r, "bytes.dram.read.weight"), 128);
  EXPECT_EQ(get(r, "bytes.dram.read.output"), 128);          // two read-backs of 64
  EXPECT_EQ(get(r, "bytes.dram.write.output"), 64 + 64 + 32 + 32);
  // Output buffer: chunks 4*4*1*4 = 64 bytes per step; every chunk reads what it adds to except the
  // first chunk of each of the two C tiles (the read-backs come in before their visits' chunks add
  // to them).
  EXPECT_EQ(get(r, "bytes.sram.output.write"), 4 * 64 + 128);
  EXPECT_EQ(get(r, "bytes.sram.output.read"), 4 * 64 - 2 * 64 + 128 + 192);
}

// Three tiles (K = 12) and accumulate_into_c: the only visit reads C in first (its share, 16
// elements x 2 bytes = 32 bytes); C double-buffered, so that input is issued in round -1.
// Program: round -1: input C, A0, B0 | 0: A1, B1 | 1: A2, B2 | 3: store.
TEST(CostReferenceHand, ThreeTilesAccumulateIntoC) {
  GemmWork w = dense(4, 4, 12);
  w.accumulate_into_c = true;
  const Result r = simulate_gemm(w, hand_spec(), plan_of(4, 4, 4, "m,n,k"), true);
  //   input C: eligible t_mat (no visit j-2), start 0, data 10, complete 26
  //   A0: 26 (data 36) -> 52;  B0: 52 -> 78;  A1: 78 -> 104;  B1: 104 -> 130
  //   step 0: max(0, A0 52, B0 78, input 26) = 78, end 92
  //   A2 (load 2): eligible end(l_1 - 1) = end(0) = 92, start max(92, 104, 130) = 130, data 140,
  //       complete 156;  B2: eligible 92, start 156, data 166, complete 182
  //   step 1: max(92, 104, 130) = 130, end 144;  step 2: max(144, 156, 182) = 182, end 196
  //   store: eligible 196, start 196, data 206, complete 222
  const std::vector<Span> want = {
      {"input C", 0, 26},    {"load A", 26, 52},    {"load B", 52, 78},    {"compute", 78, 92},
      {"load A", 78, 104},   {"load B", 104, 130},  {"compute", 130, 144}, {"load A", 130, 156},
      {"load B", 156, 182},  {"compute", 182, 196}, {"store C", 196, 222}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0 [0, 78) -> B0 (start 52): queue 52, latency 10, bandwidth 16.
  // Step 1 [92, 130) -> B1 (start 104): queue 12, latency 10, bandwidth 16.
  // Step 2 [144, 182) -> B2 (ready 182 > A2's 156; start 156): queue 12, latency 10, bandwidth 16.
  // Drain 222 - 196 = 26.
  expect_cycles(r, 222, 42, {0, 0, 52 + 12 + 12, 30, 48, 26});
  EXPECT_EQ(get(r, "bytes.dram.read.output"), 32);
  EXPECT_EQ(get(r, "bytes.dram.write.output"), 32);
  // Output buffer: 3 chunks of 64 bytes written + the 32 bytes of C coming in; read: every chunk
  // (even the first adds to the C that came in), plus C in, plus C out.
  EXPECT_EQ(get(r, "bytes.sram.output.write"), 3 * 64 + 32);
  EXPECT_EQ(get(r, "bytes.sram.output.read"), 3 * 64 + 32 + 32);
}

// Own links: A and B on 16-bit links (2 bytes/cycle), C on an 8-bit link (1 byte/cycle). Each link
// has its own in-order engine; nothing uses the shared link, so it has no track.
TEST(CostReferenceHand, TwoTilesOwnLinks) {
  Spec s = hand_spec();
  s.ifmap.dram_link_bits_per_cycle = 16;
  s.weight.dram_link_bits_per_cycle = 16;
  s.output.dram_link_bits_per_cycle = 8;
  const Result r = simulate_gemm(dense(4, 4, 8), s, plan_of(4, 4, 4, "m,n,k"), true);
  //   ifmap link: A0: 0, data 10, complete 26;  A1: start max(0, 0, 26) = 26, data 36, complete 52
  //   weight link: B0: 0 -> 26;  B1: 26 -> 52
  //   step 0: max(0, 26, 26) = 26, end 40;  step 1: max(40, 52, 52) = 52, end 66
  //   output link: store (32 bytes at 1 byte/cycle): eligible 66, data 76, complete 108
  const std::vector<Span> want = {{"load A", 0, 26},    {"load B", 0, 26},    {"compute", 26, 40},
                                  {"load A", 26, 52},   {"load B", 26, 52},   {"compute", 52, 66},
                                  {"store C", 66, 108}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0 [0, 26): A0 and B0 both ready at 26, the tie goes to A: latency 10, bandwidth 16.
  // Step 1 [40, 52): A1 (data from 36): bandwidth 12. Drain 108 - 66 = 42.
  expect_cycles(r, 108, 28, {0, 0, 0, 10, 16 + 12, 42});
  EXPECT_EQ(r.tracks, (std::vector<std::string>{"array", "ifmap link", "weight link", "output link"}));
  for (const Slice& sl : r.slices) {
    if (sl.name == "compute") continue;
    EXPECT_EQ(r.tracks[size_t(sl.track)],
              sl.name == "load A" ? "ifmap link" : sl.name == "load B" ? "weight link" : "output link");
  }
}

// Materialization of an explicitly lowered A: a read of 20 bytes and a write of 40 on the shared
// link before the GEMM; every GEMM request waits for t_mat.
TEST(CostReferenceHand, TwoTilesMaterialization) {
  GemmWork w = dense(4, 4, 8);
  w.a.extra_dram_read_bytes = 20;
  w.a.extra_dram_write_bytes = 40;
  w.a.extra_storage_bytes = 40;
  const Result r = simulate_gemm(w, hand_spec(), plan_of(4, 4, 4, "m,n,k"), true);
  //   read A: 0, data 10, complete 20;  write A: start 20, data 30, complete 50 = t_mat
  //   A0: eligible 50, start 50, data 60, complete 76;  B0: 76 -> 102;  A1: 102 -> 128;  B1: 128 -> 154
  //   step 0: max(t_mat 50, 76, 102) = 102, end 116;  step 1: max(116, 128, 154) = 154, end 168
  //   store: 168, data 178, complete 194
  const std::vector<Span> want = {
      {"read A (materialize)", 0, 20}, {"write A (materialize)", 20, 50}, {"load A", 50, 76},
      {"load B", 76, 102},             {"compute", 102, 116},             {"load A", 102, 128},
      {"load B", 128, 154},            {"compute", 154, 168},             {"store C", 168, 194}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // materialize 50; step 0 [50, 102) -> B0 (eligible 50, start 76): queue 26, latency 10,
  // bandwidth 16; step 1 [116, 154) -> B1 (start 128): queue 12, latency 10, bandwidth 16; drain 26.
  expect_cycles(r, 194, 28, {50, 0, 26 + 12, 20, 32, 26});
  EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), 64 + 20);
  EXPECT_EQ(get(r, "bytes.dram.write.ifmap"), 40);
  EXPECT_EQ(r.counters.count("bytes.dram.write.weight"), 0u);
  EXPECT_EQ(get(r, "storage.extra"), 40);
  EXPECT_EQ(get(r, "bytes.sram.ifmap.write"), 64);  // SRAM fills are the tile loads only
}

// A conv-like backing store: A is a 4 x 12 virtual matrix over D = 29 elements. K tiles of 4: each
// 16 of the 48 virtual elements, share ceil(29 * 16 / 48) = ceil(9.67) = 10 elements = 20 bytes
// (10 cycles); the three sum to 30: at least D = 29, less than one element per tile more.
TEST(CostReferenceHand, ThreeTilesConvLikeBackingStore) {
  EXPECT_EQ(share(29, 4, 12, 0, 4, 0, 4), 10);
  EXPECT_EQ(share(29, 4, 12, 0, 4, 4, 8), 10);
  EXPECT_EQ(share(29, 4, 12, 0, 4, 8, 12), 10);
  EXPECT_EQ(share(29, 4, 12, 0, 4, 0, 6), 15);   // 29 * 24 / 48 = 14.5 rounds up
  EXPECT_EQ(share(29, 4, 12, 0, 4, 0, 1), 3);    // 29 * 4 / 48 = 2.42 rounds up
  GemmWork w = dense(4, 4, 12);
  w.a.dram_elems = 29;
  const Result r = simulate_gemm(w, hand_spec(), plan_of(4, 4, 4, "m,n,k"), true);
  //   A0 (20 bytes): 0, data 10, complete 20;  B0 (32 bytes): 20 (data 30) -> 46
  //   A1: 46 (data 56) -> 66;  B1: 66 (data 76) -> 92
  //   step 0: max(0, 20, 46) = 46, end 60
  //   A2: eligible end(0) = 60, start 92, data 102, complete 112;  B2: 112 (122) -> 138
  //   step 1: max(60, 66, 92) = 92, end 106;  step 2: max(106, 112, 138) = 138, end 152
  //   store: 152, data 162, complete 178
  const std::vector<Span> want = {
      {"load A", 0, 20},    {"load B", 20, 46},   {"compute", 46, 60},   {"load A", 46, 66},
      {"load B", 66, 92},   {"compute", 92, 106}, {"load A", 92, 112},   {"load B", 112, 138},
      {"compute", 138, 152}, {"store C", 152, 178}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  // Step 0 [0, 46) -> B0 (start 20): queue 20, latency 10, bandwidth 16. Step 1 [60, 92) -> B1
  // (start 66): queue 6, latency 10, bandwidth 16. Step 2 [106, 138) -> B2 (start 112): queue 6,
  // latency 10, bandwidth 16. Drain 178 - 152 = 26.
  expect_cycles(r, 178, 42, {0, 0, 20 + 6 + 6, 30, 48, 26});
  EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), 3 * 20);
  int64_t a_bytes = 0;
  for (const Slice& sl : r.slices)
    if (sl.name == "load A") a_bytes += sl.bytes;
  EXPECT_EQ(a_bytes, 3 * 20);
  // The array edge still sees the whole virtual matrix: 4x12 elements, one fold of N.
  EXPECT_EQ(get(r, "bytes.edge.ifmap"), 4 * 12 * 2);
}

// Residency: M=8, N=4, K=8 in tiles of 4 (2 x 1 x 2 tiles). Order m,n,k reuses B's two tiles for
// the second m: four B loads of 32 bytes when B is not resident, two when it is (1 KiB bank).
// Order k,m,n visits each C tile twice: a non-resident C spills 4*4*4 = 64 bytes after the first
// K tile and reads them back; a resident C (1 KiB bank) keeps them and only stores the outputs.
TEST(CostReferenceHand, ResidentOperandsLoadOnceAndNeverSpill) {
  const GemmWork w = dense(8, 4, 8);
  Spec s = hand_spec();
  Result r = simulate_gemm(w, s, plan_of(4, 4, 4, "m,n,k"));
  EXPECT_EQ(get(r, "bytes.dram.read.weight"), 4 * 32);
  s.weight.kib = 1;
  r = simulate_gemm(w, s, plan_of(4, 4, 4, "m,n,k"));
  EXPECT_EQ(get(r, "bytes.dram.read.weight"), 2 * 32);

  s = hand_spec();
  r = simulate_gemm(w, s, plan_of(4, 4, 4, "k,m,n"), true);
  EXPECT_EQ(get(r, "bytes.dram.read.output"), 2 * 64);
  EXPECT_EQ(get(r, "bytes.dram.write.output"), 2 * 64 + 2 * 32);
  // Visits v0 (k0,m0), v1 (k0,m1), v2 (k1,m0), v3 (k1,m1); C double-buffered, so the input of the
  // visit starting at step r+1 is item c of round r. One link, so completion order is program order:
  // round 1: spill v0, input v2; round 2: spill v1, input v3; round 3: store v2; round 4: store v3.
  std::vector<std::string> c_requests;
  for (const Slice& sl : r.slices)
    if (sl.name.back() == 'C') c_requests.push_back(sl.name);
  EXPECT_EQ(c_requests, (std::vector<std::string>{"spill C", "input C", "spill C", "input C", "store C", "store C"}));
  s.output.kib = 1;
  r = simulate_gemm(w, s, plan_of(4, 4, 4, "k,m,n"), true);
  EXPECT_EQ(get(r, "bytes.dram.read.output"), 0);
  EXPECT_EQ(get(r, "bytes.dram.write.output"), 2 * 32);
  c_requests.clear();
  for (const Slice& sl : r.slices)
    if (sl.name.back() == 'C') c_requests.push_back(sl.name);
  EXPECT_EQ(c_requests, (std::vector<std::string>{"store C", "store C"}));
}

// Integer shares: each is D x the tile's fraction rounded up (checked against exact integers), a
// dense operand's share is the tile's element count, and over any tiling they sum to at least D and
// less than D + one element per tile.
TEST(CostReferenceShares, RoundTheFractionAndAreExactForDenseOperands) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t R = 1 + int64_t(rng() % 40), Q = 1 + int64_t(rng() % 40);
    const int64_t tr = 1 + int64_t(rng() % uint64_t(R)), tq = 1 + int64_t(rng() % uint64_t(Q));
    const int64_t D = trial % 3 == 0 ? R * Q : int64_t(rng() % uint64_t(3 * R * Q + 1));
    int64_t sum = 0, tiles = 0;
    for (int64_t r0 = 0; r0 < R; r0 += tr)
      for (int64_t c0 = 0; c0 < Q; c0 += tq) {
        const int64_t r1 = std::min(R, r0 + tr), c1 = std::min(Q, c0 + tq);
        const int64_t s = share(D, R, Q, r0, r1, c0, c1);
        const int64_t num = D * (r1 - r0) * (c1 - c0), den = R * Q;
        EXPECT_EQ(s, num / den + (num % den != 0)) << D << " " << R << "x" << Q;
        if (D == R * Q) {
          EXPECT_EQ(s, (r1 - r0) * (c1 - c0));
        }
        sum += s;
        ++tiles;
      }
    EXPECT_GE(sum, D) << R << "x" << Q << " tiles " << tr << "x" << tq;
    EXPECT_LT(sum, D + tiles) << R << "x" << Q << " tiles " << tr << "x" << tq;
  }
  // Products beyond 64 bits (exact in 128).
  const int64_t big = int64_t(1) << 40;
  EXPECT_EQ(share(big, big, big, 0, big, 0, big), big);
  EXPECT_EQ(share(big, big, big, 0, big / 2, 0, big / 2) * 4, big);
}

// ---- invariants on random small cases ----

struct Case {
  GemmWork w;
  Spec s;
  GemmPlan p;
  std::string what;
};

Case random_case(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
  Case c;
  const int64_t M = pick(1, 24), N = pick(1, 24), K = pick(1, 24);
  c.w = dense(M, N, K);
  c.w.sub_gemms = pick(0, 3) == 0 ? pick(2, 3) : 1;
  const int64_t Ms = (M + c.w.sub_gemms - 1) / c.w.sub_gemms;
  c.w.a.elem_bytes = std::array<int, 3>{1, 2, 4}[size_t(pick(0, 2))];
  c.w.b.elem_bytes = pick(0, 1) ? 2 : 4;
  c.w.c.elem_bytes = pick(0, 1) ? 2 : 4;
  if (pick(0, 2) == 0) c.w.a.dram_elems = double(pick(1, 3 * M * K));
  if (pick(0, 2) == 0) c.w.b.dram_elems = double(pick(1, 3 * K * N));
  if (pick(0, 3) == 0) c.w.c.dram_elems = double(pick(1, 2 * M * N));
  c.w.a.fetched_fraction = pick(0, 1) ? 1.0 : 0.37;
  c.w.a.sram_elems_per_virtual = pick(0, 1) ? 1.0 : 0.5;
  c.w.accumulate_into_c = pick(0, 2) == 0;
  if (pick(0, 3) == 0) c.w.a.extra_dram_read_bytes = double(pick(1, 300));
  if (pick(0, 3) == 0) c.w.a.extra_dram_write_bytes = double(pick(1, 300));
  if (pick(0, 5) == 0) c.w.c.extra_dram_read_bytes = double(pick(1, 300));
  if (pick(0, 5) == 0) c.w.b.extra_dram_write_bytes = double(pick(1, 300));
  if (pick(0, 3) == 0) c.w.a.extra_storage_bytes = double(pick(1, 300));
  if (pick(0, 1)) c.w.useful_macs = double(Ms * N * K) * c.w.sub_gemms / 2;

  c.s = hand_spec();
  c.s.array.rows = int(pick(1, 6));
  c.s.array.cols = int(pick(1, 6));
  c.s.array.dataflow = std::array<Dataflow, 3>{Dataflow::os, Dataflow::ws, Dataflow::is}[size_t(pick(0, 2))];
  c.s.array.format = pick(0, 1) ? Format::bf16 : Format::fp32;
  c.s.clock_ghz = pick(0, 1) ? 1.0 : 0.7;
  c.s.dram.bandwidth_gbps = double(pick(1, 16)) / 2;
  c.s.dram.latency_ns = double(pick(0, 30));
  c.s.dram.max_outstanding = int(pick(1, 4));
  for (BufferSpec* b : {&c.s.ifmap, &c.s.weight, &c.s.output}) {
    b->kib = pick(0, 3) == 0 ? 64.0 : double(pick(1, 8)) / 64;  // sometimes resident
    b->double_buffered = pick(0, 1);
    b->dram_link_bits_per_cycle = pick(0, 2) == 0 ? double(pick(1, 64)) : 0;
  }
  static const char* orders[6] = {"m,n,k", "m,k,n", "n,m,k", "n,k,m", "k,m,n", "k,n,m"};
  c.p = plan_of(pick(1, Ms), pick(1, N), pick(1, K), orders[pick(0, 5)]);
  c.what = "M,N,K " + std::to_string(M) + "," + std::to_string(N) + "," + std::to_string(K) + " sub " +
           std::to_string(c.w.sub_gemms) + " tiles " + std::to_string(c.p.tile_m) + "," +
           std::to_string(c.p.tile_n) + "," + std::to_string(c.p.tile_k) + " " + c.p.loop_order + " " +
           std::string(to_string(c.s.array.dataflow)) + " " + std::to_string(c.s.array.rows) + "x" +
           std::to_string(c.s.array.cols) + " d " + std::to_string(c.s.dram.max_outstanding);
  return c;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

TEST(CostReferenceInvariants, CountersAgreeWithTheTraceOnRandomSmallCases) {
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 400; ++trial) {
    const Case c = random_case(rng);
    SCOPED_TRACE(c.what);
    const Result r = simulate_gemm(c.w, c.s, c.p, true);
    const int64_t n = std::max<int64_t>(1, c.w.sub_gemms);
    const double total = get(r, "cycles.total"), compute = get(r, "cycles.compute");
    // Stall causes sum to the stall; the total is at least the compute.
    double causes = 0;
    for (const char* k : {"stall.materialize", "stall.slot", "stall.queue", "stall.latency", "stall.bandwidth",
                          "stall.drain", "stall.port"}) {
      EXPECT_GE(get(r, k), 0) << k;
      causes += get(r, k);
    }
    EXPECT_EQ(causes, get(r, "cycles.stall"));
    EXPECT_EQ(total, compute + get(r, "cycles.stall"));
    EXPECT_GE(total, compute);
    // DRAM counters are the sums of the requests' bytes.
    std::map<std::string, double> by_name;
    for (const Slice& s : r.slices) by_name[s.name] += double(s.bytes);
    EXPECT_EQ(get(r, "bytes.dram.read.ifmap"), by_name["load A"] + by_name["read A (materialize)"]);
    EXPECT_EQ(get(r, "bytes.dram.read.weight"), by_name["load B"] + by_name["read B (materialize)"]);
    EXPECT_EQ(get(r, "bytes.dram.read.output"), by_name["input C"] + by_name["read C (materialize)"]);
    EXPECT_EQ(get(r, "bytes.dram.write.output"),
              by_name["spill C"] + by_name["store C"] + by_name["write C (materialize)"]);
    EXPECT_EQ(get(r, "bytes.dram.write.ifmap"), by_name["write A (materialize)"]);
    EXPECT_EQ(r.counters.count("bytes.dram.write.ifmap"), by_name["write A (materialize)"] > 0 ? 1u : 0u);
    EXPECT_EQ(get(r, "bytes.sram.ifmap.write"), by_name["load A"]);
    EXPECT_EQ(get(r, "bytes.sram.weight.write"), by_name["load B"]);
    // The array: one compute slice per step, back to back at most, in step order per copy.
    const GemmShape g{ceil_div(c.w.shape.M, n), c.w.shape.N, c.w.shape.K};
    int64_t steps = 0, cycles = 0, last_end = 0, macs = 0;
    std::map<std::pair<int, int64_t>, int64_t> compute_start;  // (copy, step) -> start
    for (const Slice& s : r.slices) {
      if (s.name != "compute") continue;
      EXPECT_EQ(r.tracks[size_t(s.track)], "array");
      EXPECT_GE(s.start, last_end);
      last_end = s.end;
      const int64_t tm = std::min(c.p.tile_m, g.M - s.m * c.p.tile_m), tn = std::min(c.p.tile_n, g.N - s.n * c.p.tile_n),
                    tk = std::min(c.p.tile_k, g.K - s.k * c.p.tile_k);
      const int64_t compute_cycles = gemm_compute_cycles(c.s.array, {tm, tn, tk});
      EXPECT_EQ(s.end - s.start, std::max(compute_cycles, docs_port_cycles(c.w, c.s, {tm, tn, tk})));
      cycles += compute_cycles;
      macs += tm * tn * tk;
      compute_start[{s.sub_gemm, s.step}] = s.start;
      ++steps;
    }
    EXPECT_EQ(double(steps), get(r, "tiles"));
    EXPECT_EQ(double(cycles), compute);
    EXPECT_EQ(double(macs), get(r, "macs.issued"));
    EXPECT_EQ(double(macs), double(n * g.M * g.N * g.K));
    EXPECT_GE(total, double(last_end));
    // Loads: dense operands move exactly the tile's elements; every load completes before the step
    // it feeds starts; every store starts after its step ended.
    for (const Slice& s : r.slices) {
      if (s.name == "compute") continue;
      EXPECT_LE(double(s.end), total);
      if (s.name == "load A" && c.w.a.dram_elems == 0) {
        const int64_t tm = std::min(c.p.tile_m, g.M - s.m * c.p.tile_m), tk = std::min(c.p.tile_k, g.K - s.k * c.p.tile_k);
        EXPECT_EQ(s.bytes, tm * tk * c.w.a.elem_bytes);
      }
      if (s.name == "load B" && c.w.b.dram_elems == 0) {
        const int64_t tk = std::min(c.p.tile_k, g.K - s.k * c.p.tile_k), tn = std::min(c.p.tile_n, g.N - s.n * c.p.tile_n);
        EXPECT_EQ(s.bytes, tk * tn * c.w.b.elem_bytes);
      }
      if (s.name == "load A" || s.name == "load B" || s.name == "input C") {
        EXPECT_LE(s.end, compute_start.at({s.sub_gemm, s.step})) << s.name << " step " << s.step;
      }
      if (s.name == "spill C" || s.name == "store C") {
        const auto it = compute_start.find({s.sub_gemm, s.step});
        ASSERT_NE(it, compute_start.end());
        EXPECT_GE(s.start, it->second);
      }
    }
    // A link: requests issued in program order, completing in order, data one request at a time,
    // at most d in flight: start_i >= complete_{i-d}.
    const double L = std::ceil(c.s.dram.latency_ns * c.s.clock_ghz);
    for (int tr = 1; tr < int(r.tracks.size()); ++tr) {
      std::vector<const Slice*> v;
      for (const Slice& s : r.slices)
        if (s.track == tr) v.push_back(&s);
      ASSERT_FALSE(v.empty()) << r.tracks[size_t(tr)] << " has no requests";
      std::stable_sort(v.begin(), v.end(), [](const Slice* a, const Slice* b) { return a->end < b->end; });
      for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_GE(double(v[i]->end - v[i]->start), L);
        if (i == 0) continue;
        EXPECT_GE(v[i]->start, v[i - 1]->start);
        if (i >= size_t(c.s.dram.max_outstanding)) {
          EXPECT_GE(v[i]->start, v[i - size_t(c.s.dram.max_outstanding)]->end);
        }
      }
    }
    // Each resident-or-not A tile: the first load of each tile moves its share; over all tiles at
    // least D, less than one element per tile more.
    if (n == 1) {
      std::map<std::pair<int64_t, int64_t>, int64_t> first;
      for (const Slice& s : r.slices)
        if (s.name == "load A") first.emplace(std::make_pair(s.m, s.k), s.bytes);
      int64_t sum = 0;
      for (const auto& [k, b] : first) sum += b;
      const int64_t D = c.w.a.dram_elems > 0 ? std::llround(c.w.a.dram_elems) : g.M * g.K;
      EXPECT_GE(sum / c.w.a.elem_bytes, D);
      EXPECT_LT(sum / c.w.a.elem_bytes, D + int64_t(first.size())) << sum << " vs " << D;
    }
    // Edge and SRAM.
    EXPECT_EQ(get(r, "bytes.sram.ifmap.read"), get(r, "bytes.edge.ifmap") / double(n) * c.w.a.fetched_fraction * double(n));
    EXPECT_GE(get(r, "bytes.edge.output"), double(n * g.M * g.N * 4));
    EXPECT_GT(get(r, "energy.leakage"), 0);
    EXPECT_EQ(get(r, "pe.hops.psum"), c.s.array.dataflow == Dataflow::os ? 0 : double(macs));
    if (::testing::Test::HasFailure()) break;
  }
}

// The doc's equations evaluated directly, without events: the requests in program order, each link's
// recurrence (start_i = max(eligible_i, start_{i-1}, complete_{i-d}), data_begin_i =
// max(start_i + L, complete_{i-1}), complete_i = data_begin_i + ceil(bytes_i / bpc)), the array's
// start(s) = max(end(s-1), ready_A, ready_B, ready_C), and the stall attribution. Step r is
// evaluated in round r after items a and b (everything it waits for is issued by then), items c, d, e
// after it (a single-buffered load for step r+1 waits for end(r)). One copy (sub_gemms = 1).
struct Equations {
  std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> requests;  // (name, step) -> [start, complete)
  std::vector<std::pair<int64_t, int64_t>> steps;                                   // [start, end)
  int64_t total = 0;
  std::array<int64_t, 7> stall{};  // materialize, slot, queue, latency, bandwidth, drain, port
};

Equations equations(const GemmWork& w, const Spec& sp, const GemmPlan& p) {
  Equations out;
  const int64_t ext[3] = {w.shape.M, w.shape.N, w.shape.K}, t[3] = {p.tile_m, p.tile_n, p.tile_k};
  int64_t cnt[3];
  for (int d = 0; d < 3; ++d) cnt[d] = ceil_div(ext[d], t[d]);
  auto sz = [&](int d, int64_t i) { return std::min(t[d], ext[d] - i * t[d]); };
  auto dim = [](char ch) { return ch == 'm' ? 0 : ch == 'n' ? 1 : 2; };
  const int o[3] = {dim(p.loop_order[0]), dim(p.loop_order[2]), dim(p.loop_order[4])};
  // The steps, by nested loops.
  std::vector<std::array<int64_t, 3>> st;
  std::array<int64_t, 3> ix{};
  for (ix[o[0]] = 0; ix[o[0]] < cnt[o[0]]; ++ix[o[0]])
    for (ix[o[1]] = 0; ix[o[1]] < cnt[o[1]]; ++ix[o[1]])
      for (ix[o[2]] = 0; ix[o[2]] < cnt[o[2]]; ++ix[o[2]]) st.push_back(ix);
  const int64_t S = int64_t(st.size());
  const int64_t L = int64_t(std::ceil(sp.dram.latency_ns * sp.clock_ghz));
  const int dmax = sp.dram.max_outstanding;
  const BufferSpec* bs[3] = {&sp.ifmap, &sp.weight, &sp.output};
  const OperandDesc* od[3] = {&w.a, &w.b, &w.c};
  int link[3];
  double bpc[4] = {sp.dram.bandwidth_gbps / sp.clock_ghz, 0, 0, 0};
  for (int q = 0; q < 3; ++q) {
    link[q] = bs[q]->dram_link_bits_per_cycle > 0 ? 1 + q : 0;
    if (link[q]) bpc[link[q]] = bs[q]->dram_link_bits_per_cycle / 8;
  }
  const double M = double(ext[0]), N = double(ext[1]), K = double(ext[2]);
  const bool res[3] = {M * K * w.a.sram_elems_per_virtual * w.a.elem_bytes <= sp.ifmap.kib * 1024,
                       K * N * w.b.sram_elems_per_virtual * w.b.elem_bytes <= sp.weight.kib * 1024,
                       M * N * 4 <= sp.output.kib * 1024};
  const int64_t D[3] = {w.a.dram_elems > 0 ? std::llround(w.a.dram_elems) : ext[0] * ext[2],
                        w.b.dram_elems > 0 ? std::llround(w.b.dram_elems) : ext[2] * ext[1],
                        w.c.dram_elems > 0 ? std::llround(w.c.dram_elems) : ext[0] * ext[1]};
  const int rd[3] = {0, 2, 0}, cd[3] = {2, 1, 1};
  auto bytes_of = [&](int q, const std::array<int64_t, 3>& i) {
    const int64_t r = i[size_t(rd[q])], c = i[size_t(cd[q])];
    return share(D[q], ext[rd[q]], ext[cd[q]], r * t[rd[q]], r * t[rd[q]] + sz(rd[q], r), c * t[cd[q]],
                 c * t[cd[q]] + sz(cd[q], c)) *
           od[q]->elem_bytes;
  };
  // Loads: step s loads A if its (m, k) differs from step s-1's (resident: the first use of the tile).
  std::vector<int64_t> load_step[2];
  std::vector<int64_t> load_ord[2] = {std::vector<int64_t>(size_t(S), -1), std::vector<int64_t>(size_t(S), -1)};
  std::vector<int64_t> ready_ord[2] = {std::vector<int64_t>(size_t(S)), std::vector<int64_t>(size_t(S))};
  for (int q = 0; q < 2; ++q) {
    std::map<std::pair<int64_t, int64_t>, int64_t> seen;
    for (int64_t s = 0; s < S; ++s) {
      const auto key = std::make_pair(st[size_t(s)][size_t(rd[q])], st[size_t(s)][size_t(cd[q])]);
      const bool changed = s == 0 || key != std::make_pair(st[size_t(s - 1)][size_t(rd[q])], st[size_t(s - 1)][size_t(cd[q])]);
      const bool loads = res[q] ? !seen.count(key) : changed;
      if (loads) {
        seen[key] = int64_t(load_step[q].size());
        load_ord[q][size_t(s)] = int64_t(load_step[q].size());
        load_step[q].push_back(s);
      }
      ready_ord[q][size_t(s)] = res[q] ? seen[key] : int64_t(load_step[q].size()) - 1;
    }
  }
  // Visits.
  std::vector<int64_t> visit_of(static_cast<size_t>(S)), first_step, last_step;
  for (int64_t s = 0; s < S; ++s) {
    if (s == 0 || st[size_t(s)][0] != st[size_t(s - 1)][0] || st[size_t(s)][1] != st[size_t(s - 1)][1])
      first_step.push_back(s);
    visit_of[size_t(s)] = int64_t(first_step.size()) - 1;
  }
  for (size_t j = 0; j < first_step.size(); ++j)
    last_step.push_back(j + 1 < first_step.size() ? first_step[j + 1] - 1 : S - 1);
  const int64_t V = int64_t(first_step.size());
  auto tm_tn = [&](int64_t s) { return sz(0, st[size_t(s)][0]) * sz(1, st[size_t(s)][1]); };
  auto input_bytes = [&](int64_t j) -> int64_t {  // -1: no input
    const int64_t s = first_step[size_t(j)];
    if (st[size_t(s)][2] == 0) return w.accumulate_into_c ? bytes_of(2, st[size_t(s)]) : -1;
    return res[2] ? -1 : tm_tn(s) * 4;
  };
  auto store_bytes = [&](int64_t j, bool& output) -> int64_t {  // -1: no store
    const int64_t s = last_step[size_t(j)];
    output = st[size_t(s)][2] == cnt[2] - 1;
    if (output) return bytes_of(2, st[size_t(s)]);
    return res[2] ? -1 : tm_tn(s) * 4;
  };
  // The links.
  struct Timing { int64_t eligible, start, data, complete; };
  std::vector<Timing> on_link[4];
  int64_t last_complete = 0;
  auto issue = [&](int l, int64_t eligible, int64_t bytes, const std::string& name, int64_t step) {
    auto& v = on_link[l];
    const size_t i = v.size();
    int64_t start = eligible;
    if (i >= 1) start = std::max(start, v[i - 1].start);
    if (i >= size_t(dmax)) start = std::max(start, v[i - size_t(dmax)].complete);
    const int64_t data = std::max(start + L, i >= 1 ? v[i - 1].complete : 0);
    const int64_t complete = data + int64_t(std::ceil(double(bytes) / bpc[l]));
    v.push_back({eligible, start, data, complete});
    out.requests[{name, step}] = {start, complete};
    last_complete = std::max(last_complete, complete);
    return v.back();
  };
  int64_t t_mat = 0;
  const char* letter[3] = {"A", "B", "C"};
  for (int q = 0; q < 3; ++q) {
    const int64_t r = std::llround(od[q]->extra_dram_read_bytes), wr = std::llround(od[q]->extra_dram_write_bytes);
    if (r > 0) t_mat = issue(0, 0, r, std::string("read ") + letter[q] + " (materialize)", -1).complete;
    if (wr > 0) t_mat = issue(0, 0, wr, std::string("write ") + letter[q] + " (materialize)", -1).complete;
  }
  out.stall[0] = t_mat;
  std::vector<int64_t> end(static_cast<size_t>(S));
  std::vector<Timing> load_t[2] = {std::vector<Timing>(load_step[0].size()), std::vector<Timing>(load_step[1].size())};
  std::vector<Timing> input_t(static_cast<size_t>(V));
  std::vector<int64_t> store_done(static_cast<size_t>(V), -1);
  const bool twin_c = !res[2] && sp.output.double_buffered, single_c = !res[2] && !sp.output.double_buffered;
  auto input_eligible = [&](int64_t j) {
    const int64_t before = res[2] ? -1 : twin_c ? j - 2 : j - 1;
    return before >= 0 ? std::max(t_mat, store_done[size_t(before)]) : t_mat;
  };
  auto do_input = [&](int64_t j) {
    const int64_t b = input_bytes(j);
    if (b >= 0) input_t[size_t(j)] = issue(link[2], input_eligible(j), b, "input C", first_step[size_t(j)]);
  };
  auto do_load = [&](int q, int64_t s) {
    const int64_t i = load_ord[q][size_t(s)];
    if (i < 0) return;
    const bool twin = q == 0 ? sp.ifmap.double_buffered : sp.weight.double_buffered;
    int64_t e = t_mat;
    if (!res[q] && twin && i >= 2) e = std::max(e, end[size_t(load_step[q][size_t(i - 1)] - 1)]);
    if (!res[q] && !twin && i >= 1) e = std::max(e, end[size_t(load_step[q][size_t(i)] - 1)]);
    load_t[q][size_t(i)] = issue(link[q], e, bytes_of(q, st[size_t(s)]), q == 0 ? "load A" : "load B", s);
  };
  for (int64_t r = -1; r <= S; ++r) {
    if (r >= 1 && visit_of[size_t(r - 1)] != (r < S ? visit_of[size_t(r)] : -1)) {  // a.
      const int64_t j = visit_of[size_t(r - 1)];
      bool output = false;
      const int64_t b = store_bytes(j, output);
      if (b >= 0)
        store_done[size_t(j)] =
            issue(link[2], std::max(t_mat, end[size_t(r - 1)]), b, output ? "store C" : "spill C", r - 1).complete;
    }
    if (single_c && r >= 0 && r < S && first_step[size_t(visit_of[size_t(r)])] == r) do_input(visit_of[size_t(r)]);  // b.
    if (r >= 0 && r < S) {  // step r
      const int64_t prev_end = r == 0 ? t_mat : end[size_t(r - 1)];
      int64_t ready[3] = {0, 0, 0};
      const Timing* by[3] = {nullptr, nullptr, nullptr};
      for (int q = 0; q < 2; ++q) {
        by[q] = &load_t[q][size_t(ready_ord[q][size_t(r)])];
        ready[q] = by[q]->complete;
      }
      const int64_t j = visit_of[size_t(r)];
      if (first_step[size_t(j)] == r) {
        if (input_bytes(j) >= 0) by[2] = &input_t[size_t(j)], ready[2] = by[2]->complete;
        else ready[2] = input_eligible(j);
      }
      const int64_t start = std::max({prev_end, ready[0], ready[1], ready[2]});
      const GemmShape tg{sz(0, st[size_t(r)][0]), sz(1, st[size_t(r)][1]), sz(2, st[size_t(r)][2])};
      const int64_t compute = gemm_compute_cycles(sp.array, tg);
      const int64_t cyc = std::max(compute, docs_port_cycles(w, sp, tg));
      out.stall[6] += cyc - compute;
      end[size_t(r)] = start + cyc;
      out.steps.emplace_back(start, start + cyc);
      if (start > prev_end) {
        const int win = ready[0] >= ready[1] && ready[0] >= ready[2] ? 0 : ready[1] >= ready[2] ? 1 : 2;
        if (!by[win]) {
          out.stall[5] += start - prev_end;
        } else {
          const Timing& tt = *by[win];
          auto part = [&](int64_t a, int64_t b) { return std::max<int64_t>(0, std::min(b, start) - std::max(a, prev_end)); };
          out.stall[1] += part(INT64_MIN, tt.eligible);
          out.stall[2] += part(tt.eligible, tt.start) + part(tt.start + L, tt.data);
          out.stall[3] += part(tt.start, tt.start + L);
          out.stall[4] += part(tt.data, tt.complete);
        }
      }
    }
    if (!single_c && r + 1 < S && first_step[size_t(visit_of[size_t(r + 1)])] == r + 1) do_input(visit_of[size_t(r + 1)]);  // c.
    if (r + 1 < S) do_load(0, r + 1), do_load(1, r + 1);  // d., e.
  }
  out.total = std::max(end[size_t(S - 1)], last_complete);
  out.stall[5] += out.total - end[size_t(S - 1)];
  return out;
}

TEST(CostReferenceInvariants, EventsReachTheDocsEquations) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 600; ++trial) {
    Case c = random_case(rng);
    c.w.sub_gemms = 1;
    c.p.tile_m = 1 + int64_t(rng() % uint64_t(c.w.shape.M));
    SCOPED_TRACE(c.what);
    const Result r = simulate_gemm(c.w, c.s, c.p, true);
    const Equations e = equations(c.w, c.s, c.p);
    std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> got;
    std::vector<std::pair<int64_t, int64_t>> steps(e.steps.size(), {-1, -1});
    for (const Slice& s : r.slices) {
      if (s.name == "compute") {
        ASSERT_LT(size_t(s.step), steps.size());
        steps[size_t(s.step)] = {s.start, s.end};
      } else {
        EXPECT_TRUE(got.emplace(std::make_pair(s.name, s.step), std::make_pair(s.start, s.end)).second);
      }
    }
    EXPECT_EQ(got, e.requests);
    EXPECT_EQ(steps, e.steps);
    EXPECT_EQ(get(r, "cycles.total"), double(e.total));
    const char* names[7] = {"stall.materialize", "stall.slot",  "stall.queue", "stall.latency",
                            "stall.bandwidth",   "stall.drain", "stall.port"};
    for (int i = 0; i < 7; ++i) EXPECT_EQ(get(r, names[i]), double(e.stall[size_t(i)])) << names[i];
    if (::testing::Test::HasFailure()) break;
  }
}

// The copies of a zero-skip GEMM (sub_gemms = n) run back to back: every counter is n times the
// counter of one copy simulated alone (M = ceil(M/n), A's and C's backing stores, every extra_* and
// useful_macs divided by n), and copy c's timeline is copy 0's shifted by c totals.
TEST(CostReferenceInvariants, SubGemmsAreCopiesBackToBack) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    Case c = random_case(rng);
    c.w.sub_gemms = 2 + int64_t(rng() % 3);
    c.p.tile_m = 1 + int64_t(rng() % uint64_t(ceil_div(c.w.shape.M, c.w.sub_gemms)));
    SCOPED_TRACE(c.what);
    const int64_t n = c.w.sub_gemms;
    GemmWork one = c.w;
    one.sub_gemms = 1;
    one.shape.M = ceil_div(c.w.shape.M, n);
    one.a.dram_elems /= double(n);
    one.c.dram_elems /= double(n);
    for (OperandDesc* o : {&one.a, &one.b, &one.c}) {
      o->extra_dram_read_bytes /= double(n);
      o->extra_dram_write_bytes /= double(n);
      o->extra_storage_bytes /= double(n);
    }
    one.useful_macs /= double(n);
    const Result all = simulate_gemm(c.w, c.s, c.p, true), single = simulate_gemm(one, c.s, c.p, true);
    ASSERT_EQ(all.counters.size(), single.counters.size());
    for (const auto& [k, v] : single.counters) EXPECT_EQ(get(all, k), v * double(n)) << k;
    const int64_t period = int64_t(get(single, "cycles.total"));
    ASSERT_EQ(all.slices.size(), single.slices.size() * size_t(n));
    std::vector<Span> shifted;
    for (const Slice& s : single.slices)
      for (int64_t k = 0; k < n; ++k) shifted.emplace_back(s.name, s.start + k * period, s.end + k * period);
    std::sort(shifted.begin(), shifted.end());
    std::vector<Span> got = timeline(all);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, shifted);
  }
}

// The schedule is a max-plus system: more bandwidth, less latency, more requests in flight never
// make it slower.
TEST(CostReferenceInvariants, FasterLinksAreNeverSlower) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 150; ++trial) {
    const Case c = random_case(rng);
    SCOPED_TRACE(c.what);
    const double base = get(simulate_gemm(c.w, c.s, c.p), "cycles.total");
    Spec s = c.s;
    s.dram.bandwidth_gbps *= 2;
    for (BufferSpec* b : {&s.ifmap, &s.weight, &s.output}) b->dram_link_bits_per_cycle *= 2;
    EXPECT_LE(get(simulate_gemm(c.w, s, c.p), "cycles.total"), base);
    s = c.s;
    s.dram.latency_ns /= 2;
    EXPECT_LE(get(simulate_gemm(c.w, s, c.p), "cycles.total"), base);
    s = c.s;
    s.dram.max_outstanding += 1;
    EXPECT_LE(get(simulate_gemm(c.w, s, c.p), "cycles.total"), base);
  }
}

TEST(CostReferenceInvariants, InvalidPlansThrow) {
  const GemmWork w = dense(10, 6, 7);
  const Spec s = hand_spec();
  for (const GemmPlan& p : {plan_of(0, 2, 2, "m,n,k"), plan_of(11, 2, 2, "m,n,k"), plan_of(2, 7, 2, "m,n,k"),
                            plan_of(2, 2, 0, "m,n,k"), plan_of(2, 2, -3, "m,n,k"), plan_of(2, 2, 2, "m,n"),
                            plan_of(2, 2, 2, "m,m,k"), plan_of(2, 2, 2, "m,n,x"), plan_of(2, 2, 2, "m,n,k,m"),
                            plan_of(2, 2, 2, ""), plan_of(2, 2, 2, "mnk")})
    EXPECT_THROW(simulate_gemm(w, s, p), std::invalid_argument) << p.tile_m << "," << p.tile_n << "," << p.tile_k << " '" << p.loop_order << "'";
  EXPECT_NO_THROW(simulate_gemm(w, s, plan_of(10, 6, 7, "k, n, m")));
  // No work: no counters (as the fast model), whatever the plan.
  EXPECT_TRUE(simulate_gemm(dense(0, 6, 7), s, GemmPlan{}).counters.empty());
  // With sub_gemms the plan tiles the sub-GEMM: M = ceil(10/3) = 4.
  GemmWork z = w;
  z.sub_gemms = 3;
  EXPECT_NO_THROW(simulate_gemm(z, s, plan_of(4, 2, 2, "m,n,k")));
  EXPECT_THROW(simulate_gemm(z, s, plan_of(5, 2, 2, "m,n,k")), std::invalid_argument);
}

// A ResNet-50 layer (conv 3x3, 64 -> 64 channels at 56x56, batch 64: M = 64*56*56, N = 64, K = 576)
// in 32x32x32 tiles: 6272 x 2 x 18 = 225792 steps, on the tpu-like array.
TEST(CostReferenceSpeed, ResNetLayer) {
  Spec s;
  s.array.rows = s.array.cols = 32;
  GemmWork w = dense(64 * 56 * 56, 64, 576);
  w.c.elem_bytes = 2;
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = simulate_gemm(w, s, plan_of(32, 32, 32, "n,m,k"));
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(get(r, "tiles"), 6272.0 * 2 * 18);
  std::printf("ResNet layer: %.0f steps in %.3f s (%.0f steps/s), total %.0f cycles, stall %.0f\n",
              get(r, "tiles"), sec, get(r, "tiles") / sec, get(r, "cycles.total"), get(r, "cycles.stall"));
}

}  // namespace
}  // namespace st::costref
