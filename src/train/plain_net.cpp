// The same-order reference network (plain_net.h): plain loops over the documented definitions.
// Deliberately slow and single-threaded; nothing here may call the fast ops in src/ops or the fast
// GEMM kernel.
#include "src/train/plain_net.h"

#include <fmt/format.h>

#include <cmath>

#include "kernels/formats.h"
#include "kernels/systolic.h"
#include "kernels/systolic_mac.h"
#include "kernels/vector_unit.h"
#include "src/base/error.h"

namespace st {
namespace {

// A lane-partitioned reduction fed one element at a time: element i (in feeding order) into lane
// i % lanes, each lane from +0, the lanes then added in lane order from +0.
class Lanes {
 public:
  explicit Lanes(int lanes) : p_(static_cast<size_t>(lanes), 0.0f) {}
  float& next() {
    float& p = p_[i_ % p_.size()];
    ++i_;
    return p;
  }
  float total() const {
    float t = 0.0f;
    for (float v : p_) t += v;
    return t;
  }

 private:
  std::vector<float> p_;
  size_t i_ = 0;
};

float canonical_if_nan(float x) { return x != x ? bits_f32(kCanonicalNaN) : x; }

// The windows of max / average pooling (pool.h): [h0, h1) x [w0, w1) in bounds.
struct Window {
  int64_t h0, h1, w0, w1;
};
Window pool_window(int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t IH, int64_t IW) {
  const int64_t hs = oh * sh - ph, ws = ow * sw - pw;
  return {std::max<int64_t>(hs, 0), std::min<int64_t>(hs + kh, IH), std::max<int64_t>(ws, 0),
          std::min<int64_t>(ws + kw, IW)};
}

// Input rows of stride phase phi along one axis: (i + pad) mod stride == phi, increasing.
std::vector<int64_t> rows_of_phase(int64_t in, int64_t pad, int64_t stride, int64_t phi) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < in; ++i)
    if ((i + pad) % stride == phi) v.push_back(i);
  return v;
}

}  // namespace

void plain_gemm(const ArrayConfig& cfg, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
                const std::vector<int32_t>* chunks) {
  if (cfg.format == Format::int8) throw UserError("the same-order reference network is floating point only (int8 is inference-only)");
  std::vector<float> a(static_cast<size_t>(M * K)), b(static_cast<size_t>(K * N));
  for (int64_t i = 0; i < M * K; ++i) a[i] = round_to(cfg.format, A[i], cfg.subnormals);
  for (int64_t i = 0; i < K * N; ++i) b[i] = round_to(cfg.format, B[i], cfg.subnormals);
  const bool os = cfg.dataflow == Dataflow::os;
  const int64_t chunk = os ? std::max<int64_t>(K, 1) : cfg.rows;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float out = 0.0f;
      if (os) {
        for (int64_t k = 0; k < K; ++k) out = pe_mac(out, a[m * K + k], b[k * N + n], cfg.fused_mac, cfg.subnormals);
      } else if (chunks) {
        int64_t k0 = 0;
        for (int32_t len : *chunks) {
          float s = 0.0f;
          for (int64_t k = k0; k < k0 + len; ++k) s = pe_mac(s, a[m * K + k], b[k * N + n], cfg.fused_mac, cfg.subnormals);
          out = pe_add(out, s, cfg.subnormals);
          k0 += len;
        }
        ST_INVARIANT(k0 == K);
      } else {
        for (int64_t k0 = 0; k0 < K; k0 += chunk) {
          float s = 0.0f;
          for (int64_t k = k0; k < std::min(K, k0 + chunk); ++k)
            s = pe_mac(s, a[m * K + k], b[k * N + n], cfg.fused_mac, cfg.subnormals);
          out = pe_add(out, s, cfg.subnormals);
        }
      }
      C[m * N + n] = canonical_if_nan(out);
    }
}

PlainNet::PlainNet(const NetDesc& net, const ParamSet& params, const Spec& spec, Lowering lowering, PlainGemm gemm)
    : net_(net), params_(params), spec_(spec), lowering_(lowering), gemm_kind_(gemm), lanes_(spec.vector.lanes) {
  if (spec.array.format == Format::int8)
    throw UserError("the int8 array format is inference-only: the same-order reference network needs fp32, bf16 or fp16");
  const size_t n = net_.nodes.size();
  act_.resize(n);
  diff_.resize(n);
  diff_set_.assign(n, false);
  bn_mean_.resize(n);
  bn_var_.resize(n);
  argmax_.resize(n);
  for (const auto& name : trainable_names(params_)) {
    Tensor g(params_.at(name));
    g.zero();
    grads_.add(name, g);
  }
}

