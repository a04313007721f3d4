// fp16 loss scaling (src/train/loss_scale.h, src/ops/grad_unscale.h): the scaler's state machine, the
// exactness of scale + unscale, the overflow check and the skipped step, the cost records, the
// checkpoint (N + resume M == N+M with a loss-scaled fp16 run) and the CLI's refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/cost/ledger.h"
#include "src/io/h5.h"
#include "src/ops/grad_unscale.h"
#include "src/train/loss_scale.h"
#include "src/train/network.h"
#include "src/train/trainer.h"
#include "tests/util/cli_run.h"
#include "tests/util/onednn_util.h"
#include "tests/util/temp_dir.h"
#include "tests/util/train_config.h"

using namespace st;
namespace fs = std::filesystem;

namespace {

// ---- the scaler ----

TEST(LossScaleParse, AcceptsTheDocumentedForms) {
  EXPECT_EQ(parse_loss_scale("none", 2000, true).mode, LossScaleMode::none);
  EXPECT_EQ(parse_loss_scale("auto", 2000, false).mode, LossScaleMode::none);
  const LossScaleConfig a = parse_loss_scale("auto", 2000, true);
  EXPECT_EQ(a.mode, LossScaleMode::dynamic);
  EXPECT_EQ(a.initial_scale, 65536);
  const LossScaleConfig s = parse_loss_scale("static:1000", 7, true);
  EXPECT_EQ(s.mode, LossScaleMode::static_scale);
  EXPECT_EQ(s.initial_scale, 1000);
  EXPECT_EQ(parse_loss_scale("static:16777217", 7, true).initial_scale, 16777216);  // rounded to fp32
  const LossScaleConfig d = parse_loss_scale("dynamic:1024", 5, false);
  EXPECT_EQ(d.mode, LossScaleMode::dynamic);
  EXPECT_EQ(d.initial_scale, 1024);
  EXPECT_EQ(d.text(), "dynamic:1024,interval=5");
}

TEST(LossScaleParse, RejectsBadValues) {
  for (const char* bad : {"", "static", "static:", "static:0", "static:0.5", "static:-4", "static:nan", "static:inf",
                          "static:1e300", "static:12abc", "dynamic:3", "dynamic:0", "dynamic:0.25", "dynamic:x",
                          "Dynamic", "dyn", "none:1", "1024"})
    EXPECT_THROW(parse_loss_scale(bad, 2000, true), UserError) << bad;
  EXPECT_THROW(parse_loss_scale("dynamic", 0, true), UserError);
  EXPECT_THROW(parse_loss_scale("dynamic", -5, true), UserError);
}

TEST(LossScaler, DynamicGrowsAfterNCleanStepsAndBacksOffOnOverflow) {
  LossScaler s(parse_loss_scale("dynamic:1024", 3, true));
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_EQ(s.clean_steps(), 2);
  EXPECT_TRUE(s.update(true));  // the 3rd clean step doubles the scale
  EXPECT_EQ(s.scale(), 2048.0f);
  EXPECT_EQ(s.clean_steps(), 0);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));  // overflow: skip, halve, the clean count starts again
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_EQ(s.clean_steps(), 0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_EQ(s.inv_scale(), 1.0f / 1024);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 1024.0f);  // 2 clean steps since the overflow: not yet
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 2048.0f);
}

TEST(LossScaler, StaticSkipsButKeepsItsScaleAndNoneNeverSkips) {
  LossScaler s(parse_loss_scale("static:512", 2, true));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 512.0f);
  EXPECT_EQ(s.skipped_steps(), 1);
  LossScaler n(parse_loss_scale("none", 2, true));
  EXPECT_TRUE(n.update(false));
  EXPECT_EQ(n.scale(), 1.0f);
  EXPECT_EQ(n.skipped_steps(), 0);
}

TEST(LossScaler, StaysWithinItsRange) {
  LossScaler s(parse_loss_scale("dynamic:1", 1, true));
  for (int i = 0; i < 200; ++i) s.update(true);
  EXPECT_EQ(double(s.scale()), kMaxScale);
  for (int i = 0; i < 300; ++i) s.update(false);
  EXPECT_EQ(double(s.scale()), kMinScale);
}

