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
    EXPECT_LE(r.max_rel_error, 1e-4);
    EXPECT_EQ(r.kinks.beyond_bound, 0);
  }
}

// bf16 on the tpu-like spec (WS): step 1 judges the OS run (oneDNN's order) against oneDNN, every
// tensor within the bf16 tolerance; the WS run's own distance is reported (the chunked order moves a
// deep bf16 network far: its order is proven bitwise by step 2, not by a distance).
TEST(Gradcheck, NarrowResNet18Bf16JudgesTheOsRunAndReportsTheSpecOrder) {
  for (Lowering l : kAllLowerings) {
    GradcheckResult r = run("resnet18", 0.125, "bf16", l);
    EXPECT_TRUE(r.passed) << to_string(l) << " max rel error " << r.max_rel_error;
    EXPECT_LE(r.max_rel_error, format_tolerance(Format::bf16));
    EXPECT_GT(r.spec_order_max_rel_error, 0);
    EXPECT_GE(r.spec_order_flips, 0);
    EXPECT_FALSE(r.same_order.run);
  }
}

// No rescue: a tolerance no run can meet fails, whatever the other runs say.
TEST(Gradcheck, FailsBeyondTolerance) {
  GradcheckConfig c;
  c.model = "resnet8";
  c.format = "bf16";
  c.tolerance = 1e-9;
  const GradcheckResult r = gradcheck(c);
  EXPECT_FALSE(r.passed);
  EXPECT_GT(r.max_rel_error, 1e-9);
}

// Step 2 through gradcheck: the spec's own run (WS, bf16) bitwise equal to the same-order reference.
TEST(Gradcheck, SameOrderStepPassesBitwise) {
  GradcheckConfig c;
  c.model = "resnet8";
  c.width = 0.5;
  c.batch = 4;
  c.input = 8;
  c.format = "bf16";
  c.same_order = true;
  const GradcheckResult r = gradcheck(c);
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.same_order.run);
  EXPECT_TRUE(r.same_order.passed);
  EXPECT_TRUE(r.same_order.differing.empty());
  // loss, 29 parameter gradients, output and gradient of the 30 nodes between input and loss (step 1
  // compares the loss, the parameter gradients and the 30 activation gradients: 60)
  EXPECT_EQ(r.errors.size(), 60u);
  EXPECT_EQ(r.same_order.tensors, 1 + 29 + 2 * 30);
  const auto j = r.to_json();
  EXPECT_TRUE(j.at("same_order").at("passed").get<bool>());
}

TEST(Gradcheck, DumpIsReadableAndComplete) {
  GradcheckConfig c;
  c.dump = (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_systrain_gradcheck_dump.h5")).string();
  GradcheckResult r = gradcheck(c);
  h5::File f = h5::File::open(c.dump);
  EXPECT_EQ(f.dims("input/images"), (h5::Dims{8, 1, 16, 16}));
  EXPECT_EQ(f.read<int32_t>("input/labels").size(), 8u);
  EXPECT_NEAR(f.read_scalar<double>("loss"), r.spec_loss, 0);
  EXPECT_EQ(f.list("grads").size(), f.list("reference_grads").size());
  EXPECT_GT(f.list("params").size(), f.list("grads").size());  // params include BN running stats
  auto names = f.read_strings("network/names");
  EXPECT_EQ(names.front(), "input");
  EXPECT_EQ(f.dims("network/windows"), (h5::Dims{static_cast<int64_t>(names.size()), 8}));
  f.close();   // closed before it is removed
  std::filesystem::remove(c.dump);
}

TEST(Gradcheck, BadArgumentsAreUserErrors) {
  GradcheckConfig c;
  c.format = "int8";
  EXPECT_THROW(gradcheck(c), UserError);
  c = GradcheckConfig{};
  c.lowering = "implicit";
  EXPECT_THROW(gradcheck(c), UserError);
  c = GradcheckConfig{};
  c.pe_level = true;  // selects step 2's GEMM: without --same-order it means nothing
  EXPECT_THROW(gradcheck(c), UserError);
  c = GradcheckConfig{};
  c.model = "vgg16";
  EXPECT_THROW(gradcheck(c), UserError);
}