int PlainNet::node_id(const std::string& name) const {
  for (size_t i = 0; i < net_.nodes.size(); ++i)
    if (net_.nodes[i].name == name) return static_cast<int>(i);
  throw UserError(fmt::format("no node named '{}' in {}", name, net_.name));
}
const Tensor& PlainNet::activation(const std::string& node) const { return act_[node_id(node)]; }
const Tensor& PlainNet::activation_grad(const std::string& node) const { return diff_[node_id(node)]; }

void PlainNet::gemm(int64_t M, int64_t N, int64_t K, const std::vector<float>& A, const std::vector<float>& B,
                    std::vector<float>& C, int64_t red_a, int64_t red_u) {
  ST_INVARIANT(int64_t(A.size()) == M * K && int64_t(B.size()) == K * N);
  C.assign(static_cast<size_t>(M * N), 0.0f);
  ++gemms_;
  if (M == 0 || N == 0) return;
  // The channel-tap mapping (lowering.h "Mappings"): the reduction, red_a channels x red_u taps in
  // channel-major order, taken tap-major, each tap's channels in chunks of the array rows.
  const bool ct = spec_.array.conv_mapping == ConvMapping::channel_tap && red_a > 0;
  std::vector<float> At, Bt;
  std::vector<int32_t> chunks;
  if (ct) {
    ST_INVARIANT(red_a * red_u == K);
    const std::vector<int64_t> order = tap_major_order(red_a, red_u);
    At.resize(A.size());
    Bt.resize(B.size());
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < K; ++j) At[size_t(m * K + j)] = A[size_t(m * K + order[size_t(j)])];
    for (int64_t j = 0; j < K; ++j)
      for (int64_t n = 0; n < N; ++n) Bt[size_t(j * N + n)] = B[size_t(order[size_t(j)] * N + n)];
    chunks = tap_chunks(red_a, red_u, spec_.array.rows);
  }
  const float* a = ct ? At.data() : A.data();
  const float* b = ct ? Bt.data() : B.data();
  if (gemm_kind_ == PlainGemm::pe_level)
    systolic_gemm_reference(spec_.array, GemmShape{M, N, K}, MatView{a, K, false}, MatView{b, N, false}, C.data(), N,
                            ct ? &chunks : nullptr);
  else
    plain_gemm(spec_.array, M, N, K, a, b, C.data(), ct ? &chunks : nullptr);
}

void PlainNet::conv_forward(int id) {
  const ConvDesc d = conv_desc(net_, id);
  const Tensor& x = act_[net_.nodes[id].inputs[0]];
  const Tensor& w = params_.at(net_.nodes[id].name + ".weight");
  std::vector<float> C;
  gemm(d.N * d.P() * d.Q(), d.K, d.C * d.R * d.S, VirtualMatrix(d, Operand::fwd_a).dense(x.data()),
       VirtualMatrix(d, Operand::fwd_b).dense(w.data()), C, d.C, d.R * d.S);
  Tensor& y = act_[id];
  y = Tensor({d.N, d.K, d.P(), d.Q()});
  const int64_t PQ = d.P() * d.Q();
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t k = 0; k < d.K; ++k)
      for (int64_t pq = 0; pq < PQ; ++pq) y[(n * d.K + k) * PQ + pq] = C[(n * PQ + pq) * d.K + k];
}

