#include "src/ops/pool.h"

#include <algorithm>

#include "kernels/formats.h"
#include "kernels/vector_unit.h"
#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {

// Bytes per workspace entry the modeled unit keeps: the winner's position inside the window.
inline double ws_bytes_per_entry(const PoolDesc& d) { return d.kh * d.kw <= 256 ? 1 : 4; }

void validate(const PoolDesc& d, const Tensor& src) {
  if (src.rank() != 4) throw UserError("pool: src must be (N, C, H, W), got " + src.shape_str());
  if (d.kh < 1 || d.kw < 1 || d.sh < 1 || d.sw < 1 || d.ph < 0 || d.pw < 0)
    throw UserError("pool: kernel and stride must be >= 1, padding >= 0");
  if (d.ph >= d.kh || d.pw >= d.kw) throw UserError("pool: padding must be smaller than the kernel");
  if (src.dim(2) + 2 * d.ph < d.kh || src.dim(3) + 2 * d.pw < d.kw)
    throw UserError("pool: kernel larger than the padded input " + src.shape_str());
}

struct Geo {
  int64_t N, C, IH, IW, OH, OW;
};

// In-bounds window [h0, h1) x [w0, w1) of output (oh, ow), and its divisor.
struct Win {
  int64_t h0, h1, w0, w1;
  float divisor;
};
inline Win window(const PoolDesc& d, const Geo& g, int64_t oh, int64_t ow) {
  int64_t hs = oh * d.sh - d.ph, ws = ow * d.sw - d.pw;
  Win w{std::max<int64_t>(hs, 0), std::min<int64_t>(hs + d.kh, g.IH), std::max<int64_t>(ws, 0),
        std::min<int64_t>(ws + d.kw, g.IW), 0};
  w.divisor = d.alg == PoolAlg::avg_include_padding ? float(d.kh * d.kw)
                                                    : float((w.h1 - w.h0) * (w.w1 - w.w0));
  return w;
}

// Element count of the in-bounds windows of one plane (the adds / compares of the op). A window's
// rows depend on oh only and its columns on ow only, so the sum over the OH x OW windows is the
// product of a sum over oh and a sum over ow: linear in the plane's size, not quadratic (a shapes-only
// projection of a large input must not take minutes here).
double window_elems(const PoolDesc& d, const Geo& g) {
  int64_t rows = 0, cols = 0;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const Win w = window(d, g, oh, 0);
    rows += w.h1 - w.h0;
  }
  for (int64_t ow = 0; ow < g.OW; ++ow) {
    const Win w = window(d, g, 0, ow);
    cols += w.w1 - w.w0;
  }
  return double(rows) * double(cols);
}

}  // namespace

