// Whole-network gradient check: the emulated ResNet against the oneDNN reference network.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kernels/lowering.h"
#include "src/base/error.h"
#include "src/io/h5.h"
#include "src/train/gradcheck.h"

using namespace st;

namespace {
GradcheckResult run(const std::string& model, double width, const std::string& format, Lowering l) {
  GradcheckConfig c;
  c.model = model;
  c.width = width;
  c.format = format;
  c.lowering = std::string(to_string(l));
  c.batch = 8;  // BN over a batch of 2 at 1x1 spatial size is too ill-conditioned to compare
  return gradcheck(c);
}
}  // namespace

TEST(Gradcheck, ResNet8PassesForEveryLoweringInFp32Bf16Fp16) {
  for (const char* f : {"fp32", "bf16", "fp16"})
    for (Lowering l : kAllLowerings) {
      GradcheckResult r = run("resnet8", 1.0, f, l);
      EXPECT_TRUE(r.passed) << f << " " << to_string(l) << " max rel error " << r.max_rel_error;
      EXPECT_LE(r.max_rel_error, format_tolerance(*parse_format(f)));
      EXPECT_EQ(r.errors.size(), 60u);
    }
}

TEST(Gradcheck, NarrowResNet18PassesInFp32ForEveryLowering) {
  for (Lowering l : kAllLowerings) {
    GradcheckResult r = run("resnet18", 0.125, "fp32", l);
    EXPECT_TRUE(r.passed) << to_string(l) << " max rel error " << r.max_rel_error;
    EXPECT_EQ(r.rule, "direct");
    EXPECT_LE(r.max_rel_error, 1e-4);
  }
}

// bf16 on the tpu-like spec (WS): the array's chunked accumulation order differs from oneDNN's and
// the difference grows chaotically through 20 layers of bf16 rounding and small-batch BN (about 0.2
// apart), so the network passes by the order-matched rule: run with OS, the order oneDNN uses, every
// tensor is within the bf16 tolerance, and WS moves the gradients less than bf16 itself does.
TEST(Gradcheck, NarrowResNet18PassesInBf16ForEveryLowering) {
  for (Lowering l : kAllLowerings) {
    GradcheckResult r = run("resnet18", 0.125, "bf16", l);
    EXPECT_TRUE(r.passed) << to_string(l) << " max rel error " << r.max_rel_error << " order-matched "
                          << r.order_matched_max_rel_error;
    EXPECT_GE(r.order_matched_max_rel_error, 0);
    EXPECT_LE(r.order_matched_max_rel_error, format_tolerance(Format::bf16));
    EXPECT_LT(r.max_rel_error, r.format_error);
  }
}

// The order-matched rule cannot rescue a wrong network: a tolerance no run can meet fails.
TEST(Gradcheck, OrderMatchedRuleStillFailsBeyondTolerance) {
  GradcheckConfig c;
  c.model = "resnet8";
  c.format = "bf16";
  c.tolerance = 1e-9;
  const GradcheckResult r = gradcheck(c);
  EXPECT_FALSE(r.passed);
  EXPECT_GT(r.order_matched_max_rel_error, 1e-9);
}

TEST(Gradcheck, DumpIsReadableAndComplete) {
  GradcheckConfig c;
  c.dump = (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_gradcheck_dump.h5")).string();
  GradcheckResult r = gradcheck(c);
  h5::File f = h5::File::open(c.dump);
  EXPECT_EQ(f.dims("input/images"), (h5::Dims{8, 1, 16, 16}));
  EXPECT_EQ(f.read<int32_t>("input/labels").size(), 8u);
  EXPECT_NEAR(f.read_scalar<double>("loss"), r.loss, 0);
  EXPECT_EQ(f.list("grads").size(), f.list("reference_grads").size());
  EXPECT_GT(f.list("params").size(), f.list("grads").size());  // params include BN running stats
  auto names = f.read_strings("network/names");
  EXPECT_EQ(names.front(), "input");
  EXPECT_EQ(f.dims("network/windows"), (h5::Dims{static_cast<int64_t>(names.size()), 8}));
}

TEST(Gradcheck, BadArgumentsAreUserErrors) {
  GradcheckConfig c;
  c.format = "int8";
  EXPECT_THROW(gradcheck(c), UserError);
  c = GradcheckConfig{};
  c.lowering = "implicit";
  EXPECT_THROW(gradcheck(c), UserError);
  c = GradcheckConfig{};
  c.model = "vgg16";
  EXPECT_THROW(gradcheck(c), UserError);
}
