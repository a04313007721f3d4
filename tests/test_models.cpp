// Network descriptions: shapes and parameter counts of the published architectures.
#include <gtest/gtest.h>

#include "models/netdesc.h"
#include "src/base/error.h"

using namespace st;

namespace {
int count(const NetDesc& d, NodeKind k) {
  int c = 0;
  for (const auto& n : d.nodes) c += n.kind == k;
  return c;
}
}  // namespace

TEST(ResNet, CifarResNet20HasThePublishedShape) {
  ResNetOptions o;
  o.name = "resnet20";
  o.in_c = 3;
  o.in_h = o.in_w = 32;
  o.batch = 2;
  o.shortcut = "a";
  NetDesc d = build_resnet(o);
  EXPECT_EQ(count(d, NodeKind::conv), 19);  // 1 + 3 stages * 3 blocks * 2
  EXPECT_EQ(count(d, NodeKind::fc), 1);
  // He et al. report 0.27M parameters for ResNet-20 with option-A shortcuts.
  EXPECT_NEAR(static_cast<double>(d.parameter_count()), 0.27e6, 0.005e6);
  const NodeDesc& gap = d.nodes[d.nodes.size() - 3];
  EXPECT_EQ(gap.kind, NodeKind::gap);
  EXPECT_EQ(gap.out, (Shape4{2, 64, 1, 1}));
}

TEST(ResNet, FashionMnistInputKeepsSpatialPlan) {
  ResNetOptions o;  // 28x28x1 default
  NetDesc d = build_resnet(o);
  // stage 3 of a 28x28 input: 28 -> 14 -> 7
  const NodeDesc* last_conv = nullptr;
  for (const auto& n : d.nodes)
    if (n.kind == NodeKind::conv) last_conv = &n;
  ASSERT_NE(last_conv, nullptr);
  EXPECT_EQ(last_conv->out.h, 7);
  EXPECT_EQ(last_conv->out.c, 64);
}

TEST(ResNet, ImageNetParameterCounts) {
  // torchvision: resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032 (1000 classes).
  for (auto [name, params] : {std::pair{"resnet18", 11689512}, std::pair{"resnet34", 21797672},
                              std::pair{"resnet50", 25557032}}) {
    ResNetOptions o;
    o.name = name;
    o.in_c = 3;
    o.in_h = o.in_w = 224;
    o.batch = 1;
    o.classes = 1000;
    NetDesc d = build_resnet(o);
    EXPECT_EQ(d.parameter_count(), params) << name;
  }
}

TEST(ResNet, BadOptionsAreUserErrors) {
  ResNetOptions o;
  o.name = "resnet19";
  EXPECT_THROW(build_resnet(o), UserError);
  o.name = "resnet50";
  o.in_h = 0;
  EXPECT_THROW(build_resnet(o), UserError);
  o.in_h = 224;
  o.width = 0;
  EXPECT_THROW(build_resnet(o), UserError);
  o = ResNetOptions{};
  o.batch = 0;
  EXPECT_THROW(build_resnet(o), UserError);
}
