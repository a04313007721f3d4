// Vector-unit ops (and the FC GEMMs) on ResNet-20 shapes at batch 64: the emulator's throughput
// against oneDNN's primitive for the same op, in one run. Rows report elements/s (`elem/s`, the op's
// output elements) and the emulator rows `vs_onednn` = emulator throughput / oneDNN throughput.
// SGD has no oneDNN primitive: its reference row is a plain fp32 host loop ("onednn" label kept
// for the ratio column; the row name says host_loop).
#include <benchmark/benchmark.h>

#include <functional>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "src/ops/batchnorm.h"
#include "src/ops/fc.h"
#include "src/ops/pool.h"
#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "src/ops/sgd.h"
#include "src/ops/softmax_xent.h"

using namespace st;
using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

namespace {

constexpr int64_t kBatch = 64;
dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& strm() {
  static dnnl::stream s(eng());
  return s;
}
memory::desc md_of(const Tensor& t) {
  using tag = memory::format_tag;
  static const tag tags[] = {tag::a, tag::ab, tag::abc, tag::abcd};
  return memory::desc(memory::dims(t.dims().begin(), t.dims().begin() + t.rank()), memory::data_type::f32,
                      tags[t.rank() - 1]);
}
memory mem(Tensor& t) { return memory(md_of(t), eng(), t.data()); }
Tensor random_tensor(std::initializer_list<int64_t> d, float lo = -1, float hi = 1) {
  Tensor t(d);
  std::mt19937_64 rng(t.size());
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = u(rng);
  return t;
}

struct Case {
  std::string op, shape;
  double elements;
  std::function<void()> emu, ref;
  bool ref_is_host_loop = false;
};
std::vector<std::shared_ptr<void>> g_keep;  // tensors and primitives live for the whole run

void run_loop(benchmark::State& s, const std::function<void()>& f, double elements) {
  for (auto _ : s) f();
  s.counters["elem/s"] = benchmark::Counter(elements, benchmark::Counter::kIsIterationInvariantRate);
}

struct Env {  // everything one ResNet-20 activation shape needs
  Spec spec;
  ExecContext ctx{&spec, nullptr, "bench"};
};

std::vector<Case> cases(Env& env) {
  std::vector<Case> v;
  const ExecContext& ctx = env.ctx;
  auto exec = [](std::shared_ptr<dnnl::primitive> p, std::unordered_map<int, memory> args) {
    return [p, args] { p->execute(strm(), args); strm().wait(); };
  };
  for (auto [C, H] : {std::pair<int64_t, int64_t>{16, 32}, {32, 16}, {64, 8}}) {
    const std::string sh = "mb64ic" + std::to_string(C) + "ih" + std::to_string(H) + "iw" + std::to_string(H);
    auto T = std::make_shared<std::vector<Tensor>>();
    for (int i = 0; i < 6; ++i) T->push_back(random_tensor({kBatch, C, H, H}));
    auto P = std::make_shared<std::vector<Tensor>>();
    P->push_back(random_tensor({C}, 0.5f, 2));  // gamma
    P->push_back(random_tensor({C}));           // beta
    P->push_back(random_tensor({C}));           // mean / dgamma
    P->push_back(random_tensor({C}, 0.5f, 2));  // var / dbeta
    P->push_back(random_tensor({C}));
    P->push_back(random_tensor({C}));
    g_keep.push_back(T), g_keep.push_back(P);
    Tensor &x = (*T)[0], &y = (*T)[1], &dy = (*T)[2], &dx = (*T)[3], &x2 = (*T)[4];
    const double n = double(x.size());
    auto md = md_of(x);
    auto saved = std::make_shared<BnSaved>();
    g_keep.push_back(saved);

    // ReLU.
    auto rf = dnnl::eltwise_forward::primitive_desc({prop_kind::forward_training, algorithm::eltwise_relu, md, 0.f, 0.f}, eng());
    auto rb = dnnl::eltwise_backward::primitive_desc({algorithm::eltwise_relu, md, md, 0.f, 0.f}, eng(), rf);
    v.push_back({"relu_fwd", sh, n, [&, T] { relu_fwd(ctx, x, y); },
                 exec(std::make_shared<dnnl::eltwise_forward>(rf), {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DST, mem(y)}})});
    v.push_back({"relu_bwd", sh, n, [&, T] { relu_bwd(ctx, x, dy, dx); },
                 exec(std::make_shared<dnnl::eltwise_backward>(rb),
                      {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DIFF_DST, mem(dy)}, {DNNL_ARG_DIFF_SRC, mem(dx)}})});
    // Residual add.
    auto ab = dnnl::binary::primitive_desc({algorithm::binary_add, md, md, md}, eng());
    v.push_back({"add_fwd", sh, n, [&, T] { add_fwd(ctx, x, x2, y); },
                 exec(std::make_shared<dnnl::binary>(ab), {{DNNL_ARG_SRC_0, mem(x)}, {DNNL_ARG_SRC_1, mem(x2)}, {DNNL_ARG_DST, mem(y)}})});
    // Batch norm training forward and backward.
    auto fl = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    auto bf = dnnl::batch_normalization_forward::primitive_desc({prop_kind::forward_training, md, 1e-5f, fl}, eng());
    auto bb = dnnl::batch_normalization_backward::primitive_desc({prop_kind::backward, md, md, 1e-5f, fl}, eng(), bf);
    Tensor &g = (*P)[0], &b = (*P)[1], &m = (*P)[2], &var = (*P)[3], &dg = (*P)[4], &db = (*P)[5];
    v.push_back({"bn_fwd_training", sh, n,
                 [&, T, P, saved] { Tensor rm = m, rv = var; bn_fwd_training(ctx, {}, x, g, b, y, *saved, rm, rv); },
                 exec(std::make_shared<dnnl::batch_normalization_forward>(bf),
                      {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DST, mem(y)}, {DNNL_ARG_SCALE, mem(g)}, {DNNL_ARG_SHIFT, mem(b)},
                       {DNNL_ARG_MEAN, mem(m)}, {DNNL_ARG_VARIANCE, mem(var)}})});
    v.push_back({"bn_bwd", sh, n,
                 [&, T, P, saved] {
                   if (saved->mean.size() == 0) { Tensor rm = m, rv = var; bn_fwd_training(ctx, {}, x, g, b, y, *saved, rm, rv); }
                   bn_bwd(ctx, {}, x, dy, g, *saved, dx, dg, db);
                 },
                 exec(std::make_shared<dnnl::batch_normalization_backward>(bb),
                      {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_MEAN, mem(m)}, {DNNL_ARG_VARIANCE, mem(var)},
                       {DNNL_ARG_DIFF_DST, mem(dy)}, {DNNL_ARG_SCALE, mem(g)}, {DNNL_ARG_SHIFT, mem(b)},
                       {DNNL_ARG_DIFF_SRC, mem(dx)}, {DNNL_ARG_DIFF_SCALE, mem(dg)}, {DNNL_ARG_DIFF_SHIFT, mem(db)}})});
    // Pooling: max 3x3 s2 p1 (representative; ResNet-20 has none) and the global average of stage 3.
    PoolDesc pd = H == 8 ? global_avg_pool_desc(x) : PoolDesc{3, 3, 2, 2, 1, 1, PoolAlg::max};
    const std::string pop = H == 8 ? "avgpool_global" : "maxpool_3x3s2";
    auto pooled = std::make_shared<Tensor>();
    auto ws = std::make_shared<PoolWorkspace>();
    pool_fwd(ctx, pd, x, *pooled, ws.get());
    g_keep.push_back(pooled), g_keep.push_back(ws);
    auto pmd = md_of(*pooled);
    memory::dims st{pd.sh, pd.sw}, k{pd.kh, pd.kw}, pad{pd.ph, pd.pw};
    auto alg = H == 8 ? algorithm::pooling_avg_exclude_padding : algorithm::pooling_max;
    auto pf = dnnl::pooling_forward::primitive_desc({prop_kind::forward_training, alg, md, pmd, st, k, pad, pad}, eng());
    auto pb = dnnl::pooling_backward::primitive_desc({alg, md, pmd, st, k, pad, pad}, eng(), pf);
    auto wsm = std::make_shared<memory>(pf.workspace_desc(), eng());
    auto pdst = std::make_shared<Tensor>(*pooled);
    g_keep.push_back(wsm), g_keep.push_back(pdst);
    const double outs = double(pooled->size());
    v.push_back({pop + "_fwd", sh, outs, [&, T, pooled, ws, pd] { pool_fwd(ctx, pd, x, *pooled, ws.get()); },
                 exec(std::make_shared<dnnl::pooling_forward>(pf),
                      {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DST, mem(*pdst)}, {DNNL_ARG_WORKSPACE, *wsm}})});
    v.push_back({pop + "_bwd", sh, n, [&, T, pooled, ws, pd] { pool_bwd(ctx, pd, *pooled, ws.get(), dx); },
                 exec(std::make_shared<dnnl::pooling_backward>(pb),
                      {{DNNL_ARG_DIFF_DST, mem(*pdst)}, {DNNL_ARG_DIFF_SRC, mem(dx)}, {DNNL_ARG_WORKSPACE, *wsm}})});
  }

  // FC 64 -> 10 and the loss, at batch 64.
  {
    auto T = std::make_shared<std::vector<Tensor>>();
    T->push_back(random_tensor({kBatch, 64}));   // src
    T->push_back(random_tensor({10, 64}));       // wei
    T->push_back(random_tensor({10}));           // bias
    T->push_back(random_tensor({kBatch, 10}));   // dst / diff_dst
    T->push_back(random_tensor({kBatch, 64}));   // diff_src
    T->push_back(random_tensor({10, 64}));       // diff_wei
    T->push_back(random_tensor({10}));           // diff_bias
    T->push_back(random_tensor({kBatch, 10}));   // probs
    g_keep.push_back(T);
    Tensor &s = (*T)[0], &w = (*T)[1], &b = (*T)[2], &d = (*T)[3], &ds = (*T)[4], &dw = (*T)[5], &db = (*T)[6], &p = (*T)[7];
    auto smd = md_of(s), wmd = md_of(w), bmd = md_of(b), dmd = md_of(d);
    auto ff = dnnl::inner_product_forward::primitive_desc({prop_kind::forward_training, smd, wmd, bmd, dmd}, eng());
    auto fd = dnnl::inner_product_backward_data::primitive_desc({smd, wmd, dmd}, eng(), ff);
    auto fw = dnnl::inner_product_backward_weights::primitive_desc({smd, wmd, bmd, dmd}, eng(), ff);
    const std::string sh = "mb64ic64oc10";
    v.push_back({"fc_fwd", sh, 640, [&, T] { fc_fwd(ctx, s, w, b, d); },
                 exec(std::make_shared<dnnl::inner_product_forward>(ff),
                      {{DNNL_ARG_SRC, mem(s)}, {DNNL_ARG_WEIGHTS, mem(w)}, {DNNL_ARG_BIAS, mem(b)}, {DNNL_ARG_DST, mem(d)}})});
    v.push_back({"fc_bwd_data", sh, 64 * 64, [&, T] { fc_bwd_data(ctx, d, w, ds); },
                 exec(std::make_shared<dnnl::inner_product_backward_data>(fd),
                      {{DNNL_ARG_DIFF_DST, mem(d)}, {DNNL_ARG_WEIGHTS, mem(w)}, {DNNL_ARG_DIFF_SRC, mem(ds)}})});
    v.push_back({"fc_bwd_weights", sh, 640, [&, T] { fc_bwd_weights(ctx, s, d, dw, db); },
                 exec(std::make_shared<dnnl::inner_product_backward_weights>(fw),
                      {{DNNL_ARG_SRC, mem(s)}, {DNNL_ARG_DIFF_DST, mem(d)}, {DNNL_ARG_DIFF_WEIGHTS, mem(dw)},
                       {DNNL_ARG_DIFF_BIAS, mem(db)}})});
    auto labels = std::make_shared<std::vector<int32_t>>(kBatch);
    for (int i = 0; i < kBatch; ++i) (*labels)[i] = i % 10;
    g_keep.push_back(labels);
    auto lf = dnnl::logsoftmax_forward::primitive_desc({prop_kind::forward_training, dmd, 1}, eng());
    v.push_back({"softmax_xent_fwd", "mb64ic10", 640, [&, T, labels] { benchmark::DoNotOptimize(softmax_xent_fwd(ctx, d, *labels, p)); },
                 exec(std::make_shared<dnnl::logsoftmax_forward>(lf), {{DNNL_ARG_SRC, mem(d)}, {DNNL_ARG_DST, mem(p)}})});
  }

  // SGD over all ResNet-20 parameters (~272k; one flat tensor).
  {
    auto T = std::make_shared<std::vector<Tensor>>();
    const int64_t n = 272474;
    T->push_back(random_tensor({n}));
    T->push_back(random_tensor({n}));
    T->push_back(random_tensor({n}));
    g_keep.push_back(T);
    Tensor &w = (*T)[0], &g = (*T)[1], &vel = (*T)[2];
    v.push_back({"sgd_update", "n272474", double(n), [&, T] { sgd_update(ctx, {0.1f, 0.9f, 5e-4f}, w, g, vel, true); },
                 [&, T, n] {
                   float* W = w.data(); float* V = vel.data(); const float* G = g.data();
                   for (int64_t i = 0; i < n; ++i) {
                     float gi = G[i] + 5e-4f * W[i];
                     V[i] = 0.9f * V[i] + gi;
                     W[i] -= 0.1f * V[i];
                   }
                 },
                 true});
  }
  return v;
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> out = runs;
    for (auto& r : out) {
      std::string name = r.benchmark_name();
      auto slash = name.find('/');
      std::string who = name.substr(0, slash), key = name.substr(slash + 1);
      key = key.substr(0, key.rfind("/real_time"));
      auto it = r.counters.find("elem/s");
      if (it == r.counters.end()) continue;
      if (who != "emu") ref_[key] = it->second.value;
      else if (ref_.count(key) && ref_[key] > 0) r.counters["vs_onednn"] = benchmark::Counter(it->second.value / ref_[key]);
    }
    ConsoleReporter::ReportRuns(out);
  }

 private:
  std::map<std::string, double> ref_;
};

}  // namespace

int main(int argc, char** argv) {
  static Env env;
  static std::vector<Case> all = cases(env);
  for (const Case& c : all) {
    const std::string key = c.op + "/" + c.shape;
    benchmark::RegisterBenchmark(((c.ref_is_host_loop ? "host_loop/" : "onednn/") + key).c_str(),
                                 [&c](benchmark::State& s) { run_loop(s, c.ref, c.elements); })
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
    benchmark::RegisterBenchmark(("emu/" + key).c_str(), [&c](benchmark::State& s) { run_loop(s, c.emu, c.elements); })
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
