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

// The fast model's one approximation (docs/cost-schedule.md "Generated operands"): it times the
// tiles of an operand read through an address generator with their average bytes, the reference
// with each tile's own footprint. For a GEMM with such an operand, cycles.total, cycles.stall, every
// stall.* cause and energy.leakage may differ by up to this fraction of the reference's
// cycles.total; every byte counter stays exact. Measured maximum over the tests: see the README.
constexpr double kGeneratedCycleBound = 0.05;

// One line per counter that breaks the contract (present in one map only, or different beyond its
// bound); empty when the two agree.
// `fast` is the fast model's Stats::values() (a map with a transparent comparator).
// `generated`: the GEMM has a generated operand (the timing bound above applies).
std::vector<std::string> disagreements(const std::map<std::string, double, std::less<>>& fast,
                                       const std::map<std::string, double>& reference, bool generated = false);

// The largest difference of the timed counters (cycles.*, stall.*, energy.leakage) as a fraction of
// the reference's cycles.total (0 when they agree exactly).
double timing_difference(const std::map<std::string, double, std::less<>>& fast,
                         const std::map<std::string, double>& reference);

}  // namespace st::costref
