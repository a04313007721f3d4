#include "src/train/network.h"

#include <fmt/format.h>

#include <cstring>

#include "src/base/error.h"
#include "src/ops/conv.h"
#include "src/ops/fc.h"
#include "src/ops/grad_unscale.h"
#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "src/ops/shortcut.h"
#include "src/ops/softmax_xent.h"
#include "src/project/node_ops.h"

namespace st {

Network::Network(NetDesc net, ParamSet params, Lowering lowering)
    : net_(std::move(net)), params_(std::move(params)), lowering_(lowering) {
  const size_t n = net_.nodes.size();
  act_.resize(n);
  diff_.resize(n);
  fan_scratch_.resize(n);
  diff_written_.assign(n, false);
  bn_saved_.resize(n);
  pool_ws_.resize(n);
  auto expect = [&](const std::string& name, std::initializer_list<int64_t> dims) {
    const Tensor& t = params_.at(name);
    Tensor want(dims);
    if (!t.same_shape(want))
      throw UserError(fmt::format("parameter '{}' has shape {}, the network needs {}", name, t.shape_str(),
                                  want.shape_str()));
  };
  for (size_t i = 0; i < n; ++i) {
    const NodeDesc& nd = net_.nodes[i];
    const int id = static_cast<int>(i);
    if (nd.kind == NodeKind::conv) {
      expect(nd.name + ".weight", {nd.out.c, net_.in_shape(id).c, nd.kh, nd.kw});
    } else if (nd.kind == NodeKind::bn) {
      for (const char* s : {".gamma", ".beta", ".running_mean", ".running_var"}) expect(nd.name + s, {nd.out.c});
    } else if (nd.kind == NodeKind::fc) {
      const Shape4 in = net_.in_shape(id);
      expect(nd.name + ".weight", {nd.out.c, in.c * in.h * in.w});
      expect(nd.name + ".bias", {nd.out.c});
    }
  }
  for (const auto& name : trainable_names(params_)) {
    Tensor g(params_.at(name));
    g.zero();
    grads_.add(name, g);
    velocity_.add(name, g);  // zeros
  }
}

int Network::node_id(const std::string& name) const {
  for (size_t i = 0; i < net_.nodes.size(); ++i)
    if (net_.nodes[i].name == name) return static_cast<int>(i);
  throw UserError(fmt::format("no node named '{}' in {}", name, net_.name));
}

const Tensor& Network::activation(const std::string& node) const { return act_[node_id(node)]; }
const Tensor& Network::activation_grad(const std::string& node) const { return diff_[node_id(node)]; }

ExecContext Network::node_ctx(const ExecContext& ctx, int id) const {
  ExecContext c = ctx;
  c.layer = net_.node(id).name;
  return c;
}


float Network::forward(const ExecContext& ctx0, const Tensor& images, const std::vector<int32_t>& labels,
                       bool training) {
  if (images.rank() != 4 || images.dim(0) != net_.batch || images.dim(1) != net_.in_c ||
      images.dim(2) != net_.in_h || images.dim(3) != net_.in_w)
    throw UserError(fmt::format("input batch {} does not match the network's ({}, {}, {}, {})", images.shape_str(),
                                net_.batch, net_.in_c, net_.in_h, net_.in_w));
  if (static_cast<int64_t>(labels.size()) != net_.batch)
    throw UserError(fmt::format("{} labels for a batch of {}", labels.size(), net_.batch));
  labels_ = labels;
  for (size_t i = 0; i < net_.nodes.size(); ++i) {
    const int id = static_cast<int>(i);
    const NodeDesc& n = net_.nodes[i];
    const ExecContext ctx = node_ctx(ctx0, id);
    auto in = [&](int k = 0) -> const Tensor& { return act_[n.inputs[k]]; };
    switch (n.kind) {
      case NodeKind::input:
        act_[i] = images;
        break;
      case NodeKind::conv:
        conv_fwd(ctx, conv_desc(net_, id), lowering_, in(), params_.at(n.name + ".weight"), act_[i]);
        break;
      case NodeKind::bn:
        if (training)
          bn_fwd_training(ctx, bn_, in(), params_.at(n.name + ".gamma"), params_.at(n.name + ".beta"), act_[i],
                          bn_saved_[i], params_.at(n.name + ".running_mean"), params_.at(n.name + ".running_var"),
                          producer_on_chip(net_, *ctx.spec, id));
        else
          bn_fwd_inference(ctx, bn_, in(), params_.at(n.name + ".gamma"), params_.at(n.name + ".beta"),
                           params_.at(n.name + ".running_mean"), params_.at(n.name + ".running_var"), act_[i],
                           producer_on_chip(net_, *ctx.spec, id));
        break;
      case NodeKind::relu:
        relu_fwd(ctx, in(), act_[i], producer_on_chip(net_, *ctx.spec, id));
        break;
      case NodeKind::add:
        add_fwd(ctx, in(0), in(1), act_[i]);
        break;
      case NodeKind::maxpool:
      case NodeKind::gap:
        pool_fwd(ctx, pool_desc(net_, id), in(), act_[i], n.kind == NodeKind::maxpool ? &pool_ws_[i] : nullptr);
        break;
      case NodeKind::fc:
        fc_fwd(ctx, in(), params_.at(n.name + ".weight"), params_.at(n.name + ".bias"), act_[i]);
        break;
      case NodeKind::shortcut_a:
        shortcut_a_fwd(ctx, n.sh, n.out.c, n.out.h, n.out.w, in(), act_[i]);
        break;
      case NodeKind::loss:
        last_loss_ = softmax_xent_fwd(ctx, in(), labels_, probs_);
        break;
    }
  }
  return last_loss_;
}

Tensor& Network::diff_target(int producer) {
  Tensor& t = diff_written_[producer] ? fan_scratch_[producer] : diff_[producer];
  // Some backward ops write into a tensor of the right shape only (pool_bwd): give it the shape of
  // the producer's output (rank 2 for fc, as fc and softmax use).
  const Shape4 s = net_.node(producer).out;
  const bool fc = net_.node(producer).kind == NodeKind::fc;
  const bool ok = fc ? (t.rank() == 2 && t.dim(0) == s.n && t.dim(1) == s.c)
                     : (t.rank() == 4 && t.dim(0) == s.n && t.dim(1) == s.c && t.dim(2) == s.h && t.dim(3) == s.w);
  if (!ok) t = fc ? Tensor({s.n, s.c}) : Tensor({s.n, s.c, s.h, s.w});
  return t;
}

void Network::deliver(const ExecContext& ctx, int producer) {
  if (diff_written_[producer]) add_bwd(ctx, fan_scratch_[producer], diff_[producer]);
  diff_written_[producer] = true;
}

void Network::backward(const ExecContext& ctx0, float loss_scale) {
  std::fill(diff_written_.begin(), diff_written_.end(), false);
  for (int id = static_cast<int>(net_.nodes.size()) - 1; id >= 0; --id) {
    const NodeDesc& n = net_.node(id);
    const ExecContext ctx = node_ctx(ctx0, id);
    if (n.kind == NodeKind::input) continue;
    const int p = n.inputs.empty() ? -1 : n.inputs[0];
    // The image batch needs no gradient: the stem computes dW only.
    const bool need_dx = p >= 0 && net_.node(p).kind != NodeKind::input;
    const Tensor& dy = diff_[id];
    switch (n.kind) {
      case NodeKind::loss:
        softmax_xent_bwd(ctx, probs_, labels_, diff_target(p), loss_scale);
        deliver(ctx, p);
        break;
      case NodeKind::fc:
        fc_bwd_weights(ctx, act_[p], dy, grads_.at(n.name + ".weight"), grads_.at(n.name + ".bias"));
        if (need_dx) {
          fc_bwd_data(ctx, dy, params_.at(n.name + ".weight"), diff_target(p));
          deliver(ctx, p);
        }
        break;
      case NodeKind::maxpool:
      case NodeKind::gap:
        pool_bwd(ctx, pool_desc(net_, id), dy, n.kind == NodeKind::maxpool ? &pool_ws_[id] : nullptr, diff_target(p));
        deliver(ctx, p);
        break;
      case NodeKind::relu:
        relu_bwd(ctx, act_[p], dy, diff_target(p));
        deliver(ctx, p);
        break;
      case NodeKind::bn:
        bn_bwd(ctx, bn_, act_[p], dy, params_.at(n.name + ".gamma"), bn_saved_[id], diff_target(p),
               grads_.at(n.name + ".gamma"), grads_.at(n.name + ".beta"));
        deliver(ctx, p);
        break;
      case NodeKind::conv:
        conv_bwd_weights(ctx, conv_desc(net_, id), lowering_, act_[p], dy, grads_.at(n.name + ".weight"));
        if (need_dx) {
          conv_bwd_data(ctx, conv_desc(net_, id), lowering_, dy, params_.at(n.name + ".weight"), diff_target(p));
          deliver(ctx, p);
        }
        break;
      case NodeKind::add:
        // d(a + b) / da = d(a + b) / db = identity: both branches receive dy itself (no arithmetic,
        // the buffer is shared); only where a gradient meets another one is an add counted.
        for (int k : n.inputs) {
          Tensor& t = diff_target(k);
          t = dy;
          deliver(ctx, k);
        }
        break;
      case NodeKind::shortcut_a:
        shortcut_a_bwd(ctx, n.sh, dy, act_[p], diff_target(p));
        deliver(ctx, p);
        break;
      case NodeKind::input:
        break;
    }
  }
}

void Network::zero_grads() {
  for (auto& [name, g] : grads_) g.zero();
}

void Network::sgd_step(const ExecContext& ctx0, const SgdParams& p) {
  for (auto& [name, g] : grads_) {
    ExecContext ctx = ctx0;
    ctx.layer = name;
    // conv and fc weights ("X.weight") are the array's operands (src/ops/storage.h).
    sgd_update(ctx, p, params_.at(name), g, velocity_.at(name), name.ends_with(".weight"));
  }
}

void Network::describe_sgd_step(const ExecContext& ctx0) const {
  for (const auto& [name, g] : grads_) {
    ExecContext ctx = ctx0;
    ctx.layer = name;
    ctx.emit(sgd_update_work(ctx, g.size(), name.ends_with(".weight")));
  }
}

bool Network::unscale_grads(const ExecContext& ctx0, float inv_scale) {
  bool finite = true;
  for (auto& [name, g] : grads_) {
    ExecContext ctx = ctx0;
    ctx.layer = name;
    finite = grad_unscale(ctx, g, inv_scale) && finite;
  }
  return finite;
}

void Network::rescale_activation_grads(float factor) {
  for (Tensor& t : diff_)
    for (int64_t i = 0; i < t.size(); ++i) t[i] *= factor;
}

int64_t Network::correct() const {
  int64_t ok = 0;
  const int64_t K = net_.classes;
  for (int64_t n = 0; n < net_.batch; ++n) {
    const float* row = probs_.data() + n * K;
    int64_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (row[k] > row[best]) best = k;
    ok += best == labels_[n];
  }
  return ok;
}

}  // namespace st