TEST(LossScaler, RestoreRefusesImpossibleStates) {
  LossScaler d(parse_loss_scale("dynamic", 10, true));
  EXPECT_THROW(d.restore(3, 0, 0, 5, "x"), UserError);         // not a power of two
  EXPECT_THROW(d.restore(1024, 10, 0, 50, "x"), UserError);    // clean count reaches the interval
  EXPECT_THROW(d.restore(1024, 6, 0, 5, "x"), UserError);      // more clean steps than steps
  EXPECT_THROW(d.restore(1024, 0, 6, 5, "x"), UserError);      // more skipped steps than steps
  d.restore(2048, 4, 1, 5, "x");
  EXPECT_EQ(d.scale(), 2048.0f);
  LossScaler s(parse_loss_scale("static:100", 10, true));
  EXPECT_THROW(s.restore(200, 0, 0, 5, "x"), UserError);       // a static scale cannot change
  EXPECT_THROW(s.restore(100, 1, 0, 5, "x"), UserError);
}

// ---- the unscale pass ----

TEST(GradUnscale, ExactForPowersOfTwoAndFindsInfAndNaN) {
  const Spec spec = test::test_spec();
  std::mt19937_64 rng(5);
  Tensor g({3, 7, 11}), want({3, 7, 11});
  test::fill_real(g, rng, -3, 3);
  for (int64_t i = 0; i < g.size(); ++i) want[i] = g[i];
  for (int64_t i = 0; i < g.size(); ++i) g[i] *= 4096.0f;  // scaled: exact (normal range)
  test::RecordingSink sink;
  const ExecContext ctx{&spec, &sink, "layer.weight"};
  EXPECT_TRUE(grad_unscale(ctx, g, 1.0f / 4096));
  EXPECT_TRUE(test::bitwise_equal(g, want));
  ASSERT_EQ(sink.vectors.size(), 1u);
  const VectorWork& w = sink.vectors[0];
  EXPECT_EQ(w.tag.kind, OpKind::grad_unscale);
  EXPECT_EQ(w.tag.phase, Phase::update);
  EXPECT_EQ(w.tag.layer, "layer.weight");
  EXPECT_EQ(w.muls, double(g.size()));
  EXPECT_EQ(w.cmps, double(g.size()));
  EXPECT_EQ(w.dram_read_bytes, 4.0 * double(g.size()));
  EXPECT_EQ(w.dram_write_bytes, 4.0 * double(g.size()));
  for (float bad : {INFINITY, -INFINITY, NAN}) {
    Tensor h = want;
    h[17] = bad;
    EXPECT_FALSE(grad_unscale(ctx, h, 0.5f)) << bad;
  }
  // 1/S > 1 can overflow a finite value: found as well.
  Tensor big({2});
  big[0] = 1, big[1] = 3e38f;
  EXPECT_FALSE(grad_unscale(ctx, big, 4.0f));
  // Below fp32's normal range the multiply rounds (documented): 3 x 2^-149 / 2 = 1.5 ulp -> 2 ulp.
  Tensor sub({1});
  sub[0] = 3 * 0x1p-149f;
  EXPECT_TRUE(grad_unscale(ctx, sub, 0.5f));
  EXPECT_EQ(sub[0], 2 * 0x1p-149f);
}

TEST(GradUnscale, SameBitsWithOneAndTwoThreads) {
  const Spec spec = test::test_spec();
  std::mt19937_64 rng(9);
  Tensor src({1 << 17});  // above the parallel threshold
  test::fill_real(src, rng, -1e3f, 1e3f);
  Tensor out[2];
  bool finite[2];
  for (int t = 1; t <= 2; ++t)
    test::with_threads(t, [&] {
      out[t - 1] = src;
      finite[t - 1] = grad_unscale(ExecContext{&spec, nullptr, ""}, out[t - 1], 1.0f / 3);
    });
  EXPECT_TRUE(test::bitwise_equal(out[0], out[1]));
  EXPECT_EQ(finite[0], finite[1]);
}

// ---- the network: scale, unscale, cost records ----

NetDesc tiny_net() {
  ResNetOptions o;
  o.name = "resnet8";
  o.width = 0.5;
  o.in_c = 1;
  o.in_h = o.in_w = 12;
  o.batch = 4;
  return build_resnet(o);
}

