#include "src/cost/scalesim_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/io/untrusted.h"

namespace st {

ScaleSimLayerResult run_scalesim_layer(const ScaleSimConfig& cfg, const ScaleSimLayer& l) {
  const Spec spec = scalesim_spec(cfg);
  const GemmShape g = l.gemm();
  const double npix = double(g.M), window = double(g.K), filters = double(g.N);
  const double Ra = cfg.rows, Ca = cfg.cols;
  auto cdiv = [](double a, double b) { return std::ceil(a / b); };

  ScaleSimLayerResult r;
  r.name = l.name;
  r.macs = npix * window * filters;
  r.compute_cycles = gemm_compute_cycles(spec.array, g);
  const int64_t folds = gemm_folds(spec.array, g);
  // Mapping efficiency: mapped rows x cols over the PEs of every fold.
  double mapped = 0;
  switch (cfg.dataflow) {
    case Dataflow::os: mapped = npix * filters; break;
    case Dataflow::ws: mapped = window * filters; break;
    case Dataflow::is: mapped = window * npix; break;
  }
  r.mapping_efficiency = mapped / (double(folds) * Ra * Ca);

  // SRAM (array side), SCALE-Sim's counts (reference/scalesim-cycles.md).
  switch (cfg.dataflow) {
    case Dataflow::os:
      r.sram_ifmap_reads = cdiv(filters, Ca) * npix * window;
      r.sram_filter_reads = cdiv(npix, Ra) * window * filters;
      r.sram_ofmap_writes = npix * filters;
      break;
    case Dataflow::ws:
      r.sram_ifmap_reads = cdiv(filters, Ca) * npix * window;
      r.sram_filter_reads = window * filters;
      r.sram_ofmap_writes = cdiv(window, Ra) * npix * filters;
      break;
    case Dataflow::is:
      r.sram_ifmap_reads = npix * window;
      r.sram_filter_reads = cdiv(npix, Ca) * window * filters;
      r.sram_ofmap_writes = cdiv(window, Ra) * npix * filters;
      break;
  }

  // DRAM and stalls: our tiler and memory model on the imported spec (1-byte words, so bytes are
  // words). The input is the pre-padded ifmap, read through im2col.
  GemmWork w;
  w.shape = g;
  const double ifmap = double(l.H) * double(l.W) * double(l.C);
  w.a = operand_desc(g.M, g.K, 1, ifmap, std::min(1.0, ifmap / (npix * window)));
  w.b = operand_desc(g.K, g.N, 1, window * filters, 1);
  w.c = operand_desc(g.M, g.N, 1, npix * filters, 1);
  w.useful_macs = r.macs;
  const Stats s = cost_gemm(w, spec);
  r.dram_ifmap_reads = s.get("bytes.dram.read.ifmap");
  r.dram_filter_reads = s.get("bytes.dram.read.weight");
  r.dram_ofmap_writes = s.get("bytes.dram.write.output");

  int64_t cycles = r.compute_cycles;  // CALC: stall-free by definition
  if (!cfg.calc_bandwidth) {
    const double total = s.get("cycles.total");
    // The config's and topology's bounds keep this far below 2^62; check before converting anyway.
    if (!(total >= 0 && total < 0x1p62))
      throw UserError(fmt::format("SCALE-Sim layer '{}': the modeled run takes {} cycles, beyond a "
                                  "64-bit cycle counter (Bandwidth too small for the layer)",
                                  io::printable(l.name), total));
    cycles = std::max<int64_t>(cycles, int64_t(total));
  }
  r.stall_cycles = cycles - r.compute_cycles;
  r.total_cycles = cycles - 1;        // SCALE-Sim prints its last 0-based cycle index
  r.utilization = r.macs / (double(cycles) * Ra * Ca);
  return r;
}

}  // namespace st
