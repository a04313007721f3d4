// Kinks: flipped ReLU / max-pool decisions between two runs, their bound, and the reference rerun
// with transplanted decisions (src/train/kinks.h, OneDnnNet::transplant, gradcheck).
#include <gtest/gtest.h>

#include <cmath>

#include "src/train/gradcheck.h"
#include "src/train/kinks.h"
#include "src/train/onednn_net.h"
#include "src/train/param_set.h"

using namespace st;

namespace {

NetDesc tiny_net() {
  ResNetOptions o;
  o.name = "resnet8";
  o.batch = 2;
  o.width = 0.5;
  o.in_h = o.in_w = 8;
  return build_resnet(o);
}

int first_node(const NetDesc& d, NodeKind k) {
  for (size_t i = 0; i < d.nodes.size(); ++i)
    if (d.nodes[i].kind == k) return int(i);
  return -1;
}

double rel(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

// A constructed flip: two runs whose ReLU input differs in one element across zero. Within the bound
// when both values are tiny against the tensor's scale, beyond it when one is not.
TEST(Kinks, FlipsAreFoundAndHeldToTheBound) {
  const NetDesc d = tiny_net();
  const int relu = first_node(d, NodeKind::relu), in = d.nodes[relu].inputs[0];
  std::vector<Tensor> a(d.nodes.size()), b(d.nodes.size());
  for (size_t i = 0; i < d.nodes.size(); ++i) {
    const Shape4 s = d.nodes[i].out;
    a[i] = Tensor({s.n, s.c, s.h, s.w});
    for (int64_t j = 0; j < a[i].size(); ++j) a[i][j] = float((j % 7) - 3) + 0.5f;  // rms ~2, never 0
    b[i] = a[i];
  }
  auto act_a = [&](int id) -> const Tensor& { return a[size_t(id)]; };
  auto act_b = [&](int id) -> const Tensor& { return b[size_t(id)]; };
  a[in][5] = 1e-7f, b[in][5] = -1e-7f;  // a kink: both within 1e-4 x rms of zero
  KinkReport r = compare_decisions(d, decisions_of(d, act_a), decisions_of(d, act_b), act_a, act_b, 1e-4);
  EXPECT_EQ(r.relu_flips, 1);
  EXPECT_EQ(r.pool_flips, 0);
  EXPECT_EQ(r.beyond_bound, 0);
  ASSERT_EQ(r.kinks.size(), 1u);
  EXPECT_EQ(r.kinks[0].index, 5);
  EXPECT_EQ(r.kinks[0].node, d.nodes[relu].name);
  EXPECT_TRUE(r.kinks[0].within);
  a[in][9] = 0.75f, b[in][9] = -0.5f;  // a bug: a decision flipped far from zero
  r = compare_decisions(d, decisions_of(d, act_a), decisions_of(d, act_b), act_a, act_b, 1e-4);
  EXPECT_EQ(r.relu_flips, 2);
  EXPECT_EQ(r.beyond_bound, 1);
}

// Transplanting a network's own decisions changes nothing; transplanting one flipped decision changes
// that ReLU output element (and only that one) exactly as the mask says.
TEST(Kinks, TransplantedDecisionsDriveTheReference) {
  const NetDesc d = tiny_net();
  const ParamSet params = init_params(d, 4);
  Tensor images;
  std::vector<int32_t> labels;
  gradcheck_batch(d, 4, images, labels);
  OneDnnNet ref(d, params);
  ref.forward_backward(images, labels);
  const ParamSet own = ref.grads();
  const ForwardDecisions dec = decisions_of(d, [&](int id) -> const Tensor& { return ref.activation(id); });
  ref.transplant(&dec);
  ref.forward_backward(images, labels);
  for (const auto& [name, g] : own) EXPECT_LE(rel(ref.grads().at(name), g), 1e-6) << name;

  const int relu = first_node(d, NodeKind::relu);
  const Tensor x = ref.activation(d.nodes[relu].inputs[0]);
  int64_t neg = 0;
  while (neg < x.size() && !(x[neg] < -0.1f)) ++neg;
  ASSERT_LT(neg, x.size());
  ForwardDecisions flipped = dec;
  flipped.relu[relu][neg] = 1;
  ref.transplant(&flipped);
  ref.forward_backward(images, labels);
  const Tensor& y = ref.activation(relu);
  for (int64_t i = 0; i < y.size(); ++i)
    EXPECT_EQ(y[i], i == neg ? x[i] : (x[i] > 0 ? x[i] : 0.0f)) << i;
  ForwardDecisions wrong_size = dec;
  wrong_size.relu[relu].pop_back();
  EXPECT_THROW(ref.transplant(&wrong_size), UserError);
}

// The kink the issue measured: ResNet-20, fp32, batch 4, seed 1. The spec's WS run flips one ReLU
// decision against oneDNN (2.0e-3 before, within the bound); with the decision transplanted every
// tensor is back at the fp32 level (3.4e-6). The judged OS run flips none.
TEST(Kinks, RealKinkOfResNet20IsFoundBoundedAndTransplanted) {
  GradcheckConfig c;
  c.model = "resnet20";
  c.format = "fp32";
  c.batch = 4;
  c.seed = 1;
  const GradcheckResult r = gradcheck(c);
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.kinks.flips(), 0);
  EXPECT_EQ(r.spec_order_flips, 1);
  EXPECT_EQ(r.spec_order_kinks.beyond_bound, 0);
  EXPECT_GT(r.spec_order_max_rel_error, 1e-3);
  EXPECT_GT(r.spec_order_transplanted_max_rel_error, 0);
  EXPECT_LT(r.spec_order_transplanted_max_rel_error, 1e-5);
}

// A wrong mask far from zero (as a bug would leave) is not a kink: gradcheck fails on it.
TEST(Kinks, WrongDecisionFarFromZeroFailsGradcheck) {
  GradcheckConfig c;
  c.model = "resnet8";
  c.format = "fp32";
  c.inject_wrong_decision = true;
  const GradcheckResult r = gradcheck(c);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.kinks.relu_flips, 1);
  EXPECT_EQ(r.kinks.beyond_bound, 1);
  ASSERT_EQ(r.kinks.kinks.size(), 1u);
  EXPECT_FALSE(r.kinks.kinks[0].within);
  GradcheckConfig clean = c;
  clean.inject_wrong_decision = false;
  EXPECT_TRUE(gradcheck(clean).passed);
}
