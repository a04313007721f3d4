#include "kernels/lowering.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "kernels/address_gen.h"

#include "src/base/error.h"

namespace st {

std::string_view to_string(Lowering l) {
  switch (l) {
    case Lowering::explicit_im2col: return "explicit";
    case Lowering::bp_im2col: return "bp-im2col";
    case Lowering::zero_skip: return "zero-skip";
  }
  return "?";
}

std::optional<Lowering> parse_lowering(std::string_view s) {
  for (Lowering l : kAllLowerings)
    if (s == to_string(l)) return l;
  if (s == "bp_im2col" || s == "bpim2col") return Lowering::bp_im2col;
  if (s == "zero_skip") return Lowering::zero_skip;
  return std::nullopt;
}

Lowering lowering_from_flag(std::string_view s, std::string_view flag) {
  if (auto l = parse_lowering(s)) return *l;
  throw UserError(fmt::format("{} must be explicit, bp-im2col or zero-skip (got '{}')", flag, s));
}

ConvMapping conv_mapping_from_flag(std::string_view s, std::string_view flag) {
  if (auto m = parse_conv_mapping(s)) return *m;
  throw UserError(fmt::format("{} must be im2col or channel_tap (got '{}')", flag, s));
}

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::fwd: return "fwd";
    case Direction::bwd_data: return "bwd_data";
    case Direction::bwd_weights: return "bwd_weights";
  }
  return "?";
}

std::string ConvDesc::str() const {
  std::string s = "mb" + std::to_string(N) + "ic" + std::to_string(C) + "ih" + std::to_string(H);
  if (W != H) s += "iw" + std::to_string(W);
  s += "oc" + std::to_string(K) + "kh" + std::to_string(R);
  if (S != R) s += "kw" + std::to_string(S);
  s += "sh" + std::to_string(sh);
  if (sw != sh) s += "sw" + std::to_string(sw);
  s += "ph" + std::to_string(pt);
  if (pl != pt) s += "pw" + std::to_string(pl);
  if (pb != pt || pr != pl) s += "pb" + std::to_string(pb) + "pr" + std::to_string(pr);
  return s;
}

void ConvDesc::validate() const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw UserError("conv " + str() + ": " + what);
  };
  need(N > 0 && C > 0 && H > 0 && W > 0 && K > 0 && R > 0 && S > 0,
       "N, C, H, W, K, R, S must all be positive");
  need(sh >= 1 && sh <= 4 && sw >= 1 && sw <= 4, "strides must be in 1..4");
  need(pt >= 0 && pb >= 0 && pt <= R - 1 && pb <= R - 1, "pad_t and pad_b must be in 0..R-1");
  need(pl >= 0 && pr >= 0 && pl <= S - 1 && pr <= S - 1, "pad_l and pad_r must be in 0..S-1");
  need(H + pt + pb >= R && W + pl + pr >= S, "the padded input is smaller than the kernel");
}

int64_t valid_pairs(const Axis& a) {
  int64_t v = 0;
  for (int64_t y = 0; y < a.out; ++y)
    for (int64_t r = 0; r < a.taps; ++r) {
      int64_t i = a.stride * y + r - a.pad;
      v += (i >= 0 && i < a.in);
    }
  return v;
}

std::vector<int64_t> phase_taps(const Axis& a, int64_t phi) {
  std::vector<int64_t> t;
  for (int64_t rbar = a.taps - 1; rbar >= 0; --rbar)
    if (rbar % a.stride == phi) t.push_back(rbar);
  return t;
}

std::vector<int64_t> phase_rows(const Axis& a, int64_t phi) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < a.in; ++i)
    if ((i + a.pad) % a.stride == phi) rows.push_back(i);
  return rows;
}

ConvCounts conv_counts(const ConvDesc& d) {
  ConvCounts c;
  const int64_t NK = d.N * d.K;
  c.dy = NK * d.P() * d.Q();
  c.dy_inserted = NK * d.Pd() * d.Qd();
  c.dy_padded = NK * d.Hu() * d.Wu();
  c.bprime_entries = d.K * d.R * d.S * d.N * d.H * d.W;
  c.bprime_nonzero = NK * valid_pairs(axis_h(d)) * valid_pairs(axis_w(d));
  c.macs_fwd = d.fwd_macs();
  c.macs_dx_explicit = double(d.C) * double(c.bprime_entries);
  c.macs_dx_useful = double(d.C) * double(c.bprime_nonzero);
  double phase = 0;
  for (int64_t ph = 0; ph < d.sh; ++ph)
    for (int64_t pw = 0; pw < d.sw; ++pw)
      phase += double(phase_rows(axis_h(d), ph).size() * phase_rows(axis_w(d), pw).size()) *
               double(phase_taps(axis_h(d), ph).size() * phase_taps(axis_w(d), pw).size());
  c.macs_dx_phase = phase * double(d.N * d.K * d.C);
  c.macs_dw_explicit = double(d.K * d.C * d.R * d.S) * double(d.N * d.Pd() * d.Qd());
  c.macs_dw_zero_free = double(d.K * d.C * d.R * d.S) * double(d.N * d.P() * d.Q());
  return c;
}

