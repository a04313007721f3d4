// Training throughput (images/s) of the emulated network against the oneDNN reference network
// training natively in fp32, in one run, on ResNet-8 and ResNet-20 (CIFAR-style, 1x28x28 input as
// Fashion-MNIST, 10 classes, batch 64).
//
// One iteration = one full training step:
//   emulator: zero_grads, forward (batch statistics), backward, SGD update (momentum, weight decay),
//             every GEMM bit-accurate on the tpu-like spec's array (bf16 operands, WS 32x32), no cost
//             sink (as `systrain train` runs every step after the first);
//   oneDNN:   OneDnnNet::forward_backward (fp32 primitives) + the same SGD formula on the host, in
//             two variants: plain layouts (the reference network as the gradient check uses it) and
//             blocked conv layouts (oneDNN's preferred nChw16c etc., with reorders around each conv:
//             the fast native baseline).
// Counters on the emulator rows: `vs_onednn` = emulator images/s / plain-layout oneDNN images/s,
// `vs_onednn_blocked` = the same against the blocked-layout network (the goal of issue #6 is
// >= 0.5). The oneDNN rows are registered first so their throughput is known.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "src/spec/spec_toml.h"
#include "src/train/network.h"
#include "src/train/onednn_net.h"
#include "src/train/param_set.h"

namespace st {
namespace {

constexpr int64_t kBatch = 64;

NetDesc model(const std::string& name) {
  ResNetOptions o;
  o.name = name;
  o.batch = kBatch;
  return build_resnet(o);
}

struct Batch {
  Tensor images;
  std::vector<int32_t> labels;
};

Batch random_batch(const NetDesc& net) {
  const Shape4& in = net.nodes.front().out;
  Batch b{Tensor({in.n, in.c, in.h, in.w}), std::vector<int32_t>(static_cast<size_t>(in.n))};
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0, 1);
  for (int64_t i = 0; i < b.images.size(); ++i) b.images[i] = nd(rng);
  for (auto& l : b.labels) l = static_cast<int32_t>(rng() % 10);
  return b;
}

// Native throughput by "layout/model".
std::map<std::string, double>& native_images_per_second() {
  static std::map<std::string, double> m;
  return m;
}

void report(benchmark::State& state, double seconds) {
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["img_per_s"] = double(state.iterations() * kBatch) / seconds;
}

void BM_onednn(benchmark::State& state, std::string name, ConvLayout layout) {
  const NetDesc net = model(name);
  ParamSet params = init_params(net, 1), velocity = init_params(net, 1);
  for (auto& [n, t] : velocity) t.zero();
  OneDnnNet ref(net, params, Format::fp32, layout);
  const Batch b = random_batch(net);
  const SgdParams p;
  double seconds = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(ref.forward_backward(b.images, b.labels));
    for (auto& [n, w] : params) {
      if (is_buffer_name(n)) continue;
      const Tensor& g = ref.grads().at(n);
      Tensor& v = velocity.at(n);
      for (int64_t i = 0; i < w.size(); ++i) {
        v[i] = std::fma(p.momentum, v[i], std::fma(p.weight_decay, w[i], g[i]));
        w[i] = std::fma(-p.lr, v[i], w[i]);
      }
    }
    ref.set_params(params);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  report(state, seconds);
  native_images_per_second()[(layout == ConvLayout::plain ? "plain/" : "blocked/") + name] = state.counters["img_per_s"];
}

void BM_emulator(benchmark::State& state, std::string name) {
  const NetDesc net = model(name);
  const Spec spec = load_spec("tpu-like");
  Network emu(net, init_params(net, 1), Lowering::bp_im2col);
  const ExecContext ctx{&spec, nullptr, ""};
  const Batch b = random_batch(net);
  const SgdParams p;
  double seconds = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    emu.zero_grads();
    benchmark::DoNotOptimize(emu.forward(ctx, b.images, b.labels));
    emu.backward(ctx);
    emu.sgd_step(ctx, p);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  report(state, seconds);
  for (const char* layout : {"plain", "blocked"}) {
    const auto it = native_images_per_second().find(std::string(layout) + "/" + name);
    if (it != native_images_per_second().end())
      state.counters[std::string("vs_onednn") + (layout == std::string("plain") ? "" : "_blocked")] =
          state.counters["img_per_s"] / it->second;
  }
}

const bool kRegistered = [] {
  for (const char* m : {"resnet8", "resnet20"}) {
    benchmark::RegisterBenchmark((std::string("onednn_fp32_plain/") + m).c_str(), BM_onednn, std::string(m),
                                 ConvLayout::plain)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
    benchmark::RegisterBenchmark((std::string("onednn_fp32_blocked/") + m).c_str(), BM_onednn, std::string(m),
                                 ConvLayout::blocked)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
    benchmark::RegisterBenchmark((std::string("emulator_bf16_bp-im2col/") + m).c_str(), BM_emulator, std::string(m))
        ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
  }
  return true;
}();

}  // namespace
}  // namespace st

BENCHMARK_MAIN();
