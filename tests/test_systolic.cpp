// The systolic array: fast kernel == cycle-stepped PE-level reference, bit for bit; cycles == the
// closed form; results against oneDNN matmul; same bits for any thread count.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/systolic.h"
#include "tests/util/compare.h"

using namespace st;

namespace {

struct Case {
  ArrayConfig cfg;
  GemmShape g;
  bool specials = false;  // Inf / NaN among the inputs
  uint64_t seed = 0;
  std::string name() const {
    std::string s = fmt::format("m{}n{}k{}_{}x{}_{}_{}", g.M, g.N, g.K, cfg.rows, cfg.cols,
                                to_string(cfg.dataflow), to_string(cfg.format));
    if (cfg.format != Format::int8 && !cfg.fused_mac) s += "_unfused";
    if (cfg.subnormals == Subnormals::flush) s += "_ftz";
    if (specials) s += "_infnan";
    return s;
  }
};

// Mixed magnitudes (2^-30 .. 2^30), negative zeros, subnormals; optionally Inf and NaN.
std::vector<float> random_operand(std::mt19937_64& rng, int64_t n, bool specials) {
  std::vector<float> v(n);
  std::uniform_int_distribution<int> kind(0, 99), expo(-30, 30);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  for (auto& x : v) {
    int k = kind(rng);
    float sign = (rng() & 1) ? -1.0f : 1.0f;
    if (k < 4) x = sign * 0.0f;
    else if (k < 8) x = sign * std::ldexp(mant(rng), -130);  // subnormal
    else if (specials && k < 10) x = sign * std::numeric_limits<float>::infinity();
    else if (specials && k < 11) x = std::numeric_limits<float>::quiet_NaN();
    else if (k < 60) x = sign * mant(rng) * std::ldexp(1.0f, expo(rng) / 6);  // typical
    else x = sign * mant(rng) * std::ldexp(1.0f, expo(rng));
  }
  return v;
}

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  std::mt19937_64 rng(20261121);
  const int64_t dims[] = {1, 2, 3, 5, 7, 8, 11, 13, 16, 17, 23, 29, 31, 32, 33, 37, 41, 47, 53, 59, 64, 67, 70};
  const int arrays[][2] = {{1, 1}, {1, 4}, {4, 1}, {2, 3}, {3, 2}, {4, 4}, {5, 7}, {8, 3}, {8, 8}, {7, 8}};
  const Format formats[] = {Format::fp32, Format::bf16, Format::fp16, Format::int8};
  const Dataflow flows[] = {Dataflow::os, Dataflow::ws, Dataflow::is};
  auto pick = [&](auto& arr) { return arr[rng() % std::size(arr)]; };
  for (int i = 0; i < 360; ++i) {
    Case c;
    const auto& a = arrays[i % std::size(arrays)];
    c.cfg.rows = a[0];
    c.cfg.cols = a[1];
    c.cfg.dataflow = flows[i % 3];
    c.cfg.format = formats[(i / 3) % 4];
    c.cfg.fused_mac = !(c.cfg.format != Format::int8 && (i / 12) % 2 == 1);
    c.cfg.subnormals = (i % 5 == 4) ? Subnormals::flush : Subnormals::keep;
    c.g = {pick(dims), pick(dims), pick(dims)};
    c.specials = (i % 7 == 3);
    c.seed = rng();
    cases.push_back(c);
  }
  return cases;
}

class SystolicCase : public ::testing::TestWithParam<Case> {};

std::vector<int8_t> random_i8(std::mt19937_64& rng, int64_t n) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return v;
}

}  // namespace