int64_t pool_out_dim(int64_t in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

PoolDesc global_avg_pool_desc(const Tensor& src) {
  PoolDesc d;
  d.kh = int(src.dim(2));
  d.kw = int(src.dim(3));
  d.sh = d.sw = 1;
  d.ph = d.pw = 0;
  d.alg = PoolAlg::avg_exclude_padding;
  return d;
}

namespace {
Geo pool_geo(const PoolDesc& d, int64_t N, int64_t C, int64_t IH, int64_t IW) {
  return Geo{N, C, IH, IW, pool_out_dim(IH, d.kh, d.sh, d.ph), pool_out_dim(IW, d.kw, d.sw, d.pw)};
}
}  // namespace

VectorWork pool_fwd_work(const ExecContext& ctx, const PoolDesc& d, int64_t N, int64_t C, int64_t IH,
                         int64_t IW) {
  const Geo g = pool_geo(d, N, C, IH, IW);
  const bool is_max = d.alg == PoolAlg::max;
  const int64_t planes = g.N * g.C;
  const double welems = window_elems(d, g) * double(planes);
  const double outs = double(g.N * g.C * g.OH * g.OW);
  VectorWork w = vwork(ctx, is_max ? OpKind::maxpool_fwd : OpKind::avgpool_fwd, Phase::forward,
                       g.N * g.C * g.OH * g.OW);
  if (is_max) w.cmps = welems - outs;  // first element of a window is loaded, the rest compared
  else {
    w.adds = welems;
    w.divs = outs;
  }
  read_tensor(w, TensorRole::src, double(g.N * g.C * g.IH * g.IW), kStoredF32, /*producer=*/true);
  write_tensor(w, TensorRole::dst, outs, kStoredF32);
  if (is_max) write_tensor(w, TensorRole::workspace, outs, int(ws_bytes_per_entry(d)));  // argmax indices
  w.sram_read_bytes = kF32 * welems;  // every window element enters a lane
  w.sram_write_bytes = w.dram_write_bytes;
  return w;
}

VectorWork pool_bwd_work(const ExecContext& ctx, const PoolDesc& d, int64_t N, int64_t C, int64_t IH,
                         int64_t IW) {
  const Geo g = pool_geo(d, N, C, IH, IW);
  const bool is_max = d.alg == PoolAlg::max;
  const int64_t planes = g.N * g.C;
  const double outs = double(g.N * g.C * g.OH * g.OW);
  const double ins = double(g.N * g.C * g.IH * g.IW);
  VectorWork w = vwork(ctx, is_max ? OpKind::maxpool_bwd : OpKind::avgpool_bwd,
                       Phase::backward_data, g.N * g.C * g.IH * g.IW);
  if (is_max) {
    w.adds = outs;  // one scatter-add per output
    read_tensor(w, TensorRole::diff_dst, outs, kStoredF32);
    read_tensor(w, TensorRole::workspace, outs, int(ws_bytes_per_entry(d)));
    w.sram_read_bytes = kF32 * outs + ws_bytes_per_entry(d) * outs + kF32 * outs;  // + read-modify
  } else {
    const double welems = window_elems(d, g) * double(planes);
    w.adds = welems;
    w.divs = outs;
    read_tensor(w, TensorRole::diff_dst, outs, kStoredF32);
    w.sram_read_bytes = kF32 * outs + kF32 * welems;  // diff_dst + read-modify-write of diff_src
  }
  // diff_src is zero-filled, then every scatter-add writes it back.
  write_tensor(w, TensorRole::diff_src, ins, kStoredF32);
  w.sram_write_bytes = kF32 * ins + kF32 * (is_max ? outs : w.adds);
  return w;
}

void pool_fwd(const ExecContext& ctx, const PoolDesc& d, const Tensor& src, Tensor& dst,
              PoolWorkspace* ws) {
  validate(d, src);
  Geo g{src.dim(0), src.dim(1), src.dim(2), src.dim(3), pool_out_dim(src.dim(2), d.kh, d.sh, d.ph),
        pool_out_dim(src.dim(3), d.kw, d.sw, d.pw)};
  std::array<int64_t, 4> od{g.N, g.C, g.OH, g.OW};
  if (dst.rank() != 4 || dst.dims() != od) dst = make_tensor(od, 4);
  const bool is_max = d.alg == PoolAlg::max;
  if (is_max && ws) ws->argmax.assign(static_cast<size_t>(dst.size()), 0);
  const int64_t planes = g.N * g.C;

#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* s = src.data() + pl * g.IH * g.IW;  // (IH, IW)
    float* o = dst.data() + pl * g.OH * g.OW;         // (OH, OW)
    int32_t* a = (is_max && ws) ? ws->argmax.data() + pl * g.OH * g.OW : nullptr;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        Win w = window(d, g, oh, ow);
        if (is_max) {
          int64_t best = w.h0 * g.IW + w.w0;
          float m = s[best];
          for (int64_t h = w.h0; h < w.h1; ++h)
            for (int64_t x = w.w0; x < w.w1; ++x) {
              float v = s[h * g.IW + x];
              if (m != m) continue;                 // a NaN already won
              if (v > m || v != v) { m = v; best = h * g.IW + x; }
            }
          o[oh * g.OW + ow] = canonicalize_nan(m);
          if (a) a[oh * g.OW + ow] = int32_t(best);
        } else {
          float acc = 0.0f;
          for (int64_t h = w.h0; h < w.h1; ++h)
            for (int64_t x = w.w0; x < w.w1; ++x) acc += s[h * g.IW + x];
          o[oh * g.OW + ow] = vu::div(acc, w.divisor);
        }
      }
  }

  ctx.emit(pool_fwd_work(ctx, d, g.N, g.C, g.IH, g.IW));
}

void pool_bwd(const ExecContext& ctx, const PoolDesc& d, const Tensor& diff_dst,
              const PoolWorkspace* ws, Tensor& diff_src) {
  validate(d, diff_src);
  Geo g{diff_src.dim(0), diff_src.dim(1), diff_src.dim(2), diff_src.dim(3),
        pool_out_dim(diff_src.dim(2), d.kh, d.sh, d.ph), pool_out_dim(diff_src.dim(3), d.kw, d.sw, d.pw)};
  std::array<int64_t, 4> od{g.N, g.C, g.OH, g.OW};
  if (diff_dst.dims() != od) throw UserError("pool_bwd: diff_dst shape " + diff_dst.shape_str() +
                                             " does not match the pooling of " + diff_src.shape_str());
  const bool is_max = d.alg == PoolAlg::max;
  if (is_max && (!ws || int64_t(ws->argmax.size()) != diff_dst.size()))
    throw UserError("pool_bwd: max pooling needs the forward's workspace");
  const int64_t planes = g.N * g.C;

#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    float* ds = diff_src.data() + pl * g.IH * g.IW;       // (IH, IW)
    const float* dd = diff_dst.data() + pl * g.OH * g.OW;  // (OH, OW)
    std::fill(ds, ds + g.IH * g.IW, 0.0f);
    if (is_max) {
      const int32_t* a = ws->argmax.data() + pl * g.OH * g.OW;
      for (int64_t o = 0; o < g.OH * g.OW; ++o) ds[a[o]] += dd[o];
    } else {
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          Win w = window(d, g, oh, ow);
          float q = vu::div(dd[oh * g.OW + ow], w.divisor);
          for (int64_t h = w.h0; h < w.h1; ++h)
            for (int64_t x = w.w0; x < w.w1; ++x) ds[h * g.IW + x] += q;
        }
    }
  }

  ctx.emit(pool_bwd_work(ctx, d, g.N, g.C, g.IH, g.IW));
}

}  // namespace st
