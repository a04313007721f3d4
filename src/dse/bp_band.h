#pragma once
// The backward-pass comparison (bpcompare) over a grid of the memory parameters a paper leaves
// unknown (DRAM bandwidth, buffer sizes): each saving of BP-im2col (and zero-skip) against explicit
// im2col as a band, min and max over the grid, not one point (README "bpcompare", `--band`).
#include <string>
#include <string_view>
#include <vector>

#include "src/dse/sweep.h"
#include "src/project/backward_cost.h"

namespace st::dse {

// The default grid: DRAM 8, 16, 32, 64 GB/s x one bank of each array buffer 32, 64, 128, 256 KiB
// (x0.5 to x4 around the bp-im2col-16x16 preset's assumed 16 GB/s and 64 KiB, which are in it).
std::vector<Axis> default_band_axes();
// One --band-axis expression: dse's sweep syntax (sweep.h), restricted to the memory keys that the
// backward GEMMs depend on (the array buffers, the DRAM bandwidth, the buffers' links); a key that
// changes the accelerator itself (array, dataflow) or that no GEMM uses (vector_*) is a UserError.
Axis parse_band_axis(const std::string& expr);
// Grids larger than this are refused (a band is a summary, not a design-space exploration).
inline constexpr size_t kMaxBandPoints = 256;
// The number of grid points of `axes`; a UserError beyond kMaxBandPoints.
size_t band_points(const std::vector<Axis>& axes);

// The savings a band reports: per view, per figure, 100 * (1 - view / explicit) on that point's own
// explicit (own plans).
struct BandSaving {
  std::string_view view;      // "bp-im2col", "bp-im2col_on_explicit_plan", "zero-skip"
  std::string_view figure;    // a figure_value() name
};
const std::vector<BandSaving>& band_savings();
double band_saving(const BackwardComparison& c, const BandSaving& s);

struct BandPoint {
  DesignPoint point;          // (key, value) params and the spec
  BackwardComparison comparison;
};
// Every grid point of `axes` over `base` (validated by the spec loader's checks; at most
// kMaxBandPoints, else a UserError), costed as bpcompare costs one spec.
std::vector<BandPoint> backward_band(const std::vector<ConvLayer>& layers, const Spec& base,
                                     const std::vector<Axis>& axes, bool include_stem_dx);

}  // namespace st::dse
