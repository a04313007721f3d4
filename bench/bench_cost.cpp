// Speed of the cost model: every conv layer of ResNet-50 (forward GEMMs at batch 1, 224x224), the
// tiler's whole search included, on each preset. Reported per layer evaluation. Beside it, in the
// same run, the cost reference (src/costref: the discrete-event simulator of the same schedule) on
// the plans the fast model chose: the price of the oracle, and the fast model's lead over it.
// The same for the vector unit: every vector op of a ResNet-50 training step (batch 32, 224x224:
// BN, ReLU, pooling, adds, loss, SGD) through cost_vector and through its reference
// (src/costref/vector_ref.cpp, docs/vector-schedule.md), reported per op.
// And every GEMM of a ResNet-50 training step as the projection emits them (im2col-like operands
// with their footprints, halo kept or re-fetched), against the same GEMMs costed by shares.
// For comparison (in words only, SCALE-Sim is not installed here): SCALE-Sim v2 simulates a layer by
// generating cycle-by-cycle address traces, which its users report as seconds to minutes per layer.
#include <benchmark/benchmark.h>

#include <vector>

#include "src/cost/cost_model.h"
#include "models/netdesc.h"
#include "src/costref/gemm_ref.h"
#include "src/costref/vector_ref.h"
#include "src/project/projection.h"
#include "src/spec/spec_toml.h"

