// The same-order reference network (src/train/plain_net.h) against the emulator: loss, every
// parameter gradient and every activation gradient equal BIT FOR BIT, for every format, dataflow and
// lowering, on narrow ResNet-8 and ResNet-18 with small arrays. And the tests that show the
// comparison can fail: the reference in another order (rows, lanes, MAC) differs.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kernels/systolic.h"
#include "src/spec/spec_toml.h"
#include "src/train/gradcheck.h"
#include "src/train/network.h"
#include "src/train/param_set.h"
#include "src/train/plain_net.h"

using namespace st;

namespace {

NetDesc narrow(const std::string& model, int64_t batch) {
  ResNetOptions o;
  o.name = model;
  o.batch = batch;
  const bool imagenet = model == "resnet18";
  o.width = imagenet ? 0.125 : 0.5;
  o.in_c = imagenet ? 3 : 1;
  o.in_h = o.in_w = imagenet ? 32 : 8;
  return build_resnet(o);
}

Spec small_array(Format f, Dataflow df, int rows, int cols) {
  Spec s = load_spec("tpu-like");
  s.array.format = f;
  s.array.dataflow = df;
  s.array.rows = rows;
  s.array.cols = cols;
  s.vector.lanes = 4;  // fewer lanes than a BN channel has elements, so the lane order matters
  return s;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), size_t(a.size()) * sizeof(float)) == 0;
}

// Every tensor of the two networks compared bitwise; returns the names that differ ("" when none).
std::string differences(const NetDesc& d, const Network& emu, float emu_loss, const PlainNet& ref, float ref_loss) {
  std::string out;
  if (std::memcmp(&emu_loss, &ref_loss, sizeof(float)) != 0) out += "loss ";
  for (const auto& [name, g] : ref.grads())
    if (!same_bits(emu.grads().at(name), g)) out += name + " ";
  for (const auto& n : d.nodes) {
    if (n.kind == NodeKind::input || n.kind == NodeKind::loss) continue;
    if (!same_bits(emu.activation(n.name), ref.activation(n.name))) out += "act:" + n.name + " ";
    if (!same_bits(emu.activation_grad(n.name), ref.activation_grad(n.name))) out += "d:" + n.name + " ";
  }
  return out;
}

struct Outcome {
  std::string diff;
  int64_t gemms = 0;
};

Outcome compare(const NetDesc& d, const Spec& emu_spec, const Spec& ref_spec, Lowering l, PlainGemm g, uint64_t seed = 3) {
  const ParamSet params = init_params(d, seed);
  Tensor images;
  std::vector<int32_t> labels;
  gradcheck_batch(d, seed, images, labels);
  Network emu(d, params, l);
  const ExecContext ctx{&emu_spec, nullptr, ""};
  emu.zero_grads();
  const float emu_loss = emu.forward(ctx, images, labels);
  emu.backward(ctx);
  PlainNet ref(d, params, ref_spec, l, g);
  const float ref_loss = ref.forward_backward(images, labels);
  return {differences(d, emu, emu_loss, ref, ref_loss), ref.gemms_run()};
}

}  // namespace

// The plain same-order GEMM is the PE-level reference's arithmetic in the PE-level reference's order.
TEST(PlainGemm, EqualsThePeLevelReferenceBitwise) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-2, 2);
  int cases = 0;
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is})
      for (bool fused : {true, false})
        for (Subnormals sub : {Subnormals::keep, Subnormals::flush}) {
          ArrayConfig cfg{3, 4, df, f, fused, sub};
          const int64_t M = 5, N = 6, K = 11;  // K: three chunks of 3 rows and a partial one
          std::vector<float> A(M * K), B(K * N), c1(M * N), c2(M * N);
          for (auto& v : A) v = u(rng);
          for (auto& v : B) v = u(rng);
          A[3] = 0.0f, A[7] = -0.0f, B[5] = 1e-30f, A[8] = 1e-20f;  // zeros and underflowing products
          plain_gemm(cfg, M, N, K, A.data(), B.data(), c1.data());
          systolic_gemm_reference(cfg, GemmShape{M, N, K}, MatView{A.data(), K, false}, MatView{B.data(), N, false},
                                  c2.data(), N);
          EXPECT_EQ(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)), 0)
              << to_string(f) << " " << to_string(df) << " fused " << fused << " flush " << (sub == Subnormals::flush);
          ++cases;
        }
  EXPECT_EQ(cases, 36);
}

// The heart of `gradcheck --same-order`: narrow ResNet-8, every format x dataflow x lowering, a 4x4
// array (the 3x3 convolutions reduce over 36..72 k's: many WS/IS chunks), 4 vector lanes.
TEST(SameOrderNetwork, ResNet8BitwiseForEveryFormatDataflowAndLowering) {
  const NetDesc d = narrow("resnet8", 2);
  int runs = 0;
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is})
      for (Lowering l : kAllLowerings) {
        const Spec s = small_array(f, df, 4, 4);
        const Outcome o = compare(d, s, s, l, PlainGemm::loop);
        EXPECT_EQ(o.diff, "") << to_string(f) << " " << to_string(df) << " " << to_string(l);
        EXPECT_GT(o.gemms, 20);
        ++runs;
      }
  EXPECT_EQ(runs, 27);
}