// ---- Virtual matrices -------------------------------------------------------------------------

VirtualMatrix::VirtualMatrix(const ConvDesc& d, Operand op, int64_t phi_h, int64_t phi_w)
    : d_(d), op_(op) {
  const int64_t NPQ = d.N * d.P() * d.Q(), CRS = d.C * d.R * d.S, KRS = d.K * d.R * d.S;
  const int64_t NHW = d.N * d.H * d.W, NPdQd = d.N * d.Pd() * d.Qd();
  if (op == Operand::dx_a_phase || op == Operand::dx_b_phase) {
    th_ = phase_taps(axis_h(d), phi_h);
    tw_ = phase_taps(axis_w(d), phi_w);
    hh_ = phase_rows(axis_h(d), phi_h);
    ww_ = phase_rows(axis_w(d), phi_w);
  }
  const int64_t KT = d.K * int64_t(th_.size() * tw_.size());
  switch (op) {
    case Operand::fwd_a: case Operand::dw_b_zero_free: rows_ = NPQ; cols_ = CRS; break;
    case Operand::fwd_b: rows_ = CRS; cols_ = d.K; break;
    case Operand::dx_a_bp: case Operand::dx_a_explicit: rows_ = NHW; cols_ = KRS; break;
    case Operand::dx_b: rows_ = KRS; cols_ = d.C; break;
    case Operand::dx_a_phase: rows_ = d.N * int64_t(hh_.size() * ww_.size()); cols_ = KT; break;
    case Operand::dx_b_phase: rows_ = KT; cols_ = d.C; break;
    case Operand::dw_a_bp: case Operand::dw_a_explicit: rows_ = d.K; cols_ = NPdQd; break;
    case Operand::dw_b_window: rows_ = NPdQd; cols_ = CRS; break;
    case Operand::dw_a_zero_free: rows_ = d.K; cols_ = NPQ; break;
  }
}

int64_t VirtualMatrix::index(int64_t row, int64_t col) const {
  const ConvDesc& d = d_;
  const int64_t P = d.P(), Q = d.Q();
  // X[n, c, h, w] or -1 outside.
  auto x_at = [&](int64_t n, int64_t c, int64_t h, int64_t w) -> int64_t {
    if (h < 0 || h >= d.H || w < 0 || w >= d.W) return -1;
    return ((n * d.C + c) * d.H + h) * d.W + w;
  };
  auto dy_at = [&](int64_t n, int64_t k, int64_t y, int64_t x) { return ((n * d.K + k) * P + y) * Q + x; };
  // dY element that output position i receives from original tap rbar along one axis, or -1.
  auto src_of = [](int64_t i, int64_t pad, int64_t rbar, int64_t s, int64_t out) -> int64_t {
    int64_t u = i + pad - rbar;
    if (u < 0 || u % s != 0 || u / s >= out) return -1;
    return u / s;
  };
  switch (op_) {
    case Operand::fwd_a: case Operand::dw_b_zero_free: {
      int64_t n = row / (P * Q), y = row / Q % P, x = row % Q;
      int64_t c = col / (d.R * d.S), r = col / d.S % d.R, t = col % d.S;
      return x_at(n, c, d.sh * y + r - d.pt, d.sw * x + t - d.pl);
    }
    case Operand::fwd_b: {
      int64_t c = row / (d.R * d.S), r = row / d.S % d.R, t = row % d.S;
      return ((col * d.C + c) * d.R + r) * d.S + t;
    }
    case Operand::dx_a_bp: case Operand::dx_a_explicit: {
      int64_t n = row / (d.H * d.W), h = row / d.W % d.H, w = row % d.W;
      int64_t k = col / (d.R * d.S), rp = col / d.S % d.R, tp = col % d.S;
      if (op_ == Operand::dx_a_explicit) return ((n * d.K + k) * d.Hu() + h + rp) * d.Wu() + w + tp;
      int64_t y = src_of(h, d.pt, d.R - 1 - rp, d.sh, P), x = src_of(w, d.pl, d.S - 1 - tp, d.sw, Q);
      return (y < 0 || x < 0) ? -1 : dy_at(n, k, y, x);
    }
    case Operand::dx_b: {
      int64_t k = row / (d.R * d.S), rp = row / d.S % d.R, tp = row % d.S;
      return ((k * d.C + col) * d.R + (d.R - 1 - rp)) * d.S + (d.S - 1 - tp);
    }
    case Operand::dx_a_phase: {
      const int64_t nh = int64_t(hh_.size()), nw = int64_t(ww_.size());
      const int64_t nth = int64_t(th_.size()), ntw = int64_t(tw_.size());
      int64_t n = row / (nh * nw), h = hh_[row / nw % nh], w = ww_[row % nw];
      int64_t k = col / (nth * ntw), rbar = th_[col / ntw % nth], tbar = tw_[col % ntw];
      int64_t y = src_of(h, d.pt, rbar, d.sh, P), x = src_of(w, d.pl, tbar, d.sw, Q);
      return (y < 0 || x < 0) ? -1 : dy_at(n, k, y, x);
    }
    case Operand::dx_b_phase: {
      const int64_t nth = int64_t(th_.size()), ntw = int64_t(tw_.size());
      int64_t k = row / (nth * ntw), rbar = th_[row / ntw % nth], tbar = tw_[row % ntw];
      return ((k * d.C + col) * d.R + rbar) * d.S + tbar;
    }
    case Operand::dw_a_bp: case Operand::dw_a_explicit: {
      const int64_t Pd = d.Pd(), Qd = d.Qd();
      int64_t n = col / (Pd * Qd), i = col / Qd % Pd, j = col % Qd;
      if (op_ == Operand::dw_a_explicit) return ((n * d.K + row) * Pd + i) * Qd + j;
      if (i % d.sh != 0 || j % d.sw != 0) return -1;
      return dy_at(n, row, i / d.sh, j / d.sw);
    }
    case Operand::dw_b_window: {
      const int64_t Pd = d.Pd(), Qd = d.Qd();
      int64_t n = row / (Pd * Qd), i = row / Qd % Pd, j = row % Qd;
      int64_t c = col / (d.R * d.S), r = col / d.S % d.R, t = col % d.S;
      return x_at(n, c, i + r - d.pt, j + t - d.pl);
    }
    case Operand::dw_a_zero_free: {
      int64_t n = col / (P * Q), y = col / Q % P, x = col % Q;
      return dy_at(n, row, y, x);
    }
  }
  return -1;
}

