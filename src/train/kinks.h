#pragma once
// Kinks: the forward decisions of the piecewise-linear ops (ReLU: does the input pass; max pool:
// which input wins) of two runs of one network, compared. With real numbers a decision can flip where
// a pre-activation is within rounding of zero (or two window values within rounding of a tie), and
// one flip changes a gradient far more than rounding does. gradcheck finds such flips, checks each
// lies within the bound of zero (a flip far from it is a bug, not a kink), and reruns the reference
// with the emulator's decisions transplanted (OneDnnNet::transplant), so every tensor can be held to
// the normal tolerance.
//
// The bound of a flip in node t: delta_t = rel_bound x rms(the reference's pre-activation tensor of
// t), rel_bound = the format's gradcheck tolerance: a value within delta_t of zero is one the
// comparison itself could not tell from zero. A ReLU flip is within the bound when both runs'
// pre-activations are (max(|emu|, |ref|) <= delta_t); a max-pool flip when the two winners are within
// delta_t of each other in both runs.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/netdesc.h"
#include "src/base/tensor.h"

namespace st {

// Per node id (empty for other kinds): ReLU nodes 1 where the input passes (input > 0); max-pool
// nodes the winner of each output, a flat index into its (n, c) input plane.
struct ForwardDecisions {
  std::vector<std::vector<uint8_t>> relu;
  std::vector<std::vector<int32_t>> maxpool;
};

// The decisions a run made, from its activations (`act(node id)` = output of that node): ReLU masks
// from the inputs; max-pool winners from `argmax(node id)` when given (the run's own record), else
// recomputed from the inputs with the first-maximum rule (src/ops/pool.h, oneDNN's).
ForwardDecisions decisions_of(const NetDesc& net, const std::function<const Tensor&(int)>& act,
                              const std::function<const std::vector<int32_t>*(int)>& argmax = {});

struct Kink {
  std::string node;        // the ReLU / max-pool node
  int64_t index = 0;       // ReLU: element of the input; max pool: output element
  double emu = 0, ref = 0; // ReLU: the pre-activations; max pool: winner margins (emu's winner - ref's)
  double bound = 0;
  bool within = false;
};

struct KinkReport {
  int64_t relu_flips = 0, pool_flips = 0, beyond_bound = 0;
  std::vector<Kink> kinks;  // the first kMaxListed
  static constexpr size_t kMaxListed = 50;
  int64_t flips() const { return relu_flips + pool_flips; }
};

KinkReport compare_decisions(const NetDesc& net, const ForwardDecisions& emu, const ForwardDecisions& ref,
                             const std::function<const Tensor&(int)>& emu_act,
                             const std::function<const Tensor&(int)>& ref_act, double rel_bound);

}  // namespace st
