#include "src/ops/conv.h"

#include <algorithm>

#include "kernels/systolic.h"

namespace st {
namespace {

// Packed panels are built per group of images so that a large batch never needs one huge buffer;
// output rows are independent, so the grouping cannot change a bit (fwd and dX only; dW reduces
// over the batch and is packed whole).
constexpr int64_t kPanelBudgetFloats = int64_t{1} << 25;  // 128 MiB per packed A panel

const ArrayConfig& array_of(const ExecContext& ctx, const char* op) {
  ST_INVARIANT(ctx.spec != nullptr);
  if (ctx.spec->array.format == Format::int8)
    throw UserError(std::string(op) + ": the int8 array format is inference-only; training needs fp32, bf16 or fp16");
  return ctx.spec->array;
}

void expect(const Tensor& t, std::array<int64_t, 4> dims, const char* op, const char* name,
            const ConvDesc& d) {
  if (t.rank() != 4 || t.dims() != dims)
    throw UserError(std::string(op) + " " + d.str() + ": " + name + " is " + t.shape_str() +
                    ", expected (" + std::to_string(dims[0]) + ", " + std::to_string(dims[1]) + ", " +
                    std::to_string(dims[2]) + ", " + std::to_string(dims[3]) + ")");
}

void ensure(Tensor& t, std::array<int64_t, 4> dims, bool zero) {
  if (t.rank() != 4 || t.dims() != dims) {
    t = Tensor(dims);
    if (zero) t.zero();
  }
}

int64_t images_per_chunk(int64_t floats_per_image, int64_t N) {
  return std::clamp<int64_t>(kPanelBudgetFloats / std::max<int64_t>(floats_per_image, 1), 1, N);
}

void emit_all(const ExecContext& ctx, const ConvDesc& d, Direction dir, Lowering l) {
  if (!ctx.sink) return;
  for (const GemmWork& w : conv_work(d, dir, l, *ctx.spec, ctx.layer)) ctx.emit(w);
}

// out (M x cols, rows (n - n0, pix)) -> t[n, col, pix] for images [n0, n1).
void scatter_nchw(const float* out, int64_t n0, int64_t n1, int64_t cols, int64_t pix, float* t) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t c = 0; c < cols; ++c) {
      const float* o = out + (n - n0) * pix * cols + c;
      float* dst = t + (n * cols + c) * pix;
      for (int64_t p = 0; p < pix; ++p) dst[p] = o[p * cols];
    }
}

}  // namespace

void conv_fwd(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& src,
              const Tensor& wei, Tensor& dst) {
  const ArrayConfig& cfg = array_of(ctx, "conv_fwd");
  d.validate();
  expect(src, {d.N, d.C, d.H, d.W}, "conv_fwd", "src", d);
  expect(wei, {d.K, d.C, d.R, d.S}, "conv_fwd", "wei", d);
  ensure(dst, {d.N, d.K, d.P(), d.Q()}, false);
  const int64_t PQ = d.P() * d.Q(), CRS = d.C * d.R * d.S;
  const int64_t nb = images_per_chunk(CRS * PQ, d.N);
  Tensor at({CRS * nb * PQ});   // im2col(X)^T (CRS, nb P Q)
  Tensor out({nb * PQ * d.K});  // Y^T (nb P Q, K)
  for (int64_t n0 = 0; n0 < d.N; n0 += nb) {
    const int64_t n1 = std::min(d.N, n0 + nb), M = (n1 - n0) * PQ;
    pack_im2col_t(d, src.data(), n0, n1, d.P(), d.Q(), d.sh, d.sw, at.data());
    systolic_gemm(cfg, GemmShape{M, d.K, CRS}, MatView{at.data(), M, true},
                  MatView{wei.data(), CRS, true}, out.data(), d.K);
    scatter_nchw(out.data(), n0, n1, d.K, PQ, dst.data());
  }
  emit_all(ctx, d, Direction::fwd, l);
}

