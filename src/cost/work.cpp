#include "src/cost/work.h"

namespace st {

std::string_view to_string(OpKind k) {
  switch (k) {
    case OpKind::conv_fwd: return "conv_fwd";
    case OpKind::conv_bwd_data: return "conv_bwd_data";
    case OpKind::conv_bwd_weights: return "conv_bwd_weights";
    case OpKind::fc_fwd: return "fc_fwd";
    case OpKind::fc_bwd_data: return "fc_bwd_data";
    case OpKind::fc_bwd_weights: return "fc_bwd_weights";
    case OpKind::bn_fwd: return "bn_fwd";
    case OpKind::bn_bwd: return "bn_bwd";
    case OpKind::relu_fwd: return "relu_fwd";
    case OpKind::relu_bwd: return "relu_bwd";
    case OpKind::maxpool_fwd: return "maxpool_fwd";
    case OpKind::maxpool_bwd: return "maxpool_bwd";
    case OpKind::avgpool_fwd: return "avgpool_fwd";
    case OpKind::avgpool_bwd: return "avgpool_bwd";
    case OpKind::add_fwd: return "add_fwd";
    case OpKind::add_bwd: return "add_bwd";
    case OpKind::loss_fwd: return "loss_fwd";
    case OpKind::loss_bwd: return "loss_bwd";
    case OpKind::sgd_update: return "sgd_update";
    case OpKind::shortcut_fwd: return "shortcut_fwd";
    case OpKind::shortcut_bwd: return "shortcut_bwd";
    case OpKind::kCount: break;
  }
  return "?";
}

bool is_conv(OpKind k) {
  return k == OpKind::conv_fwd || k == OpKind::conv_bwd_data || k == OpKind::conv_bwd_weights;
}

std::string_view to_string(Phase p) {
  switch (p) {
    case Phase::forward: return "forward";
    case Phase::backward_data: return "backward_data";
    case Phase::backward_weights: return "backward_weights";
    case Phase::update: return "update";
    case Phase::kCount: break;
  }
  return "?";
}

GemmWork dense_gemm_work(const GemmShape& g, Format format) {
  auto dense = [](int64_t rows, int64_t cols, int elem_bytes) {
    OperandDesc o;
    o.rows = rows;
    o.cols = cols;
    o.elem_bytes = elem_bytes;
    o.dram_elems = double(rows) * double(cols);
    return o;
  };
  GemmWork w;
  w.shape = g;
  w.a = dense(g.M, g.K, format_bytes(format));
  w.b = dense(g.K, g.N, format_bytes(format));
  w.c = dense(g.M, g.N, accumulator_bytes(format));
  w.useful_macs = double(g.M) * double(g.N) * double(g.K);
  return w;
}

}  // namespace st
