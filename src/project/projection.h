#pragma once
// Projection: the work one training step (or one inference forward) of a NetDesc describes to the
// cost model, without tensors, so ImageNet-sized networks cost in milliseconds. The walk mirrors
// src/train/network.cpp node for node (forward in node order, backward in reverse with the fan-out
// add_bwd where a node's output receives its second gradient, the stem conv without bwd_data, then
// one sgd_update per trainable parameter in ParamSet order), and every work item comes from the
// ops' own *_work functions (src/ops/*.h), so a projection equals, record for record, what an
// executed step with a Ledger sink accumulates (tests/test_projection.cpp proves it).
#include <vector>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/cost/ledger.h"
#include "src/ops/context.h"

namespace st {

enum class StepMode : uint8_t { train, infer, infer_fold_bn };

// Emits the work of one step to ctx.sink (ctx.spec must be set; ctx.layer is ignored: tags carry
// node names, and parameter names for sgd_update).
//   train: forward with batch statistics, backward, SGD update (Network::zero_grads, forward,
//          backward, sgd_step);
//   infer: forward with running statistics (Network::forward(training = false), loss included);
//   infer_fold_bn: infer with every BN that follows a conv folded into it (bn_folded_work, the ReLU
//          after it fused into the same pass), as TPU inference compilers do; no executing twin.
void describe_step(const NetDesc& net, const ExecContext& ctx, Lowering lowering, StepMode mode);

// describe_step into `ledger` (records appended, cost cache reused).
void project_into(Ledger& ledger, const NetDesc& net, Lowering lowering, StepMode mode);

// The records of one step on a fresh Ledger for `spec`.
std::vector<StatsRecord> project(const NetDesc& net, const Spec& spec, Lowering lowering, StepMode mode);

}  // namespace st