struct Batch {
  Tensor images;
  std::vector<int32_t> labels;
};

Batch random_batch(const NetDesc& d) {
  Batch b{Tensor({d.batch, d.in_c, d.in_h, d.in_w}), std::vector<int32_t>(size_t(d.batch))};
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < b.images.size(); ++i) b.images[i] = nd(rng);
  for (auto& l : b.labels) l = static_cast<int32_t>(rng() % uint64_t(d.classes));
  return b;
}

// With S a power of two and every gradient in the normal range, the scaled backward is exactly S x
// the unscaled one in every op (each is linear in dY, fp32 and bf16 have no subnormal operands
// here), and the unscale pass gives the unscaled gradients bit for bit.
TEST(LossScaleNetwork, StaticPowerOfTwoScaleGivesTheUnscaledGradientsExactly) {
  const NetDesc d = tiny_net();
  const ParamSet params = init_params(d, 7);
  const Batch b = random_batch(d);
  for (Format f : {Format::fp32, Format::bf16}) {
    Spec spec = test::test_spec(32, f);
    spec.array.rows = spec.array.cols = 8;
    const ExecContext ctx{&spec, nullptr, ""};
    Network plain(d, params, Lowering::bp_im2col), scaled(d, params, Lowering::bp_im2col);
    plain.forward(ctx, b.images, b.labels);
    plain.backward(ctx);
    scaled.forward(ctx, b.images, b.labels);
    scaled.backward(ctx, 1024.0f);
    int differ_before = 0;
    for (const auto& [name, g] : plain.grads()) differ_before += !test::bitwise_equal(g, scaled.grads().at(name));
    EXPECT_GT(differ_before, 0) << "the scale did not reach the gradients";
    ASSERT_TRUE(scaled.unscale_grads(ctx, 1.0f / 1024));
    for (const auto& [name, g] : plain.grads())
      EXPECT_TRUE(test::bitwise_equal(g, scaled.grads().at(name))) << name << " " << to_string(f);
  }
}

// Loss scaling adds one grad_unscale record per parameter, in the update phase, and nothing else
// changes: the other records (the scale is fused into loss_bwd) are the same with and without it.
TEST(LossScaleNetwork, CostRecordsHaveTheUnscalePassOnlyWhenOn) {
  const NetDesc d = tiny_net();
  const ParamSet params = init_params(d, 7);
  const Batch b = random_batch(d);
  const Spec spec = test::test_spec(32, Format::fp16);
  Ledger off(spec), on(spec);
  {
    Network net(d, params, Lowering::bp_im2col);
    const ExecContext ctx{&spec, &off, ""};
    net.forward(ctx, b.images, b.labels);
    net.backward(ctx);
    net.sgd_step(ctx, {});
  }
  {
    Network net(d, params, Lowering::bp_im2col);
    const ExecContext ctx{&spec, &on, ""};
    net.forward(ctx, b.images, b.labels);
    net.backward(ctx, 65536.0f);
    ASSERT_TRUE(net.unscale_grads(ctx, 1.0f / 65536));
    net.sgd_step(ctx, {});
  }
  size_t unscale = 0;
  for (const auto& r : off.records()) EXPECT_NE(r.tag.kind, OpKind::grad_unscale);
  for (const auto& r : on.records()) unscale += r.tag.kind == OpKind::grad_unscale;
  EXPECT_EQ(unscale, params.size() - 2 * size_t(std::count_if(params.begin(), params.end(), [](const auto& e) {
                       return e.first.ends_with(".running_mean");
                     })));
  ASSERT_EQ(on.records().size(), off.records().size() + unscale);
  auto kinds_off = off.by_kind(), kinds_on = on.by_kind();
  EXPECT_EQ(kinds_on.count("grad_unscale"), 1u);
  EXPECT_GT(kinds_on["grad_unscale"].get("cycles.total"), 0);
  for (const auto& [k, s] : kinds_off) EXPECT_EQ(s.values(), kinds_on[k].values()) << k;
  EXPECT_EQ(on.by_phase()["update"].get("cycles.total"),
            off.by_phase()["update"].get("cycles.total") + kinds_on["grad_unscale"].get("cycles.total"));
}

