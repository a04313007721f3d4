#pragma once
// The option-A shortcut of CIFAR ResNets (He et al. 2016): the identity path of a downsampling block
// subsamples by the stride and pads the added channels with zeros. No weights, pure data movement
// on the vector unit. Forward and backward side by side; backward writes diff_src (the shortcut is
// the first consumer of its input's gradient only through the Network's deliver()).
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

// dst (N, C_out, H_out, W_out) = src (N, C_in, H, W) at [n, c, s*y, s*x] for c < C_in, zero for
// c >= C_in. dst is (re)shaped to (N, c_out, h_out, w_out).
void shortcut_a_fwd(const ExecContext& ctx, int stride, int64_t c_out, int64_t h_out, int64_t w_out,
                    const Tensor& src, Tensor& dst);
// diff_src (N, C_in, H, W): diff_dst's first C_in channels scattered back to the strided positions,
// zero elsewhere.
void shortcut_a_bwd(const ExecContext& ctx, int stride, const Tensor& diff_dst, const Tensor& src, Tensor& diff_src);

// The work each direction describes (the projection emits the same): n, c_in = the input's batch and
// channels, c_out, h_out, w_out = the output's channels and size.
VectorWork shortcut_a_fwd_work(const ExecContext& ctx, int64_t n, int64_t c_in, int64_t c_out, int64_t h_out,
                               int64_t w_out);
// h_in, w_in: the input's size (the gradient written); h_out, w_out: diff_dst's.
VectorWork shortcut_a_bwd_work(const ExecContext& ctx, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                               int64_t h_out, int64_t w_out);

}  // namespace st