TEST_P(SystolicCase, FastEqualsPeLevelReferenceAndClosedFormCycles) {
  const Case& c = GetParam();
  std::mt19937_64 rng(c.seed);
  const GemmShape& g = c.g;
  if (c.cfg.format == Format::int8) {
    auto A = random_i8(rng, g.M * g.K), B = random_i8(rng, g.K * g.N);
    std::vector<int32_t> fast(g.M * g.N, 7), ref(g.M * g.N, 9);
    systolic_gemm_i8(c.cfg, g, A.data(), B.data(), fast.data());
    int64_t cycles = systolic_gemm_reference_i8(c.cfg, g, A.data(), B.data(), ref.data());
    EXPECT_EQ(cycles, gemm_compute_cycles(c.cfg, g));
    ASSERT_EQ(fast, ref);
    // int32 accumulation of int8 products is exact (|sum| <= 70 * 2^14 fits): check the math too.
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        int64_t s = 0;
        for (int64_t k = 0; k < g.K; ++k) s += int64_t{A[m * g.K + k]} * B[k * g.N + n];
        ASSERT_EQ(ref[m * g.N + n], s);
      }
    return;
  }
  auto A = random_operand(rng, g.M * g.K, c.specials);
  auto B = random_operand(rng, g.K * g.N, c.specials);
  std::vector<float> fast(g.M * g.N, 1.0f), ref(g.M * g.N, 2.0f);
  systolic_gemm(c.cfg, g, {A.data(), g.K}, {B.data(), g.N}, fast.data(), g.N);
  int64_t cycles = systolic_gemm_reference(c.cfg, g, {A.data(), g.K}, {B.data(), g.N}, ref.data(), g.N);
  EXPECT_EQ(cycles, gemm_compute_cycles(c.cfg, g));
  int64_t bad = 0;
  for (int64_t i = 0; i < g.M * g.N; ++i)
    if (std::memcmp(&fast[i], &ref[i], 4) != 0) {
      if (bad++ < 5)
        ADD_FAILURE() << "element " << i << ": fast " << std::hexfloat << fast[i] << " reference " << ref[i];
    }
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Random, SystolicCase, ::testing::ValuesIn(make_cases()),
                         [](const auto& info) { return fmt::format("{}_{}", info.param.name(), info.index); });

// The PE-level reference counts cycles by stepping until every register the fold's schedule drove
// has left the array, so these hand-counted timelines check the stepping itself (and through it the
// closed form), not a formula against itself.
TEST(Systolic, ReferenceStepsHandCountedTimelines) {
  // OS, 2 x 3 array, K = 4, one fold. A[0,k] enters row 0 at cycle k, A[1,k] row 1 at k + 1; B[k,j]
  // enters column j at k + j. The last MAC: k = 3 meets in PE(1,2) at 3 + 1 + 2 = cycle 6, so the
  // fold takes cycles 0..6 = 7 cycles (= T + R + C - 2).
  {
    const ArrayConfig os{2, 3, Dataflow::os, Format::fp32};
    const GemmShape g{2, 3, 4};
    std::vector<float> A(8, 1.0f), B(12, 1.0f), C(6, 0.0f);
    EXPECT_EQ(systolic_gemm_reference(os, g, {A.data(), 4}, {B.data(), 3}, C.data(), 3), 7);
    for (float c : C) EXPECT_EQ(c, 4.0f);
    // The schedule is fixed: a fold that uses one row and one column of the array still drives all
    // of them (SCALE-Sim's convention), so it also takes 7 cycles; two folds along M take 14.
    EXPECT_EQ(systolic_gemm_reference(os, {1, 1, 4}, {A.data(), 4}, {B.data(), 1}, C.data(), 1), 7);
    std::vector<float> A3(12, 1.0f), C3(9, 0.0f);
    EXPECT_EQ(systolic_gemm_reference(os, {3, 3, 4}, {A3.data(), 4}, {B.data(), 3}, C3.data(), 3), 14);
    for (float c : C3) EXPECT_EQ(c, 4.0f);
  }
  // WS, 2 x 2 array, M = 3 streamed, K = 2, N = 2: preload shifts B's rows in over 2 cycles (row 0
  // first receives B[1,:], then B[0,:]); then A[m,i] enters row i at m + i and the partial sum of
  // stream index m leaves column j's bottom at m + j + 1 (0-based stream cycles). The last, m = 2 in
  // column 1, leaves at stream cycle 4: 5 stream cycles, 2 + 5 = 7 in all (= 2R + C + T - 2).
  {
    const ArrayConfig ws{2, 2, Dataflow::ws, Format::fp32};
    std::vector<float> A{1, 2, 3, 4, 5, 6}, B{1, 10, 100, 1000}, C(6, 0.0f);
    EXPECT_EQ(systolic_gemm_reference(ws, {3, 2, 2}, {A.data(), 2}, {B.data(), 2}, C.data(), 2), 7);
    EXPECT_EQ(C, (std::vector<float>{201, 2010, 403, 4030, 605, 6050}));
    // K = 3 on 2 rows: two chunks, each a full fold (2 + 5 cycles): 14.
    std::vector<float> A3(9, 1.0f), B3(6, 1.0f), C3(6, 0.0f);
    EXPECT_EQ(systolic_gemm_reference(ws, {3, 2, 3}, {A3.data(), 3}, {B3.data(), 2}, C3.data(), 2), 14);
    for (float c : C3) EXPECT_EQ(c, 3.0f);
  }
  // IS, 3 rows x 1 column, K = 3 on the rows, N = 4 streamed: preload 3 + stream (4 + 3 + 1 - 2) = 9.
  {
    const ArrayConfig is{3, 1, Dataflow::is, Format::fp32};
    std::vector<float> A{1, 2, 3}, B(12, 1.0f), C(4, 0.0f);
    EXPECT_EQ(systolic_gemm_reference(is, {1, 4, 3}, {A.data(), 3}, {B.data(), 4}, C.data(), 4), 9);
    for (float c : C) EXPECT_EQ(c, 6.0f);
  }
}

