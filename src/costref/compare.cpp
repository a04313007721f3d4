// See compare.h.
#include "src/costref/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace st::costref {

std::vector<std::string> disagreements(const std::map<std::string, double, std::less<>>& fast,
                                       const std::map<std::string, double>& reference) {
  std::set<std::string> names;
  for (const auto& [k, v] : fast) names.insert(k);
  for (const auto& [k, v] : reference) names.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : names) {
    const auto f = fast.find(k), r = reference.find(k);
    // A counter one side leaves out is zero there (the fast model omits zero extras).
    const double a = f == fast.end() ? 0.0 : f->second, b = r == reference.end() ? 0.0 : r->second;
    const bool energy = k.rfind("energy.", 0) == 0 || k == "macs.useful" || k == "storage.extra";
    const bool ok = energy ? std::abs(a - b) <= kEnergyRelBound * std::max(std::abs(a), std::abs(b)) : a == b;
    if (!ok)
      out.push_back(fmt::format("{}: fast {} reference {} (difference {:+.6g}{})", k, a, b, a - b,
                                energy ? fmt::format(", relative {:.3g}", std::abs(a - b) / std::max(std::abs(a), std::abs(b)))
                                       : std::string()));
  }
  return out;
}

}  // namespace st::costref
