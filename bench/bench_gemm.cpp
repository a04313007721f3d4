// GEMM throughput: the fast bit-accurate kernel (each format, WS and OS) against oneDNN's fp32
// matmul and a naive loop, in one run. Rows report GFLOP/s; the emulator rows also report
// `vs_onednn`, their throughput divided by oneDNN's on the same shape measured in this run.
#include <benchmark/benchmark.h>

#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/systolic.h"

using namespace st;

namespace {


std::string key(const GemmShape& g) { return std::to_string(g.M) + "x" + std::to_string(g.N) + "x" + std::to_string(g.K); }

struct Operands {
  std::vector<float> A, B, C;
  explicit Operands(const GemmShape& g) : A(g.M * g.K), B(g.K * g.N), C(g.M * g.N) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
  }
};

void set_rate(benchmark::State& s, const GemmShape& g) {
  s.counters["GFLOP/s"] = benchmark::Counter(2.0 * g.M * g.N * g.K, benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}

void bm_onednn(benchmark::State& s, GemmShape g) {
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream st(eng);
  Operands op(g);
  memory::desc a_md({g.M, g.K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b_md({g.K, g.N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc c_md({g.M, g.N}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_md, c_md), eng);
  matmul prim(pd);
  memory am(a_md, eng, op.A.data()), bm(b_md, eng, op.B.data()), cm(c_md, eng, op.C.data());
  for (auto _ : s) {
    prim.execute(st, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    st.wait();
  }
  set_rate(s, g);
}

void bm_systolic(benchmark::State& s, GemmShape g, Dataflow d, Format f) {
  Operands op(g);
  ArrayConfig cfg{32, 32, d, f};
  for (auto _ : s) {
    systolic_gemm(cfg, g, {op.A.data(), g.K}, {op.B.data(), g.N}, op.C.data(), g.N);
    benchmark::DoNotOptimize(op.C.data());
  }
  set_rate(s, g);
}

void bm_naive(benchmark::State& s, GemmShape g) {
  Operands op(g);
  for (auto _ : s) {
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        float acc = 0;
        for (int64_t k = 0; k < g.K; ++k) acc += op.A[m * g.K + k] * op.B[k * g.N + n];
        op.C[m * g.N + n] = acc;
      }
    benchmark::DoNotOptimize(op.C.data());
  }
  set_rate(s, g);
}

// Adds `vs_onednn` to every emulator row, using the oneDNN row of the same shape from this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> out = runs;
    for (auto& r : out) {
      std::string name = r.benchmark_name();
      auto shape = name.substr(name.find('/') + 1);
      shape = shape.substr(0, shape.find('/'));
      auto it = r.counters.find("GFLOP/s");
      if (it == r.counters.end()) continue;
      double v = it->second.value;
      if (name.rfind("onednn_f32", 0) == 0) {
        onednn_[shape] = v;
      } else if (onednn_.count(shape) && onednn_[shape] > 0) {
        r.counters["vs_onednn"] = benchmark::Counter(v / onednn_[shape]);
      }
    }
    ConsoleReporter::ReportRuns(out);
  }

 private:
  std::map<std::string, double> onednn_;
};

void register_shape(const std::string& label, GemmShape g, bool naive) {
  std::string s = label + "/" + key(g);
  benchmark::RegisterBenchmark(("onednn_f32/" + s).c_str(), bm_onednn, g)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (Format f : {Format::bf16, Format::fp16, Format::fp32})
    for (Dataflow d : {Dataflow::ws, Dataflow::os})
      benchmark::RegisterBenchmark(("systolic_" + std::string(to_string(f)) + "_" + std::string(to_string(d)) + "/" + s).c_str(),
                                   bm_systolic, g, d, f)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
  if (naive) benchmark::RegisterBenchmark(("naive_f32/" + s).c_str(), bm_naive, g)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
}

}  // namespace

int main(int argc, char** argv) {
  for (int64_t n : {256, 512, 1024}) register_shape("square", {n, n, n}, n <= 512);
  // ResNet-20 (CIFAR 32x32) forward im2col GEMMs at batch 64: M = N*P*Q, N = filters, K = C*R*S.
  register_shape("r20_stem", {64 * 32 * 32, 16, 3 * 9}, false);
  register_shape("r20_s1", {64 * 32 * 32, 16, 16 * 9}, false);
  register_shape("r20_s2", {64 * 16 * 16, 32, 32 * 9}, false);
  register_shape("r20_s3", {64 * 8 * 8, 64, 64 * 9}, false);
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