std::vector<float> VirtualMatrix::dense(const float* backing) const {
  std::vector<float> m(static_cast<size_t>(rows_ * cols_));
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t c = 0; c < cols_; ++c) {
      int64_t i = index(r, c);
      m[r * cols_ + c] = i < 0 ? 0.0f : backing[i];
    }
  return m;
}

// ---- Materialization ----------------------------------------------------------------------------

void materialize_u_pad(const ConvDesc& d, const float* dy, float* u_pad) {
  const int64_t P = d.P(), Q = d.Q(), Hu = d.Hu(), Wu = d.Wu();
  const int64_t top = d.R - 1 - d.pt, left = d.S - 1 - d.pl;  // zero rows / cols before dY
#pragma omp parallel for schedule(static)
  for (int64_t nk = 0; nk < d.N * d.K; ++nk) {
    float* u = u_pad + nk * Hu * Wu;
    std::memset(u, 0, sizeof(float) * size_t(Hu * Wu));
    for (int64_t y = 0; y < P; ++y)
      for (int64_t x = 0; x < Q; ++x) u[(top + d.sh * y) * Wu + left + d.sw * x] = dy[(nk * P + y) * Q + x];
  }
}

void materialize_u(const ConvDesc& d, const float* dy, float* u) {
  const int64_t P = d.P(), Q = d.Q(), Pd = d.Pd(), Qd = d.Qd();
#pragma omp parallel for schedule(static)
  for (int64_t nk = 0; nk < d.N * d.K; ++nk) {
    float* o = u + nk * Pd * Qd;
    std::memset(o, 0, sizeof(float) * size_t(Pd * Qd));
    for (int64_t y = 0; y < P; ++y)
      for (int64_t x = 0; x < Q; ++x) o[d.sh * y * Qd + d.sw * x] = dy[(nk * P + y) * Q + x];
  }
}

// ---- Fast packers -------------------------------------------------------------------------------

// The whole-matrix packers are the address generator's fill over every row, images [n0, n1).
namespace {
void fill_images(const AddressGenerator& g, const float* backing, int64_t N, int64_t n0, int64_t n1, float* dst) {
  const int64_t per_image = g.cols() / N, c0 = n0 * per_image, c1 = n1 * per_image, ld = c1 - c0;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < g.rows(); ++row) g.fill(backing, row, row + 1, c0, c1, dst + row * ld, ld);
}
}  // namespace

void pack_im2col_t(const ConvDesc& d, const float* x, int64_t n0, int64_t n1, int64_t out_h,
                   int64_t out_w, int64_t stride_h, int64_t stride_w, float* dst) {
  fill_images(AddressGenerator::im2col(d, out_h, out_w, stride_h, stride_w), x, d.N, n0, n1, dst);
}