// ---- training ----

using test::have_fmnist;

std::string fp16_spec(const test::TempDir& t) {
  const std::string p = t / "fp16.toml";
  std::ofstream(p) << "base = \"tpu-like\"\n[array]\nformat = \"fp16\"\n";
  return p;
}

TrainConfig small(const std::string& out, const std::string& spec) {
  TrainConfig c = test::small_train_config(out);
  c.epochs = 1;  // 16 steps
  c.spec = spec;
  return c;
}

std::vector<float> group(const std::string& dir, const std::string& g, bool trainable_only) {
  h5::File f = h5::File::open(dir + "/checkpoint.h5");
  std::vector<float> all;
  for (const auto& name : f.list(g)) {
    if (trainable_only && name.find(".running_") != std::string::npos) continue;
    auto v = f.read<float>(g + "/" + name);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// An Inf in a gradient (injected after step 2's backward): step 2 changes neither weights nor
// momentum, the scale halves, the report says so, and the costed step still has its update.
TEST(LossScaleTrain, InjectedInfSkipsTheStepAndBacksOff) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string spec = fp16_spec(t);
  TrainConfig one = small(t / "one", spec);
  one.steps = 1;
  const TrainResult r1 = train(one);
  TrainConfig two = small(t / "two", spec);
  two.steps = 2;
  two.inject_inf_grad_at_step = 2;
  const TrainResult r2 = train(two);
  EXPECT_TRUE(same_bits(group(one.out_dir, "params", true), group(two.out_dir, "params", true)));
  EXPECT_TRUE(same_bits(group(one.out_dir, "velocity", false), group(two.out_dir, "velocity", false)));
  const auto& ls = r2.report.at("loss_scale");
  EXPECT_EQ(ls["mode"], "dynamic:65536,interval=2000");  // auto on an fp16 spec
  EXPECT_EQ(ls["skipped_steps"], 1);
  EXPECT_EQ(ls["skipped_at"], nlohmann::json::array({2}));
  EXPECT_EQ(ls["final_scale"], 32768.0);
  EXPECT_EQ(ls["backoffs"], 1);
  // Cost: 2 steps less one update.
  const auto& k1 = r1.report["by_kind"], &k2 = r2.report["by_kind"];
  EXPECT_EQ(k2["sgd_update"]["cycles"].get<double>(), k1["sgd_update"]["cycles"].get<double>());
  EXPECT_EQ(k2["grad_unscale"]["cycles"].get<double>(), 2 * k1["grad_unscale"]["cycles"].get<double>());
  EXPECT_DOUBLE_EQ(r2.report["cycles"].get<double>(),
                   2 * r1.report["cycles"].get<double>() - k1["sgd_update"]["cycles"].get<double>());
  // A format-3 checkpoint with the scaler's state.
  h5::File f = h5::File::open(two.out_dir + "/checkpoint.h5");
  EXPECT_EQ(f.attr_string("/", "format"), "systrain-checkpoint-3");
  EXPECT_EQ(f.read<double>("loss_scaler"), (std::vector<double>{32768, 0, 1}));
}

// A real overflow, nothing injected: on an fp16 array a gradient x 2^22 exceeds 65504 and becomes
// Inf on some steps of this run (measured: steps 1, 4, 7 of 8). The dynamic scaler backs off and
// skips them, and grows after every 2 clean steps. N steps + resume M == N+M bit for bit (weights, momentum, scaler,
// series), across backoffs and growths.
TEST(LossScaleTrain, RealOverflowBacksOffAndResumeIsBitIdentical) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  const std::string spec = fp16_spec(t);
  auto cfg = [&](const std::string& dir, int64_t steps) {
    TrainConfig c = small(t / dir, spec);
    c.loss_scale = "dynamic:0x1p22";
    c.loss_scale_growth_interval = 2;
    c.steps = steps;
    return c;
  };
  const TrainResult whole = train(cfg("whole", 8));
  const auto& ls = whole.report.at("loss_scale");
  const int64_t skipped = ls["skipped_steps"].get<int64_t>();
  EXPECT_GE(skipped, 1) << ls.dump();
  EXPECT_LT(ls["min_scale"].get<double>(), 0x1p22);
  EXPECT_GE(ls["growths"].get<int64_t>(), 1) << ls.dump();
  EXPECT_EQ(ls["backoffs"].get<int64_t>(), skipped);
  EXPECT_TRUE(std::isfinite(whole.final_loss));

  train(cfg("a", 4));
  TrainConfig b = cfg("b", 4);
  b.resume = t / "a" + "/checkpoint.h5";
  train(b);
  for (const char* g : {"params", "velocity"})
    EXPECT_TRUE(same_bits(group(t / "whole", g, false), group(t / "b", g, false))) << g;
  h5::File fw = h5::File::open(t / "whole" + "/checkpoint.h5"), fb = h5::File::open(t / "b" + "/checkpoint.h5");
  EXPECT_EQ(fw.read<double>("loss_scaler"), fb.read<double>("loss_scaler"));
  // The series, wall-clock column aside (cycles and energy count the skipped updates out).
  auto sw = fw.read<double>("series"), sb = fb.read<double>("series");
  ASSERT_EQ(sw.size(), sb.size());
  for (size_t i = 0; i < sw.size(); ++i)
    if (i % 8 != 7) {
      EXPECT_EQ(sw[i], sb[i]) << "series element " << i;
    }

  // Resuming it without loss scaling (or a run without it with scaling) is refused.
  TrainConfig c = cfg("c", 1);
  c.resume = t / "a" + "/checkpoint.h5";
  c.loss_scale = "none";
  EXPECT_THROW(train(c), UserError);
  c.loss_scale = "dynamic:0x1p22";
  c.loss_scale_growth_interval = 3;
  EXPECT_THROW(train(c), UserError);
}