void PlainNet::conv_backward(int id, bool need_dx, Tensor& dx) {
  const NodeDesc& nd = net_.nodes[id];
  const ConvDesc d = conv_desc(net_, id);
  const Tensor& x = act_[nd.inputs[0]];
  const Tensor& dy = diff_[id];
  const Tensor& w = params_.at(nd.name + ".weight");
  const int64_t P = d.P(), Q = d.Q(), CRS = d.C * d.R * d.S;
  // The explicit baseline's materialized tensors, built here from their definitions:
  // U (N, K, Pd, Qd) = dY with sh-1 / sw-1 zeros inserted; U_pad (N, K, Hu, Wu) = U with R-1-pt rows
  // on top and S-1-pl columns on the left (the rest of Hu x Wu below / right is zeros).
  auto dilated = [&](int64_t top, int64_t left, int64_t rows, int64_t cols) {
    std::vector<float> u(static_cast<size_t>(d.N * d.K * rows * cols), 0.0f);
    for (int64_t nk = 0; nk < d.N * d.K; ++nk)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q)
          u[(nk * rows + top + p * d.sh) * cols + left + q * d.sw] = dy[(nk * P + p) * Q + q];
    return u;
  };

  // dW (K x CRS), added into the gradient after the GEMM (the accumulator memory's one add). Its
  // reduction runs over pixels: the channel-tap mapping only reorders its columns (no chain changes).
  std::vector<float> C;
  if (lowering_ == Lowering::zero_skip) {
    gemm(d.K, CRS, d.N * P * Q, VirtualMatrix(d, Operand::dw_a_zero_free).dense(dy.data()),
         VirtualMatrix(d, Operand::dw_b_zero_free).dense(x.data()), C);
  } else {
    const std::vector<float> a = lowering_ == Lowering::explicit_im2col
                                     ? VirtualMatrix(d, Operand::dw_a_explicit).dense(dilated(0, 0, d.Pd(), d.Qd()).data())
                                     : VirtualMatrix(d, Operand::dw_a_bp).dense(dy.data());
    gemm(d.K, CRS, d.N * d.Pd() * d.Qd(), a, VirtualMatrix(d, Operand::dw_b_window).dense(x.data()), C);
  }
  Tensor& dw = grads_.at(nd.name + ".weight");
  for (int64_t i = 0; i < d.K * CRS; ++i) dw[i] = dw[i] + C[i];
  if (!need_dx) return;

  // dX (N, C, H, W).
  dx = Tensor({d.N, d.C, d.H, d.W});
  dx.zero();
  if (lowering_ == Lowering::zero_skip) {
    for (int64_t ph = 0; ph < d.sh; ++ph)
      for (int64_t pw = 0; pw < d.sw; ++pw) {
        const VirtualMatrix a(d, Operand::dx_a_phase, ph, pw), b(d, Operand::dx_b_phase, ph, pw);
        const std::vector<int64_t> rh = rows_of_phase(d.H, d.pt, d.sh, ph), rw = rows_of_phase(d.W, d.pl, d.sw, pw);
        const int64_t nh = int64_t(rh.size()), nw = int64_t(rw.size());
        ST_INVARIANT(a.rows() == d.N * nh * nw);
        if (a.rows() == 0 || a.cols() == 0) continue;  // no tap reaches this phase: its rows stay +0
        gemm(a.rows(), d.C, a.cols(), a.dense(dy.data()), b.dense(w.data()), C, d.K, a.cols() / d.K);
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t ih = 0; ih < nh; ++ih)
            for (int64_t iw = 0; iw < nw; ++iw)
              for (int64_t c = 0; c < d.C; ++c)
                dx.at(n, c, rh[ih], rw[iw]) = C[((n * nh + ih) * nw + iw) * d.C + c];
      }
    return;
  }
  const std::vector<float> a =
      lowering_ == Lowering::explicit_im2col
          ? VirtualMatrix(d, Operand::dx_a_explicit).dense(dilated(d.R - 1 - d.pt, d.S - 1 - d.pl, d.Hu(), d.Wu()).data())
          : VirtualMatrix(d, Operand::dx_a_bp).dense(dy.data());
  gemm(d.N * d.H * d.W, d.C, d.K * d.R * d.S, a, VirtualMatrix(d, Operand::dx_b).dense(w.data()), C, d.K, d.R * d.S);
  const int64_t HW = d.H * d.W;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t hw = 0; hw < HW; ++hw) dx[(n * d.C + c) * HW + hw] = C[(n * HW + hw) * d.C + c];
}

void PlainNet::give(int producer, Tensor&& g) {
  Tensor& t = diff_[producer];
  if (!diff_set_[producer]) {
    t = std::move(g);
    diff_set_[producer] = true;
    return;
  }
  ST_INVARIANT(t.size() == g.size());
  for (int64_t i = 0; i < t.size(); ++i) t[i] = t[i] + g[i];
}

