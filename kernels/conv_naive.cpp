#include "kernels/conv_naive.h"

namespace st {

namespace {
// Calls f(n, k, c, y, x, r, t, h, w) for every (output, tap) pair whose input (h, w) is inside X.
template <class F>
void for_each_tap(const ConvDesc& d, F&& f) {
  const int64_t P = d.P(), Q = d.Q();
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t k = 0; k < d.K; ++k)
      for (int64_t c = 0; c < d.C; ++c)
        for (int64_t y = 0; y < P; ++y)
          for (int64_t x = 0; x < Q; ++x)
            for (int64_t r = 0; r < d.R; ++r)
              for (int64_t t = 0; t < d.S; ++t) {
                const int64_t h = d.sh * y + r - d.pt, w = d.sw * x + t - d.pl;
                if (h >= 0 && h < d.H && w >= 0 && w < d.W) f(n, k, c, y, x, r, t, h, w);
              }
}
}  // namespace

std::vector<double> conv_fwd_naive(const ConvDesc& d, const double* src, const double* wei) {
  const int64_t P = d.P(), Q = d.Q();
  std::vector<double> dst(static_cast<size_t>(d.dst_elems()), 0.0);
  for_each_tap(d, [&](int64_t n, int64_t k, int64_t c, int64_t y, int64_t x, int64_t r, int64_t t,
                      int64_t h, int64_t w) {
    dst[((n * d.K + k) * P + y) * Q + x] +=
        src[((n * d.C + c) * d.H + h) * d.W + w] * wei[((k * d.C + c) * d.R + r) * d.S + t];
  });
  return dst;
}

std::vector<double> conv_bwd_data_naive(const ConvDesc& d, const double* diff_dst, const double* wei) {
  const int64_t P = d.P(), Q = d.Q();
  std::vector<double> ds(static_cast<size_t>(d.src_elems()), 0.0);
  for_each_tap(d, [&](int64_t n, int64_t k, int64_t c, int64_t y, int64_t x, int64_t r, int64_t t,
                      int64_t h, int64_t w) {
    ds[((n * d.C + c) * d.H + h) * d.W + w] +=
        diff_dst[((n * d.K + k) * P + y) * Q + x] * wei[((k * d.C + c) * d.R + r) * d.S + t];
  });
  return ds;
}

std::vector<double> conv_bwd_weights_naive(const ConvDesc& d, const double* src, const double* diff_dst) {
  const int64_t P = d.P(), Q = d.Q();
  std::vector<double> dw(static_cast<size_t>(d.wei_elems()), 0.0);
  for_each_tap(d, [&](int64_t n, int64_t k, int64_t c, int64_t y, int64_t x, int64_t r, int64_t t,
                      int64_t h, int64_t w) {
    dw[((k * d.C + c) * d.R + r) * d.S + t] +=
        diff_dst[((n * d.K + k) * P + y) * Q + x] * src[((n * d.C + c) * d.H + h) * d.W + w];
  });
  return dw;
}

}  // namespace st
