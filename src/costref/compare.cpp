// See compare.h.
#include "src/costref/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace st::costref {

namespace {

bool timed(const std::string& k) {
  return k.rfind("cycles.", 0) == 0 || k.rfind("stall.", 0) == 0 || k == "energy.leakage";
}

double value(const auto& m, const std::string& k) {
  const auto it = m.find(k);
  return it == m.end() ? 0.0 : it->second;
}

}  // namespace

double timing_difference(const std::map<std::string, double, std::less<>>& fast,
                         const std::map<std::string, double>& reference) {
  const double total = value(reference, "cycles.total");
  double worst = 0;
  std::set<std::string> names;
  for (const auto& [k, v] : fast) names.insert(k);
  for (const auto& [k, v] : reference) names.insert(k);
  for (const std::string& k : names) {
    if (!timed(k)) continue;
    double d = std::abs(value(fast, k) - value(reference, k));
    if (k == "energy.leakage") {  // pJ, proportional to cycles.total: relative to the reference's
      const double ref = value(reference, k);
      d = ref > 0 ? d / ref * total : d;
    }
    worst = std::max(worst, total > 0 ? d / total : d);
  }
  return worst;
}

std::vector<std::string> disagreements(const std::map<std::string, double, std::less<>>& fast,
                                       const std::map<std::string, double>& reference, bool generated) {
  const double total = value(reference, "cycles.total");
  std::set<std::string> names;
  for (const auto& [k, v] : fast) names.insert(k);
  for (const auto& [k, v] : reference) names.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : names) {
    const auto f = fast.find(k), r = reference.find(k);
    // A counter one side leaves out is zero there (the fast model omits zero extras).
    const double a = f == fast.end() ? 0.0 : f->second, b = r == reference.end() ? 0.0 : r->second;
    const bool energy = k.rfind("energy.", 0) == 0 || k == "macs.useful" || k == "storage.extra";
    bool ok = energy ? std::abs(a - b) <= kEnergyRelBound * std::max(std::abs(a), std::abs(b)) : a == b;
    if (generated && timed(k)) {
      const double d = k == "energy.leakage" ? (b > 0 ? std::abs(a - b) / b * total : std::abs(a - b)) : std::abs(a - b);
      ok = d <= kGeneratedCycleBound * total;
    }
    if (!ok)
      out.push_back(fmt::format("{}: fast {} reference {} (difference {:+.6g}{})", k, a, b, a - b,
                                energy ? fmt::format(", relative {:.3g}", std::abs(a - b) / std::max(std::abs(a), std::abs(b)))
                                       : std::string()));
  }
  return out;
}

}  // namespace st::costref
