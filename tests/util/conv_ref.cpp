#include "tests/util/conv_ref.h"

#include <cmath>
#include <sstream>

#include "kernels/conv_naive.h"
#include "tests/util/onednn_util.h"

namespace st::test {

namespace {
using dnnl::algorithm;
using dnnl::prop_kind;

struct Geometry {
  memory::dims strides, pad_l, pad_r;
};
Geometry geometry(const ConvDesc& d) {
  return {{d.sh, d.sw}, {d.pt, d.pl}, {d.pb, d.pr}};
}
memory::dims src_dims(const ConvDesc& d) { return {d.N, d.C, d.H, d.W}; }
memory::dims wei_dims(const ConvDesc& d) { return {d.K, d.C, d.R, d.S}; }
memory::dims dst_dims(const ConvDesc& d) { return {d.N, d.K, d.P(), d.Q()}; }

dnnl::convolution_forward::primitive_desc fwd_pd(const ConvDesc& d) {
  const Geometry g = geometry(d);
  dnnl::convolution_forward::desc desc(prop_kind::forward_training, algorithm::convolution_direct,
                                       plain_md(src_dims(d)), plain_md(wei_dims(d)),
                                       plain_md(dst_dims(d)), g.strides, g.pad_l, g.pad_r);
  return {desc, dnnl_env().eng};
}
}  // namespace

Tensor onednn_conv_fwd(const ConvDesc& d, const Tensor& src, const Tensor& wei) {
  Tensor dst({d.N, d.K, d.P(), d.Q()});
  auto pd = fwd_pd(d);
  run(dnnl::convolution_forward(pd),
      {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_WEIGHTS, as_mem(wei)}, {DNNL_ARG_DST, as_mem(dst)}});
  return dst;
}

Tensor onednn_conv_bwd_data(const ConvDesc& d, const Tensor& diff_dst, const Tensor& wei) {
  Tensor diff_src({d.N, d.C, d.H, d.W});
  const Geometry g = geometry(d);
  dnnl::convolution_backward_data::desc desc(algorithm::convolution_direct, plain_md(src_dims(d)),
                                             plain_md(wei_dims(d)), plain_md(dst_dims(d)),
                                             g.strides, g.pad_l, g.pad_r);
  dnnl::convolution_backward_data::primitive_desc pd(desc, dnnl_env().eng, fwd_pd(d));
  run(dnnl::convolution_backward_data(pd), {{DNNL_ARG_DIFF_DST, as_mem(diff_dst)},
                                            {DNNL_ARG_WEIGHTS, as_mem(wei)},
                                            {DNNL_ARG_DIFF_SRC, as_mem(diff_src)}});
  return diff_src;
}

Tensor onednn_conv_bwd_weights(const ConvDesc& d, const Tensor& src, const Tensor& diff_dst) {
  Tensor diff_wei({d.K, d.C, d.R, d.S});
  const Geometry g = geometry(d);
  dnnl::convolution_backward_weights::desc desc(algorithm::convolution_direct, plain_md(src_dims(d)),
                                                plain_md(wei_dims(d)), plain_md(dst_dims(d)),
                                                g.strides, g.pad_l, g.pad_r);
  dnnl::convolution_backward_weights::primitive_desc pd(desc, dnnl_env().eng, fwd_pd(d));
  run(dnnl::convolution_backward_weights(pd), {{DNNL_ARG_SRC, as_mem(src)},
                                               {DNNL_ARG_DIFF_DST, as_mem(diff_dst)},
                                               {DNNL_ARG_DIFF_WEIGHTS, as_mem(diff_wei)}});
  return diff_wei;
}

