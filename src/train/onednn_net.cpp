#include "src/train/onednn_net.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "src/base/error.h"

namespace st {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using Args = std::unordered_map<int, memory>;

// Per node: its primitives (created once), their arguments (memories aliasing our tensors), and
// the buffers only oneDNN needs (pooling workspace, bn batch statistics).
struct OneDnnNet::Node {
  dnnl::primitive fwd, bwd_data, bwd_weights;
  Args fwd_args, bwd_data_args, bwd_weights_args;
  // ConvLayout::blocked: reorders between the plain tensors and the primitives' own layouts, run
  // before / after the primitive they serve.
  struct Reorder {
    dnnl::reorder prim;
    memory from, to;
  };
  std::vector<Reorder> pre_fwd, post_fwd, pre_bwd, post_bwd_data, post_bwd_weights;
  static void run(std::vector<Reorder>& steps, dnnl::stream& s) {
    for (auto& r : steps) r.prim.execute(s, r.from, r.to);
  }
  memory workspace;
  Tensor mean, var;  // (C) bn batch statistics
  Tensor logp;       // (N, classes) loss node: log-softmax of the logits, kept for backward
  // d loss / d input when the input's producer feeds several nodes: written here, then summed into
  // the producer's diff. Empty otherwise (oneDNN writes the producer's diff directly).
  Tensor dsrc_buf;
  // Reduced-precision reference (operand_format != fp32), conv and fc only: the GEMM operands
  // rounded to the format, as the modeled array rounds them on entry. The primitives read these
  // copies; src_of / wei_of / ddst_of are the originals they are made from.
  Tensor r_src, r_wei, r_ddst;
  const Tensor* src_of = nullptr;
  const Tensor* wei_of = nullptr;
  const Tensor* ddst_of = nullptr;
};

namespace {

memory::dims dims4(const Shape4& s) { return {s.n, s.c, s.h, s.w}; }
memory::desc md4(const Shape4& s) { return {dims4(s), memory::data_type::f32, tag::nchw}; }
memory::desc md2(int64_t a, int64_t b) { return {{a, b}, memory::data_type::f32, tag::nc}; }
memory::desc md1(int64_t a) { return {{a}, memory::data_type::f32, tag::x}; }

}  // namespace

OneDnnNet::~OneDnnNet() = default;


void OneDnnNet::round_copy(const Tensor& from, Tensor& to) const {
  ST_INVARIANT(from.size() == to.size());
  std::memcpy(to.data(), from.data(), from.size() * sizeof(float));
  round_array(operand_format_, Subnormals::keep, to.data(), to.size());
}

std::tuple<const Tensor*, const Tensor*, const Tensor*> OneDnnNet::gemm_operands(Node& node, const Tensor& src,
                                                                                  const Tensor& wei,
                                                                                  const Tensor& ddst) {
  if (operand_format_ == Format::fp32) return {&src, &wei, &ddst};
  node.r_src = src;
  node.r_wei = wei;
  node.r_ddst = ddst;
  node.src_of = &src;
  node.wei_of = &wei;
  node.ddst_of = &ddst;
  return {&node.r_src, &node.r_wei, &node.r_ddst};
}

OneDnnNet::OneDnnNet(const NetDesc& net, const ParamSet& params, Format operand_format, ConvLayout conv_layout)
    : net_(net), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
  operand_format_ = operand_format;
  conv_layout_ = conv_layout;
  // Own copies of the parameters this network uses, in the init_params order and shapes; the
  // tensors are allocated here once, so the oneDNN memories can alias them for the object's life.
  params_ = init_params(net_, 0);
  set_params(params);
  for (const auto& name : trainable_names(params_)) {
    Tensor g = params_.at(name);
    g.zero();
    grads_.add(name, std::move(g));
  }

