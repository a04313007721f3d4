#pragma once
// The accelerator spec: everything the cost model and the kernels need to know about the modeled
// machine. Loaded from TOML (src/spec/spec_toml.cpp), presets in models/presets/ embedded in the
// binary (src/spec/spec_toml.h: load_spec, spec_to_toml). All sizes in the units their names say.
#include <optional>
#include <string>
#include <string_view>

#include "kernels/systolic.h"

namespace st {

// What a buffer does with the halo: the backing elements a tile of a generated (im2col-like) operand
// shares with the tiles before it along the pixels (docs/cost-schedule.md "Generated operands").
enum class Halo : uint8_t {
  keep,     // kept on chip (a line buffer): a tile loads only elements no earlier tile of its
            // channel x tap range touched, so each element comes once per pass
  refetch,  // every tile loads its whole footprint from DRAM
};
inline std::string_view to_string(Halo h) { return h == Halo::keep ? "keep" : "refetch"; }
inline std::optional<Halo> parse_halo(std::string_view s) {
  if (s == "keep") return Halo::keep;
  if (s == "refetch") return Halo::refetch;
  return std::nullopt;
}

struct BufferSpec {
  double kib = 64;              // capacity of one bank (KiB); double-buffered doubles the storage
  bool double_buffered = true;
  int port_bits = 64;           // SRAM word / port width (bits): energy per access scales with it
  double dram_link_bits_per_cycle = 0;  // 0 = share the global DRAM link; >0 = own link (SimDIT)
  Halo halo = Halo::keep;       // for generated operands held in this buffer
};

struct DramSpec {
  double bandwidth_gbps = 32;   // GB/s (1e9 bytes/s) of the shared off-chip link
  double latency_ns = 100;      // per DMA request, before its data flows (docs/cost-schedule.md)
  int max_outstanding = 1;      // DMA requests in flight per link: latencies of up to this many overlap
  int granule_bytes = 1;        // minimum transfer: every request moves a whole number of granules on
                                // its link (HBM2: 32-byte bursts); 1 = byte-exact transfers
  std::string kind = "lpddr4";  // lpddr4 | gddr5 | hbm2 | hmc | ddr3 | custom: sets the default energy_pj_per_bit
  double energy_pj_per_bit = 8; // LPDDR4 (Accelergy/CACTI table), see reference/energy.md
  // The link time of a request of `bytes`: rounded up to whole granules.
  int64_t on_link(int64_t bytes) const {
    const int64_t g = granule_bytes > 1 ? granule_bytes : 1;
    return (bytes + g - 1) / g * g;
  }
};

// Default DRAM energy (pJ per bit moved, device + I/O) per kind (README "Presets", sources there):
// nullopt for an unknown kind; "custom" has none (energy_pj_per_bit must be given).
std::optional<double> dram_kind_energy(std::string_view kind);

struct VectorSpec {
  int lanes = 32;               // SIMD lanes (SimDIT: as many as the array has columns)
  int pipeline_depth = 6;
  int div_cycles = 5;           // fp32 cycles per lane per op (SimDIT: div 5, exp 3, rsqrt 11)
  int exp_cycles = 3;
  int rsqrt_cycles = 11;
  double buffer_kib = 64;       // vector memory (one bank)
  bool double_buffered = false; // SimDIT: single-buffered, load and store fully exposed
  bool fuse_with_conv = false;  // BN/ReLU after conv consume the conv output on chip
  double dram_link_bits_per_cycle = 0;  // 0 = share the global DRAM link; >0 = own link (SimDIT)
};

// Where the tensors live in DRAM, in which format (README "Storage formats"). Activations and
// gradients are always stored in fp32 (what the numerics hold: the array rounds its operands to its
// format at its edge, so storing them narrower would change the numbers). The weights are a choice:
//   copy:   the SGD update writes the fp32 master and an array-format copy (one cast per element and
//           step, on the way out); the GEMMs read the copy (Micikevicius et al., ICLR 2018).
//   master: the GEMMs read the fp32 master and cast it on every DMA fill of the weight buffer.
// Rounding once at the copy equals rounding at the array edge, so the numerics are the same either way.
enum class WeightStorage : uint8_t { copy, master };

struct StorageSpec {
  WeightStorage weights = WeightStorage::copy;
};

// The links between accelerators of a data-parallel machine (README "Scale-out"; src/scaleout/).
// The gradient all-reduce runs over them: its order (and so its bits) follows the topology's
// algorithm, its time the standard collective formulas (src/scaleout/collective_cost.h).
enum class Topology : uint8_t {
  ring,             // one ring through every accelerator (bidirectional links, one direction used)
  torus2d,          // an X x Y 2D torus: a ring along X, then along Y (hierarchical all-reduce)
  switched,         // every accelerator has one link into a non-blocking switch
  fully_connected,  // a dedicated link between every pair
};
inline std::string_view to_string(Topology t) {
  switch (t) {
    case Topology::ring: return "ring";
    case Topology::torus2d: return "torus2d";
    case Topology::switched: return "switch";
    case Topology::fully_connected: return "fully_connected";
  }
  return "?";
}
inline std::optional<Topology> parse_topology(std::string_view s) {
  if (s == "ring") return Topology::ring;
  if (s == "torus2d") return Topology::torus2d;
  if (s == "switch") return Topology::switched;
  if (s == "fully_connected") return Topology::fully_connected;
  return std::nullopt;
}

struct InterconnectSpec {
  Topology topology = Topology::ring;
  double link_gbps = 100;          // GB/s (1e9 bytes/s) per link and direction
  double latency_ns = 1000;        // per message (alpha of the collective formulas)
  double energy_pj_per_bit = 5;    // per bit per link traversed (SerDes estimate, reference/energy.md)
  Format wire_format = Format::fp32;  // gradients on the links: fp32, bf16 or fp16
  bool overlap = true;             // gradient buckets are all-reduced while backward runs (DDP)
  double bucket_mib = 25;          // bucket size (PyTorch DDP's default 25 MiB)
  int torus_x = 0;                 // torus2d: accelerators along X (0: the divisor of P nearest sqrt(P))
};

// pJ per event. Defaults and sources: reference/energy.md (Horowitz ISSCC 2014; Accelergy/CACTI).
struct EnergyTable {
  double mac_bf16 = 1.5, mac_fp16 = 1.5, mac_fp32 = 4.6, mac_int8 = 0.3;
  double pe_reg_write_per_bit = 0.01;
  double pe_hop_16 = 0.16, pe_hop_32 = 0.32;
  double sram_read_64b_32kib = 20;   // E0: 64-bit read of a 32 KiB SRAM; scaled by capacity and width
  double sram_write_to_read = 0.9;
  double sram_alpha_narrow = 0.5, sram_alpha_wide = 0.6;  // capacity exponent (<256-bit, >=256-bit)
  double vec_add = 0.9, vec_mul = 3.7, vec_fma = 4.6, vec_cmp = 0.03, vec_div = 25, vec_exp = 30,
         vec_rsqrt = 25;
  double cast = 0.1;                 // one element converted fp32 -> array format (or back) by the DMA
                                     // cast unit: a round-to-nearest-even is an integer add of the
                                     // rounding bias and a truncation, ~ Horowitz's int32 add (estimate)
  double logic_leakage_mw = 10;      // logic leakage of a one-array chip; charged x array.count
                                     // (the arrays are most of the logic: our assumption)
  double sram_leakage_mw_per_mib = 0.25;
};

struct Spec {
  std::string name = "tpu-like";
  std::string source;           // file path or "preset:NAME"
  std::string description;      // one line, free text (what the preset models, its assumptions)
  double clock_ghz = 1.0;
  int tech_nm = 45;
  ArrayConfig array;
  BufferSpec ifmap, weight, output;
  DramSpec dram;
  VectorSpec vector;
  StorageSpec storage;
  EnergyTable energy;
  InterconnectSpec interconnect;

  double dram_bytes_per_cycle() const { return dram.bandwidth_gbps / clock_ghz; }
  // DRAM bytes per cycle available to a buffer: its own link (SimDIT) or the shared one.
  double link_bytes_per_cycle(const BufferSpec& b) const {
    return b.dram_link_bits_per_cycle > 0 ? b.dram_link_bits_per_cycle / 8.0 : dram_bytes_per_cycle();
  }
  double vector_link_bytes_per_cycle() const {
    return vector.dram_link_bits_per_cycle > 0 ? vector.dram_link_bits_per_cycle / 8.0
                                               : dram_bytes_per_cycle();
  }
};

}  // namespace st
