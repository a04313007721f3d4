// benchdnn conv problem strings (src/topology/problem_string.h): good strings, every default, and
// every bad form giving one UserError line that quotes the string and names the problem.
#include <gtest/gtest.h>

#include <string>

#include "src/base/error.h"
#include "src/topology/conv_topology.h"
#include "src/topology/problem_string.h"

namespace st {
namespace {

ConvDesc desc(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t sh, int64_t sw,
              int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
  return ConvDesc{N, C, H, W, K, R, S, sh, sw, pt, pl, pb, pr};
}

// ConvDesc::str() names every field (pb / pr when they differ from ph / pw), so equal strings are
// equal descriptions.
void expect_desc(const std::string& text, const ConvDesc& want) {
  EXPECT_EQ(parse_conv_problem(text).desc.str(), want.str()) << text;
}

// The message of the UserError `text` gives: one line, quoting the string, containing `needle`.
::testing::AssertionResult refused(const std::string& text, const std::string& needle) {
  try {
    const ConvLayer l = parse_conv_problem(text);
    return ::testing::AssertionFailure() << "'" << text << "' was accepted as " << l.desc.str();
  } catch (const UserError& e) {
    const std::string m = e.what();
    if (m.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "not one line: " << m;
    if (m.rfind("conv problem '", 0) != 0) return ::testing::AssertionFailure() << "does not quote the string: " << m;
    if (m.find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << text << "': message lacks '" << needle << "': " << m;
    return ::testing::AssertionSuccess();
  }
}

struct Bad {
  std::string text, needle;
};
void expect_refused(std::initializer_list<Bad> cases) {
  for (const Bad& b : cases) EXPECT_TRUE(refused(b.text, b.needle));
}

TEST(ProblemString, ResNetLayersAsBenchdnnWritesThem) {
  // ResNet-50 layer1.0.conv2 (the brief's example) and its stem.
  expect_desc("mb64ic64ih56oc64kh3ph1", desc(64, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1));
  expect_desc("mb1ic3ih224oc64oh112kh7sh2ph3", desc(1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 3, 3));
  // benchdnn's canonical form: every field, '_' delimiters, a quoted name.
  const ConvLayer l = parse_conv_problem("g1mb2_ic64ih56iw56_oc64oh56ow56_kh3kw3_sh1sw1_ph1pw1_dh0dw0_n\"resnet:c2\"");
  EXPECT_EQ(l.name, "resnet:c2");
  EXPECT_EQ(l.desc.str(), "mb2ic64ih56oc64kh3sh1ph1");
  EXPECT_EQ(parse_conv_problem("mb2ic3ih5oc4kh3_nconv1").name, "conv1");
  EXPECT_EQ(parse_conv_problem("ic3ih5oc4kh3nlayer 1.a").name, "layer 1.a");
  EXPECT_EQ(parse_conv_problem("ic3ih5oc4kh3").name, "");
  // Fields in any order.
  expect_desc("kh3oc4ih5ic3mb1", desc(1, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 0, 0));
}

TEST(ProblemString, EveryDefault) {
  // mb = 2, iw = ih, kw = kh, sh = 1, sw = sh, ph = 0, pw = ph, pb = ph, pr = pw.
  expect_desc("ic3ih7oc4kh3", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 0, 0, 0, 0));
  expect_desc("ic3ih7iw9oc4kh3", desc(2, 3, 7, 9, 4, 3, 3, 1, 1, 0, 0, 0, 0));
  expect_desc("ic3ih7oc4kh3kw1", desc(2, 3, 7, 7, 4, 3, 1, 1, 1, 0, 0, 0, 0));
  expect_desc("ic3ih7oc4kh3sh2", desc(2, 3, 7, 7, 4, 3, 3, 2, 2, 0, 0, 0, 0));
  expect_desc("ic3ih7oc4kh3sh2sw1", desc(2, 3, 7, 7, 4, 3, 3, 2, 1, 0, 0, 0, 0));
  expect_desc("ic3ih7oc4kh3ph1", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1));
  expect_desc("ic3ih7oc4kh3ph1pw0", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 0, 1, 0));
  expect_desc("ic3ih7oc4kh3ph1pb0", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1, 0, 1));
  expect_desc("ic3ih7oc4kh3ph2pw1pr0", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 2, 1, 2, 0));
  // ph / pw deduced from a given oh / ow as benchdnn does, then checked against the shape.
  expect_desc("ic3ih56oc4oh56kh3", desc(2, 3, 56, 56, 4, 3, 3, 1, 1, 1, 1, 1, 1));
  expect_desc("ic3ih56oc4oh28kh1sh2", desc(2, 3, 56, 56, 4, 1, 1, 2, 2, 0, 0, 0, 0));
  expect_desc("ic3ih56oc4oh28kh3sh2", desc(2, 3, 56, 56, 4, 3, 3, 2, 2, 1, 1, 1, 1));
  expect_desc("ic3ih56oc4oh28kh3sh2pb0", desc(2, 3, 56, 56, 4, 3, 3, 2, 2, 1, 1, 0, 1));
  expect_desc("ic3ih56iw56oc4oh56ow54kh3", desc(2, 3, 56, 56, 4, 3, 3, 1, 1, 1, 0, 1, 0));
  // oh / ow that agree with explicit paddings.
  expect_desc("ic3ih56oc4oh28ow28kh3sh2ph1", desc(2, 3, 56, 56, 4, 3, 3, 2, 2, 1, 1, 1, 1));
  // No-op fields of benchdnn's canonical form.
  expect_desc("g1ic3ih7oc4kh3dh0dw0", desc(2, 3, 7, 7, 4, 3, 3, 1, 1, 0, 0, 0, 0));
}

