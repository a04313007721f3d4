// The projection (src/project/projection.h) against an executed training step: the records of one
// Network step with a Ledger sink equal the projected ones exactly, counter for counter, in order.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/cost/ledger.h"
#include "src/project/projection.h"
#include "src/spec/spec_toml.h"
#include "src/train/network.h"

using namespace st;

namespace {

NetDesc small_net(const std::string& name, const std::string& shortcut = "conv", int64_t hw = 12) {
  ResNetOptions o;
  o.name = name;
  o.width = name == "resnet8" ? 0.5 : 0.125;
  o.in_c = 1;
  o.in_h = o.in_w = hw;
  o.batch = 4;
  o.shortcut = shortcut;
  return build_resnet(o);
}

// ResNet-50 on one 3x224x224 image, 1000 classes.
NetDesc resnet50_224() {
  ResNetOptions o;
  o.name = "resnet50";
  o.batch = 1;
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.classes = 1000;
  return build_resnet(o);
}

// tpu-like, shrunk so that the small layers fold over the array and hit the buffers' limits.
Spec test_spec() {
  Spec s = load_spec("tpu-like");
  s.array.rows = 8;
  s.array.cols = 16;
  return s;
}

// The records of zero_grads + forward + backward + sgd_step on real tensors.
std::vector<StatsRecord> executed_step(const NetDesc& d, const Spec& spec, Lowering l) {
  Network net(d, init_params(d, 11), l);
  Tensor images({d.batch, d.in_c, d.in_h, d.in_w});
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < images.size(); ++i) images[i] = nd(rng);
  std::vector<int32_t> labels(static_cast<size_t>(d.batch));
  for (auto& y : labels) y = static_cast<int32_t>(rng() % d.classes);
  Ledger ledger(spec);
  const ExecContext ctx{&spec, &ledger, ""};
  net.zero_grads();
  net.forward(ctx, images, labels);
  net.backward(ctx);
  net.sgd_step(ctx, SgdParams{});
  return ledger.records();
}

void expect_same_records(const std::vector<StatsRecord>& got, const std::vector<StatsRecord>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(fmt::format("record {}: {} {} {}", i, want[i].tag.layer, to_string(want[i].tag.kind),
                             to_string(want[i].tag.phase)));
    EXPECT_EQ(got[i].tag.layer, want[i].tag.layer);
    EXPECT_EQ(got[i].tag.kind, want[i].tag.kind);
    EXPECT_EQ(got[i].tag.phase, want[i].tag.phase);
    EXPECT_EQ(got[i].stats.values(), want[i].stats.values());  // every counter, bit-exact doubles
  }
}

}  // namespace

TEST(Projection, EqualsExecutedTrainingStep) {
  const NetDesc d = small_net("resnet8");
  const Spec spec = test_spec();
  const auto want = executed_step(d, spec, Lowering::bp_im2col);
  ASSERT_GT(want.size(), 50u);
  expect_same_records(project(d, spec, Lowering::bp_im2col, StepMode::train), want);
}

TEST(Projection, EqualsExecutedStepZeroSkip) {
  const NetDesc d = small_net("resnet8");
  const Spec spec = test_spec();
  expect_same_records(project(d, spec, Lowering::zero_skip, StepMode::train),
                      executed_step(d, spec, Lowering::zero_skip));
}

TEST(Projection, EqualsExecutedStepFusedSpec) {
  const NetDesc d = small_net("resnet8");
  Spec spec = test_spec();
  spec.vector.fuse_with_conv = true;
  const auto got = project(d, spec, Lowering::explicit_im2col, StepMode::train);
  expect_same_records(got, executed_step(d, spec, Lowering::explicit_im2col));
  // Fusion must change something, or this test would not look at the producer_on_chip rule.
  const auto unfused = project(d, test_spec(), Lowering::explicit_im2col, StepMode::train);
  ASSERT_EQ(got.size(), unfused.size());
  bool differs = false;
  for (size_t i = 0; i < got.size(); ++i) differs |= got[i].stats.values() != unfused[i].stats.values();
  EXPECT_TRUE(differs);
}

TEST(Projection, EqualsExecutedStepOptionAShortcut) {
  const NetDesc d = small_net("resnet8", "a");
  const Spec spec = test_spec();
  expect_same_records(project(d, spec, Lowering::bp_im2col, StepMode::train),
                      executed_step(d, spec, Lowering::bp_im2col));
}

TEST(Projection, EqualsExecutedStepImageNetStyleWithMaxPool) {
  const NetDesc d = small_net("resnet18", "conv", 32);
  const Spec spec = test_spec();
  expect_same_records(project(d, spec, Lowering::bp_im2col, StepMode::train),
                      executed_step(d, spec, Lowering::bp_im2col));
}

