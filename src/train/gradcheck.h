#pragma once
// Whole-network gradient check: one forward/backward of the emulated network against the oneDNN
// reference network (src/train/onednn_net.h) with the same weights and batch.
//
// Error measure per tensor: normwise relative error max|emu - ref| / max|ref| (so that tiny
// elements near zero do not dominate). Tolerances by the array's operand format, documented in the
// README: fp32 1e-4 (the array and the vector unit round in a different order from oneDNN), fp16
// 1e-2 and bf16 6e-2 (every GEMM operand is rounded to 11 resp. 8 significant bits, layer after layer).
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
  double tolerance = 0;            // 0: by format
};

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
  bool passed = false;
  nlohmann::json to_json() const;
};

double format_tolerance(Format f);
GradcheckResult gradcheck(const GradcheckConfig& cfg);

}  // namespace st
