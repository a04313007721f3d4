#include "kernels/conv_limits.h"

#include "src/base/limits.h"

namespace st {

void check_conv_sizes(const ConvDesc& d, const std::string& where) {
  // The fields themselves first: P(), Pd(), Hu() below add and multiply them.
  checked_elements({d.N, d.C, d.H, d.W}, where, "input (N x C x H x W)");
  checked_elements({d.K, d.C, d.R, d.S}, where, "weights (K x C x R x S)");
  const int64_t P = d.P(), Q = d.Q();
  checked_elements({d.N, d.K, P, Q}, where, "output (N x K x P x Q)");
  checked_elements({d.N, P, Q, d.C, d.R, d.S}, where, "im2col matrix (N x P x Q x C x R x S)");
  checked_elements({d.K, d.R, d.S, d.N, d.H, d.W}, where, "backward-data matrix (K x R x S x N x H x W)");
  checked_elements({d.N, d.K, d.Hu(), d.Wu()}, where, "padded, zero-inserted dY (N x K x Hu x Wu)");
  checked_elements({d.N, d.Pd(), d.Qd(), d.C, d.R, d.S}, where, "backward-weights window matrix (N x Pd x Qd x C x R x S)");
}

double conv_costing_steps(const ConvDesc& d) {
  // Per direction (fwd, bwd_data, bwd_weights): the valid tap pairs (P x R + Q x S), the stride
  // phases' rows and taps (sh x sw x (H + W + R + S)), the zero-skip pairs (H x R + W x S).
  const double h = double(d.H), w = double(d.W), r = double(d.R), s = double(d.S);
  const double per_dir = double(d.P()) * r + double(d.Q()) * s + double(d.sh) * double(d.sw) * (h + w + r + s) +
                         h * r + w * s;
  return 3 * per_dir;
}

}  // namespace st
