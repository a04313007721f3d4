// Fuzz target: conv topology CSV (src/topology/conv_topology.cpp). Accepted layers are costed the
// way `bpcompare` does (every lowering, dX and dW) with finite figures; names go into JSON.
#include <cmath>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/ops/conv.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const st::Spec spec = st::load_spec("tpu-like");
  try {
    const auto layers = st::parse_conv_topology(text, "fuzz.csv");
    nlohmann::json j = nlohmann::json::array();
    for (size_t i = 0; i < layers.size() && i < 2; ++i) {
      for (st::Lowering l : st::kAllLowerings)
        for (st::Direction dir : {st::Direction::fwd, st::Direction::bwd_data, st::Direction::bwd_weights})
          for (const st::GemmWork& w : st::conv_work(layers[i].desc, dir, l, spec, layers[i].name)) {
            const st::Stats s = st::cost_gemm(w, spec);
            const double cycles = s.get("cycles.total");
            fuzz_require(std::isfinite(cycles) && cycles > 0);
          }
      j.push_back({{"name", layers[i].name}});
    }
    (void)j.dump();  // throws on invalid UTF-8
    (void)st::conv_topology_csv(layers);
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