  const size_t n = net_.nodes.size();
  act_.resize(n);
  diff_.resize(n);
  consumers_.assign(n, 0);
  diff_written_.assign(n, 0);
  for (size_t id = 0; id < n; ++id) {
    const NodeDesc& nd = net_.nodes[id];
    if (!by_name_.emplace(nd.name, static_cast<int>(id)).second)
      throw UserError(fmt::format("two nodes are named '{}'", nd.name));
    for (int in : nd.inputs) ++consumers_[in];
    const Shape4& s = nd.out;
    act_[id] = Tensor({s.n, s.c, s.h, s.w});
    diff_[id] = Tensor({s.n, s.c, s.h, s.w});
  }
  ST_INVARIANT(n > 0 && net_.nodes[0].kind == NodeKind::input);
  ST_INVARIANT(net_.nodes.back().kind == NodeKind::loss);
  prob_ = Tensor({net_.batch, net_.classes});
  for (size_t id = 0; id < n; ++id) {
    nodes_.push_back(std::make_unique<Node>());
    build(static_cast<int>(id));
  }
}

void OneDnnNet::set_params(const ParamSet& params) {
  for (auto& [name, t] : params_) {
    const Tensor& src = params.at(name);
    if (!src.same_shape(t))
      throw UserError(fmt::format("parameter '{}' has shape {}, the network needs {}", name,
                                  src.shape_str(), t.shape_str()));
    std::memcpy(t.data(), src.data(), static_cast<size_t>(t.size()) * sizeof(float));
  }
}

int OneDnnNet::node_id(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw UserError(fmt::format("no node named '{}'", name));
  return it->second;
}

int64_t OneDnnNet::layout_reorders() const {
  int64_t n = 0;
  for (const auto& node : nodes_)
    n += int64_t(node->pre_fwd.size() + node->post_fwd.size() + node->pre_bwd.size() + node->post_bwd_data.size() +
                 node->post_bwd_weights.size());
  return n;
}

const Tensor& OneDnnNet::activation(const std::string& name) const { return act_[node_id(name)]; }
const Tensor& OneDnnNet::activation_grad(const std::string& name) const { return diff_[node_id(name)]; }

const Tensor& OneDnnNet::bn_batch_mean(const std::string& name) const {
  const int id = node_id(name);
  if (net_.nodes[id].kind != NodeKind::bn) throw UserError(fmt::format("node '{}' is not bn", name));
  return nodes_[id]->mean;
}

const Tensor& OneDnnNet::bn_batch_var(const std::string& name) const {
  const int id = node_id(name);
  if (net_.nodes[id].kind != NodeKind::bn) throw UserError(fmt::format("node '{}' is not bn", name));
  return nodes_[id]->var;
}

// ---- construction of the primitives --------------------------------------------------------------

