#pragma once
// The per-layer figures `systrain scalesim` prints for an imported SCALE-Sim v2 run: SCALE-Sim's
// own SRAM counts and compute cycles, and our tiler's DRAM traffic and stalls on the imported spec.
// Stall-free (InterfaceBandwidth CALC) total cycles equal SCALE-Sim v2's in its own convention
// (the printed total is its last 0-based cycle index, cycles - 1).
#include <cstdint>
#include <string>

#include "src/spec/scalesim_import.h"

namespace st {

struct ScaleSimLayerResult {
  std::string name;
  int64_t total_cycles = 0;      // SCALE-Sim convention: cycles - 1
  int64_t stall_cycles = 0;
  int64_t compute_cycles = 0;    // closed form, untiled (SCALE-Sim's compute)
  double utilization = 0;        // MACs / ((total_cycles + 1) x rows x cols)
  double mapping_efficiency = 0; // MACs / (folds x rows x cols x T) ... used PEs per fold
  double macs = 0;
  double sram_ifmap_reads = 0, sram_filter_reads = 0, sram_ofmap_writes = 0;  // words
  double dram_ifmap_reads = 0, dram_filter_reads = 0, dram_ofmap_writes = 0;  // words
};
ScaleSimLayerResult run_scalesim_layer(const ScaleSimConfig& cfg, const ScaleSimLayer& layer);

}  // namespace st