float PlainNet::forward_backward(const Tensor& images, const std::vector<int32_t>& labels) {
  if (images.rank() != 4 || images.dim(0) != net_.batch || images.dim(1) != net_.in_c || images.dim(2) != net_.in_h ||
      images.dim(3) != net_.in_w)
    throw UserError(fmt::format("input batch {} does not match the network's ({}, {}, {}, {})", images.shape_str(),
                                net_.batch, net_.in_c, net_.in_h, net_.in_w));
  if (int64_t(labels.size()) != net_.batch) throw UserError(fmt::format("{} labels for a batch of {}", labels.size(), net_.batch));
  for (int32_t l : labels)
    if (l < 0 || l >= net_.classes) throw UserError(fmt::format("label {} is outside [0, {})", l, net_.classes));
  labels_ = labels;
  for (auto& [name, g] : grads_) g.zero();
  const float eps = 1e-5f, momentum = 0.1f;  // BnParams' values (batchnorm.h)
  float loss = 0.0f;
  const int nodes = static_cast<int>(net_.nodes.size());

  // ---- forward ----
  for (int id = 0; id < nodes; ++id) {
    const NodeDesc& nd = net_.nodes[id];
    const Tensor* in = nd.inputs.empty() ? nullptr : &act_[nd.inputs[0]];
    Tensor& y = act_[id];
    switch (nd.kind) {
      case NodeKind::input:
        y = images;
        break;
      case NodeKind::conv:
        conv_forward(id);
        break;
      case NodeKind::bn: {
        const int64_t N = in->dim(0), Cc = in->dim(1), HW = in->size() / (N * Cc);
        const float M = float(N * HW);
        const Tensor& gamma = params_.at(nd.name + ".gamma");
        const Tensor& beta = params_.at(nd.name + ".beta");
        Tensor& rm = params_.at(nd.name + ".running_mean");
        Tensor& rv = params_.at(nd.name + ".running_var");
        y = *in;
        bn_mean_[id] = Tensor({Cc});
        bn_var_[id] = Tensor({Cc});
        for (int64_t c = 0; c < Cc; ++c) {
          Lanes s1(lanes_), s2(lanes_);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW; ++i) s1.next() += (*in)[(n * Cc + c) * HW + i];
          const float mean = vu::div(s1.total(), M);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW; ++i) {
              const float dev = (*in)[(n * Cc + c) * HW + i] - mean;
              float& p = s2.next();
              p = std::fma(dev, dev, p);
            }
          const float var = vu::div(s2.total(), M);
          bn_mean_[id][c] = mean;
          bn_var_[id][c] = var;
          const float a = gamma[c] * vu::rsqrt(var + eps);
          const float uvar = N * HW > 1 ? vu::div(var * M, float(N * HW - 1)) : var;
          rm[c] = std::fma(momentum, mean - rm[c], rm[c]);
          rv[c] = std::fma(momentum, uvar - rv[c], rv[c]);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW; ++i) {
              const int64_t j = (n * Cc + c) * HW + i;
              y[j] = std::fma(a, (*in)[j] - mean, beta[c]);
            }
        }
        break;
      }
      case NodeKind::relu:
        y = *in;
        for (int64_t i = 0; i < y.size(); ++i) {
          const float v = (*in)[i];
          y[i] = v > 0.0f ? v : (v != v ? bits_f32(kCanonicalNaN) : 0.0f);
        }
        break;
      case NodeKind::add: {
        const Tensor& b = act_[nd.inputs[1]];
        y = *in;
        for (int64_t i = 0; i < y.size(); ++i) y[i] = (*in)[i] + b[i];
        break;
      }
      case NodeKind::maxpool:
      case NodeKind::gap: {
        const bool is_max = nd.kind == NodeKind::maxpool;
        const int64_t N = in->dim(0), Cc = in->dim(1), IH = in->dim(2), IW = in->dim(3);
        const int64_t kh = is_max ? nd.kh : IH, kw = is_max ? nd.kw : IW, sh = is_max ? nd.sh : IH,
                      sw = is_max ? nd.sw : IW, ph = is_max ? nd.pt : 0, pw = is_max ? nd.pl : 0;
        const int64_t OH = (IH + 2 * ph - kh) / sh + 1, OW = (IW + 2 * pw - kw) / sw + 1;
        y = Tensor({N, Cc, OH, OW});
        if (is_max) argmax_[id].assign(static_cast<size_t>(y.size()), 0);
        for (int64_t pl = 0; pl < N * Cc; ++pl)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              const Window win = pool_window(oh, ow, kh, kw, sh, sw, ph, pw, IH, IW);
              const float* s = in->data() + pl * IH * IW;
              const int64_t o = (pl * OH + oh) * OW + ow;
              if (is_max) {  // first maximum in scan order wins; a NaN wins and stays
                int64_t best = win.h0 * IW + win.w0;
                for (int64_t h = win.h0; h < win.h1; ++h)
                  for (int64_t x = win.w0; x < win.w1; ++x) {
                    const float v = s[h * IW + x], m = s[best];
                    if (m != m) continue;
                    if (v > m || v != v) best = h * IW + x;
                  }
                y[o] = canonical_if_nan(s[best]);
                argmax_[id][o] = int32_t(best);
              } else {
                float acc = 0.0f;
                for (int64_t h = win.h0; h < win.h1; ++h)
                  for (int64_t x = win.w0; x < win.w1; ++x) acc += s[h * IW + x];
                y[o] = vu::div(acc, float((win.h1 - win.h0) * (win.w1 - win.w0)));
              }
            }
        break;
      }
      case NodeKind::fc: {
        const int64_t N = in->dim(0), IC = in->size() / N, OC = nd.out.c;
        const Tensor& w = params_.at(nd.name + ".weight");
        const Tensor& bias = params_.at(nd.name + ".bias");
        std::vector<float> A(in->data(), in->data() + in->size()), B(static_cast<size_t>(IC * OC)), C;
        for (int64_t i = 0; i < IC; ++i)
          for (int64_t o = 0; o < OC; ++o) B[i * OC + o] = w[o * IC + i];
        gemm(N, OC, IC, A, B, C);
        y = Tensor({N, OC});
        for (int64_t i = 0; i < N * OC; ++i) y[i] = C[i] + bias[i % OC];
        break;
      }
      case NodeKind::shortcut_a: {
        y = Tensor({nd.out.n, nd.out.c, nd.out.h, nd.out.w});
        y.zero();
        for (int64_t n = 0; n < nd.out.n; ++n)
          for (int64_t c = 0; c < in->dim(1); ++c)
            for (int64_t h = 0; h < nd.out.h; ++h)
              for (int64_t w = 0; w < nd.out.w; ++w) y.at(n, c, h, w) = in->at(n, c, h * nd.sh, w * nd.sw);
        break;
      }
      case NodeKind::loss: {
        const int64_t N = in->dim(0), K = in->size() / N;
        probs_ = Tensor({N, K});
        std::vector<float> row_loss(static_cast<size_t>(N));
        for (int64_t n = 0; n < N; ++n) {
          const float* x = in->data() + n * K;
          float m = x[0];
          for (int64_t j = 1; j < K; ++j)
            if ((x[j] > m || x[j] != x[j]) && m == m) m = x[j];
          Lanes s(lanes_);
          for (int64_t j = 0; j < K; ++j) {
            probs_[n * K + j] = vu::exp(x[j] - m);
            s.next() += probs_[n * K + j];
          }
          const float sum = s.total();
          for (int64_t j = 0; j < K; ++j) probs_[n * K + j] = vu::div(probs_[n * K + j], sum);
          row_loss[n] = vu::log(sum) - (x[labels[n]] - m);
        }
        Lanes total(lanes_);
        for (int64_t n = 0; n < N; ++n) total.next() += row_loss[n];
        loss = vu::div(total.total(), float(N));
        break;
      }
    }
  }

  // ---- backward ----
  std::fill(diff_set_.begin(), diff_set_.end(), false);
  for (int id = nodes - 1; id >= 0; --id) {
    const NodeDesc& nd = net_.nodes[id];
    if (nd.kind == NodeKind::input) continue;
    const int p = nd.inputs[0];
    const Tensor& x = act_[p];
    const Tensor& dy = diff_[id];
    Tensor dx;
    switch (nd.kind) {
      case NodeKind::input:
        break;
      case NodeKind::loss: {
        const int64_t N = probs_.dim(0), K = probs_.dim(1);
        const float scale = vu::div(1.0f, float(N));
        dx = Tensor({N, K});
        for (int64_t n = 0; n < N; ++n)
          for (int64_t j = 0; j < K; ++j)
            dx[n * K + j] = (probs_[n * K + j] - (j == labels[n] ? 1.0f : 0.0f)) * scale;
        give(p, std::move(dx));
        break;
      }
      case NodeKind::fc: {
        const int64_t N = x.dim(0), IC = x.size() / N, OC = nd.out.c;
        const Tensor& w = params_.at(nd.name + ".weight");
        std::vector<float> A(static_cast<size_t>(OC * N)), B(x.data(), x.data() + x.size()), C;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t o = 0; o < OC; ++o) A[o * N + n] = dy[n * OC + o];
        gemm(OC, IC, N, A, B, C);  // dW = dY^T X
        Tensor& dw = grads_.at(nd.name + ".weight");
        for (int64_t i = 0; i < OC * IC; ++i) dw[i] = dw[i] + C[i];
        Tensor& db = grads_.at(nd.name + ".bias");
        for (int64_t o = 0; o < OC; ++o) {
          Lanes s(lanes_);
          for (int64_t n = 0; n < N; ++n) s.next() += dy[n * OC + o];
          db[o] += s.total();
        }
        if (net_.nodes[p].kind != NodeKind::input) {
          std::vector<float> dY(dy.data(), dy.data() + dy.size()), W(w.data(), w.data() + w.size());
          gemm(N, IC, OC, dY, W, C);  // dX = dY W
          dx = Tensor({N, IC});
          for (int64_t i = 0; i < N * IC; ++i) dx[i] = C[i];
          give(p, std::move(dx));
        }
        break;
      }
      case NodeKind::maxpool:
      case NodeKind::gap: {
        const bool is_max = nd.kind == NodeKind::maxpool;
        const int64_t N = x.dim(0), Cc = x.dim(1), IH = x.dim(2), IW = x.dim(3), OH = dy.dim(2), OW = dy.dim(3);
        dx = Tensor({N, Cc, IH, IW});
        dx.zero();
        for (int64_t pl = 0; pl < N * Cc; ++pl)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t o = (pl * OH + oh) * OW + ow;
              float* ds = dx.data() + pl * IH * IW;
              if (is_max) {
                ds[argmax_[id][o]] += dy[o];
              } else {
                const Window win = pool_window(oh, ow, IH, IW, IH, IW, 0, 0, IH, IW);
                const float q = vu::div(dy[o], float((win.h1 - win.h0) * (win.w1 - win.w0)));
                for (int64_t h = win.h0; h < win.h1; ++h)
                  for (int64_t w = win.w0; w < win.w1; ++w) ds[h * IW + w] += q;
              }
            }
        give(p, std::move(dx));
        break;
      }
      case NodeKind::relu:
        dx = x;
        for (int64_t i = 0; i < x.size(); ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        give(p, std::move(dx));
        break;
      case NodeKind::bn: {
        const int64_t N = x.dim(0), Cc = x.dim(1), HW = x.size() / (N * Cc);
        const float M = float(N * HW);
        const Tensor& gamma = params_.at(nd.name + ".gamma");
        Tensor& dg = grads_.at(nd.name + ".gamma");
        Tensor& db = grads_.at(nd.name + ".beta");
        dx = x;
        for (int64_t c = 0; c < Cc; ++c) {
          const float mean = bn_mean_[id][c];
          Lanes s_dy(lanes_), s_xdy(lanes_);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW; ++i) {
              const int64_t j = (n * Cc + c) * HW + i;
              s_dy.next() += dy[j];
              float& q = s_xdy.next();
              q = std::fma(x[j] - mean, dy[j], q);
            }
          const float inv = vu::rsqrt(bn_var_[id][c] + eps);
          const float sdy = s_dy.total(), g = s_xdy.total() * inv;
          db[c] += sdy;
          dg[c] += g;
          const float c1 = vu::div(sdy, M), c2 = vu::div(g * inv, M), k = gamma[c] * inv;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW; ++i) {
              const int64_t j = (n * Cc + c) * HW + i;
              dx[j] = k * std::fma(-(x[j] - mean), c2, dy[j] - c1);
            }
        }
        give(p, std::move(dx));
        break;
      }
      case NodeKind::conv: {
        const bool need_dx = net_.nodes[p].kind != NodeKind::input;
        conv_backward(id, need_dx, dx);
        if (need_dx) give(p, std::move(dx));
        break;
      }
      case NodeKind::add:
        for (int k : nd.inputs) give(k, Tensor(dy));
        break;
      case NodeKind::shortcut_a: {
        dx = Tensor({x.dim(0), x.dim(1), x.dim(2), x.dim(3)});
        dx.zero();
        for (int64_t n = 0; n < x.dim(0); ++n)
          for (int64_t c = 0; c < x.dim(1); ++c)
            for (int64_t h = 0; h < dy.dim(2); ++h)
              for (int64_t w = 0; w < dy.dim(3); ++w) dx.at(n, c, h * nd.sh, w * nd.sw) = dy.at(n, c, h, w);
        give(p, std::move(dx));
        break;
      }
    }
  }
  return loss;
}

}  // namespace st
