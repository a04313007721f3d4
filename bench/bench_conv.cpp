// Conv fwd / bwd_data / bwd_weights of the emulator (bf16 WS 32x32, BP-im2col and zero-skip
// lowerings) against oneDNN fp32 convolution primitives (format_tag::any, reorders outside the
// timed loop) on ResNet-20 layer shapes at batch 64, in one run. Counter `vs_onednn` on the emulator
// rows = emulator time / oneDNN time of the same direction and shape.
#include <benchmark/benchmark.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <random>

#include "src/ops/conv.h"

namespace st {
namespace {

struct Shape {
  const char* name;
  ConvDesc d;
};
const Shape kShapes[] = {
    {"c16_32x32_3x3", {64, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1}},
    {"c16to32_s2_3x3", {64, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1}},
    {"c16to32_s2_1x1", {64, 16, 32, 32, 32, 1, 1, 2, 2, 0, 0, 0, 0}},
    {"c32_16x16_3x3", {64, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1}},
    {"c32to64_s2_3x3", {64, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1, 1, 1}},
    {"c32to64_s2_1x1", {64, 32, 16, 16, 64, 1, 1, 2, 2, 0, 0, 0, 0}},
    {"c64_8x8_3x3", {64, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1}},
};

std::map<std::string, double>& onednn_seconds() {
  static std::map<std::string, double> m;
  return m;
}

void fill(Tensor& t, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = u(rng);
}

void BM_onednn(benchmark::State& state, Shape s, Direction dir) {
  using namespace dnnl;
  const ConvDesc& d = s.d;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  memory::dims sd{d.N, d.C, d.H, d.W}, wd{d.K, d.C, d.R, d.S}, dd{d.N, d.K, d.P(), d.Q()};
  memory::dims st{d.sh, d.sw}, pl{d.pt, d.pl}, pr{d.pb, d.pr};
  auto any = [](const memory::dims& x) { return memory::desc(x, memory::data_type::f32, memory::format_tag::any); };
  convolution_forward::primitive_desc fpd(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, any(sd), any(wd),
                                any(dd), st, pl, pr), eng);
  memory src(fpd.src_desc(), eng), wei(fpd.weights_desc(), eng), dst(fpd.dst_desc(), eng);
  primitive p;
  std::unordered_map<int, memory> args;
  if (dir == Direction::fwd) {
    p = convolution_forward(fpd);
    args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  } else if (dir == Direction::bwd_data) {
    convolution_backward_data::primitive_desc pd(
        convolution_backward_data::desc(algorithm::convolution_direct, any(sd), any(wd), any(dd), st, pl, pr), eng, fpd);
    p = convolution_backward_data(pd);
    args = {{DNNL_ARG_DIFF_DST, memory(pd.diff_dst_desc(), eng)}, {DNNL_ARG_WEIGHTS, memory(pd.weights_desc(), eng)},
            {DNNL_ARG_DIFF_SRC, memory(pd.diff_src_desc(), eng)}};
  } else {
    convolution_backward_weights::primitive_desc pd(
        convolution_backward_weights::desc(algorithm::convolution_direct, any(sd), any(wd), any(dd), st, pl, pr), eng, fpd);
    p = convolution_backward_weights(pd);
    args = {{DNNL_ARG_SRC, memory(pd.src_desc(), eng)}, {DNNL_ARG_DIFF_DST, memory(pd.diff_dst_desc(), eng)},
            {DNNL_ARG_DIFF_WEIGHTS, memory(pd.diff_weights_desc(), eng)}};
  }
  for (auto& [k, m] : args) std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
  double total = 0;
  int64_t iters = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    p.execute(strm, args);
    strm.wait();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++iters;
  }
  onednn_seconds()[std::string(s.name) + to_string(dir).data()] = total / double(iters);
}

void BM_emulator(benchmark::State& state, Shape s, Direction dir, Lowering l) {
  const ConvDesc& d = s.d;
  Spec spec;  // tpu-like default: 32x32 bf16 WS
  ExecContext ctx{&spec, nullptr, s.name};
  std::mt19937_64 rng(1);
  Tensor x({d.N, d.C, d.H, d.W}), w({d.K, d.C, d.R, d.S}), g({d.N, d.K, d.P(), d.Q()}), out;
  fill(x, rng); fill(w, rng); fill(g, rng);
  double total = 0;
  int64_t iters = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    if (dir == Direction::fwd) conv_fwd(ctx, d, l, x, w, out);
    else if (dir == Direction::bwd_data) conv_bwd_data(ctx, d, l, g, w, out);
    else { out = Tensor(); conv_bwd_weights(ctx, d, l, x, g, out); }
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++iters;
  }
  auto it = onednn_seconds().find(std::string(s.name) + to_string(dir).data());
  if (it != onednn_seconds().end()) state.counters["vs_onednn"] = (total / double(iters)) / it->second;
}

int register_all() {
  for (const Shape& s : kShapes)
    for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights}) {
      const std::string base = std::string(s.name) + "/" + std::string(to_string(dir));
      benchmark::RegisterBenchmark(("onednn_f32/" + base).c_str(), BM_onednn, s, dir)->Unit(benchmark::kMillisecond);
      for (Lowering l : {Lowering::bp_im2col, Lowering::zero_skip}) {
        if (dir == Direction::fwd && l == Lowering::zero_skip) continue;  // forward is mode-independent
        benchmark::RegisterBenchmark(("emu_bf16_ws/" + std::string(to_string(l)) + "/" + base).c_str(),
                                     BM_emulator, s, dir, l)->Unit(benchmark::kMillisecond);
      }
    }
  return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace st

BENCHMARK_MAIN();
