#pragma once
// Energy per event: pure functions of the spec's energy table and geometry (Timeloop/Accelergy
// style). Both the array cost model (gemm_cost.cpp) and the vector cost model (vector_cost.cpp)
// use these, so one formula serves every component. Units: pJ, bytes, KiB, bits, cycles.
// Formulas and default sources: reference/energy.md.
#include "kernels/formats.h"
#include "src/spec/spec.h"

namespace st {

// One read access of an SRAM bank of `kib` KiB with a `port_bits`-wide port:
//   E = E0 * (port_bits/64)^0.7 * (kib/32)^alpha,  alpha = alpha_narrow (< 256-bit) or alpha_wide,
// E0 = table.sram_read_64b_32kib (a 64-bit read of a 32 KiB SRAM).
double sram_read_access_pj(const EnergyTable& e, double kib, int port_bits);
// One write access: read energy x table.sram_write_to_read.
double sram_write_access_pj(const EnergyTable& e, double kib, int port_bits);
// Energy of moving `read_bytes` out of and `write_bytes` into an SRAM bank: bytes are turned into
// port-width accesses (fractional: the count is bytes / (port_bits/8), partial words averaged).
double sram_energy_pj(const EnergyTable& e, double kib, int port_bits, double read_bytes,
                      double write_bytes);
// The same for one of the spec's array buffers (ifmap / weight / output): its bank size and port.
double buffer_energy_pj(const EnergyTable& e, const BufferSpec& b, double read_bytes,
                        double write_bytes);
// Vector memory: one bank of spec.vector.buffer_kib with a port of one fp32 word per lane.
int vector_port_bits(const Spec& spec);
double vector_sram_energy_pj(const Spec& spec, double read_bytes, double write_bytes);

// DRAM: bytes x 8 x spec.dram.energy_pj_per_bit (does not scale with the logic node).
double dram_pj_per_byte(const Spec& spec);
double dram_energy_pj(const Spec& spec, double bytes);

// One multiply-accumulate of the array with operands in `f` (accumulator fp32 / int32).
double mac_pj(const EnergyTable& e, Format f);
// One PE-to-PE hop of a `bits`-wide value (16-bit operands, 32-bit partial sums).
double pe_hop_pj(const EnergyTable& e, int bits);
// One PE register write of a `bits`-wide value.
double pe_reg_write_pj(const EnergyTable& e, int bits);

// Vector-unit element operations (fp32).
struct VectorOpCounts {
  double adds = 0, muls = 0, fmas = 0, cmps = 0, divs = 0, exps = 0, rsqrts = 0;
};
double vector_ops_energy_pj(const EnergyTable& e, const VectorOpCounts& n);

// Total on-chip SRAM (MiB) the spec holds: every bank of ifmap / weight / output / vector.
double total_sram_mib(const Spec& spec);
// Leakage power (mW): logic leakage + SRAM leakage per MiB x total SRAM.
double leakage_mw(const Spec& spec);
// Leakage energy over `cycles` at the spec's clock: mW x ns = pJ.
double leakage_energy_pj(const Spec& spec, double cycles);

}  // namespace st
