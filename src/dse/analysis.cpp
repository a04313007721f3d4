#include "src/dse/analysis.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <tuple>

#include "src/base/error.h"

namespace st::dse {

size_t optimum(const std::vector<PointResult>& r) {
  ST_INVARIANT(!r.empty());
  size_t best = 0;
  for (size_t i = 1; i < r.size(); ++i)
    if (std::tie(r[i].cycles, r[i].sram_bytes, r[i].energy_j) <
        std::tie(r[best].cycles, r[best].sram_bytes, r[best].energy_j))
      best = i;
  return best;
}

std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y) {
  ST_INVARIANT(x.size() == y.size());
  std::vector<size_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::tie(x[a], y[a]) < std::tie(x[b], y[b]); });
  // Within a run of equal x, only the smallest y can survive; it does if it beats every smaller x.
  std::vector<size_t> front;
  double best_y = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && x[idx[j]] == x[idx[i]]) ++j;
    const double group_min = y[idx[i]];
    if (group_min < best_y) {
      for (size_t k = i; k < j && y[idx[k]] == group_min; ++k) front.push_back(idx[k]);
      best_y = group_min;
    }
    i = j;
  }
  return front;
}

std::vector<size_t> pareto_time_sram(const std::vector<PointResult>& r) {
  std::vector<double> x, y;
  for (const auto& p : r) x.push_back(p.sram_bytes), y.push_back(p.cycles);
  return pareto_front(x, y);
}

std::vector<size_t> pareto_time_energy(const std::vector<PointResult>& r) {
  std::vector<double> x, y;
  for (const auto& p : r) x.push_back(p.energy_j), y.push_back(p.cycles);
  return pareto_front(x, y);
}

size_t economical(const std::vector<PointResult>& r, double pct) {
  const double limit = r[optimum(r)].cycles * (1 + pct / 100);
  size_t best = r.size();
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i].cycles > limit) continue;
    if (best == r.size() || std::tie(r[i].sram_bytes, r[i].cycles, r[i].energy_j) <
                                std::tie(r[best].sram_bytes, r[best].cycles, r[best].energy_j))
      best = i;
  }
  ST_INVARIANT(best < r.size());  // the optimum itself qualifies
  return best;
}

}  // namespace st::dse