TEST(ProblemString, EveryStringConvDescPrintsParsesBack) {
  for (const auto& layers : {resnet18_convs(3), resnet50_convs(1)})
    for (const ConvLayer& l : layers) {
      const ConvDesc d = parse_conv_problem(l.desc.str()).desc;
      EXPECT_EQ(d.str(), l.desc.str());
      EXPECT_EQ(d.pb, l.desc.pb);
      EXPECT_EQ(d.pr, l.desc.pr);
    }
  const ConvDesc asym = desc(1, 2, 9, 8, 3, 3, 2, 2, 1, 1, 0, 0, 1);
  expect_desc(asym.str(), asym);
}

TEST(ProblemString, UnknownAndRefusedFields) {
  expect_refused({
      {"mb2ic3ih5oc4kh3xy2", "unknown field 'xy'"},
      {"mb2ic3ih5oc4kh3Kh3", "unexpected 'K'"},
      {"mb2ic3ih5oc4kh3g2", "groups (g2) are not supported"},
      {"mb2ic3ih5oc4kh3dh1", "dilation (dh1) is not supported"},
      {"mb2ic3ih5oc4kh3dw2", "dilation (dw2) is not supported"},
      {"mb2ic3id4ih5oc4kh3", "field 'id'"},
      {"mb2ic3ih5oc4kh3kd3", "2-D convolutions only"},
  });
}

TEST(ProblemString, MissingRequiredField) {
  expect_refused({
      {"mb2ih5oc4kh3", "field 'ic' (input channels) is missing"},
      {"mb2ic3oc4kh3", "field 'ih' (input height) is missing"},
      {"mb2ic3ih5kh3", "field 'oc' (output channels) is missing"},
      {"mb2ic3ih5oc4", "field 'kh' (kernel height) is missing"},
      {"", "empty"},
      {"_", "field 'ic' (input channels) is missing"},
  });
}

