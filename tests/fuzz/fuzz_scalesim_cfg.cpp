// Fuzz target: SCALE-Sim .cfg (src/spec/scalesim_import.cpp). An accepted config runs a small
// layer with sane figures, and its run name goes into JSON.
#include <cmath>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cost/scalesim_run.h"
#include "src/spec/scalesim_import.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const st::ScaleSimConfig cfg = st::parse_scalesim_config(text, "fuzz.cfg");
    (void)nlohmann::json({{"run_name", cfg.run_name}}).dump();  // throws on invalid UTF-8
    st::ScaleSimLayer l;
    l.name = "conv";
    l.H = l.W = 14;
    l.R = l.S = 3;
    l.C = 8;
    l.K = 16;
    l.stride = 1;
    const st::ScaleSimLayerResult r = st::run_scalesim_layer(cfg, l);
    fuzz_require(r.total_cycles >= 0 && r.stall_cycles >= 0 && r.compute_cycles > 0);
    fuzz_require(std::isfinite(r.utilization) && r.utilization > 0 && r.utilization <= 1 + 1e-9);
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