TEST(Systolic, AccumulationOrderIsTheDataflows) {
  // 1 + 2^-24 + 2^-24: summed left to right the tiny terms vanish (ties to even); grouped in a
  // chunk of two first they survive. OS chains over all of K; WS with R = 2 chunks {1, e}, {e, 0}.
  const float e = std::ldexp(1.0f, -24);
  std::vector<float> A = {1.0f, 1.0f, 1.0f, 1.0f}, B = {1.0f, e, e, 0.0f};  // (1x4) (4x1)
  GemmShape g{1, 1, 4};
  ArrayConfig os{2, 2, Dataflow::os, Format::fp32};
  ArrayConfig ws{1, 2, Dataflow::ws, Format::fp32};  // R = 1: every product its own chunk
  float out_os = 0, out_ws = 0, ref_ws = 0;
  systolic_gemm(os, g, {A.data(), 4}, {B.data(), 1}, &out_os, 1);
  EXPECT_EQ(out_os, 1.0f);
  ws.rows = 3;  // chunks {1, e, e} -> 1 (ties), {0}; then 0 + 1 + 0
  systolic_gemm(ws, g, {A.data(), 4}, {B.data(), 1}, &out_ws, 1);
  systolic_gemm_reference(ws, g, {A.data(), 4}, {B.data(), 1}, &ref_ws, 1);
  EXPECT_EQ(out_ws, ref_ws);
  // Put the two tiny terms in one chunk: B = {e, e, 1, 0} with R = 2: (e+e) + (1+0) = 1 + 2^-23.
  std::vector<float> B2 = {e, e, 1.0f, 0.0f};
  ws.rows = 2;
  systolic_gemm(ws, g, {A.data(), 4}, {B2.data(), 1}, &out_ws, 1);
  EXPECT_EQ(out_ws, 1.0f + 2 * e);
  systolic_gemm(os, g, {A.data(), 4}, {B2.data(), 1}, &out_os, 1);
  EXPECT_EQ(out_os, 1.0f + 2 * e);  // OS: e + e = 2e exact, then + 1
  std::vector<float> B3 = {1.0f, e, e, 0.0f};
  systolic_gemm(ws, g, {A.data(), 4}, {B3.data(), 1}, &out_ws, 1);  // (1 + e) + (e + 0) = 1 (ties) + e = 1
  EXPECT_EQ(out_ws, 1.0f);
}

