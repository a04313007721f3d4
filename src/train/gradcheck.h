#pragma once
// Whole-network gradient check: one forward/backward of the emulated network against the oneDNN
// reference network (src/train/onednn_net.h) with the same weights and batch.
//
// Error measure per tensor: ||emu - ref||_2 / ||ref||_2 (gradcheck.cpp says why a 2-norm). In bf16
// and fp16 mode the reference rounds every conv / fc operand to the format as the array does, so
// only the order of accumulation differs: fp32 1e-4, fp16 2e-3, bf16 5e-2. bf16 is looser because
// an fp32-level difference that lands on a bf16 rounding boundary becomes a whole bf16 ulp (2^-8) in
// the next layer's operand, and BN backward amplifies it. The distance to an all-fp32 reference is
// reported too (format_error_vs_fp32).
//
// Pass rule. "direct": every tensor within the tolerance. In a reduced format with a WS / IS spec the
// array's chunked order of accumulation differs from oneDNN's single chain, and in a deep network
// that difference grows chaotically through the rounding of every layer's operands (gradcheck.cpp).
// Then the check also passes by the "order-matched" rule: the same network run with OS (oneDNN's
// order, same format) is within the tolerance on every tensor, and the spec's own run is closer to
// the reference than the format is to fp32.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/netdesc.h"
#include "src/spec/spec.h"

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
  // fp16 loss scaling (src/train/loss_scale.h): the emulator's backward runs with the loss gradient
  // x S, its gradients are x 1/S before the comparison (parameters: the grad_unscale pass;
  // activation gradients: on the host). A power of two in [1, 2^64]; 1: off.
  double loss_scale = 1;
};

// A gradcheck runs up to four real networks (emulator, oneDNN reference, fp32 reference, emulator in
// OS order) in fp32 on the host, about 1e9 MAC/s in all: beyond this estimate it asks for --force.
inline constexpr double kMaxGradcheckMacs = 1e11;

struct TensorError {
  std::string name;                // parameter name, or "act:<node>" for activation gradients
  double max_rel_error = 0;
  double tolerance = 0;
  bool passed = false;
};

struct GradcheckResult {
  double loss = 0, reference_loss = 0;
  std::vector<TensorError> errors;
  double max_rel_error = 0;
  double format_error = 0;         // max over parameter gradients of the error vs an fp32 reference
  // Reduced format with a WS / IS spec: the max error of the emulator run with OS (the reference's
  // order of accumulation) instead; -1 when not run.
  double order_matched_max_rel_error = -1;
  bool passed = false;
  std::string rule;                // "direct" (every error <= tolerance) or "order-matched"
  nlohmann::json to_json() const;
};

double format_tolerance(Format f);
GradcheckResult gradcheck(const GradcheckConfig& cfg);

}  // namespace st
