#pragma once
// The emulated network: a NetDesc executed op by op on the modeled accelerator (llm.c style: forward
// calls the ops in node order, backward calls their backward in reverse order). Every op runs its
// exact numerics and describes its work to ctx.sink, tagged with the node's name.
//
// Gradient contract: parameter gradients are zeroed by zero_grads() and ADDED into by the ops;
// activation gradients are written by the first consumer processed and ADDED by the next ones (the
// fan-out add of a residual block, counted as add_bwd on the vector unit).
#include <string>
#include <vector>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/base/tensor.h"
#include "src/ops/batchnorm.h"
#include "src/ops/context.h"
#include "src/ops/pool.h"
#include "src/ops/sgd.h"
#include "src/train/param_set.h"

namespace st {

class Network {
 public:
  // Takes the parameters (conv/bn/fc entries by the ParamSet naming, shapes checked).
  Network(NetDesc net, ParamSet params, Lowering lowering);

  // Forward pass; training uses batch statistics (and updates the running ones), evaluation the
  // running statistics. Returns the mean cross-entropy of the batch.
  float forward(const ExecContext& ctx, const Tensor& images, const std::vector<int32_t>& labels,
                bool training = true);
  // Backward pass of the last training forward; adds into the parameter gradients. `loss_scale`
  // (fp16 loss scaling, src/train/loss_scale.h) multiplies the loss gradient, fused into the loss
  // backward (softmax_xent_bwd's diff_loss: no extra work), so every gradient comes out scaled.
  void backward(const ExecContext& ctx, float loss_scale = 1.0f);
  // Multiplies every parameter gradient by inv_scale on the vector unit (grad_unscale, one op per
  // parameter, phase update); true when all of them are finite afterwards.
  bool unscale_grads(const ExecContext& ctx, float inv_scale);
  // Multiplies every activation gradient by `factor` on the host, uncounted: for comparisons only
  // (gradcheck with a loss scale), the accelerator never does it.
  void rescale_activation_grads(float factor);
  void zero_grads();
  // --sync-bn across data-parallel replicas (src/ops/batchnorm.h BnSync); null: per-replica BN.
  void set_bn_sync(BnSync* sync) { bn_.sync = sync; }
  // One SGD step over every trainable parameter (momentum buffers kept here).
  void sgd_step(const ExecContext& ctx, const SgdParams& p);
  // The work sgd_step describes, without running it (the costed step of a run whose first update
  // was skipped by loss scaling is still a whole step).
  void describe_sgd_step(const ExecContext& ctx) const;

  // Correct predictions (arg-max of the logits, first maximum wins) in the last forward.
  int64_t correct() const;

  const NetDesc& net() const { return net_; }
  Lowering lowering() const { return lowering_; }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }
  ParamSet& grads() { return grads_; }
  const ParamSet& grads() const { return grads_; }
  ParamSet& velocity() { return velocity_; }
  const ParamSet& velocity() const { return velocity_; }
  const Tensor& activation(const std::string& node) const;
  const Tensor& activation_grad(const std::string& node) const;
  const Tensor& probabilities() const { return probs_; }
  // Node `id`'s output, and for a max-pool node the winners its last forward recorded (else null).
  const Tensor& activation(int id) const { return act_[static_cast<size_t>(id)]; }
  const std::vector<int32_t>* maxpool_argmax(int id) const {
    return net_.node(id).kind == NodeKind::maxpool ? &pool_ws_[static_cast<size_t>(id)].argmax : nullptr;
  }

 private:
  int node_id(const std::string& name) const;
  ExecContext node_ctx(const ExecContext& ctx, int id) const;
  // Where a backward op writes the gradient of node `producer`'s output: the gradient itself the
  // first time, a scratch tensor afterwards; deliver() then adds the scratch in (add_bwd).
  Tensor& diff_target(int producer);
  void deliver(const ExecContext& ctx, int producer);

  NetDesc net_;
  ParamSet params_, grads_, velocity_;
  Lowering lowering_;
  BnParams bn_;
  std::vector<Tensor> act_, diff_;          // per node: output (N, C, H, W) and its gradient
  std::vector<bool> diff_written_;
  std::vector<BnSaved> bn_saved_;
  std::vector<PoolWorkspace> pool_ws_;
  std::vector<int32_t> labels_;
  std::vector<Tensor> fan_scratch_;       // per node: second consumer's gradient before the add
  Tensor probs_;
  float last_loss_ = 0;
};

}  // namespace st
