#pragma once
// Whole-network gradient check in two steps, each of which can fail (no rescue rule):
//
// 1. Same mathematics. The emulator with OS dataflow (oneDNN's order of accumulation: one chain per
//    output) in the spec's format, lowering and array, against the oneDNN reference network
//    (src/train/onednn_net.h) with the same weights and batch. In bf16 / fp16 the reference rounds
//    every conv / fc operand to the format as the array does. Error per tensor:
//    ||emu - ref||_2 / ||ref||_2, every tensor within the format's tolerance (fp32 1e-4, fp16 2e-3,
//    bf16 5e-2): loss, every parameter gradient, every activation gradient. Kinks (src/train/kinks.h):
//    ReLU / max-pool decisions that flipped between the two runs are found and counted; each must lie
//    within the bound of zero, and the reference is rerun with the emulator's decisions transplanted,
//    so every tensor is still held to the tolerance. When the spec itself is WS / IS, its own run
//    against oneDNN is reported beside this (not judged: step 2 proves its order).
// 2. Same order, bit for bit (`same_order`, `systrain gradcheck --same-order`; slow). The emulator in
//    the spec's own format, dataflow, array and lowering against the same-order reference network
//    (src/train/plain_net.h): loss, every activation and parameter gradient bitwise equal.
// The result passes when step 1 passes with no flip beyond the bound, and step 2 when it was run.
// int8 is inference-only: refused.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/netdesc.h"
#include "src/base/tensor.h"
#include "src/spec/spec.h"
#include "src/train/kinks.h"

namespace st {

struct GradcheckConfig {
  std::string model = "resnet8";
  double width = 1.0;
  std::string shortcut = "conv";
  int64_t batch = 8;
  int64_t channels = 0;            // 0: 1 for CIFAR-style models, 3 for ImageNet-style
  int64_t input = 0;               // 0: 16 for CIFAR-style models, 32 for ImageNet-style
  int64_t classes = 10;
  std::string spec = "tpu-like";
  std::string format;              // override the spec's operand format (fp32 | bf16 | fp16)
  std::string lowering = "bp-im2col";
  uint64_t seed = 1;
  std::string dump;                // HDF5 file
  double tolerance = 0;            // 0: by format; else a relative error in (0, 1)
  bool force = false;              // run even beyond the work limit (kMaxGradcheckMacs)
  bool same_order = false;         // step 2: bitwise against the same-order reference network
  bool pe_level = false;           // step 2 with the cycle-stepped PE-level array as its GEMM
  // Tests only: after both runs, flip the emulator's recorded decision at the ReLU input farthest from
  // zero (a wrong mask, as a bug would make), before the kinks are checked and transplanted.
  bool inject_wrong_decision = false;
  // fp16 loss scaling (src/train/loss_scale.h): the emulator's backward runs with the loss gradient
  // x S, its gradients are x 1/S before the comparison (parameters: the grad_unscale pass;
  // activation gradients: on the host). A power of two in [1, 2^64]; 1: off.
  double loss_scale = 1;
};

// A gradcheck runs up to five real networks (emulator, emulator in OS order, oneDNN reference, the
// reference rerun with transplanted decisions, an fp32 reference) on the host, about 1e9 MAC/s in
// all, plus the same-order reference network when asked (plain loops, about 1e8 MAC/s, counted as ten
// networks): beyond this estimate it asks for --force.
inline constexpr double kMaxGradcheckMacs = 1e11;

struct TensorError {
  std::string name;                // parameter name, or "act:<node>" for activation gradients
  double max_rel_error = 0;
  double tolerance = 0;
  bool passed = false;
};

struct SameOrderResult {
  bool run = false;
  bool passed = false;
  int64_t tensors = 0;                 // compared: loss, activations, activation and parameter gradients
  std::vector<std::string> differing;  // names of the tensors whose bits differ
  std::string gemm;                    // "plain loop" | "PE-level"
};

struct GradcheckResult {
  double loss = 0, reference_loss = 0;  // the judged emulator run (OS) and the reference it is judged by
  double spec_loss = 0;                 // the spec's own run (= loss when the spec is OS)
  std::vector<TensorError> errors;      // step 1, per tensor
  double max_rel_error = 0;
  KinkReport kinks;                     // step 1: decisions flipped between the OS run and oneDNN
  // The max error before the emulator's decisions were transplanted (-1: no flip, no rerun).
  double untransplanted_max_rel_error = -1;
  // The spec's own order (WS / IS) against oneDNN, reported, not judged (-1: the spec is OS): its max
  // error, its flipped decisions, and the max error with its decisions transplanted (-1: no flip).
  double spec_order_max_rel_error = -1;
  int64_t spec_order_flips = -1;
  KinkReport spec_order_kinks;
  double spec_order_transplanted_max_rel_error = -1;
  double format_error = 0;              // max over parameter gradients of the spec's run vs an fp32 reference
  SameOrderResult same_order;           // step 2
  bool passed = false;
  nlohmann::json to_json() const;
};

double format_tolerance(Format f);
GradcheckResult gradcheck(const GradcheckConfig& cfg);

// The batch gradcheck uses: standard-normal images and uniform labels from the seed (counter-based,
// the same on every host).
void gradcheck_batch(const NetDesc& net, uint64_t seed, Tensor& images, std::vector<int32_t>& labels);

}  // namespace st
