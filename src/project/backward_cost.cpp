#include "src/project/backward_cost.h"

#include <vector>

#include "src/base/error.h"
#include "src/cost/cost_model.h"

namespace st {

const std::vector<std::pair<std::string_view, double BackwardFigures::*>>& backward_figure_fields() {
  using F = BackwardFigures;
  static const std::vector<std::pair<std::string_view, double F::*>> v = {
      {"cycles", &F::cycles},
      {"dram_bytes", &F::dram},
      {"sram_bytes", &F::sram},
      {"extra_storage_bytes", &F::extra},
      {"macs", &F::macs},
      {"dram_src_bytes", &F::dram_src},
      {"dram_wei_bytes", &F::dram_wei},
      {"dram_diff_dst_bytes", &F::dram_diff_dst},
      {"dram_diff_src_bytes", &F::dram_diff_src},
      {"dram_diff_wei_bytes", &F::dram_diff_wei},
      {"dram_copy_bytes", &F::dram_copy},
      {"sram_lowered_read_bytes", &F::sram_lowered_read},
      {"sram_lowered_write_bytes", &F::sram_lowered_write},
      {"sram_other_bytes", &F::sram_other},
  };
  return v;
}

BackwardFigures& BackwardFigures::operator+=(const BackwardFigures& o) {
  for (const auto& [name, m] : backward_figure_fields()) this->*m += o.*m;
  return *this;
}

double figure_value(const BackwardFigures& f, std::string_view name) {
  if (const auto plus = name.find('+'); plus != std::string_view::npos)
    return figure_value(f, name.substr(0, plus)) + figure_value(f, name.substr(plus + 1));
  for (const auto& [n, m] : backward_figure_fields())
    if (n == name) return f.*m;
  ST_INVARIANT(!"unknown backward figure");
  return 0;
}

double reduction_percent(double base, double x) { return base > 0 ? 100.0 * (1.0 - x / base) : 0.0; }

namespace {

// The figure a GEMM operand's DRAM bytes count in (the tensor that backs it).
double& dram_of(BackwardFigures& f, TensorRole t) {
  switch (t) {
    case TensorRole::src: return f.dram_src;
    case TensorRole::wei:
    case TensorRole::wei_copy: return f.dram_wei;
    case TensorRole::diff_dst: return f.dram_diff_dst;
    case TensorRole::diff_src: return f.dram_diff_src;
    case TensorRole::diff_wei: return f.dram_diff_wei;
    default: break;
  }
  ST_INVARIANT(!"a backward conv GEMM operand backed by a tensor other than X, W, dY, dX, dW");
  return f.dram_src;
}

void add(BackwardFigures& f, const GemmWork& w, const Stats& s) {
  f.cycles += s.get("cycles.total");
  f.dram += s.sum_prefix("bytes.dram.");
  f.sram += s.sum_prefix("bytes.sram.");
  f.extra += s.get("storage.extra");
  f.macs += s.get("macs.issued");
  // DRAM by tensor. A materialized A (explicit's copy): building it reads dY (extra.dram.read) and
  // writes the copy, which the tiles then read; otherwise A's bytes are dY's own.
  const double a_read = s.get("bytes.dram.read.ifmap"), a_write = s.get("bytes.dram.write.ifmap");
  if (w.a.extra_dram_write_bytes > 0) {
    const double build_read = s.get("extra.dram.read.ifmap");
    dram_of(f, w.a.tensor) += build_read;
    f.dram_copy += a_read - build_read + a_write;
  } else {
    dram_of(f, w.a.tensor) += a_read + a_write;
  }
  ST_INVARIANT(w.b.extra_dram_write_bytes <= 0 && w.b.extra_dram_read_bytes <= 0);   // B is never built
  dram_of(f, w.b.tensor) += s.get("bytes.dram.read.weight") + s.get("bytes.dram.write.weight");
  dram_of(f, w.c.tensor) += s.get("bytes.dram.read.output") + s.get("bytes.dram.write.output");
  // SRAM: the lowered operand is A, in the ifmap buffer.
  f.sram_lowered_read += s.get("bytes.sram.ifmap.read");
  f.sram_lowered_write += s.get("bytes.sram.ifmap.write");
  f.sram_other += s.sum_prefix("bytes.sram.weight.") + s.sum_prefix("bytes.sram.output.");
}

std::vector<Direction> directions(bool with_dx) {
  if (with_dx) return {Direction::bwd_data, Direction::bwd_weights};
  return {Direction::bwd_weights};
}

}  // namespace

BackwardFigures backward_figures(const ConvLayer& layer, Lowering l, const Spec& spec, bool with_dx) {
  BackwardFigures f;
  for (Direction dir : directions(with_dx))
    for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) add(f, w, cost_gemm(w, spec));
  return f;
}

BackwardFigures bp_im2col_on_explicit_plan(const ConvLayer& layer, const Spec& spec, bool with_dx) {
  BackwardFigures f;
  for (Direction dir : directions(with_dx)) {
    const auto we = conv_work(layer.desc, dir, Lowering::explicit_im2col, spec, layer.name);
    const auto wb = conv_work(layer.desc, dir, Lowering::bp_im2col, spec, layer.name);
    ST_INVARIANT(we.size() == wb.size());
    for (size_t i = 0; i < we.size(); ++i) {
      ST_INVARIANT(we[i].shape.M == wb[i].shape.M && we[i].shape.N == wb[i].shape.N && we[i].shape.K == wb[i].shape.K);
      GemmPlan plan;
      cost_gemm(we[i], spec, &plan);
      add(f, wb[i], cost_gemm_on_plan(wb[i], spec, plan));
    }
  }
  return f;
}

BackwardComparison compare_backward(const std::vector<ConvLayer>& layers, const Spec& spec, bool include_stem_dx) {
  BackwardComparison c;
  for (size_t i = 0; i < layers.size(); ++i) {
    BackwardComparison::Layer x;
    x.with_dx = backward_computes_dx(i, include_stem_dx);
    for (Lowering l : kAllLowerings) {
      x.mode[int(l)] = backward_figures(layers[i], l, spec, x.with_dx);
      c.total[int(l)] += x.mode[int(l)];
    }
    x.shared = bp_im2col_on_explicit_plan(layers[i], spec, x.with_dx);
    c.total_shared += x.shared;
    c.layers.push_back(x);
  }
  return c;
}

}  // namespace st