// Narrow ResNet-18 (stem 7x7 stride 2, max pool, strided 3x3 and 1x1 shortcuts, 1x1 spatial at the
// end), every format x dataflow x lowering, an 8x4 array.
TEST(SameOrderNetwork, NarrowResNet18BitwiseForEveryFormatDataflowAndLowering) {
  const NetDesc d = narrow("resnet18", 2);
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is})
      for (Lowering l : kAllLowerings) {
        const Spec s = small_array(f, df, 8, 4);
        EXPECT_EQ(compare(d, s, s, l, PlainGemm::loop).diff, "") << to_string(f) << " " << to_string(df) << " " << to_string(l);
      }
}

// The same with the cycle-stepped PE-level reference as the GEMM, the unfused MAC, flushed
// subnormals and the option-A shortcut (ResNet-8 at batch 2 on a 4x4 array: small enough to step).
TEST(SameOrderNetwork, ResNet8BitwiseWithThePeLevelArrayAndEveryMacMode) {
  ResNetOptions o;
  o.name = "resnet8";
  o.batch = 2;
  o.width = 0.5;
  o.in_h = o.in_w = 8;
  o.shortcut = "a";
  const NetDesc d = build_resnet(o);
  for (Format f : {Format::fp32, Format::bf16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws})
      for (bool fused : {true, false}) {
        Spec s = small_array(f, df, 4, 4);
        s.array.fused_mac = fused;
        s.array.subnormals = fused ? Subnormals::keep : Subnormals::flush;
        EXPECT_EQ(compare(d, s, s, Lowering::bp_im2col, PlainGemm::pe_level).diff, "")
            << to_string(f) << " " << to_string(df) << " fused " << fused;
      }
}

// The check can fail: the reference run in a different order of accumulation (array rows, lanes,
// MAC) or with another lowering's chunking differs from the emulator somewhere. Each of these is a
// difference of rounding only, the kind a sloppy comparison would call equal.
TEST(SameOrderNetwork, DetectsADifferentOrderOfAccumulation) {
  const NetDesc d = narrow("resnet8", 2);
  const Spec s = small_array(Format::bf16, Dataflow::ws, 4, 4);
  Spec rows = s;
  rows.array.rows = 8;
  EXPECT_NE(compare(d, s, rows, Lowering::bp_im2col, PlainGemm::loop).diff, "");
  Spec lanes = s;
  lanes.vector.lanes = 8;
  EXPECT_NE(compare(d, s, lanes, Lowering::bp_im2col, PlainGemm::loop).diff, "");
  Spec fp32 = small_array(Format::fp32, Dataflow::ws, 4, 4);
  Spec unfused = fp32;
  unfused.array.fused_mac = false;
  EXPECT_NE(compare(d, fp32, unfused, Lowering::bp_im2col, PlainGemm::loop).diff, "");
  Spec os = fp32;
  os.array.dataflow = Dataflow::os;
  EXPECT_NE(compare(d, fp32, os, Lowering::explicit_im2col, PlainGemm::loop).diff, "");
}

// The channel-tap mapping (kernels/lowering.h "Mappings"): narrow ResNet-8 (every format x dataflow
// x lowering) and ResNet-18 (every format x dataflow, the lowerings spread over them), bitwise; the PE-level array on ResNet-8 (WS, IS: one fold per tap and
// channel chunk); and the check fails when the reference runs im2col's order against the emulator's
// channel-tap (and the other way round).
TEST(SameOrderNetwork, ChannelTapBitwiseForEveryFormatDataflowAndLowering) {
  const NetDesc r8 = narrow("resnet8", 2), r18 = narrow("resnet18", 2);
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is})
      for (Lowering l : kAllLowerings) {
        Spec s = small_array(f, df, 3, 4);  // 3 rows: ResNet-8's 4- and 8-channel taps take 2-3 chunks
        s.array.conv_mapping = ConvMapping::channel_tap;
        EXPECT_EQ(compare(r8, s, s, l, PlainGemm::loop).diff, "") << "resnet8 " << to_string(f) << " " << to_string(df) << " " << to_string(l);
        // ResNet-18 (stem, max pool, strided 3x3 and 1x1): one lowering per format x dataflow, each
        // lowering three times (the CI budget).
        if (int(l) != (int(f) + int(df)) % 3) continue;
        Spec s18 = s;
        s18.array.rows = 8;
        EXPECT_EQ(compare(r18, s18, s18, l, PlainGemm::loop).diff, "") << "resnet18 " << to_string(f) << " " << to_string(df) << " " << to_string(l);
      }
  for (Dataflow df : {Dataflow::ws, Dataflow::is}) {
    Spec s = small_array(Format::bf16, df, 3, 4);
    s.array.conv_mapping = ConvMapping::channel_tap;
    EXPECT_EQ(compare(r8, s, s, Lowering::bp_im2col, PlainGemm::pe_level).diff, "") << to_string(df);
  }
  for (Dataflow df : {Dataflow::os, Dataflow::ws}) {
    Spec im = small_array(Format::bf16, df, 3, 4), ct = im;
    ct.array.conv_mapping = ConvMapping::channel_tap;
    EXPECT_NE(compare(r8, ct, im, Lowering::bp_im2col, PlainGemm::loop).diff, "") << to_string(df);
    EXPECT_NE(compare(r8, im, ct, Lowering::bp_im2col, PlainGemm::loop).diff, "") << to_string(df);
  }
}

TEST(SameOrderNetwork, RejectsInt8) {
  const NetDesc d = narrow("resnet8", 2);
  Spec s = small_array(Format::int8, Dataflow::ws, 4, 4);
  EXPECT_THROW(PlainNet(d, init_params(d, 1), s, Lowering::bp_im2col), UserError);
}
