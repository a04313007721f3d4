#pragma once
// A cost reference's trace as the hand-worked timeline tests write it (tests/test_cost_reference_sim.cpp,
// tests/test_vector_cost_reference.cpp): one (name, start, end) per slice (transfers: issued,
// complete), in time order.
#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "src/costref/gemm_ref.h"

namespace st::test {

using Span = std::tuple<std::string, int64_t, int64_t>;

inline std::vector<Span> timeline(const costref::Result& r) {
  std::vector<Span> v;
  for (const costref::Slice& s : r.slices) v.emplace_back(s.name, s.start, s.end);
  std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) {
    return std::tie(std::get<1>(a), std::get<2>(a), std::get<0>(a)) <
           std::tie(std::get<1>(b), std::get<2>(b), std::get<0>(b));
  });
  return v;
}

inline std::string show(const std::vector<Span>& v) {
  std::string s;
  for (const auto& [n, a, b] : v) s += "  " + n + " [" + std::to_string(a) + ", " + std::to_string(b) + ")\n";
  return s;
}

}  // namespace st::test
