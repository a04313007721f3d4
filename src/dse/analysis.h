#pragma once
// Choosing among evaluated design points: the optimum, Pareto fronts, the economical point, and the
// comparison with a static allocation. Pure functions of the results (no spec, no cost model).
#include <cstddef>
#include <vector>

#include "src/dse/evaluate.h"

namespace st::dse {

// Min cycles; ties -> less SRAM, then less energy, then the earlier point.
size_t optimum(const std::vector<PointResult>& r);

// Indices of the non-dominated points when minimizing both x and y (ascending x). A point is
// dominated if another is <= in both and differs in at least one; equal points are all kept.
std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y);
std::vector<size_t> pareto_time_sram(const std::vector<PointResult>& r);
std::vector<size_t> pareto_time_energy(const std::vector<PointResult>& r);

// The smallest sram_bytes with cycles <= (1 + pct/100) x the optimum's; ties -> fewer cycles, then
// less energy, then the earlier point.
size_t economical(const std::vector<PointResult>& r, double pct);

}  // namespace st::dse