void OneDnnNet::build(int id) {
  const NodeDesc& nd = net_.nodes[id];
  Node& node = *nodes_[id];
  auto mem = [&](const memory::desc& md, const Tensor& t) {
    return memory(md, eng_, const_cast<float*>(t.data()));  // oneDNN takes a void*; inputs are not written
  };
  if (nd.inputs.empty()) return;  // the input node
  const int in = nd.inputs[0];
  const Shape4 is = net_.nodes[in].out, os = nd.out;
  // Where the input diff goes: straight into the producer's diff, or a buffer to be summed.
  Tensor* dsrc = &diff_[in];
  if (consumers_[in] > 1) {
    node.dsrc_buf = Tensor({is.n, is.c, is.h, is.w});
    dsrc = &node.dsrc_buf;
  }
  const memory::desc src_md = md4(is), dst_md = md4(os);

  switch (nd.kind) {
    case NodeKind::conv: {
      const memory::desc wei_md({os.c, is.c, nd.kh, nd.kw}, memory::data_type::f32, tag::oihw);
      const memory::dims strides{nd.sh, nd.sw}, pad_l{nd.pt, nd.pl}, pad_r{nd.pb, nd.pr};
      const bool blocked = conv_layout_ == ConvLayout::blocked;
      // The primitives' descriptors: the plain ones, or `any` so oneDNN picks its own layouts.
      auto want = [&](const memory::desc& plain) {
        return blocked ? memory::desc(plain.dims(), memory::data_type::f32, tag::any) : plain;
      };
      const memory::desc psrc = want(src_md), pwei = want(wei_md), pdst = want(dst_md);
      dnnl::convolution_forward::primitive_desc fpd(
          {prop_kind::forward_training, algorithm::convolution_direct, psrc, pwei, pdst, strides, pad_l, pad_r},
          eng_);
      dnnl::convolution_backward_data::primitive_desc dpd(
          {algorithm::convolution_direct, psrc, pwei, pdst, strides, pad_l, pad_r}, eng_, fpd);
      dnnl::convolution_backward_weights::primitive_desc wpd(
          {algorithm::convolution_direct, psrc, pwei, pdst, strides, pad_l, pad_r}, eng_, fpd);
      Tensor& dw = grads_.at(nd.name + ".weight");
      auto [x, w, dy] = gemm_operands(node, act_[in], params_.at(nd.name + ".weight"), diff_[id]);
      // The memory a primitive reads or writes for a plain tensor: the tensor itself when the layouts
      // agree, else a buffer in the primitive's layout with a reorder into it (inputs) or out of it
      // (outputs).
      auto staged = [&](const memory::desc& layout, const memory::desc& plain_md, const Tensor& t,
                        std::vector<Node::Reorder>& into, bool input) {
        memory plain = mem(plain_md, t);
        if (layout == plain_md) return plain;
        memory own(layout, eng_);
        if (input) into.push_back({dnnl::reorder(plain, own), plain, own});
        else into.push_back({dnnl::reorder(own, plain), own, plain});
        return own;
      };
      node.fwd = dnnl::convolution_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, staged(fpd.src_desc(), src_md, *x, node.pre_fwd, true)},
                       {DNNL_ARG_WEIGHTS, staged(fpd.weights_desc(), wei_md, *w, node.pre_fwd, true)},
                       {DNNL_ARG_DST, staged(fpd.dst_desc(), dst_md, act_[id], node.post_fwd, false)}};
      node.bwd_data = dnnl::convolution_backward_data(dpd);
      node.bwd_data_args = {{DNNL_ARG_DIFF_DST, staged(dpd.diff_dst_desc(), dst_md, *dy, node.pre_bwd, true)},
                            {DNNL_ARG_WEIGHTS, staged(dpd.weights_desc(), wei_md, *w, node.pre_bwd, true)},
                            {DNNL_ARG_DIFF_SRC, staged(dpd.diff_src_desc(), src_md, *dsrc, node.post_bwd_data, false)}};
      node.bwd_weights = dnnl::convolution_backward_weights(wpd);
      node.bwd_weights_args = {
          {DNNL_ARG_SRC, staged(wpd.src_desc(), src_md, *x, node.pre_bwd, true)},
          {DNNL_ARG_DIFF_DST, staged(wpd.diff_dst_desc(), dst_md, *dy, node.pre_bwd, true)},
          {DNNL_ARG_DIFF_WEIGHTS, staged(wpd.diff_weights_desc(), wei_md, dw, node.post_bwd_weights, false)}};
      break;
    }
    case NodeKind::bn: {
      const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
      dnnl::batch_normalization_forward::primitive_desc fpd(
          {prop_kind::forward_training, src_md, kBnEpsilon, flags}, eng_);
      dnnl::batch_normalization_backward::primitive_desc bpd(
          {prop_kind::backward, dst_md, src_md, kBnEpsilon, flags}, eng_, fpd);
      const memory::desc c_md = md1(os.c);
      node.mean = Tensor({os.c});
      node.var = Tensor({os.c});
      Tensor& gamma = params_.at(nd.name + ".gamma");
      Tensor& beta = params_.at(nd.name + ".beta");
      node.fwd = dnnl::batch_normalization_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, mem(src_md, act_[in])}, {DNNL_ARG_DST, mem(dst_md, act_[id])},
                       {DNNL_ARG_SCALE, mem(c_md, gamma)},    {DNNL_ARG_SHIFT, mem(c_md, beta)},
                       {DNNL_ARG_MEAN, mem(c_md, node.mean)}, {DNNL_ARG_VARIANCE, mem(c_md, node.var)}};
      node.bwd_data = dnnl::batch_normalization_backward(bpd);
      node.bwd_data_args = {{DNNL_ARG_SRC, mem(src_md, act_[in])},
                            {DNNL_ARG_MEAN, mem(c_md, node.mean)},
                            {DNNL_ARG_VARIANCE, mem(c_md, node.var)},
                            {DNNL_ARG_DIFF_DST, mem(dst_md, diff_[id])},
                            {DNNL_ARG_SCALE, mem(c_md, gamma)},
                            {DNNL_ARG_SHIFT, mem(c_md, beta)},
                            {DNNL_ARG_DIFF_SRC, mem(src_md, *dsrc)},
                            {DNNL_ARG_DIFF_SCALE, mem(c_md, grads_.at(nd.name + ".gamma"))},
                            {DNNL_ARG_DIFF_SHIFT, mem(c_md, grads_.at(nd.name + ".beta"))}};
      break;
    }
    case NodeKind::relu: {
      dnnl::eltwise_forward::primitive_desc fpd(
          {prop_kind::forward_training, algorithm::eltwise_relu, src_md, 0.0f, 0.0f}, eng_);
      dnnl::eltwise_backward::primitive_desc bpd({algorithm::eltwise_relu, dst_md, src_md, 0.0f, 0.0f},
                                                 eng_, fpd);
      node.fwd = dnnl::eltwise_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, mem(src_md, act_[in])}, {DNNL_ARG_DST, mem(dst_md, act_[id])}};
      node.bwd_data = dnnl::eltwise_backward(bpd);
      node.bwd_data_args = {{DNNL_ARG_SRC, mem(src_md, act_[in])},
                            {DNNL_ARG_DIFF_DST, mem(dst_md, diff_[id])},
                            {DNNL_ARG_DIFF_SRC, mem(src_md, *dsrc)}};
      break;
    }
    case NodeKind::maxpool:
    case NodeKind::gap: {
      const bool is_max = nd.kind == NodeKind::maxpool;
      // Global average pooling = one average window over the whole plane, no padding.
      const algorithm alg = is_max ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
      const memory::dims kernel = is_max ? memory::dims{nd.kh, nd.kw} : memory::dims{is.h, is.w};
      const memory::dims strides = is_max ? memory::dims{nd.sh, nd.sw} : memory::dims{is.h, is.w};
      const memory::dims pad_l = is_max ? memory::dims{nd.pt, nd.pl} : memory::dims{0, 0};
      const memory::dims pad_r = is_max ? memory::dims{nd.pb, nd.pr} : memory::dims{0, 0};
      dnnl::pooling_forward::primitive_desc fpd(
          {prop_kind::forward_training, alg, src_md, dst_md, strides, kernel, pad_l, pad_r}, eng_);
      dnnl::pooling_backward::primitive_desc bpd({alg, src_md, dst_md, strides, kernel, pad_l, pad_r},
                                                 eng_, fpd);
      node.fwd = dnnl::pooling_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, mem(src_md, act_[in])}, {DNNL_ARG_DST, mem(dst_md, act_[id])}};
      node.bwd_data = dnnl::pooling_backward(bpd);
      node.bwd_data_args = {{DNNL_ARG_DIFF_DST, mem(dst_md, diff_[id])},
                            {DNNL_ARG_DIFF_SRC, mem(src_md, *dsrc)}};
      if (is_max) {  // the argmax positions, written by forward, read by backward
        node.workspace = memory(fpd.workspace_desc(), eng_);
        node.fwd_args[DNNL_ARG_WORKSPACE] = node.workspace;
        node.bwd_data_args[DNNL_ARG_WORKSPACE] = node.workspace;
      }
      break;
    }
    case NodeKind::add: {
      const memory::desc src1_md = md4(net_.nodes[nd.inputs[1]].out);
      dnnl::binary::primitive_desc fpd({algorithm::binary_add, src_md, src1_md, dst_md}, eng_);
      node.fwd = dnnl::binary(fpd);
      node.fwd_args = {{DNNL_ARG_SRC_0, mem(src_md, act_[in])},
                       {DNNL_ARG_SRC_1, mem(src1_md, act_[nd.inputs[1]])},
                       {DNNL_ARG_DST, mem(dst_md, act_[id])}};
      break;  // backward: the diff passes unchanged to both inputs (host)
    }
    case NodeKind::fc: {
      // (N, C, H, W) input read as (N, C*H*W); (N, out, 1, 1) output as (N, out).
      const int64_t in_f = is.c * is.h * is.w;
      const memory::desc x_md = md2(is.n, in_f), y_md = md2(os.n, os.c);
      const memory::desc w_md({os.c, in_f}, memory::data_type::f32, tag::oi), b_md = md1(os.c);
      dnnl::inner_product_forward::primitive_desc fpd(
          {prop_kind::forward_training, x_md, w_md, b_md, y_md}, eng_);
      dnnl::inner_product_backward_data::primitive_desc dpd({x_md, w_md, y_md}, eng_, fpd);
      dnnl::inner_product_backward_weights::primitive_desc wpd({x_md, w_md, b_md, y_md}, eng_, fpd);
      auto [x, w, dy] = gemm_operands(node, act_[in], params_.at(nd.name + ".weight"), diff_[id]);
      node.fwd = dnnl::inner_product_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, mem(x_md, *x)}, {DNNL_ARG_WEIGHTS, mem(w_md, *w)},
                       {DNNL_ARG_BIAS, mem(b_md, params_.at(nd.name + ".bias"))},
                       {DNNL_ARG_DST, mem(y_md, act_[id])}};
      node.bwd_data = dnnl::inner_product_backward_data(dpd);
      node.bwd_data_args = {{DNNL_ARG_DIFF_DST, mem(y_md, *dy)}, {DNNL_ARG_WEIGHTS, mem(w_md, *w)},
                            {DNNL_ARG_DIFF_SRC, mem(x_md, *dsrc)}};
      node.bwd_weights = dnnl::inner_product_backward_weights(wpd);
      node.bwd_weights_args = {{DNNL_ARG_SRC, mem(x_md, *x)},
                               {DNNL_ARG_DIFF_DST, mem(y_md, *dy)},
                               {DNNL_ARG_DIFF_WEIGHTS, mem(w_md, grads_.at(nd.name + ".weight"))},
                               {DNNL_ARG_DIFF_BIAS, mem(b_md, grads_.at(nd.name + ".bias"))}};
      break;
    }
    case NodeKind::loss: {
      if (is.c * is.h * is.w != net_.classes)
        throw UserError(fmt::format("loss input has {} values per sample, the net has {} classes",
                                    is.c * is.h * is.w, net_.classes));
      // log-softmax rather than softmax: log p stays finite for a confidently wrong class.
      const memory::desc x_md = md2(is.n, net_.classes);
      dnnl::logsoftmax_forward::primitive_desc fpd({prop_kind::forward_training, x_md, 1}, eng_);
      node.logp = Tensor({is.n, net_.classes});
      node.fwd = dnnl::logsoftmax_forward(fpd);
      node.fwd_args = {{DNNL_ARG_SRC, mem(x_md, act_[in])}, {DNNL_ARG_DST, mem(x_md, node.logp)}};
      ST_INVARIANT(consumers_[in] == 1);
      break;
    }
    case NodeKind::shortcut_a:
      if (os.c < is.c || os.h != (is.h + nd.sh - 1) / nd.sh || os.w != (is.w + nd.sw - 1) / nd.sw)
        throw UserError(fmt::format("{}: option-A shortcut shape is inconsistent", nd.name));
      break;  // host code
    case NodeKind::input: break;
  }
}