namespace {
// The channel-tap mapping of one lowered GEMM (kernels/lowering.h "Mappings"), from its definition:
// the reduction (A x U, channel-major) reordered tap-major with its per-tap chunks, or the output
// columns (A x U, dW) reordered tap-major. {0, 0}: nothing to reorder.
struct TapMajor {
  int64_t red_a = 0, red_u = 0;   // reduction: channels x taps
  int64_t col_a = 0, col_u = 0;   // output columns (dW): channels x taps
};

// C (rows x cols) = A . B on the PE-level reference from dense virtual operands. Under channel-tap
// the operands are permuted as `tm` says (columns of C returned in the channel-major order).
std::vector<float> ref_gemm(const ArrayConfig& cfg, const VirtualMatrix& va, const float* a_backing,
                            const VirtualMatrix& vb, const float* b_backing, TapMajor tm = {}) {
  std::vector<float> A = va.dense(a_backing), B = vb.dense(b_backing);
  const GemmShape g{va.rows(), vb.cols(), va.cols()};
  const bool ct = cfg.conv_mapping == ConvMapping::channel_tap;
  std::vector<int32_t> chunks;
  std::vector<int64_t> col_order;
  if (ct && tm.red_a > 0) {
    EXPECT_EQ(tm.red_a * tm.red_u, g.K);
    const std::vector<int64_t> order = tap_major_order(tm.red_a, tm.red_u);
    std::vector<float> A2(A.size()), B2(B.size());
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t j = 0; j < g.K; ++j) A2[size_t(m * g.K + j)] = A[size_t(m * g.K + order[size_t(j)])];
    for (int64_t j = 0; j < g.K; ++j)
      for (int64_t n = 0; n < g.N; ++n) B2[size_t(j * g.N + n)] = B[size_t(order[size_t(j)] * g.N + n)];
    A.swap(A2);
    B.swap(B2);
    chunks = tap_chunks(tm.red_a, tm.red_u, cfg.rows);
  }
  if (ct && tm.col_a > 0) {
    EXPECT_EQ(tm.col_a * tm.col_u, g.N);
    col_order = tap_major_order(tm.col_a, tm.col_u);
    std::vector<float> B2(B.size());
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t j = 0; j < g.N; ++j) B2[size_t(k * g.N + j)] = B[size_t(k * g.N + col_order[size_t(j)])];
    B.swap(B2);
  }
  std::vector<float> C(static_cast<size_t>(std::max<int64_t>(g.M * g.N, 1)));
  if (g.M * g.N > 0) {
    if (g.K == 0) std::fill(C.begin(), C.end(), 0.0f);
    else systolic_gemm_reference(cfg, g, MatView{A.data(), g.K, false}, MatView{B.data(), g.N, false},
                                 C.data(), g.N, chunks.empty() ? nullptr : &chunks);
  }
  if (!col_order.empty()) {
    std::vector<float> C2(C.size());
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t j = 0; j < g.N; ++j) C2[size_t(m * g.N + col_order[size_t(j)])] = C[size_t(m * g.N + j)];
    C.swap(C2);
  }
  return C;
}
}  // namespace

Tensor array_ref_conv(const ArrayConfig& cfg, const ConvDesc& d, Direction dir, Lowering l,
                      const Tensor& in0, const Tensor& in1) {
  const int64_t P = d.P(), Q = d.Q();
  if (dir == Direction::fwd) {
    Tensor dst({d.N, d.K, P, Q});
    auto C = ref_gemm(cfg, VirtualMatrix(d, Operand::fwd_a), in0.data(), VirtualMatrix(d, Operand::fwd_b),
                      in1.data(), {d.C, d.R * d.S});
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t k = 0; k < d.K; ++k)
        for (int64_t p = 0; p < P * Q; ++p) dst[(n * d.K + k) * P * Q + p] = C[(n * P * Q + p) * d.K + k];
    return dst;
  }
  if (dir == Direction::bwd_data) {
    Tensor ds({d.N, d.C, d.H, d.W});
    ds.zero();
    if (l != Lowering::zero_skip) {
      std::vector<float> u_pad;
      const float* a_backing = in0.data();
      if (l == Lowering::explicit_im2col) {
        u_pad.resize(static_cast<size_t>(d.N * d.K * d.Hu() * d.Wu()));
        materialize_u_pad(d, in0.data(), u_pad.data());
        a_backing = u_pad.data();
      }
      auto C = ref_gemm(cfg, VirtualMatrix(d, l == Lowering::explicit_im2col ? Operand::dx_a_explicit
                                                                             : Operand::dx_a_bp),
                        a_backing, VirtualMatrix(d, Operand::dx_b), in1.data(), {d.K, d.R * d.S});
      const int64_t HW = d.H * d.W;
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t c = 0; c < d.C; ++c)
          for (int64_t p = 0; p < HW; ++p) ds[(n * d.C + c) * HW + p] = C[(n * HW + p) * d.C + c];
      return ds;
    }
    for (int64_t ph = 0; ph < d.sh; ++ph)
      for (int64_t pw = 0; pw < d.sw; ++pw) {
        VirtualMatrix va(d, Operand::dx_a_phase, ph, pw), vb(d, Operand::dx_b_phase, ph, pw);
        const int64_t ntaps = int64_t(phase_taps(axis_h(d), ph).size() * phase_taps(axis_w(d), pw).size());
        auto C = ref_gemm(cfg, va, in0.data(), vb, in1.data(), {ntaps > 0 ? d.K : 0, ntaps});
        const auto rh = phase_rows(axis_h(d), ph), rw = phase_rows(axis_w(d), pw);
        const int64_t nh = int64_t(rh.size()), nw = int64_t(rw.size());
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t c = 0; c < d.C; ++c)
            for (int64_t ih = 0; ih < nh; ++ih)
              for (int64_t iw = 0; iw < nw; ++iw)
                ds.at(n, c, rh[ih], rw[iw]) = C[((n * nh + ih) * nw + iw) * d.C + c];
      }
    return ds;
  }
  Tensor dw({d.K, d.C, d.R, d.S});
  std::vector<float> C;
  const TapMajor cols{0, 0, d.C, d.R * d.S};  // channel-tap: dW's columns tap-major
  if (l == Lowering::zero_skip) {
    C = ref_gemm(cfg, VirtualMatrix(d, Operand::dw_a_zero_free), in1.data(),
                 VirtualMatrix(d, Operand::dw_b_zero_free), in0.data(), cols);
  } else if (l == Lowering::bp_im2col) {
    C = ref_gemm(cfg, VirtualMatrix(d, Operand::dw_a_bp), in1.data(), VirtualMatrix(d, Operand::dw_b_window),
                 in0.data(), cols);
  } else {
    std::vector<float> u(static_cast<size_t>(d.N * d.K * d.Pd() * d.Qd()));
    materialize_u(d, in1.data(), u.data());
    C = ref_gemm(cfg, VirtualMatrix(d, Operand::dw_a_explicit), u.data(),
                 VirtualMatrix(d, Operand::dw_b_window), in0.data(), cols);
  }
  for (int64_t i = 0; i < dw.size(); ++i) dw[i] = C[i];
  return dw;
}

