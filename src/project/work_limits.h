#pragma once
// The work limit of a shapes-only costing of a whole network: the address arithmetic of costing is
// linear in every conv layer's height and width (valid tap pairs, stride phases), so a projection is
// bounded by the sum of those extents, not by the batch (which it never loops over). The size and
// memory rules are src/base/limits.h, a convolution's kernels/conv_limits.h.
#include <string>

#include "kernels/conv_limits.h"
#include "models/netdesc.h"
#include "src/base/limits.h"

namespace st {

// The limit of a whole costing (about ten seconds).
inline constexpr double kMaxCostingSteps = 2e9;

// Host steps of a shapes-only step of `net` (conv layers; pools and the rest are linear in fewer
// terms); check_costing_work throws a UserError naming the network, its input and `flag` when it is
// more than kMaxCostingSteps.
double net_costing_steps(const NetDesc& net);
void check_costing_work(const NetDesc& net, const std::string& flag);

}  // namespace st
