#include "src/cost/work.h"

#include <iterator>

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
    case OpKind::grad_unscale: return "grad_unscale";
    case OpKind::grad_allreduce: return "grad_allreduce";
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

std::string_view to_string(TensorRole r) {
  static constexpr std::string_view kName[] = {
      "src", "src1", "dst", "wei", "wei_copy", "bias", "gamma", "beta", "running_mean", "running_var", "mean",
      "var", "diff_dst", "diff_src", "diff_wei", "diff_bias", "diff_gamma", "diff_beta", "velocity", "workspace",
      "labels", "loss"};
  static_assert(std::size(kName) == size_t(TensorRole::kCount));
  return r < TensorRole::kCount ? kName[size_t(r)] : "?";
}

void read_tensor(VectorWork& w, TensorRole role, double elems, int elem_bytes, bool producer, bool partial) {
  w.tensors.push_back({role, false, elems, elem_bytes, partial, producer});
  w.dram_read_bytes += elems * elem_bytes;
  if (producer) w.producer_read_bytes += elems * elem_bytes;
}

void write_tensor(VectorWork& w, TensorRole role, double elems, int elem_bytes) {
  w.tensors.push_back({role, true, elems, elem_bytes, false, false});
  w.dram_write_bytes += elems * elem_bytes;
}

GemmWork dense_gemm_work(const GemmShape& g, Format format) {
  auto dense = [](int64_t rows, int64_t cols, int elem_bytes) {
    OperandDesc o;
    o.rows = rows;
    o.cols = cols;
    o.elem_bytes = elem_bytes;
    o.dram_elem_bytes = elem_bytes;
    o.dram_elems = double(rows) * double(cols);
    return o;
  };
  GemmWork w;
  w.shape = g;
  w.a = dense(g.M, g.K, format_bytes(format));
  w.b = dense(g.K, g.N, format_bytes(format));
  w.c = dense(g.M, g.N, accumulator_bytes(format));
  w.a.tensor = TensorRole::src;
  w.b.tensor = TensorRole::wei;
  w.c.tensor = TensorRole::dst;
  w.useful_macs = double(g.M) * double(g.N) * double(g.K);
  return w;
}

}  // namespace st