void conv_bwd_data(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& diff_dst,
                   const Tensor& wei, Tensor& diff_src) {
  const ArrayConfig& cfg = array_of(ctx, "conv_bwd_data");
  d.validate();
  expect(diff_dst, {d.N, d.K, d.P(), d.Q()}, "conv_bwd_data", "diff_dst", d);
  expect(wei, {d.K, d.C, d.R, d.S}, "conv_bwd_data", "wei", d);
  ensure(diff_src, {d.N, d.C, d.H, d.W}, false);
  const int64_t HW = d.H * d.W;

  if (l == Lowering::zero_skip) {
    // One sub-GEMM per stride phase; rows of a phase without taps receive nothing (+0).
    diff_src.zero();
    for (int64_t ph = 0; ph < d.sh; ++ph)
      for (int64_t pw = 0; pw < d.sw; ++pw) {
        const auto th = phase_taps(axis_h(d), ph), tw = phase_taps(axis_w(d), pw);
        const auto rh = phase_rows(axis_h(d), ph), rw = phase_rows(axis_w(d), pw);
        const int64_t nh = int64_t(rh.size()), nw = int64_t(rw.size());
        const int64_t Kr = d.K * int64_t(th.size() * tw.size()), M = d.N * nh * nw;
        if (Kr == 0 || M == 0) continue;
        Tensor at({Kr * M});      // phase A^T (K R_phi S_phi, N H_phi W_phi)
        Tensor b({Kr * d.C});     // phase W' (K R_phi S_phi, C)
        Tensor out({M * d.C});    // (N H_phi W_phi, C)
        pack_dx_a_t_phase(d, diff_dst.data(), th, tw, rh, rw, at.data());
        pack_dx_b(d, wei.data(), th, tw, b.data());
        systolic_gemm(cfg, GemmShape{M, d.C, Kr}, MatView{at.data(), M, true},
                      MatView{b.data(), d.C, false}, out.data(), d.C);
        float* ds = diff_src.data();
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t c = 0; c < d.C; ++c)
            for (int64_t ih = 0; ih < nh; ++ih)
              for (int64_t iw = 0; iw < nw; ++iw)
                ds[((n * d.C + c) * d.H + rh[ih]) * d.W + rw[iw]] = out[((n * nh + ih) * nw + iw) * d.C + c];
      }
    emit_all(ctx, d, Direction::bwd_data, l);
    return;
  }

  // explicit / bp-im2col: the full B'^T (NHW x KRS) against W' (KRS x C).
  std::vector<int64_t> all_h(static_cast<size_t>(d.R)), all_w(static_cast<size_t>(d.S));
  for (int64_t r = 0; r < d.R; ++r) all_h[r] = d.R - 1 - r;  // rotated order
  for (int64_t t = 0; t < d.S; ++t) all_w[t] = d.S - 1 - t;
  const int64_t KRS = d.K * d.R * d.S;
  Tensor b({KRS * d.C});
  pack_dx_b(d, wei.data(), all_h, all_w, b.data());
  Tensor u_pad;  // explicit: (N, K, Hu, Wu), the materialized zero-inserted, padded dY
  if (l == Lowering::explicit_im2col) {
    u_pad = Tensor({d.N, d.K, d.Hu(), d.Wu()});
    materialize_u_pad(d, diff_dst.data(), u_pad.data());
  }
  const int64_t nb = images_per_chunk(KRS * HW, d.N);
  Tensor at({KRS * nb * HW});   // B' (KRS, nb H W)
  Tensor out({nb * HW * d.C});  // dX^T (nb H W, C)
  for (int64_t n0 = 0; n0 < d.N; n0 += nb) {
    const int64_t n1 = std::min(d.N, n0 + nb), M = (n1 - n0) * HW;
    if (l == Lowering::explicit_im2col) pack_dx_a_t_explicit(d, u_pad.data(), n0, n1, at.data());
    else pack_dx_a_t_bp(d, diff_dst.data(), n0, n1, at.data());
    systolic_gemm(cfg, GemmShape{M, d.C, KRS}, MatView{at.data(), M, true},
                  MatView{b.data(), d.C, false}, out.data(), d.C);
    scatter_nchw(out.data(), n0, n1, d.C, HW, diff_src.data());
  }
  emit_all(ctx, d, Direction::bwd_data, l);
}

