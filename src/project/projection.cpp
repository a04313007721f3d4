#include "src/project/projection.h"

#include <string>

#include "src/base/error.h"
#include "src/ops/batchnorm.h"
#include "src/ops/conv.h"
#include "src/ops/fc.h"
#include "src/ops/pool.h"
#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "src/ops/sgd.h"
#include "src/ops/shortcut.h"
#include "src/ops/softmax_xent.h"
#include "src/project/node_ops.h"

namespace st {

namespace {

void emit_all(const ExecContext& ctx, const std::vector<GemmWork>& ws) {
  for (const GemmWork& w : ws) ctx.emit(w);
}

// --fold-bn: a BN whose input is a conv is folded into it; a ReLU whose input is such a BN is fused.
bool folded_bn(const NetDesc& net, int id) {
  const NodeDesc& n = net.node(id);
  return n.kind == NodeKind::bn && net.node(n.inputs[0]).kind == NodeKind::conv;
}
bool relu_follows(const NetDesc& net, int bn) {
  for (const NodeDesc& n : net.nodes)
    if (n.kind == NodeKind::relu && n.inputs[0] == bn) return true;
  return false;
}

void forward(const NetDesc& net, const ExecContext& ctx0, Lowering l, bool training, bool fold_bn) {
  const Spec& spec = *ctx0.spec;
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    const int id = static_cast<int>(i);
    const NodeDesc& n = net.nodes[i];
    ExecContext ctx = ctx0;
    ctx.layer = n.name;
    if (n.kind == NodeKind::input) continue;
    const Shape4 in = net.in_shape(id);
    switch (n.kind) {
      case NodeKind::input:
        break;
      case NodeKind::conv:
        emit_all(ctx, conv_work(conv_desc(net, id), Direction::fwd, l, spec, n.name));
        break;
      case NodeKind::bn:
        if (fold_bn && folded_bn(net, id)) {
          ctx.emit(bn_folded_work(ctx, in.size(), in.c, relu_follows(net, id)));
          break;
        }
        ctx.emit(training ? bn_fwd_training_work(ctx, in.size(), in.c, producer_on_chip(net, spec, id))
                          : bn_fwd_inference_work(ctx, in.size(), in.c, producer_on_chip(net, spec, id)));
        break;
      case NodeKind::relu:
        if (fold_bn && folded_bn(net, n.inputs[0])) break;   // in the folded BN's pass
        ctx.emit(relu_fwd_work(ctx, in.size(), producer_on_chip(net, spec, id)));
        break;
      case NodeKind::add:
        ctx.emit(add_fwd_work(ctx, in.size()));
        break;
      case NodeKind::maxpool:
      case NodeKind::gap:
        ctx.emit(pool_fwd_work(ctx, pool_desc(net, id), in.n, in.c, in.h, in.w));
        break;
      case NodeKind::fc:
        ctx.emit(fc_fwd_work(ctx, in.n, in.c * in.h * in.w, n.out.c));
        ctx.emit(fc_bias_fwd_work(ctx, in.n, n.out.c));
        break;
      case NodeKind::shortcut_a:
        ctx.emit(shortcut_a_fwd_work(ctx, in.n, in.c, n.out.c, n.out.h, n.out.w));
        break;
      case NodeKind::loss:
        ctx.emit(softmax_xent_fwd_work(ctx, in.n, in.c * in.h * in.w));
        break;
    }
  }
}

void backward(const NetDesc& net, const ExecContext& ctx0, Lowering l) {
  const Spec& spec = *ctx0.spec;
  std::vector<bool> written(net.nodes.size(), false);
  // Network::deliver: the second gradient reaching a node's output is added in (add_bwd), tagged
  // with the node whose backward produced it.
  auto deliver = [&](const ExecContext& ctx, int producer) {
    if (written[producer]) ctx.emit(add_bwd_work(ctx, net.node(producer).out.size()));
    written[producer] = true;
  };
  for (int id = static_cast<int>(net.nodes.size()) - 1; id >= 0; --id) {
    const NodeDesc& n = net.node(id);
    if (n.kind == NodeKind::input) continue;
    ExecContext ctx = ctx0;
    ctx.layer = n.name;
    const int p = n.inputs.empty() ? -1 : n.inputs[0];
    const bool need_dx = p >= 0 && net.node(p).kind != NodeKind::input;  // the stem: dW only
    const Shape4 in = p >= 0 ? net.node(p).out : Shape4{};
    switch (n.kind) {
      case NodeKind::loss:
        ctx.emit(softmax_xent_bwd_work(ctx, in.n, in.c * in.h * in.w));
        deliver(ctx, p);
        break;
      case NodeKind::fc: {
        const int64_t IC = in.c * in.h * in.w;
        ctx.emit(fc_bwd_weights_work(ctx, in.n, IC, n.out.c));
        ctx.emit(fc_bias_bwd_work(ctx, in.n, n.out.c));
        if (need_dx) {
          ctx.emit(fc_bwd_data_work(ctx, in.n, IC, n.out.c));
          deliver(ctx, p);
        }
        break;
      }
      case NodeKind::maxpool:
      case NodeKind::gap:
        ctx.emit(pool_bwd_work(ctx, pool_desc(net, id), in.n, in.c, in.h, in.w));
        deliver(ctx, p);
        break;
      case NodeKind::relu:
        ctx.emit(relu_bwd_work(ctx, in.size()));
        deliver(ctx, p);
        break;
      case NodeKind::bn:
        ctx.emit(bn_bwd_work(ctx, in.size(), in.c));
        deliver(ctx, p);
        break;
      case NodeKind::conv:
        emit_all(ctx, conv_work(conv_desc(net, id), Direction::bwd_weights, l, spec, n.name));
        if (need_dx) {
          emit_all(ctx, conv_work(conv_desc(net, id), Direction::bwd_data, l, spec, n.name));
          deliver(ctx, p);
        }
        break;
      case NodeKind::add:
        for (int k : n.inputs) deliver(ctx, k);
        break;
      case NodeKind::shortcut_a:
        ctx.emit(shortcut_a_bwd_work(ctx, in.n, in.c, in.h, in.w, n.out.h, n.out.w));
        deliver(ctx, p);
        break;
      case NodeKind::input:
        break;
    }
  }
}

// Network::sgd_step: one update per trainable parameter, in ParamSet (node) order, tagged with the
// parameter's name.
void update(const NetDesc& net, const ExecContext& ctx0) {
  auto sgd = [&](const std::string& name, int64_t n, bool gemm_operand = false) {
    ExecContext ctx = ctx0;
    ctx.layer = name;
    ctx.emit(sgd_update_work(ctx, n, gemm_operand));
  };
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    const NodeDesc& n = net.nodes[i];
    const Shape4 in = n.inputs.empty() ? Shape4{} : net.in_shape(static_cast<int>(i));
    if (n.kind == NodeKind::conv) {
      sgd(n.name + ".weight", n.out.c * in.c * n.kh * n.kw, true);
    } else if (n.kind == NodeKind::bn) {
      sgd(n.name + ".gamma", n.out.c);
      sgd(n.name + ".beta", n.out.c);
    } else if (n.kind == NodeKind::fc) {
      sgd(n.name + ".weight", n.out.c * in.c * in.h * in.w, true);
      sgd(n.name + ".bias", n.out.c);
    }
  }
}

}  // namespace

void describe_step(const NetDesc& net, const ExecContext& ctx, Lowering lowering, StepMode mode) {
  ST_INVARIANT(ctx.spec != nullptr);
  forward(net, ctx, lowering, mode == StepMode::train, mode == StepMode::infer_fold_bn);
  if (mode != StepMode::train) return;
  backward(net, ctx, lowering);
  update(net, ctx);
}

void project_into(Ledger& ledger, const NetDesc& net, Lowering lowering, StepMode mode) {
  const ExecContext ctx{&ledger.spec(), &ledger, ""};
  describe_step(net, ctx, lowering, mode);
}

std::vector<StatsRecord> project(const NetDesc& net, const Spec& spec, Lowering lowering, StepMode mode) {
  Ledger ledger(spec);
  project_into(ledger, net, lowering, mode);
  return ledger.records();
}

}  // namespace st