Tensor rounded(const Tensor& t, Format f) {
  Tensor r = t;
  round_array(f, Subnormals::keep, r.data(), r.size());
  return r;
}

std::vector<double> to_f64(const Tensor& t, bool absolute) {
  std::vector<double> v(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i) v[i] = absolute ? std::fabs(double(t[i])) : double(t[i]);
  return v;
}

std::vector<double> naive(const ConvDesc& d, Direction dir, const Tensor& in0, const Tensor& in1,
                          bool absolute) {
  auto a = to_f64(in0, absolute), b = to_f64(in1, absolute);
  switch (dir) {
    case Direction::fwd: return conv_fwd_naive(d, a.data(), b.data());
    case Direction::bwd_data: return conv_bwd_data_naive(d, a.data(), b.data());
    case Direction::bwd_weights: return conv_bwd_weights_naive(d, a.data(), b.data());
  }
  return {};
}

int64_t reduction_length(const ConvDesc& d, Direction dir) {
  switch (dir) {
    case Direction::fwd: return d.C * d.R * d.S;
    case Direction::bwd_data: return d.K * d.R * d.S;
    case Direction::bwd_weights: return d.N * d.Pd() * d.Qd();
  }
  return 0;
}

::testing::AssertionResult within_bound(const Tensor& got, const Tensor& want,
                                        const std::vector<double>& abs_terms, int64_t kred,
                                        double tol_factor, const std::string& what) {
  constexpr double kU = 5.9604644775390625e-08;  // 2^-24, unit roundoff of fp32
  constexpr double kTiny = 1e-30;
  int64_t bad = 0;
  std::ostringstream msg;
  for (int64_t i = 0; i < got.size(); ++i) {
    const double bound = tol_factor * double(kred) * kU * abs_terms[i] + kTiny;
    const double err = std::fabs(double(got[i]) - double(want[i]));
    if (!(err <= bound)) {
      if (bad < 8) msg << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " bound " << bound;
      ++bad;
    }
  }
  if (bad) return ::testing::AssertionFailure() << what << ": " << bad << "/" << got.size()
                                                << " outside the error bound" << msg.str();
  return ::testing::AssertionSuccess();
}

void fill_conv_input(Tensor& t, std::mt19937_64& rng, bool integers) {
  if (integers) fill_int(t, rng, -3, 3);
  else fill_real(t, rng, -1.0f, 1.0f);
}

}  // namespace st::test
