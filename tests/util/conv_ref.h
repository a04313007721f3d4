#pragma once
// Convolution test helpers: oneDNN 2.6 convolution primitives (fp32, NCHW, direct algorithm) as the
// reference for the three directions, a PE-level "array reference" that lowers through the virtual
// matrices (kernels/lowering.h VirtualMatrix::dense, the slow obviously-right packer) and runs the
// cycle-stepped systolic_gemm_reference, and a per-element error bound for random inputs.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/lowering.h"
#include "kernels/systolic.h"
#include "src/base/tensor.h"

namespace st::test {

// oneDNN results (outputs written, diff_wei not accumulated).
Tensor onednn_conv_fwd(const ConvDesc& d, const Tensor& src, const Tensor& wei);
Tensor onednn_conv_bwd_data(const ConvDesc& d, const Tensor& diff_dst, const Tensor& wei);
Tensor onednn_conv_bwd_weights(const ConvDesc& d, const Tensor& src, const Tensor& diff_dst);

// The same direction computed on the PE-level array reference through the virtual matrices.
// For bwd_weights the result is the GEMM alone (as if diff_wei started at zero).
Tensor array_ref_conv(const ArrayConfig& cfg, const ConvDesc& d, Direction dir, Lowering l,
                      const Tensor& in0, const Tensor& in1);

// Copy of t with every element rounded to the array's input format (what a PE sees).
Tensor rounded(const Tensor& t, Format f);
std::vector<double> to_f64(const Tensor& t, bool absolute);

// The fp64 naive result of a direction, and of the same direction on |inputs| (sum of |terms|,
// used for the per-element error bound). in0/in1 as for the ops: fwd (src, wei),
// bwd_data (diff_dst, wei), bwd_weights (src, diff_dst).
std::vector<double> naive(const ConvDesc& d, Direction dir, const Tensor& in0, const Tensor& in1,
                          bool absolute = false);
// Length of the reduction of one output element (bound on the number of roundings per element).
int64_t reduction_length(const ConvDesc& d, Direction dir);

// |got - want| <= tol_factor * kred * 2^-24 * sum|terms| + tiny per element: the classic bound
// gamma_n * sum|a_i b_i| of a recursive fp32 sum (Higham 3.1) of exact products, for each side.
::testing::AssertionResult within_bound(const Tensor& got, const Tensor& want,
                                        const std::vector<double>& abs_terms, int64_t kred,
                                        double tol_factor, const std::string& what);

// Random test inputs: small integers (exact in every format and every partial sum) or reals.
void fill_conv_input(Tensor& t, std::mt19937_64& rng, bool integers);

}  // namespace st::test
