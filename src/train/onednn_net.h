#pragma once
#include <tuple>

#include "kernels/formats.h"
// The oneDNN reference of a whole network: the same NetDesc and the same ParamSet as the emulator's
// network, executed with oneDNN 2.6 fp32 primitives on plain layouts (NCHW, OIHW, NC, OI). The
// whole-network gradient check (`systrain gradcheck`) compares the emulator against it; the training
// benchmark uses it as the native-fp32 baseline.
//
// One call of forward_backward = one training step without the update:
//   forward:  conv (no bias, asymmetric padding), bn (batch statistics, eps 1e-5, scale + shift),
//             relu, residual add (binary add), max pool (training, workspace), global average pool,
//             fc (with bias), log-softmax; loss = mean over the batch of cross-entropy (host, double)
//   backward: every primitive's backward in reverse node order; a node output consumed by several
//             nodes gets the sum of their diffs. Option-A shortcuts run on the host (see .cpp).
// The diff of the loss node is 1/N per sample (d loss / d per-sample loss).
// Running statistics are not touched (see bn_batch_mean / bn_batch_var for the batch statistics).
// Primitives and their memories are created once in the constructor and reused every call.
// Gradients are overwritten (not accumulated) by each call.
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/netdesc.h"
#include "src/base/tensor.h"
#include "src/train/kinks.h"
#include "src/train/param_set.h"

namespace st {

// Memory layout of the convolution primitives. plain: NCHW / OIHW, what the rest of the network
// uses (the gradient check's reference). blocked: each conv primitive runs on the layouts oneDNN
// prefers (format_tag::any, e.g. nChw16c), with reorders from and to the plain tensors around it:
// the fast native baseline of the training benchmark. Same math, different summation order.
enum class ConvLayout : uint8_t { plain, blocked };

class OneDnnNet {
 public:
  // Copies the parameters (conv/bn/fc entries by the ParamSet naming); shapes must match the net.
  // operand_format != fp32 makes a reduced-precision reference: the operands of every conv and fc
  // primitive (src, weights, diff_dst) are rounded to that format first, as the modeled array
  // rounds its GEMM operands; everything else stays fp32.
  OneDnnNet(const NetDesc& net, const ParamSet& params, Format operand_format = Format::fp32,
            ConvLayout conv_layout = ConvLayout::plain);
  ~OneDnnNet();
  OneDnnNet(const OneDnnNet&) = delete;
  OneDnnNet& operator=(const OneDnnNet&) = delete;

  // images (N, C, H, W) with the net's shape; labels in [0, classes). Returns the loss.
  double forward_backward(const Tensor& images, const std::vector<int32_t>& labels);

  double loss() const { return loss_; }
  const NetDesc& net() const { return net_; }
  // Reorders between plain tensors and primitive layouts per step (0 with ConvLayout::plain).
  int64_t layout_reorders() const;
  const ParamSet& params() const { return params_; }
  // Copies new values into the network's parameters (same names and shapes; extra entries are
  // ignored). The tensors themselves stay in place: the oneDNN memories alias them.
  void set_params(const ParamSet& params);
  // Gradients of the trainable parameters, same names and shapes as params().
  const ParamSet& grads() const { return grads_; }
  // Output of a node (N, C, H, W); for the loss node the per-sample cross-entropy (N, 1, 1, 1).
  const Tensor& activation(const std::string& node_name) const;
  const Tensor& activation(int id) const { return act_[static_cast<size_t>(id)]; }
  // d loss / d (output of the node), same shape as activation(node_name).
  const Tensor& activation_grad(const std::string& node_name) const;
  // Softmax probabilities of the last forward (N, classes).
  const Tensor& probabilities() const { return prob_; }
  // Batch mean and (biased) variance a bn node used in the last forward, (C).
  const Tensor& bn_batch_mean(const std::string& node_name) const;
  const Tensor& bn_batch_var(const std::string& node_name) const;

  static constexpr float kBnEpsilon = 1e-5f;

  // Decisions transplanted from another run (gradcheck's kinks, src/train/kinks.h): with `d` set, every
  // ReLU passes exactly where d.relu says (forward y = mask ? x : 0, backward dx = mask ? dy : 0) and
  // every max pool takes d.maxpool's winners (forward y = x[winner], backward dy scatter-added to the
  // winner in output order), on the host instead of oneDNN's primitives. nullptr: the network's own
  // decisions. `d` must outlive the calls that use it.
  void transplant(const ForwardDecisions* d);

 private:
  struct Node;  // per-node primitives and memories (onednn_net.cpp)
  void round_copy(const Tensor& from, Tensor& to) const;
  std::tuple<const Tensor*, const Tensor*, const Tensor*> gemm_operands(Node& node, const Tensor& src,
                                                                        const Tensor& wei, const Tensor& ddst);
  Format operand_format_ = Format::fp32;
  ConvLayout conv_layout_ = ConvLayout::plain;
  int node_id(const std::string& name) const;
  void build(int id);
  void forward(int id, const std::vector<int32_t>& labels);
  void backward(int id, const std::vector<int32_t>& labels);
  void accumulate_diff(int producer, const Tensor& d);

  bool transplanted(int id) const;

  NetDesc net_;
  ParamSet params_, grads_;
  const ForwardDecisions* decisions_ = nullptr;
  dnnl::engine eng_;
  dnnl::stream strm_;
  std::vector<Tensor> act_, diff_;          // per node: output and d loss / d output
  std::vector<int> consumers_;              // per node: how many nodes read its output
  std::vector<int> diff_written_;           // per node, during backward: contributions so far
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unordered_map<std::string, int> by_name_;
  Tensor prob_;                             // (N, classes)
  double loss_ = 0.0;
};

}  // namespace st