// ---- execution -----------------------------------------------------------------------------------

void OneDnnNet::accumulate_diff(int producer, const Tensor& d) {
  Tensor& dst = diff_[producer];
  ST_INVARIANT(dst.size() == d.size());
  if (diff_written_[producer]++ == 0) {
    std::memcpy(dst.data(), d.data(), static_cast<size_t>(d.size()) * sizeof(float));
  } else {
    for (int64_t i = 0; i < d.size(); ++i) dst[i] += d[i];
  }
}

void OneDnnNet::transplant(const ForwardDecisions* d) {
  if (d) {
    const size_t n = net_.nodes.size();
    if (d->relu.size() != n || d->maxpool.size() != n)
      throw UserError("transplanted decisions are of another network");
    for (size_t id = 0; id < n; ++id) {
      const NodeDesc& nd = net_.nodes[id];
      const int64_t want = nd.kind == NodeKind::relu ? net_.nodes[nd.inputs[0]].out.size()
                           : nd.kind == NodeKind::maxpool ? nd.out.size() : 0;
      const size_t have = nd.kind == NodeKind::relu ? d->relu[id].size() : d->maxpool[id].size();
      if ((nd.kind == NodeKind::relu || nd.kind == NodeKind::maxpool) && int64_t(have) != want)
        throw UserError(fmt::format("transplanted decisions of {} have {} entries, the node needs {}", nd.name, have, want));
    }
  }
  decisions_ = d;
}

