#pragma once
// The work limits of one convolution (src/base/limits.h's rules applied to its tensors and lowered
// matrices, and the host steps of costing it).
#include <string>

#include "kernels/lowering.h"

namespace st {

// Every tensor and lowered matrix of a conv (src, wei, dst, im2col, the zero-inserted / padded dY of
// the explicit lowering, the dW window matrix) within kMaxElements; `where` names the layer.
void check_conv_sizes(const ConvDesc& d, const std::string& where);

// Host steps of costing one conv layer in every direction (the loops over rows, columns, taps and
// stride phases of its lowering counts).
double conv_costing_steps(const ConvDesc& d);

}  // namespace st
