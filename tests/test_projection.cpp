// The projection (src/project/projection.h) against an executed training step: the records of one
// Network step with a Ledger sink equal the projected ones exactly, counter for counter, in order.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
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

TEST(Projection, ResNet50At224IsFast) {
  ResNetOptions o;
  o.name = "resnet50";
  o.batch = 1;
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.classes = 1000;
  const NetDesc d = build_resnet(o);
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