void conv_bwd_weights(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& src,
                      const Tensor& diff_dst, Tensor& diff_wei) {
  const ArrayConfig& cfg = array_of(ctx, "conv_bwd_weights");
  d.validate();
  expect(src, {d.N, d.C, d.H, d.W}, "conv_bwd_weights", "src", d);
  expect(diff_dst, {d.N, d.K, d.P(), d.Q()}, "conv_bwd_weights", "diff_dst", d);
  ensure(diff_wei, {d.K, d.C, d.R, d.S}, true);
  const int64_t CRS = d.C * d.R * d.S;
  const bool zero_free = l == Lowering::zero_skip;
  // Reduction extent: N P Q (zero-free) or N Pd Qd (the dilated dY, zeros included).
  const int64_t oh = zero_free ? d.P() : d.Pd(), ow = zero_free ? d.Q() : d.Qd();
  const int64_t Kred = d.N * oh * ow;
  Tensor a({d.K * Kred});   // dY operand (K, N oh ow)
  Tensor bt({CRS * Kred});  // X windows, transposed (CRS, N oh ow)
  if (zero_free) {
    pack_dw_a_zero_free(d, diff_dst.data(), a.data());
    pack_im2col_t(d, src.data(), 0, d.N, oh, ow, d.sh, d.sw, bt.data());
  } else {
    if (l == Lowering::explicit_im2col) {
      Tensor u({d.N, d.K, d.Pd(), d.Qd()});  // the materialized dilated dY
      materialize_u(d, diff_dst.data(), u.data());
      pack_dw_a_from_u(d, u.data(), a.data());
    } else {
      pack_dw_a_dilated(d, diff_dst.data(), a.data());
    }
    pack_im2col_t(d, src.data(), 0, d.N, oh, ow, 1, 1, bt.data());
  }
  Tensor out({d.K * CRS});  // (K, CRS) = diff_wei's layout
  systolic_gemm(cfg, GemmShape{d.K, CRS, Kred}, MatView{a.data(), Kred, false},
                MatView{bt.data(), Kred, true}, out.data(), CRS);
  float* dw = diff_wei.data();
  for (int64_t i = 0; i < d.K * CRS; ++i) dw[i] = dw[i] + out[i];
  emit_all(ctx, d, Direction::bwd_weights, l);
}

}  // namespace st