TEST(ProblemString, ZeroNegativeHugeAndOverflowingValues) {
  expect_refused({
      {"mb0ic3ih5oc4kh3", "field 'mb' (minibatch) must be a positive integer (got 0)"},
      {"mb2ic0ih5oc4kh3", "field 'ic'"},
      {"mb2ic3ih5oc4kh0", "field 'kh'"},
      {"mb2ic3ih5oc4kh3sh0", "field 'sh'"},
      {"mb2ic3ih5oc4kh3oh0", "field 'oh'"},
      {"mb2ic-3ih5oc4kh3", "field 'ic' takes an unsigned integer, got '-3"},
      {"mb2ic3ih5oc4kh3ph+1", "field 'ph' takes an unsigned integer"},
      {"mb2ic3ih5oc4kh3sh", "field 'sh' (stride along the height) has no number"},
      {"mb_ic3ih5oc4kh3", "field 'mb' (minibatch) has no number"},
      {"mbic3ih5oc4kh3", "unknown field 'mbic'"},
      {"mb2ic3ih70000oc4kh3", "field 'ih' (input height) = 70000 is outside [1, 65536]"},
      {"mb4294967296ic3ih5oc4kh3", "field 'mb' (minibatch) = 4294967296 is outside"},
      {"mb2ic3ih5oc4kh3sh5", "field 'sh' (stride along the height) = 5 is outside [1, 4]"},
      {"mb99999999999999999999ic3ih5oc4kh3", "field 'mb' = 99999999999999999999 does not fit 64 bits"},
      {"mb2ic3ih5oc4kh3ph9223372036854775808", "does not fit 64 bits"},
      // Within every field's range, but too much work as a whole (conv_layer_problem's bounds).
      {"mb2147483648ic16777216ih65536oc16777216kh1", "exceeds 2^53"},
  });
}

TEST(ProblemString, ShapesTheLoweringsDoNotModel) {
  expect_refused({
      {"mb2ic3ih2oc4kh5ph1", "the kernel (kh 5) is larger than the padded input (ih 2 + top 1 + bottom 1 = 4)"},
      {"mb2ic3ih8iw2oc4kh1kw5pw1", "the kernel (kw 5) is larger than the padded input"},
      {"mb2ic3ih5oc4kh3ph3", "padding ph = 3 must be at most kh - 1 = 2"},
      {"mb2ic3ih5oc4kh3kw1pw1", "padding pw = 1 must be at most kw - 1 = 0"},
      {"mb2ic3ih5oc4kh3pb5", "padding pb = 5"},
      {"mb2ic3ih56oc4oh55kh3ph1", "oh 55 does not match the shape: (ih 56 + 1 + 1 - kh 3) / sh 1 + 1 = 56"},
      {"mb2ic3ih56oc4ow57kh3", "ow 57 does not match the shape"},
      // An output size no padding below the kernel reaches.
      {"mb2ic3ih5oc4oh50kh3", "oh 50 does not match the shape: (ih 5 + 0 + 0 - kh 3) / sh 1 + 1 = 3"},
  });
}

TEST(ProblemString, DuplicateFieldsAndTrailingGarbage) {
  expect_refused({
      {"mb2ic3ih5oc4kh3ih5", "field 'ih' is given twice"},
      {"mb2mb2ic3ih5oc4kh3", "field 'mb' is given twice"},
      {"mb2ic3ih5oc4kh3!", "unexpected '!' at position 15"},
      {"mb2ic3ih5oc4kh3 ", "unexpected ' '"},
      {"mb2,ic3ih5oc4kh3", "unexpected ','"},
      {"mb2ic3ih5oc4kh3.5", "unexpected '.'"},
      {"mb2ic3ih5oc4kh3n", "the name after 'n' is empty"},
      {"mb2ic3ih5oc4kh3n\"\"", "the name after 'n' is empty"},
      {"mb2ic3ih5oc4kh3nbad\tname", "the name"},
      {std::string("mb2ic3ih5oc4kh3na\xff", 18), "the name"},
      // The string is quoted printably in the message, whatever it holds.
      {"mb2ic3ih5oc4kh3\n", "conv problem 'mb2ic3ih5oc4kh3\\x0a'"},
  });
}

}  // namespace
}  // namespace st
