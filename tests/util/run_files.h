#pragma once
// What a training run left in its directory, for comparisons between runs: every parameter and
// momentum tensor of checkpoint.h5 (concatenated) and the loss column of stats.h5.
#include <string>
#include <vector>

#include "src/io/h5.h"

namespace st::test {

inline std::vector<float> checkpoint_state(const std::string& dir) {
  h5::File f = h5::File::open(dir + "/checkpoint.h5");
  std::vector<float> all;
  for (const char* g : {"params", "velocity"})
    for (const auto& name : f.list(g)) {
      auto v = f.read<float>(std::string(g) + "/" + name);
      all.insert(all.end(), v.begin(), v.end());
    }
  return all;
}

inline std::vector<double> series_losses(const std::string& dir) {
  h5::File f = h5::File::open(dir + "/stats.h5");
  h5::Dims dims;
  auto v = f.read<double>("series", &dims);
  std::vector<double> out;
  for (int64_t r = 0; r < dims[0]; ++r) out.push_back(v[r * dims[1] + 3]);  // column "loss"
  return out;
}

}  // namespace st::test