// `fused_mac` holds for bf16 too (issue 14). A bf16 product below fp32's normal range is not exact in
// fp32: x = 1.5 * 2^-70, y = 1.5 * 2^-78 (both bf16) give 4.5 ulp of 2^-149. After a first product
// of exactly 3 ulp, the fused MAC rounds 3 + 4.5 = 7.5 once (ties to even: 8 ulp); unfused, the
// product rounds first (4.5 -> 4) and 3 + 4 = 7 ulp. fp16 products are always exact in fp32, so
// there the two agree. Fast kernel and PE-level reference agree in every case.
TEST(Systolic, FusedMacIsHonouredForBf16) {
  const float u = std::ldexp(1.0f, -149);
  const float x = 1.5f * std::ldexp(1.0f, -70), y = 1.5f * std::ldexp(1.0f, -78);
  const float three_a = 1.5f * std::ldexp(1.0f, -74), three_b = std::ldexp(1.0f, -74);  // 1.5 * 2^-148 = 3 ulp
  ASSERT_EQ(three_a * three_b, 3 * u);
  ASSERT_EQ(round_to(Format::bf16, x), x);
  ASSERT_EQ(round_to(Format::bf16, y), y);
  std::vector<float> A = {three_a, x}, B = {three_b, y};  // (1x2) (2x1)
  const GemmShape g{1, 1, 2};
  for (Dataflow flow : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    for (bool fused : {true, false}) {
      ArrayConfig cfg{4, 4, flow, Format::bf16};
      cfg.fused_mac = fused;
      float fast = 0, ref = 0;
      systolic_gemm(cfg, g, {A.data(), 2}, {B.data(), 1}, &fast, 1);
      systolic_gemm_reference(cfg, g, {A.data(), 2}, {B.data(), 1}, &ref, 1);
      EXPECT_EQ(fast, fused ? 8 * u : 7 * u) << to_string(flow) << " fused " << fused;
      EXPECT_EQ(ref, fast) << to_string(flow) << " fused " << fused;
    }
  }
  // fp16: exact products, the same bits either way.
  std::vector<float> A16 = {0.1f, -3.7f, 65.5f}, B16 = {7.25f, 0.013f, -0.5f};
  float f1 = 0, f0 = 0;
  ArrayConfig h{4, 4, Dataflow::ws, Format::fp16};
  systolic_gemm(h, {1, 1, 3}, {A16.data(), 3}, {B16.data(), 1}, &f1, 1);
  h.fused_mac = false;
  systolic_gemm(h, {1, 1, 3}, {A16.data(), 3}, {B16.data(), 1}, &f0, 1);
  EXPECT_EQ(f1, f0);
}

// systolic_output (one output alone, the host skip paths' recompute) has the GEMM's bits, in every
// float format, dataflow, MAC and subnormal mode, with zeros and underflowing products in the chain.
TEST(Systolic, OneOutputAloneHasTheGemmsBits) {
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<float> u(-2, 2);
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is})
      for (bool fused : {true, false})
        for (Subnormals sub : {Subnormals::keep, Subnormals::flush}) {
          ArrayConfig cfg{3, 4, df, f, fused, sub};
          const int64_t M = 4, N = 5, K = 10;
          std::vector<float> A(M * K), B(K * N), C(M * N);
          for (auto& v : A) v = rng() % 4 == 0 ? 0.0f : u(rng) * (rng() % 3 == 0 ? 1e-25f : 1.0f);
          for (auto& v : B) v = rng() % 4 == 0 ? -0.0f : u(rng) * (rng() % 3 == 0 ? 1e-25f : 1.0f);
          systolic_gemm(cfg, GemmShape{M, N, K}, MatView{A.data(), K, false}, MatView{B.data(), N, false}, C.data(), N);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              const float one = systolic_output(
                  cfg, K, [&](int64_t k) { return round_to(f, A[m * K + k], sub); },
                  [&](int64_t k) { return round_to(f, B[k * N + n], sub); });
              EXPECT_EQ(f32_bits(one), f32_bits(C[m * N + n])) << to_string(f) << " " << to_string(df) << " " << m << "," << n;
            }
        }
}

