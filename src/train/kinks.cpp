#include "src/train/kinks.h"

#include <algorithm>
#include <cmath>

#include "src/base/error.h"

namespace st {

ForwardDecisions decisions_of(const NetDesc& net, const std::function<const Tensor&(int)>& act,
                              const std::function<const std::vector<int32_t>*(int)>& argmax) {
  ForwardDecisions d;
  const size_t n = net.nodes.size();
  d.relu.resize(n);
  d.maxpool.resize(n);
  for (size_t id = 0; id < n; ++id) {
    const NodeDesc& nd = net.nodes[id];
    if (nd.kind == NodeKind::relu) {
      const Tensor& x = act(nd.inputs[0]);
      auto& m = d.relu[id];
      m.resize(static_cast<size_t>(x.size()));
      for (int64_t i = 0; i < x.size(); ++i) m[i] = x[i] > 0.0f;
    } else if (nd.kind == NodeKind::maxpool) {
      if (const std::vector<int32_t>* a = argmax ? argmax(int(id)) : nullptr) {
        d.maxpool[id] = *a;
        continue;
      }
      const Tensor& x = act(nd.inputs[0]);
      const int64_t planes = x.dim(0) * x.dim(1), IH = x.dim(2), IW = x.dim(3), OH = nd.out.h, OW = nd.out.w;
      auto& w = d.maxpool[id];
      w.resize(static_cast<size_t>(planes * OH * OW));
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t h0 = std::max<int64_t>(oh * nd.sh - nd.pt, 0), h1 = std::min<int64_t>(oh * nd.sh - nd.pt + nd.kh, IH);
            const int64_t w0 = std::max<int64_t>(ow * nd.sw - nd.pl, 0), w1 = std::min<int64_t>(ow * nd.sw - nd.pl + nd.kw, IW);
            const float* s = x.data() + p * IH * IW;
            int64_t best = h0 * IW + w0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t c = w0; c < w1; ++c)
                if (s[best] == s[best] && (s[h * IW + c] > s[best] || s[h * IW + c] != s[h * IW + c])) best = h * IW + c;
            w[(p * OH + oh) * OW + ow] = int32_t(best);
          }
    }
  }
  return d;
}

namespace {
double rms(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.size(); ++i) s += double(t[i]) * double(t[i]);
  return t.size() ? std::sqrt(s / double(t.size())) : 0;
}
}  // namespace

KinkReport compare_decisions(const NetDesc& net, const ForwardDecisions& emu, const ForwardDecisions& ref,
                             const std::function<const Tensor&(int)>& emu_act,
                             const std::function<const Tensor&(int)>& ref_act, double rel_bound) {
  KinkReport r;
  auto record = [&](const NodeDesc& nd, int64_t index, double e, double f, double bound, bool within) {
    if (!within) ++r.beyond_bound;
    if (r.kinks.size() < KinkReport::kMaxListed) r.kinks.push_back({nd.name, index, e, f, bound, within});
  };
  for (size_t id = 0; id < net.nodes.size(); ++id) {
    const NodeDesc& nd = net.nodes[id];
    if (nd.kind != NodeKind::relu && nd.kind != NodeKind::maxpool) continue;
    const Tensor& xe = emu_act(nd.inputs[0]);
    const Tensor& xr = ref_act(nd.inputs[0]);
    ST_INVARIANT(xe.size() == xr.size());
    const double bound = rel_bound * rms(xr);
    if (nd.kind == NodeKind::relu) {
      const auto &me = emu.relu[id], &mr = ref.relu[id];
      ST_INVARIANT(me.size() == mr.size());
      for (size_t i = 0; i < me.size(); ++i) {
        if (me[i] == mr[i]) continue;
        ++r.relu_flips;
        const double e = xe[int64_t(i)], f = xr[int64_t(i)];
        record(nd, int64_t(i), e, f, bound, std::max(std::fabs(e), std::fabs(f)) <= bound);
      }
    } else {
      const auto &we = emu.maxpool[id], &wr = ref.maxpool[id];
      ST_INVARIANT(we.size() == wr.size());
      const int64_t plane = xe.dim(2) * xe.dim(3), outs = nd.out.h * nd.out.w;
      for (size_t o = 0; o < we.size(); ++o) {
        if (we[o] == wr[o]) continue;
        ++r.pool_flips;
        const int64_t base = int64_t(o) / outs * plane;
        const double e = double(xe[base + we[o]]) - double(xe[base + wr[o]]);  // >= 0: emu's winner leads in emu
        const double f = double(xr[base + wr[o]]) - double(xr[base + we[o]]);  // >= 0: ref's winner leads in ref
        record(nd, int64_t(o), e, f, bound, std::fabs(e) <= bound && std::fabs(f) <= bound);
      }
    }
  }
  return r;
}

}  // namespace st
