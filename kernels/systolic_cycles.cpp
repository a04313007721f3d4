// Closed-form compute cycles of a GEMM on the array (reference/scalesim-cycles.md).
#include "kernels/systolic.h"

namespace st {

std::string_view to_string(Dataflow d) {
  switch (d) {
    case Dataflow::os: return "os";
    case Dataflow::ws: return "ws";
    case Dataflow::is: return "is";
  }
  return "?";
}

std::optional<Dataflow> parse_dataflow(std::string_view s) {
  if (s == "os") return Dataflow::os;
  if (s == "ws") return Dataflow::ws;
  if (s == "is") return Dataflow::is;
  return std::nullopt;
}

std::string_view to_string(ConvMapping m) { return m == ConvMapping::channel_tap ? "channel_tap" : "im2col"; }

std::optional<ConvMapping> parse_conv_mapping(std::string_view s) {
  if (s == "im2col") return ConvMapping::im2col;
  if (s == "channel_tap") return ConvMapping::channel_tap;
  return std::nullopt;
}

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// (rows mapped onto the array rows, cols mapped onto the array cols, T streamed in time).
struct Mapping {
  int64_t rows, cols, t;
};
Mapping map_gemm(Dataflow d, const GemmShape& g) {
  switch (d) {
    case Dataflow::os: return {g.M, g.N, g.K};
    case Dataflow::ws: return {g.K, g.N, g.M};
    case Dataflow::is: return {g.K, g.M, g.N};
  }
  return {g.M, g.N, g.K};
}
}  // namespace

int64_t gemm_folds(const ArrayConfig& cfg, const GemmShape& g) {
  Mapping m = map_gemm(cfg.dataflow, g);
  return ceil_div(m.rows, cfg.rows) * ceil_div(m.cols, cfg.cols);
}

int64_t gemm_cycles_per_fold(const ArrayConfig& cfg, const GemmShape& g) {
  Mapping m = map_gemm(cfg.dataflow, g);
  if (cfg.dataflow == Dataflow::os) return m.t + cfg.rows + cfg.cols - 2;
  return 2 * int64_t{cfg.rows} + cfg.cols + m.t - 2;
}

int64_t gemm_compute_cycles(const ArrayConfig& cfg, const GemmShape& g) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return 0;
  const Mapping m = map_gemm(cfg.dataflow, g);
  const int64_t count = cfg.count > 1 ? cfg.count : 1;
  return ceil_div(m.rows, cfg.rows) * ceil_div(ceil_div(m.cols, cfg.cols), count) * gemm_cycles_per_fold(cfg, g);
}

}  // namespace st
