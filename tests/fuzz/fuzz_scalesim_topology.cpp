// Fuzz target: SCALE-Sim topology .csv (src/spec/scalesim_import.cpp). Accepted layers run through
// the cost model quickly with sane figures; layer names go into JSON.
#include <cmath>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cost/scalesim_run.h"
#include "src/spec/scalesim_import.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const st::ScaleSimConfig cfg = [] {
    st::ScaleSimConfig c;
    c.rows = c.cols = 16;
    c.ifmap_kb = c.filter_kb = c.ofmap_kb = 64;
    c.calc_bandwidth = false;
    c.bandwidth_words = 1;  // the slowest interface a config may ask for: the most stall cycles
    return c;
  }();
  try {
    const auto layers = st::parse_scalesim_topology(text, "fuzz.csv");
    nlohmann::json j = nlohmann::json::array();
    for (size_t i = 0; i < layers.size() && i < 4; ++i) {
      const st::ScaleSimLayerResult r = st::run_scalesim_layer(cfg, layers[i]);
      fuzz_require(r.total_cycles >= 0 && r.stall_cycles >= 0 && r.compute_cycles > 0);
      fuzz_require(r.macs > 0 && std::isfinite(r.macs));
      fuzz_require(std::isfinite(r.utilization) && r.utilization > 0 && r.utilization <= 1 + 1e-9);
      j.push_back({{"name", r.name}, {"total_cycles", r.total_cycles}});
    }
    (void)j.dump();  // throws on invalid UTF-8
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
