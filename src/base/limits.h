#pragma once
// Bounds on what one run may ask for, derived from the *work* an input implies rather than from one
// cap per flag (DESIGN.md "Errors": a user's mistake gives one clear message, never a crash or a
// hang). This floor holds the arithmetic; kernels/conv_limits.h applies it to a convolution and
// src/project/work_limits.h to a whole network's costing.
// - sizes: every tensor and every lowered matrix a shape implies must have at most kMaxElements
//   elements, computed with checked multiplication (a product that wraps past 2^63 would otherwise
//   pass any later check and reach an allocation or a loop with a nonsense value);
// - host memory: what a run allocates, against what this machine has.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace st {

// At most 2^59 elements per tensor / lowered matrix: its bytes (at most 8 per element) and the
// cost model's int64 counters stay far from overflow.
inline constexpr int64_t kMaxElements = int64_t{1} << 59;

// The product of `factors` (each >= 0), or nullopt if it overflows int64.
std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors);

// The product of `factors`; throws UserError "<where>: <what> a x b x ... is more than 2^59
// elements" when it is larger than kMaxElements (or overflows).
int64_t checked_elements(std::initializer_list<int64_t> factors, const std::string& where, const std::string& what);

// Memory this process may use: the physical memory, or the cgroup's limit when it is lower.
double host_memory_bytes();
// "1.5 GiB"
std::string gib_text(double bytes);

}  // namespace st