TEST(Systolic, TransposedViewsReadTheSameMatrix) {
  std::mt19937_64 rng(5);
  GemmShape g{19, 23, 37};
  auto A = random_operand(rng, g.M * g.K, false), B = random_operand(rng, g.K * g.N, false);
  std::vector<float> At(g.K * g.M), Bt(g.N * g.K);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t k = 0; k < g.K; ++k) At[k * g.M + m] = A[m * g.K + k];
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t n = 0; n < g.N; ++n) Bt[n * g.K + k] = B[k * g.N + n];
  ArrayConfig cfg{4, 4, Dataflow::ws, Format::bf16};
  std::vector<float> c1(g.M * g.N), c2(g.M * g.N);
  systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, c1.data(), g.N);
  systolic_gemm(cfg, g, {At.data(), g.M, true}, {Bt.data(), g.K, true}, c2.data(), g.N);
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4));
}

TEST(Systolic, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(11);
  GemmShape g{301, 257, 515};
  auto A = random_operand(rng, g.M * g.K, false), B = random_operand(rng, g.K * g.N, false);
  for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    ArrayConfig cfg{32, 32, d, Format::bf16};
    std::vector<float> c1(g.M * g.N), c2(g.M * g.N);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, c1.data(), g.N);
    omp_set_num_threads(2);
    systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, c2.data(), g.N);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4)) << to_string(d);
  }
}

namespace {
// oneDNN fp32 matmul C = A B (row-major), the reference for the array's arithmetic.
std::vector<float> onednn_matmul(const std::vector<float>& A, const std::vector<float>& B, const GemmShape& g) {
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a_md({g.M, g.K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b_md({g.K, g.N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc c_md({g.M, g.N}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_md, c_md), eng);
  std::vector<float> C(g.M * g.N);
  memory am(a_md, eng, const_cast<float*>(A.data())), bm(b_md, eng, const_cast<float*>(B.data())),
      cm(c_md, eng, C.data());
  matmul(pd).execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  s.wait();
  return C;
}
}  // namespace

TEST(SystolicVsOneDnn, SmallIntegersAreBitwiseEqual) {
  // Integers in [-8, 8]: every product and partial sum (|s| <= 64 * 70) is exact in fp32, and every
  // operand is exact in bf16 and fp16, so any summation order gives the same bits.
  std::mt19937_64 rng(3);
  for (GemmShape g : {GemmShape{1, 1, 1}, GemmShape{7, 13, 70}, GemmShape{64, 33, 29}, GemmShape{70, 70, 70}}) {
    std::vector<float> A(g.M * g.K), B(g.K * g.N);
    for (auto& x : A) x = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    for (auto& x : B) x = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    auto want = onednn_matmul(A, B, g);
    for (Format f : {Format::fp32, Format::bf16, Format::fp16})
      for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
        ArrayConfig cfg{8, 8, d, f};
        std::vector<float> got(g.M * g.N);
        systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, got.data(), g.N);
        test::CompareOptions o;
        o.exact = true;
        o.min_nonzero_fraction = 0.5;
        EXPECT_TRUE(test::compare_arrays(got.data(), want.data(), got.size(), o,
                                         std::string(to_string(f)) + "/" + std::string(to_string(d))));
      }
  }
}

TEST(SystolicVsOneDnn, RandomFp32WithinTheSummationBound) {
  // Two fp32 summations of the same K products differ by at most 2 * K * 2^-24 * sum_k |a_k b_k|
  // (the standard recursive-summation bound, applied to each side). That is the tolerance.
  std::mt19937_64 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (GemmShape g : {GemmShape{33, 65, 7}, GemmShape{128, 96, 300}, GemmShape{5, 200, 1024}}) {
    std::vector<float> A(g.M * g.K), B(g.K * g.N);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    auto want = onednn_matmul(A, B, g);
    for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
      ArrayConfig cfg{32, 32, d, Format::fp32};
      std::vector<float> got(g.M * g.N);
      systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, got.data(), g.N);
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t n = 0; n < g.N; ++n) {
          double mag = 0;
          for (int64_t k = 0; k < g.K; ++k) mag += std::fabs(double(A[m * g.K + k]) * B[k * g.N + n]);
          double tol = 2.0 * g.K * std::ldexp(1.0, -24) * mag;
          ASSERT_LE(std::fabs(double(got[m * g.N + n]) - want[m * g.N + n]), tol)
              << to_string(d) << " at (" << m << "," << n << ")";
        }
    }
  }
}

