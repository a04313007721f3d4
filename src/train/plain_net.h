#pragma once
// The same-order reference network: a second executor of a NetDesc, written from the documented
// definitions only, against which the emulator (Network) must agree BIT FOR BIT in the spec's own
// format, dataflow, array size, MAC and lowering (`systrain gradcheck --same-order`).
//
// It shares no code with the fast path beyond the definitions themselves:
//   conv     the lowered matrices come from VirtualMatrix (kernels/lowering.h, the element-by-element
//            definition of every operand; explicit builds U_pad / U here, plainly), multiplied by a
//            reference GEMM; none of the fast path's address generators, panels, host skip paths
//            (strided BP-im2col runs the full GEMM here, inserted zeros included) or scatters
//   GEMM     PlainGemm::loop: three plain loops in the order kernels/systolic.h documents (OS one
//            chain over k; WS/IS chunks of `rows` k's from +0, chunk sums added in order; under the
//            channel-tap mapping the reduction permuted tap-major, chunks per tap), one
//            pe_mac per product; PlainGemm::pe_level: the cycle-stepped PE-level reference
//            (systolic_gemm_reference), slow, for small arrays
//   vector   BN, ReLU, pooling, add, option-A shortcut, fc bias, softmax cross-entropy: scalar loops
//            over the formulas in the ops' headers; every reduction element by element into lane
//            i % lanes (kernels/vector_unit.h's order), not LaneSum; exp / log / div / rsqrt are the
//            unit's algorithms (vu::), which define the hardware
//   graph    its own forward / backward over the nodes; a gradient reaching a node from several
//            consumers is summed in reverse node order (the first one written, the next added)
// It is `Network` re-derived, not `Network` with the GEMM swapped: an error in an op's fast code,
// in its lowering, in the executor's wiring or in the GEMM kernel shows up as a bit difference.
//
// Tensors and conventions as Network's: activations (N, C, H, W), the fc output (N, classes);
// parameter gradients summed over the batch (oneDNN's convention), the loss the batch mean.
// int8 is inference-only here (throws UserError).
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/base/tensor.h"
#include "src/spec/spec.h"
#include "src/train/param_set.h"

namespace st {

enum class PlainGemm : uint8_t { loop, pe_level };

// C (M x N, row-major) = A (M x K) B (K x N), both row-major, rounded to cfg.format on entry, in the
// order kernels/systolic.h documents, by plain loops. NaN outputs are the canonical NaN.
// `chunks` (WS/IS): the reduction's chunks when not `rows` each (the channel-tap mapping's per tap).
void plain_gemm(const ArrayConfig& cfg, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
                const std::vector<int32_t>* chunks = nullptr);

class PlainNet {
 public:
  PlainNet(const NetDesc& net, const ParamSet& params, const Spec& spec, Lowering lowering,
           PlainGemm gemm = PlainGemm::loop);

  // One training forward (batch statistics) and backward; returns the loss. Gradients overwritten.
  float forward_backward(const Tensor& images, const std::vector<int32_t>& labels);

  const ParamSet& grads() const { return grads_; }
  const Tensor& activation(const std::string& node) const;
  const Tensor& activation_grad(const std::string& node) const;
  int64_t gemms_run() const { return gemms_; }

 private:
  int node_id(const std::string& name) const;
  // red_a x red_u: the reduction's channels x taps (channel-major), for the channel-tap mapping.
  void gemm(int64_t M, int64_t N, int64_t K, const std::vector<float>& A, const std::vector<float>& B,
            std::vector<float>& C, int64_t red_a = 0, int64_t red_u = 0);
  void conv_forward(int id);
  void conv_backward(int id, bool need_dx, Tensor& dx);
  void give(int producer, Tensor&& g);  // a gradient contribution to `producer`'s output

  NetDesc net_;
  ParamSet params_, grads_;
  Spec spec_;
  Lowering lowering_;
  PlainGemm gemm_kind_;
  int lanes_ = 1;
  std::vector<Tensor> act_, diff_;
  std::vector<bool> diff_set_;
  std::vector<Tensor> bn_mean_, bn_var_;
  std::vector<std::vector<int32_t>> argmax_;   // maxpool: winner per output (flat index in its plane)
  std::vector<int32_t> labels_;
  Tensor probs_;
  int64_t gemms_ = 0;
};

}  // namespace st
