#pragma once
// The contract between the fast cost model and the reference (docs/cost-schedule.md), as code: one
// function that the tests and `systrain cost --reference` both use.
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace st::costref {

// Relative bound on energy counters (sums of double products taken in another order) and on the two
// counters that carry a description's doubles through a sub-GEMM split (macs.useful, storage.extra:
// x * (1/n) * n against x / n summed n times). Every other counter (cycles, stall causes, bytes,
// tiles, folds, issued MACs, hops, register bits) must be equal.
constexpr double kEnergyRelBound = 1e-12;

// One line per counter that breaks the contract (present in one map only, or different beyond its
// bound); empty when the two agree.
// `fast` is the fast model's Stats::values() (a map with a transparent comparator).
std::vector<std::string> disagreements(const std::map<std::string, double, std::less<>>& fast,
                                       const std::map<std::string, double>& reference);

}  // namespace st::costref
