#pragma once
// SCALE-Sim v2 compatibility: its architecture config (.cfg, INI) and conv topology (.csv) as a Spec
// and layers (the per-layer figures `systrain scalesim` prints are src/cost/scalesim_run.h).
// Stall-free (InterfaceBandwidth CALC) total cycles equal SCALE-Sim v2's in its own convention:
// output size ceil((H - R + s)/s) on the pre-padded input, 1-byte words, and the printed total is
// its last 0-based cycle index (cycles - 1).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/spec/spec.h"

namespace st {

struct ScaleSimConfig {
  std::string run_name = "scalesim_run";
  int rows = 0, cols = 0;                      // ArrayHeight, ArrayWidth
  Dataflow dataflow = Dataflow::os;
  double ifmap_kb = 0, filter_kb = 0, ofmap_kb = 0;   // SRAM sizes (KiB, split in two halves)
  int64_t ifmap_offset = 0, filter_offset = 0, ofmap_offset = 0;  // addresses only: no effect
  double bandwidth_words = 0;                  // USER mode: words per cycle per buffer interface
  int memory_banks = 1;                        // accepted, no effect on the figures
  bool calc_bandwidth = true;                  // InterfaceBandwidth CALC (stall-free) or USER
};

struct ScaleSimLayer {
  std::string name;
  int64_t H = 0, W = 0, R = 0, S = 0, C = 0, K = 0, stride = 1;
  // SCALE-Sim's output size on the pre-padded input (not floor((H - R)/s) + 1 when s does not divide).
  int64_t out_h() const { return (H - R + stride + stride - 1) / stride; }
  int64_t out_w() const { return (W - S + stride + stride - 1) / stride; }
  GemmShape gemm() const { return {out_h() * out_w(), K, R * S * C}; }  // M = pixels, N = filters
};

// Parsers: every problem is a UserError naming the file, the key / line and what is allowed.
ScaleSimConfig parse_scalesim_config(std::string_view text, std::string_view source);
ScaleSimConfig load_scalesim_config(const std::string& path);
std::vector<ScaleSimLayer> parse_scalesim_topology(std::string_view text, std::string_view source);
std::vector<ScaleSimLayer> load_scalesim_topology(const std::string& path);

// The accelerator the config describes, as a Spec: int8 (1-byte words), clock 1 GHz (so a word per
// cycle is a GB/s), each SRAM split into two banks, each buffer with its own DRAM link of
// Bandwidth words per cycle (USER) or an effectively unlimited one (CALC), no DRAM latency.
Spec scalesim_spec(const ScaleSimConfig& cfg);

}  // namespace st