bool OneDnnNet::transplanted(int id) const {
  const NodeKind k = net_.nodes[id].kind;
  return decisions_ && (k == NodeKind::relu || k == NodeKind::maxpool);
}

void OneDnnNet::forward(int id, const std::vector<int32_t>& labels) {
  const NodeDesc& nd = net_.nodes[id];
  Node& node = *nodes_[id];
  if (transplanted(id)) {
    const Tensor& x = act_[nd.inputs[0]];
    Tensor& y = act_[id];
    if (nd.kind == NodeKind::relu) {
      const auto& m = decisions_->relu[id];
      for (int64_t i = 0; i < y.size(); ++i) y[i] = m[i] ? x[i] : 0.0f;
    } else {
      const auto& w = decisions_->maxpool[id];
      const int64_t plane = x.dim(2) * x.dim(3), outs = y.dim(2) * y.dim(3);
      for (int64_t o = 0; o < y.size(); ++o) y[o] = x[o / outs * plane + w[o]];
    }
    return;
  }
  switch (nd.kind) {
    case NodeKind::input: return;
    case NodeKind::shortcut_a: {
      // Option A: out[n, c, h, w] = in[n, c, h*s, w*s] for c < in_c; channels in_c.. are zero.
      const Tensor& x = act_[nd.inputs[0]];
      Tensor& y = act_[id];
      y.zero();
      for (int64_t n = 0; n < y.dim(0); ++n)
        for (int64_t c = 0; c < x.dim(1); ++c)
          for (int64_t h = 0; h < y.dim(2); ++h)
            for (int64_t w = 0; w < y.dim(3); ++w) y.at(n, c, h, w) = x.at(n, c, h * nd.sh, w * nd.sw);
      return;
    }
    default: break;
  }
  if (node.src_of) {  // reduced-precision reference: operands enter in the array's format
    round_copy(*node.src_of, node.r_src);
    round_copy(*node.wei_of, node.r_wei);
  }
  Node::run(node.pre_fwd, strm_);
  node.fwd.execute(strm_, node.fwd_args);
  Node::run(node.post_fwd, strm_);
  strm_.wait();
  if (nd.kind == NodeKind::loss) {
    // loss = mean over n of -log p[n, label_n], accumulated in double in sample order.
    const Tensor& logp = node.logp;
    const int64_t batch = net_.batch, classes = net_.classes;
    double sum = 0.0;
    for (int64_t n = 0; n < batch; ++n) {
      const double l = -static_cast<double>(logp[n * classes + labels[n]]);
      act_[id][n] = static_cast<float>(l);
      sum += l;
      for (int64_t k = 0; k < classes; ++k)
        prob_[n * classes + k] = static_cast<float>(std::exp(static_cast<double>(logp[n * classes + k])));
    }
    loss_ = sum / static_cast<double>(batch);
  }
}

