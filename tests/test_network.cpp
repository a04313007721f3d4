// The emulated network against the oneDNN reference network: same weights, same batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "models/netdesc.h"
#include "src/train/network.h"
#include "src/train/onednn_net.h"

using namespace st;

namespace {

struct Batch {
  Tensor images;
  std::vector<int32_t> labels;
};

Batch random_batch(const NetDesc& d, uint64_t seed) {
  Batch b{Tensor({d.batch, d.in_c, d.in_h, d.in_w}), std::vector<int32_t>(d.batch)};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < b.images.size(); ++i) b.images[i] = nd(rng);
  for (auto& l : b.labels) l = static_cast<int32_t>(rng() % d.classes);
  return b;
}

double max_rel_error(const Tensor& got, const Tensor& want) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::fabs(double(got[i]) - want[i]));
    den = std::max(den, std::fabs(double(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// A narrow ResNet-8 on 12x12 images.
NetDesc small_resnet8(int64_t in_c, int64_t batch) {
  ResNetOptions o;
  o.name = "resnet8";
  o.width = 0.5;
  o.in_c = in_c;
  o.in_h = o.in_w = 12;
  o.batch = batch;
  return build_resnet(o);
}

}  // namespace

TEST(Network, Fp32MatchesOneDnnReference) {
  NetDesc d = small_resnet8(1, 4);
  ParamSet params = init_params(d, 7);
  Batch b = random_batch(d, 3);
  Spec spec;
  spec.array = ArrayConfig{8, 8, Dataflow::os, Format::fp32};
  ExecContext ctx{&spec, nullptr, ""};
  for (Lowering l : kAllLowerings) {
    Network net(d, params, l);
    float loss = net.forward(ctx, b.images, b.labels);
    net.backward(ctx);
    OneDnnNet ref(d, params);
    double ref_loss = ref.forward_backward(b.images, b.labels);
    EXPECT_NEAR(loss, ref_loss, 1e-5 * std::fabs(ref_loss)) << to_string(l);
    for (const auto& [name, g] : ref.grads()) {
      double e = max_rel_error(net.grads().at(name), g);
      EXPECT_LT(e, 1e-4) << name << " " << to_string(l);
    }
  }
}

// [array] count: the column folds are dealt over the arrays and K is never split, so a training
// step's loss and every gradient are bit for bit those of one array (bf16, WS, every lowering).
TEST(Network, SeveralArraysGiveTheSameBits) {
  NetDesc d = small_resnet8(3, 2);
  ParamSet params = init_params(d, 11);
  Batch b = random_batch(d, 5);
  for (Lowering l : kAllLowerings) {
    float loss1 = 0;
    std::map<std::string, Tensor> grads1;
    for (int count : {1, 2, 3}) {
      Spec spec;
      spec.array = ArrayConfig{4, 4, Dataflow::ws, Format::bf16};
      spec.array.count = count;
      ExecContext ctx{&spec, nullptr, ""};
      Network net(d, params, l);
      const float loss = net.forward(ctx, b.images, b.labels);
      net.backward(ctx);
      if (count == 1) {
        loss1 = loss;
        for (const auto& [name, g] : net.grads()) grads1.emplace(name, g);
        continue;
      }
      EXPECT_EQ(std::memcmp(&loss, &loss1, 4), 0) << to_string(l) << " count " << count;
      ASSERT_EQ(net.grads().size(), grads1.size());
      for (const auto& [name, g] : net.grads()) {
        const Tensor& want = grads1.at(name);
        ASSERT_EQ(g.size(), want.size()) << name;
        EXPECT_EQ(std::memcmp(g.data(), want.data(), size_t(g.size()) * 4), 0)
            << name << " " << to_string(l) << " count " << count;
      }
    }
  }
}
