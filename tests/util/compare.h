#pragma once
// benchdnn-style comparison of an emulated result against a reference.
// - exact: every element bitwise equal (NaNs compare equal to NaNs).
// - tolerance: |got - want| <= atol + rtol * |want| per element.
// A comparison where almost every reference value is zero is not evidence; `min_nonzero_fraction`
// makes it fail. On failure the message lists the first mismatches with their indices.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

namespace st::test {

struct CompareOptions {
  bool exact = false;
  double rtol = 0, atol = 0;
  double min_nonzero_fraction = 0.3;  // of the reference values
  int max_report = 8;
};

inline ::testing::AssertionResult compare_arrays(const float* got, const float* want, int64_t n,
                                                 const CompareOptions& o, const std::string& what = "") {
  int64_t bad = 0, nonzero = 0;
  std::ostringstream msg;
  for (int64_t i = 0; i < n; ++i) {
    float g = got[i], w = want[i];
    if (w != 0) ++nonzero;
    bool ok;
    if (std::isnan(w) || std::isnan(g)) ok = std::isnan(w) && std::isnan(g);
    else if (o.exact) ok = std::memcmp(&g, &w, sizeof(float)) == 0;
    else ok = std::fabs(double(g) - double(w)) <= o.atol + o.rtol * std::fabs(double(w)) || g == w;
    if (!ok) {
      if (bad < o.max_report)
        msg << "\n  [" << i << "] got " << std::hexfloat << g << " want " << w << std::defaultfloat
            << " (" << g << " vs " << w << ")";
      ++bad;
    }
  }
  if (n > 0 && double(nonzero) < o.min_nonzero_fraction * double(n))
    return ::testing::AssertionFailure() << what << ": reference is mostly zero (" << nonzero << "/"
                                         << n << " nonzero): not evidence";
  if (bad)
    return ::testing::AssertionFailure() << what << ": " << bad << "/" << n << " mismatches"
                                         << (o.exact ? " (bitwise)" : "") << msg.str();
  return ::testing::AssertionSuccess();
}

}  // namespace st::test