void OneDnnNet::backward(int id, const std::vector<int32_t>& labels) {
  const NodeDesc& nd = net_.nodes[id];
  Node& node = *nodes_[id];
  if (nd.kind == NodeKind::input) return;
  const int in = nd.inputs[0];
  switch (nd.kind) {
    case NodeKind::loss: {
      // d loss / d logits = (softmax - onehot) / N, in double, stored in fp32.
      const int64_t batch = net_.batch, classes = net_.classes;
      const double inv_n = 1.0 / static_cast<double>(batch);
      diff_[id].fill(static_cast<float>(inv_n));
      Tensor d({batch, classes, 1, 1});
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t k = 0; k < classes; ++k) {
          const double p = std::exp(static_cast<double>(node.logp[n * classes + k]));
          d[n * classes + k] = static_cast<float>((p - (k == labels[n] ? 1.0 : 0.0)) * inv_n);
        }
      accumulate_diff(in, d);
      return;
    }
    case NodeKind::add:
      accumulate_diff(nd.inputs[0], diff_[id]);
      accumulate_diff(nd.inputs[1], diff_[id]);
      return;
    case NodeKind::shortcut_a: {
      const Tensor& dy = diff_[id];
      const Shape4 is = net_.nodes[in].out;
      Tensor dx({is.n, is.c, is.h, is.w});  // zero where no output pixel was taken
      dx.zero();
      for (int64_t n = 0; n < dy.dim(0); ++n)
        for (int64_t c = 0; c < is.c; ++c)
          for (int64_t h = 0; h < dy.dim(2); ++h)
            for (int64_t w = 0; w < dy.dim(3); ++w) dx.at(n, c, h * nd.sh, w * nd.sw) = dy.at(n, c, h, w);
      accumulate_diff(in, dx);
      return;
    }
    default: break;
  }
  if (transplanted(id)) {
    const Tensor& dy = diff_[id];
    const Tensor& x = act_[in];
    Tensor dx({x.dim(0), x.dim(1), x.dim(2), x.dim(3)});
    if (nd.kind == NodeKind::relu) {
      const auto& m = decisions_->relu[id];
      for (int64_t i = 0; i < dx.size(); ++i) dx[i] = m[i] ? dy[i] : 0.0f;
    } else {
      dx.zero();
      const auto& w = decisions_->maxpool[id];
      const int64_t plane = x.dim(2) * x.dim(3), outs = dy.dim(2) * dy.dim(3);
      for (int64_t o = 0; o < dy.size(); ++o) dx[o / outs * plane + w[o]] += dy[o];
    }
    accumulate_diff(in, dx);
    return;
  }
  if (node.ddst_of) round_copy(*node.ddst_of, node.r_ddst);
  Node::run(node.pre_bwd, strm_);
  if (node.bwd_weights) {
    node.bwd_weights.execute(strm_, node.bwd_weights_args);
    Node::run(node.post_bwd_weights, strm_);
    strm_.wait();
  }
  node.bwd_data.execute(strm_, node.bwd_data_args);
  Node::run(node.post_bwd_data, strm_);
  strm_.wait();
  if (node.dsrc_buf.size() != 0) accumulate_diff(in, node.dsrc_buf);
  else ++diff_written_[in];
}