namespace {

struct Conv { int64_t H, C, K, R, stride, repeat; };  // square input H x H, pad R/2

// ResNet-50 v1.5 convs (torchvision): stem, then per stage the bottleneck blocks (53 convs).
std::vector<st::GemmWork> resnet50_convs() {
  std::vector<Conv> convs = {{224, 3, 64, 7, 2, 1}};
  const int64_t widths[] = {64, 128, 256, 512}, blocks[] = {3, 4, 6, 3};
  int64_t H = 56, in = 64;
  for (int s = 0; s < 4; ++s) {
    const int64_t w = widths[s], out = 4 * w;
    for (int64_t b = 0; b < blocks[s]; ++b) {
      const int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      convs.push_back({H, in, w, 1, 1, 1});
      convs.push_back({H, w, w, 3, stride, 1});  // stride on the 3x3 (v1.5)
      const int64_t Ho = H / stride;
      convs.push_back({Ho, w, out, 1, 1, 1});
      if (b == 0) convs.push_back({H, in, out, 1, stride, 1});  // projection shortcut
      in = out;
      H = Ho;
    }
  }
  std::vector<st::GemmWork> out;
  for (const Conv& c : convs) {
    const int64_t P = (c.H + 2 * (c.R / 2) - c.R) / c.stride + 1;
    st::GemmWork w;
    w.shape = {P * P, c.K, c.C * c.R * c.R};
    const double x = double(c.H * c.H * c.C);
    const double virt = double(w.shape.M) * double(w.shape.K);
    w.a = st::operand_desc(w.shape.M, w.shape.K, 2, x, std::min(1.0, x / virt));
    w.b = st::operand_desc(w.shape.K, w.shape.N, 2, double(w.shape.K * w.shape.N), 1);
    w.c = st::operand_desc(w.shape.M, w.shape.N, 4, double(w.shape.M * w.shape.N), 1);
    out.push_back(w);
  }
  return out;
}

void BM_CostResNet50Convs(benchmark::State& state, const char* preset) {
  const st::Spec spec = st::load_spec(preset);
  const auto convs = resnet50_convs();
  double cycles = 0;
  for (auto _ : state)
    for (const auto& w : convs) {
      st::Stats s = st::cost_gemm(w, spec);
      cycles += s.get("cycles.total");
      benchmark::DoNotOptimize(cycles);
    }
  state.SetItemsProcessed(int64_t(state.iterations() * convs.size()));
  state.counters["layers"] = double(convs.size());
  // Seconds per layer evaluation (the rate of layers, inverted).
  state.counters["per_layer"] = benchmark::Counter(double(state.iterations() * convs.size()),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
// The reference on the fast model's plans (chosen once, outside the timed loop).
void BM_ReferenceResNet50Convs(benchmark::State& state, const char* preset) {
  const st::Spec spec = st::load_spec(preset);
  const auto convs = resnet50_convs();
  std::vector<st::GemmPlan> plans(convs.size());
  for (size_t i = 0; i < convs.size(); ++i) st::cost_gemm(convs[i], spec, &plans[i]);
  double cycles = 0, steps = 0;
  for (auto _ : state)
    for (size_t i = 0; i < convs.size(); ++i) {
      const st::costref::Result r = st::costref::simulate_gemm(convs[i], spec, plans[i]);
      cycles += r.counters.at("cycles.total");
      steps += r.counters.at("tiles");
      benchmark::DoNotOptimize(cycles);
    }
  state.SetItemsProcessed(int64_t(state.iterations() * convs.size()));
  state.counters["layers"] = double(convs.size());
  state.counters["per_layer"] = benchmark::Counter(double(state.iterations() * convs.size()),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["steps_per_s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
}

// ResNet-50 at 224x224, batch 32, 1000 classes.
st::ResNetOptions resnet50_b32() {
  st::ResNetOptions o;
  o.name = "resnet50";
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.batch = 32;
  o.classes = 1000;
  return o;
}

// The vector ops of one ResNet-50 training step, as the projection emits them.
struct VectorSink : st::WorkSink {
  std::vector<st::VectorWork> works;
  void gemm(const st::GemmWork&) override {}
  void vector(const st::VectorWork& w) override { works.push_back(w); }
};
std::vector<st::VectorWork> resnet50_vector_ops(const st::Spec& spec) {
  const st::ResNetOptions o = resnet50_b32();
  VectorSink sink;
  st::describe_step(st::build_resnet(o), st::ExecContext{&spec, &sink, ""}, st::Lowering::bp_im2col,
                    st::StepMode::train);
  return sink.works;
}

// Every GEMM of one ResNet-50 training step (batch 32, bp-im2col) as the projection emits them, whose
// im2col-like operands carry their address generators; `halo` 0: footprints with the halo kept, 1:
// re-fetched, 2: generators stripped (each tile its share of the backing store: the model before
// footprints), so the price of the footprints is measured in the same run.
struct GemmSink : st::WorkSink {
  std::vector<st::GemmWork> works;
  void gemm(const st::GemmWork& w) override { works.push_back(w); }
  void vector(const st::VectorWork&) override {}
};
void BM_CostResNet50TrainGemms(benchmark::State& state, const char* preset, int halo) {
  st::Spec spec = st::load_spec(preset);
  spec.ifmap.halo = spec.weight.halo = halo == 1 ? st::Halo::refetch : st::Halo::keep;
  const st::ResNetOptions o = resnet50_b32();
  GemmSink sink;
  st::describe_step(st::build_resnet(o), st::ExecContext{&spec, &sink, ""}, st::Lowering::bp_im2col,
                    st::StepMode::train);
  if (halo == 2)
    for (st::GemmWork& w : sink.works) w.a.generator = w.b.generator = nullptr;
  double cycles = 0;
  for (auto _ : state)
    for (const auto& w : sink.works) {
      cycles += st::cost_gemm(w, spec).get("cycles.total");
      benchmark::DoNotOptimize(cycles);
    }
  state.SetItemsProcessed(int64_t(state.iterations() * sink.works.size()));
  state.counters["gemms"] = double(sink.works.size());
  state.counters["per_gemm"] = benchmark::Counter(double(state.iterations() * sink.works.size()),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void per_op_counters(benchmark::State& state, size_t ops) {
  state.SetItemsProcessed(int64_t(state.iterations() * ops));
  state.counters["ops"] = double(ops);
  state.counters["per_op"] = benchmark::Counter(double(state.iterations() * ops),
                                                benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The fast model, or (reference) the stepped reference, on every vector op of the step.
void vector_step(benchmark::State& state, const char* preset, bool reference) {
  const st::Spec spec = st::load_spec(preset);
  const auto ops = resnet50_vector_ops(spec);
  double cycles = 0;
  for (auto _ : state)
    for (const auto& w : ops) {
      cycles += reference ? st::costref::simulate_vector(w, spec).counters.at("cycles.total")
                          : st::cost_vector(w, spec).get("cycles.total");
      benchmark::DoNotOptimize(cycles);
    }
  per_op_counters(state, ops.size());
}
void BM_CostVectorResNet50Step(benchmark::State& state, const char* preset) { vector_step(state, preset, false); }
void BM_ReferenceVectorResNet50Step(benchmark::State& state, const char* preset) { vector_step(state, preset, true); }

BENCHMARK_CAPTURE(BM_CostResNet50Convs, tpu_like, "tpu-like")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CostResNet50Convs, simdit_16x16, "simdit-16x16")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CostResNet50Convs, bp_im2col_16x16, "bp-im2col-16x16")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ReferenceResNet50Convs, tpu_like, "tpu-like")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReferenceResNet50Convs, simdit_16x16, "simdit-16x16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReferenceResNet50Convs, bp_im2col_16x16, "bp-im2col-16x16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, tpu_like_keep, "tpu-like", 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, tpu_like_refetch, "tpu-like", 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, tpu_like_shares, "tpu-like", 2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, simdit_16x16_keep, "simdit-16x16", 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, simdit_16x16_refetch, "simdit-16x16", 1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostResNet50TrainGemms, simdit_16x16_shares, "simdit-16x16", 2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CostVectorResNet50Step, tpu_like, "tpu-like")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CostVectorResNet50Step, simdit_16x16, "simdit-16x16")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CostVectorResNet50Step, bp_im2col_16x16, "bp-im2col-16x16")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ReferenceVectorResNet50Step, tpu_like, "tpu-like")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReferenceVectorResNet50Step, simdit_16x16, "simdit-16x16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReferenceVectorResNet50Step, bp_im2col_16x16, "bp-im2col-16x16")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