TEST(Projection, InferenceIsTheForwardOnly) {
  const NetDesc d = small_net("resnet8");
  const auto recs = project(d, test_spec(), Lowering::bp_im2col, StepMode::infer);
  ASSERT_FALSE(recs.empty());
  for (const auto& r : recs) EXPECT_EQ(r.tag.phase, Phase::forward) << r.tag.layer;
}

// --fold-bn: every BN after a conv becomes one fused pass (bias, and the ReLU after it) with no DRAM
// traffic but its bias; the ReLU records after those BNs disappear; the convs are unchanged; the
// ReLUs after the residual adds stay.
TEST(Projection, FoldBnFusesBiasAndReluIntoTheConvOutput) {
  const NetDesc d = resnet50_224();
  const Spec spec = load_spec("tpu-v3");
  const auto plain = project(d, spec, Lowering::bp_im2col, StepMode::infer);
  const auto folded = project(d, spec, Lowering::bp_im2col, StepMode::infer_fold_bn);
  auto count = [](const std::vector<StatsRecord>& v, OpKind k) {
    int n = 0;
    for (const auto& r : v) n += r.tag.kind == k;
    return n;
  };
  int bns = 0, relus_after_bn = 0, relus_after_add = 0;
  for (const NodeDesc& n : d.nodes) {
    bns += n.kind == NodeKind::bn;
    if (n.kind == NodeKind::relu) (d.node(n.inputs[0]).kind == NodeKind::bn ? relus_after_bn : relus_after_add)++;
  }
  EXPECT_EQ(bns, 53);   // ResNet-50: a BN after each of its 53 convs
  EXPECT_EQ(relus_after_add, 16);
  EXPECT_EQ(count(plain, OpKind::bn_fwd), bns);
  EXPECT_EQ(count(folded, OpKind::bn_fwd), bns);
  EXPECT_EQ(count(plain, OpKind::relu_fwd), relus_after_bn + relus_after_add);
  EXPECT_EQ(count(folded, OpKind::relu_fwd), relus_after_add);
  Stats conv_plain, conv_folded;
  for (const auto& r : plain) if (r.tag.kind == OpKind::conv_fwd) conv_plain += r.stats;
  for (const auto& r : folded) {
    if (r.tag.kind == OpKind::conv_fwd) conv_folded += r.stats;
    if (r.tag.kind != OpKind::bn_fwd) continue;
    // Only the folded bias (fp32, one per channel) comes from DRAM; nothing is written.
    EXPECT_EQ(r.stats.get("bytes.dram.write.vector"), 0) << r.tag.layer;
    EXPECT_LE(r.stats.get("bytes.dram.read.vector"), 4 * 2048) << r.tag.layer;
  }
  EXPECT_EQ(conv_plain.values(), conv_folded.values());
  Ledger a(spec), b(spec);
  project_into(a, d, Lowering::bp_im2col, StepMode::infer);
  project_into(b, d, Lowering::bp_im2col, StepMode::infer_fold_bn);
  // The folded BNs and the ReLUs fused into them write nothing (plain: each writes its output).
  std::map<std::string, int> id_of;
  for (size_t i = 0; i < d.nodes.size(); ++i) id_of[d.nodes[i].name] = int(i);
  double gone = 0;
  for (const auto& r : plain) {
    const NodeDesc& n = d.node(id_of.at(r.tag.layer));
    const bool after_bn = !n.inputs.empty() && d.node(n.inputs[0]).kind == NodeKind::bn;
    if (r.tag.kind == OpKind::bn_fwd || (r.tag.kind == OpKind::relu_fwd && after_bn))
      gone += r.stats.get("bytes.dram.write.vector");
  }
  EXPECT_GT(gone, 0);
  EXPECT_NEAR(a.total().get("bytes.dram.write.vector") - b.total().get("bytes.dram.write.vector"), gone, 1.0);
  EXPECT_LT(b.non_conv().get("cycles.total"), a.non_conv().get("cycles.total"));
}

TEST(Projection, ResNet50At224IsFast) {
  const NetDesc d = resnet50_224();
  Ledger ledger(load_spec("tpu-like"));
  const auto t0 = std::chrono::steady_clock::now();
  project_into(ledger, d, Lowering::bp_im2col, StepMode::train);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0);
  EXPECT_GT(ledger.total().get("cycles.total"), 0);
  EXPECT_GT(ledger.conv().get("cycles.total"), 0);
  EXPECT_GT(ledger.non_conv().get("cycles.total"), 0);
}

TEST(Projection, BadModelNameIsUserError) {
  ResNetOptions o;
  o.name = "resnet7";
  EXPECT_THROW(build_resnet(o), UserError);
}
