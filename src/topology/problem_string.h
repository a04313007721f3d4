#pragma once
// oneDNN benchdnn's convolution problem strings -> a conv layer (ConvDesc and a name).
//
// benchdnn's canonical form is gXmbX_icXidXihXiwX_ocXodXohXowX_kdXkhXkwX_sdXshXswX_pdXphXpwX_ddXdhXdwX_nS
// (tests/benchdnn/doc/driver_conv.md and conv_aux.cpp's str2desc): fields in any order, each a name
// and a decimal integer, '_' ignored between fields, and `n` followed by the rest of the string as
// the problem's name (`n"resnet:conv1"` or `_nconv1`; surrounding double quotes are dropped).
//
// Fields taken: mb, ic, ih, iw, oc, oh, ow, kh, kw, sh, sw, ph, pw, and systrain's own pb / pr (the
// bottom / right padding ConvDesc::str() writes for an asymmetric layer), so every string
// ConvDesc::str() prints parses back to the same ConvDesc. Defaults, as benchdnn:
//   mb = 2, iw = ih, kw = kh, sh = 1, sw = sh;
//   ph: given, else deduced from a given oh (as benchdnn does, but exactly: the smallest padding
//       below the kernel that gives oh with pb = ph), else 0;
//   pw: given, else deduced from a given ow the same way, else ph; pb = ph, pr = pw;
//   oh / ow: the shape's ((ih + ph + pb - kh) / sh + 1); a given oh / ow must equal it.
// g1 and dh0 / dw0 (benchdnn's "one group", "no dilation") are accepted as the no-ops they are;
// other groups, dilations and the 3-D fields (id, od, kd, sd, pd, dd) are refused with the reason.
//
// Every problem (unknown or duplicate field, a field without a number, a number that is not a
// positive integer or does not fit, a missing ic / ih / oc / kh, a kernel larger than the padded
// input, an oh / ow the shape does not give, a stride or padding systrain's lowering does not
// model, a layer too large to cost: conv_layer_problem) is one UserError line that quotes the string
// and names the field.
#include <string_view>

#include "src/topology/conv_topology.h"

namespace st {

// The layer a problem string describes; its name is the string's `n` part, or "" when it has none.
ConvLayer parse_conv_problem(std::string_view text);

}  // namespace st