double OneDnnNet::forward_backward(const Tensor& images, const std::vector<int32_t>& labels) {
  Tensor& x = act_[0];
  if (images.size() != x.size() || images.rank() != 4 || images.dim(1) != x.dim(1) ||
      images.dim(2) != x.dim(2) || images.dim(3) != x.dim(3))
    throw UserError(fmt::format("images have shape {}, the network takes {}", images.shape_str(),
                                x.shape_str()));
  if (static_cast<int64_t>(labels.size()) != net_.batch)
    throw UserError(fmt::format("{} labels for a batch of {}", labels.size(), net_.batch));
  for (int32_t l : labels)
    if (l < 0 || l >= net_.classes)
      throw UserError(fmt::format("label {} is outside [0, {})", l, net_.classes));
  std::memcpy(x.data(), images.data(), static_cast<size_t>(x.size()) * sizeof(float));

  const int n = static_cast<int>(net_.nodes.size());
  for (int id = 0; id < n; ++id) forward(id, labels);
  std::fill(diff_written_.begin(), diff_written_.end(), 0);
  for (int id = n - 1; id >= 0; --id) {
    // Every consumer (a later node) has delivered its diff before the node itself runs backward.
    ST_INVARIANT(diff_written_[id] == consumers_[id]);
    backward(id, labels);
  }
  return loss_;
}

}  // namespace st
