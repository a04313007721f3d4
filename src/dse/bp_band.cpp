// See bp_band.h.
#include "src/dse/bp_band.h"

#include <fmt/format.h>

#include <algorithm>

#include "src/base/error.h"

namespace st::dse {

namespace {

// The sweep keys a backward GEMM's cost depends on and a paper may leave unknown.
constexpr std::string_view kBandKeys[] = {"dram_gbps",       "buffers_kib",      "ifmap_kib",
                                          "weight_kib",      "output_kib",       "ifmap_link_bits",
                                          "weight_link_bits", "output_link_bits"};

// Runs f, a sweep function whose messages name the option --sweep, for the option --band-axis.
template <class F>
auto as_band_option(F f) {
  try {
    return f();
  } catch (const UserError& e) {
    std::string m = e.what();
    const std::string sweep = "--sweep '";
    const auto at = m.find(sweep);
    if (at == std::string::npos) throw;
    throw UserError(m.replace(at, sweep.size(), "--band-axis '"));
  }
}

}  // namespace

std::vector<Axis> default_band_axes() {
  return {parse_band_axis("dram_gbps=8,16,32,64"), parse_band_axis("buffers_kib=32,64,128,256")};
}

Axis parse_band_axis(const std::string& expr) {
  const Axis a = as_band_option([&] { return parse_sweep(expr); });
  if (std::find(std::begin(kBandKeys), std::end(kBandKeys), a.key) == std::end(kBandKeys))
    throw UserError(fmt::format("--band-axis '{}': '{}' is not a memory parameter of the backward GEMMs (keys: {})",
                                expr, a.key, fmt::join(kBandKeys, ", ")));
  return a;
}

const std::vector<BandSaving>& band_savings() {
  static const std::vector<BandSaving> v = [] {
    std::vector<BandSaving> s;
    for (std::string_view view : {"bp-im2col", "bp-im2col_on_explicit_plan", "zero-skip"})
      for (std::string_view fig : {"cycles", "dram_bytes", "dram_diff_dst_bytes+dram_copy_bytes", "sram_lowered_read_bytes", "sram_bytes",
                                    "extra_storage_bytes"})
        s.push_back({view, fig});
    return s;
  }();
  return v;
}

double band_saving(const BackwardComparison& c, const BandSaving& s) {
  const BackwardFigures& x = s.view == "bp-im2col"   ? c.total[int(Lowering::bp_im2col)]
                             : s.view == "zero-skip" ? c.total[int(Lowering::zero_skip)]
                                                     : c.total_shared;
  return reduction_percent(figure_value(c.total[int(Lowering::explicit_im2col)], s.figure), figure_value(x, s.figure));
}

size_t band_points(const std::vector<Axis>& axes) {
  double n = 1;
  for (const Axis& a : axes) n *= double(a.values.size());
  if (n > double(kMaxBandPoints))
    throw UserError(fmt::format("--band-axis: {:.0f} grid points, more than the {} a band allows; use fewer values", n,
                                kMaxBandPoints));
  return size_t(n);
}

std::vector<BandPoint> backward_band(const std::vector<ConvLayer>& layers, const Spec& base,
                                     const std::vector<Axis>& axes, bool include_stem_dx) {
  band_points(axes);
  std::vector<BandPoint> out;
  for (DesignPoint& p : as_band_option([&] { return sweep_points(base, axes); })) {
    BandPoint b{std::move(p), {}};
    b.comparison = compare_backward(layers, b.point.spec, include_stem_dx);
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace st::dse
