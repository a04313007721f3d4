#pragma once
// Naive reference convolution: the definition as a direct 7-loop nest in fp64, no lowering.
// Beside the fast path (src/ops/conv.cpp) to be obviously right; used by tests and gradcheck.
//   fwd:          dst[n,k,y,x]      = sum_{c,r,t} src[n,c,sh*y+r-pt, sw*x+t-pl] * wei[k,c,r,t]
//   bwd_data:     diff_src[n,c,h,w] = sum over (k,y,x,r,t) with sh*y+r-pt = h, sw*x+t-pl = w of
//                                     diff_dst[n,k,y,x] * wei[k,c,r,t]
//   bwd_weights:  diff_wei[k,c,r,t] = sum_{n,y,x} diff_dst[n,k,y,x] * src[n,c,sh*y+r-pt, sw*x+t-pl]
//                 (summed over the batch, not divided by N, as oneDNN does)
// Reads outside the input are zero. Outputs are written (not accumulated), in fp64.
#include <vector>

#include "kernels/lowering.h"

namespace st {

std::vector<double> conv_fwd_naive(const ConvDesc& d, const double* src, const double* wei);
std::vector<double> conv_bwd_data_naive(const ConvDesc& d, const double* diff_dst, const double* wei);
std::vector<double> conv_bwd_weights_naive(const ConvDesc& d, const double* src, const double* diff_dst);

}  // namespace st