TEST(SystolicCycles, ClosedFormMatchesScaleSimExamples) {
  // reference/scalesim-cycles.md, 32x32 array, stall-free; SCALE-Sim prints total - 1.
  auto conv = [](int64_t H, int64_t R, int64_t C, int64_t K, int64_t s) {
    int64_t E = (H - R + s) / s;  // SCALE-Sim's ceil((H - R + s) / s) with exact division here
    if ((H - R + s) % s) ++E;
    return GemmShape{E * E, K, R * R * C};
  };
  struct Row { GemmShape g; int64_t os, ws, is; };
  for (const Row& r : {Row{conv(229, 7, 3, 64, 2), 163855, 126379, 309679},
                       Row{conv(58, 3, 64, 64, 1), 125047, 116279, 278711}}) {
    EXPECT_EQ(gemm_compute_cycles({32, 32, Dataflow::os}, r.g) - 1, r.os);
    EXPECT_EQ(gemm_compute_cycles({32, 32, Dataflow::ws}, r.g) - 1, r.ws);
    EXPECT_EQ(gemm_compute_cycles({32, 32, Dataflow::is}, r.g) - 1, r.is);
  }
}

TEST(Systolic, MultiTileShapesEqualReference) {
  // Shapes that span several macro tiles, both parallel strip directions and the swapped
  // (narrow-N) orientation, against the PE-level reference.
  std::mt19937_64 rng(17);
  for (GemmShape g : {GemmShape{300, 20, 100}, GemmShape{200, 300, 90}, GemmShape{97, 530, 33}}) {
    auto A = random_operand(rng, g.M * g.K, false), B = random_operand(rng, g.K * g.N, false);
    for (Dataflow d : {Dataflow::os, Dataflow::ws}) {
      ArrayConfig cfg{8, 8, d, Format::bf16};
      std::vector<float> fast(g.M * g.N), ref(g.M * g.N);
      systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, fast.data(), g.N);
      systolic_gemm_reference(cfg, g, {A.data(), g.K}, {B.data(), g.N}, ref.data(), g.N);
      EXPECT_EQ(0, std::memcmp(fast.data(), ref.data(), fast.size() * 4)) << g.M << "x" << g.N << "x" << g.K;
    }
  }
}