void pack_dx_a_t_bp(const ConvDesc& d, const float* dy, int64_t n0, int64_t n1, float* dst) {
  fill_images(AddressGenerator::dx_bp(d), dy, d.N, n0, n1, dst);
}

void pack_dx_a_t_explicit(const ConvDesc& d, const float* u_pad, int64_t n0, int64_t n1, float* dst) {
  fill_images(AddressGenerator::dx_explicit(d), u_pad, d.N, n0, n1, dst);
}

void pack_dx_a_t_phase(const ConvDesc& d, const float* dy, const std::vector<int64_t>& taps_h,
                       const std::vector<int64_t>& taps_w, const std::vector<int64_t>& rows_h,
                       const std::vector<int64_t>& rows_w, float* dst) {
  const int64_t P = d.P(), Q = d.Q();
  const int64_t nth = int64_t(taps_h.size()), ntw = int64_t(taps_w.size());
  const int64_t nh = int64_t(rows_h.size()), nw = int64_t(rows_w.size()), ld = d.N * nh * nw;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < d.K * nth * ntw; ++row) {
    const int64_t k = row / (nth * ntw), rbar = taps_h[row / ntw % nth], tbar = taps_w[row % ntw];
    float* out = dst + row * ld;
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t ih = 0; ih < nh; ++ih) {
        float* o = out + (n * nh + ih) * nw;
        const int64_t y = (rows_h[ih] + d.pt - rbar) / d.sh;  // exact: same phase
        if (rows_h[ih] + d.pt - rbar < 0 || y >= P) {
          std::fill(o, o + nw, 0.0f);
          continue;
        }
        const float* src = dy + ((n * d.K + k) * P + y) * Q;
        for (int64_t iw = 0; iw < nw; ++iw) {
          const int64_t v = rows_w[iw] + d.pl - tbar;
          o[iw] = (v < 0 || v / d.sw >= Q) ? 0.0f : src[v / d.sw];
        }
      }
  }
}

std::vector<int64_t> tap_major_order(int64_t A, int64_t U) {
  std::vector<int64_t> v(static_cast<size_t>(A * U));
  for (int64_t u = 0; u < U; ++u)
    for (int64_t a = 0; a < A; ++a) v[size_t(u * A + a)] = a * U + u;
  return v;
}

std::vector<int32_t> tap_chunks(int64_t A, int64_t U, int64_t rows) {
  std::vector<int32_t> v;
  for (int64_t u = 0; u < U; ++u)
    for (int64_t a0 = 0; a0 < A; a0 += rows) v.push_back(static_cast<int32_t>(std::min(rows, A - a0)));
  return v;
}

void pack_dx_b(const ConvDesc& d, const float* w, const std::vector<int64_t>& taps_h,
               const std::vector<int64_t>& taps_w, float* dst) {
  const int64_t nth = int64_t(taps_h.size()), ntw = int64_t(taps_w.size());
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t jh = 0; jh < nth; ++jh)
      for (int64_t jw = 0; jw < ntw; ++jw) {
        float* o = dst + ((k * nth + jh) * ntw + jw) * d.C;
        for (int64_t c = 0; c < d.C; ++c) o[c] = w[((k * d.C + c) * d.R + taps_h[jh]) * d.S + taps_w[jw]];
      }
}

void pack_dw_a_dilated(const ConvDesc& d, const float* dy, float* dst) {
  const int64_t P = d.P(), Q = d.Q(), Pd = d.Pd(), Qd = d.Qd(), ld = d.N * Pd * Qd;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < d.K; ++k) {
    float* o = dst + k * ld;
    std::fill(o, o + ld, 0.0f);
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t y = 0; y < P; ++y)
        for (int64_t x = 0; x < Q; ++x)
          o[(n * Pd + d.sh * y) * Qd + d.sw * x] = dy[((n * d.K + k) * P + y) * Q + x];
  }
}

void pack_dw_a_from_u(const ConvDesc& d, const float* u, float* dst) {
  const int64_t PdQd = d.Pd() * d.Qd();
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t n = 0; n < d.N; ++n)
      std::memcpy(dst + (k * d.N + n) * PdQd, u + (n * d.K + k) * PdQd, sizeof(float) * size_t(PdQd));
}

void pack_dw_a_zero_free(const ConvDesc& d, const float* dy, float* dst) {
  const int64_t PQ = d.P() * d.Q();
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t n = 0; n < d.N; ++n)
      std::memcpy(dst + (k * d.N + n) * PQ, dy + (n * d.K + k) * PQ, sizeof(float) * size_t(PQ));
}

}  // namespace st