// ---- Work descriptions (timing-only path; the numeric path emits exactly these) -------------------
namespace st {
namespace {

OperandDesc operand(int64_t rows, int64_t cols, int eb, double dram_elems, double nonzero) {
  OperandDesc o;
  o.rows = rows;
  o.cols = cols;
  o.elem_bytes = eb;
  o.dram_elems = dram_elems;
  const double virt = double(rows) * double(cols);
  o.sram_elems_per_virtual = virt > 0 ? std::min(1.0, dram_elems / virt) : 1.0;
  o.fetched_fraction = virt > 0 ? nonzero / virt : 1.0;
  return o;
}

// Materialized zero-space of the explicit mode: `stored` elements written for `compact` real ones.
void materialized(OperandDesc& o, double stored, double compact) {
  o.sram_elems_per_virtual = std::min(1.0, stored / (double(o.rows) * double(o.cols)));
  o.fetched_fraction = 1.0;
  o.extra_storage_bytes = (stored - compact) * o.elem_bytes;
  o.extra_dram_write_bytes = stored * o.elem_bytes;
  o.extra_dram_read_bytes = compact * o.elem_bytes;
}

GemmWork gemm(const std::string& layer, OpKind kind, Phase phase, GemmShape g, int cb) {
  GemmWork w;
  w.tag = Tag{layer, kind, phase};
  w.shape = g;
  w.c = operand(g.M, g.N, cb, double(g.M) * double(g.N), double(g.M) * double(g.N));
  return w;
}

}  // namespace

std::vector<GemmWork> conv_work(const ConvDesc& d, Direction dir, Lowering l, const Spec& spec,
                                const std::string& layer) {
  d.validate();
  const int eb = format_bytes(spec.array.format), cb = accumulator_bytes(spec.array.format);
  const ConvCounts cnt = conv_counts(d);
  const int64_t P = d.P(), Q = d.Q(), CRS = d.C * d.R * d.S, KRS = d.K * d.R * d.S;
  const double x_elems = double(d.src_elems()), w_elems = double(d.wei_elems());
  const double dy = double(cnt.dy);
  // Non-zero elements of an X window matrix with `out` positions per axis at `stride` (padding).
  auto x_nonzero = [&](int64_t out_h, int64_t out_w, int64_t s_h, int64_t s_w) {
    return double(d.N * d.C) * double(valid_pairs({d.H, d.R, s_h, d.pt, out_h})) *
           double(valid_pairs({d.W, d.S, s_w, d.pl, out_w}));
  };
  std::vector<GemmWork> out;

  if (dir == Direction::fwd) {
    GemmWork w = gemm(layer, OpKind::conv_fwd, Phase::forward, {d.N * P * Q, d.K, CRS}, cb);
    w.a = operand(d.N * P * Q, CRS, eb, x_elems, x_nonzero(P, Q, d.sh, d.sw));
    w.b = operand(CRS, d.K, eb, w_elems, w_elems);
    w.useful_macs = cnt.macs_fwd;
    out.push_back(w);
    return out;
  }

  if (dir == Direction::bwd_data) {
    if (l != Lowering::zero_skip) {
      const int64_t M = d.N * d.H * d.W;
      GemmWork w = gemm(layer, OpKind::conv_bwd_data, Phase::backward_data, {M, d.C, KRS}, cb);
      w.a = operand(M, KRS, eb, dy, double(cnt.bprime_nonzero));
      if (l == Lowering::explicit_im2col) {
        w.a.dram_elems = double(cnt.dy_padded);
        materialized(w.a, double(cnt.dy_padded), dy);
      }
      w.b = operand(KRS, d.C, eb, w_elems, w_elems);
      w.useful_macs = cnt.macs_dx_useful;
      out.push_back(w);
      return out;
    }
    for (int64_t ph = 0; ph < d.sh; ++ph)
      for (int64_t pw = 0; pw < d.sw; ++pw) {
        const auto th = phase_taps(axis_h(d), ph), tw = phase_taps(axis_w(d), pw);
        const auto rh = phase_rows(axis_h(d), ph), rw = phase_rows(axis_w(d), pw);
        const int64_t Kr = d.K * int64_t(th.size() * tw.size());
        const int64_t M = d.N * int64_t(rh.size() * rw.size());
        if (Kr == 0 || M == 0) continue;
        // Non-zero (row, tap) pairs of this phase along each axis (dY rows in range).
        auto pairs = [](const std::vector<int64_t>& rows, const std::vector<int64_t>& taps,
                        int64_t pad, int64_t s, int64_t outn) {
          int64_t v = 0;
          for (int64_t i : rows)
            for (int64_t rbar : taps) {
              int64_t u = i + pad - rbar;
              v += (u >= 0 && u / s < outn);
            }
          return v;
        };
        const double nz = double(d.N * d.K) * double(pairs(rh, th, d.pt, d.sh, P)) *
                          double(pairs(rw, tw, d.pl, d.sw, Q));
        GemmWork w = gemm(layer, OpKind::conv_bwd_data, Phase::backward_data, {M, d.C, Kr}, cb);
        w.sub_gemms = 1;
        w.a = operand(M, Kr, eb, std::min(dy, double(M) * double(Kr)), nz);
        w.b = operand(Kr, d.C, eb, double(Kr * d.C), double(Kr * d.C));
        w.useful_macs = nz * double(d.C);
        out.push_back(w);
      }
    return out;
  }

  // bwd_weights: diff_wei (K x CRS) accumulated.
  const bool zero_free = l == Lowering::zero_skip;
  const int64_t oh = zero_free ? P : d.Pd(), ow = zero_free ? Q : d.Qd();
  const int64_t Kred = d.N * oh * ow;
  GemmWork w = gemm(layer, OpKind::conv_bwd_weights, Phase::backward_weights, {d.K, CRS, Kred}, cb);
  w.a = operand(d.K, Kred, eb, dy, dy);
  if (l == Lowering::explicit_im2col) {
    w.a.dram_elems = double(cnt.dy_inserted);
    materialized(w.a, double(cnt.dy_inserted), dy);
  }
  w.b = zero_free ? operand(Kred, CRS, eb, x_elems, x_nonzero(P, Q, d.sh, d.sw))
                  : operand(Kred, CRS, eb, x_elems, x_nonzero(oh, ow, 1, 1));
  w.useful_macs = cnt.macs_dw_zero_free;
  w.accumulate_into_c = true;
  out.push_back(w);
  return out;
}

}  // namespace st