namespace st {
namespace {

// Generated operands (OperandSource, k-major and l-major) give the bits of the same matrices read
// from memory, in both operand roles, with and without the narrow-N swap, K past the l-major
// staging block (256), and every output written once.
TEST(Systolic, GeneratedOperandsEqualMatrixViews) {
  std::mt19937_64 rng(23);
  for (GemmShape g : {GemmShape{300, 20, 100}, GemmShape{40, 300, 600}, GemmShape{97, 530, 33}, GemmShape{5, 7, 3}}) {
    auto A = random_operand(rng, g.M * g.K, false), B = random_operand(rng, g.K * g.N, false);
    // A's entry (l = m, k) is A[m][k]; B's entry (l = n, k) is B[k][n].
    auto source = [](const std::vector<float>& mat, int64_t ld, bool l_is_row, bool k_major) {
      const float* p = mat.data();
      return OperandSource{[p, ld, l_is_row, k_major](int64_t l0, int64_t l1, int64_t k0, int64_t k1, float* dst,
                                                       int64_t dld) {
                             for (int64_t l = l0; l < l1; ++l)
                               for (int64_t k = k0; k < k1; ++k) {
                                 const float v = l_is_row ? p[l * ld + k] : p[k * ld + l];
                                 if (k_major) dst[(k - k0) * dld + (l - l0)] = v;
                                 else dst[(l - l0) * dld + (k - k0)] = v;
                               }
                           },
                           k_major};
    };
    ArrayConfig cfg{8, 8, Dataflow::ws, Format::bf16};
    std::vector<float> want(g.M * g.N);
    systolic_gemm(cfg, g, MatView{A.data(), g.K}, MatView{B.data(), g.N}, want.data(), g.N);
    for (bool km : {true, false}) {
      std::vector<float> got(g.M * g.N, -1.0f), got_b(g.M * g.N, -1.0f);
      systolic_gemm(cfg, g, source(A, g.K, true, km), source(B, g.N, false, !km), got.data(), g.N);
      systolic_gemm(cfg, g, MatView{A.data(), g.K}, source(B, g.N, false, km), got_b.data(), g.N);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << g.M << "x" << g.N << "x" << g.K;
      EXPECT_EQ(0, std::memcmp(got_b.data(), want.data(), want.size() * 4)) << g.M << "x" << g.N << "x" << g.K;
    }
  }
}

}  // namespace
}  // namespace st

// Several arrays ([array] count): the PE-level reference deals the column folds round-robin over
// `count` arrays and returns the busiest one's stepped cycles. Every output keeps its chain, so the
// bits are those of one array (and of the fast kernel), and the cycles are the closed form's.
TEST(Systolic, SeveralArraysKeepEveryBitAndTakeTheBusiestArraysCycles) {
  const std::vector<Case> cases = make_cases();
  int checked = 0, faster = 0;
  for (size_t i = 0; i < cases.size(); i += 6) {
    const Case& c = cases[i];
    if (c.cfg.format == Format::int8) continue;
    std::mt19937_64 rng(c.seed);
    const GemmShape& g = c.g;
    auto A = random_operand(rng, g.M * g.K, c.specials);
    auto B = random_operand(rng, g.K * g.N, c.specials);
    std::vector<float> one(g.M * g.N), many(g.M * g.N, 3.0f);
    const int64_t cycles1 = systolic_gemm_reference(c.cfg, g, {A.data(), g.K}, {B.data(), g.N}, one.data(), g.N);
    for (int count : {2, 3}) {
      ArrayConfig cfg = c.cfg;
      cfg.count = count;
      const int64_t cycles = systolic_gemm_reference(cfg, g, {A.data(), g.K}, {B.data(), g.N}, many.data(), g.N);
      EXPECT_EQ(cycles, gemm_compute_cycles(cfg, g)) << c.name() << " count " << count;
      EXPECT_LE(cycles, cycles1) << c.name();
      faster += cycles < cycles1;
      EXPECT_EQ(gemm_folds(cfg, g), gemm_folds(c.cfg, g)) << c.name();
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * 4), 0) << c.name() << " count " << count;
      ++checked;
    }
  }
  EXPECT_GE(checked, 80);
  EXPECT_GT(faster, checked / 4) << "too few cases with more than one column fold";
  // Hand-counted: WS 4x4, N = 10 -> 3 column folds, K = 8 -> 2 row folds, M = 5: 2R + C + T - 2 = 15
  // per fold. One array: 6 folds = 90; two: array 0 gets column folds 0 and 2 (4 folds, 60), array 1
  // fold 1 (2 folds); three: 2 folds each, 30.
  ArrayConfig ws{4, 4, Dataflow::ws, Format::fp32};
  EXPECT_EQ(gemm_compute_cycles(ws, {5, 10, 8}), 90);
  ws.count = 2;
  EXPECT_EQ(gemm_compute_cycles(ws, {5, 10, 8}), 60);
  ws.count = 3;
  EXPECT_EQ(gemm_compute_cycles(ws, {5, 10, 8}), 30);
  ws.count = 4;
  EXPECT_EQ(gemm_compute_cycles(ws, {5, 10, 8}), 30);
}
