#pragma once
// Bounds on what one run may ask for, derived from the *work* an input implies rather than from one
// cap per flag (DESIGN.md "Errors": a user's mistake gives one clear message, never a crash or a
// hang):
// - sizes: every tensor and every lowered matrix a shape implies must have at most kMaxElements
//   elements, computed with checked multiplication (a product that wraps past 2^63 would otherwise
//   pass any later check and reach an allocation or a loop with a nonsense value);
// - host memory: what a run allocates, against what this machine has;
// - host steps: the address arithmetic of a shapes-only costing is linear in every conv layer's
//   height and width (valid tap pairs, stride phases), so a projection is bounded by the sum of
//   those extents, not by the batch (which it never loops over).
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "kernels/lowering.h"
#include "models/netdesc.h"

namespace st {

// At most 2^59 elements per tensor / lowered matrix: its bytes (at most 8 per element) and the
// cost model's int64 counters stay far from overflow.
inline constexpr int64_t kMaxElements = int64_t{1} << 59;

// The product of `factors` (each >= 0), or nullopt if it overflows int64.
std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors);

// The product of `factors`; throws UserError "<where>: <what> a x b x ... is more than 2^59
// elements" when it is larger than kMaxElements (or overflows).
int64_t checked_elements(std::initializer_list<int64_t> factors, const std::string& where, const std::string& what);

// Every tensor and lowered matrix of a conv (src, wei, dst, im2col, the zero-inserted / padded dY of
// the explicit lowering, the dW window matrix) within kMaxElements; `where` names the layer.
void check_conv_sizes(const ConvDesc& d, const std::string& where);

// Host steps of costing one conv layer in every direction (the loops over rows, columns, taps and
// stride phases of its lowering counts), and the limit of a whole costing (about ten seconds).
double conv_costing_steps(const ConvDesc& d);
inline constexpr double kMaxCostingSteps = 2e9;

// Host steps of a shapes-only step of `net` (conv layers; pools and the rest are linear in fewer
// terms); throws UserError naming the largest layer and `flag` when more than kMaxCostingSteps.
double net_costing_steps(const NetDesc& net);
void check_costing_work(const NetDesc& net, const std::string& flag);

// Memory this process may use: the physical memory, or the cgroup's limit when it is lower.
double host_memory_bytes();
// "1.5 GiB"
std::string gib_text(double bytes);

}  // namespace st