// Off (the default for bf16): no unscale work, no loss_scale in the report, a format-2 checkpoint.
// (The golden losses of test_train and the cost tests keep the numerics and costs of today.)
TEST(LossScaleTrain, OffByDefaultForBf16LeavesNoTrace) {
  if (!have_fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir t;
  TrainConfig c = small(t / "off", "tpu-like");
  c.steps = 2;
  const TrainResult r = train(c);
  EXPECT_FALSE(r.report.contains("loss_scale"));
  EXPECT_FALSE(r.report["by_kind"].contains("grad_unscale"));
  h5::File f = h5::File::open(c.out_dir + "/checkpoint.h5");
  EXPECT_EQ(f.attr_string("/", "format"), "systrain-checkpoint-2");
  EXPECT_FALSE(f.exists("loss_scaler"));
  // The same run with --loss-scale none spelled out is the same run.
  TrainConfig n = small(t / "none", "tpu-like");
  n.steps = 2;
  n.loss_scale = "none";
  const TrainResult rn = train(n);
  EXPECT_TRUE(same_bits(group(c.out_dir, "params", false), group(n.out_dir, "params", false)));
  EXPECT_EQ(r.report["cycles"], rn.report["cycles"]);
}

// ---- the CLI ----

TEST(LossScaleCli, BadValuesAreOneLineAndExit2) {
  NEED_BIN();
  test::TempDir t;
  for (const char* v : {"static:0", "static:-1", "static:nan", "dynamic:3", "dynamic:abc", "sometimes"}) {
    const auto r = test::run_cli("train --quiet --no-eval --limit-train 64 --batch 16 --out '" + t / "run" +
                                 "' --loss-scale '" + v + "'");
    EXPECT_TRUE(test::is_user_error(r, "--loss-scale")) << v;
  }
  const auto g = test::run_cli("train --quiet --limit-train 64 --out '" + t / "run" + "' --loss-scale-growth-interval 0");
  EXPECT_TRUE(test::is_user_error(g, "--loss-scale-growth-interval"));
  EXPECT_FALSE(fs::exists(t / "run"));
  for (const char* v : {"3", "0", "0.5", "nan", "1e30"})
    EXPECT_TRUE(test::is_user_error(test::run_cli(std::string("gradcheck --model resnet8 --width 0.25 --input 8 "
                                                              "--batch 2 --loss-scale ") + v),
                                    "--loss-scale"))
        << v;
}

}  // namespace
