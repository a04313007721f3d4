// Energy per event (see energy.h and reference/energy.md).
#include "src/cost/energy.h"

#include <cmath>

namespace st {

namespace {
constexpr double kRefPortBits = 64;    // E0 is quoted for a 64-bit read ...
constexpr double kRefKib = 32;         // ... of a 32 KiB SRAM
constexpr double kWidthExponent = 0.7; // energy per access grows sub-linearly with port width
constexpr int kWidePortBits = 256;     // ports at least this wide use the wide capacity exponent
constexpr double kBitsPerByte = 8;
constexpr double kKibPerMib = 1024;
}  // namespace

double sram_read_access_pj(const EnergyTable& e, double kib, int port_bits) {
  const double alpha = port_bits >= kWidePortBits ? e.sram_alpha_wide : e.sram_alpha_narrow;
  return e.sram_read_64b_32kib * std::pow(port_bits / kRefPortBits, kWidthExponent) *
         std::pow(kib / kRefKib, alpha);
}

double sram_write_access_pj(const EnergyTable& e, double kib, int port_bits) {
  return sram_read_access_pj(e, kib, port_bits) * e.sram_write_to_read;
}

double sram_energy_pj(const EnergyTable& e, double kib, int port_bits, double read_bytes,
                      double write_bytes) {
  const double bytes_per_access = port_bits / kBitsPerByte;
  return (read_bytes / bytes_per_access) * sram_read_access_pj(e, kib, port_bits) +
         (write_bytes / bytes_per_access) * sram_write_access_pj(e, kib, port_bits);
}

double buffer_energy_pj(const EnergyTable& e, const BufferSpec& b, double read_bytes,
                        double write_bytes) {
  return sram_energy_pj(e, b.kib, b.port_bits, read_bytes, write_bytes);
}

int vector_port_bits(const Spec& spec) { return 32 * spec.vector.lanes; }

double vector_sram_energy_pj(const Spec& spec, double read_bytes, double write_bytes) {
  return sram_energy_pj(spec.energy, spec.vector.buffer_kib, vector_port_bits(spec), read_bytes,
                        write_bytes);
}

double dram_pj_per_byte(const Spec& spec) { return kBitsPerByte * spec.dram.energy_pj_per_bit; }
double dram_energy_pj(const Spec& spec, double bytes) { return bytes * dram_pj_per_byte(spec); }

double mac_pj(const EnergyTable& e, Format f) {
  switch (f) {
    case Format::fp32: return e.mac_fp32;
    case Format::bf16: return e.mac_bf16;
    case Format::fp16: return e.mac_fp16;
    case Format::int8: return e.mac_int8;
  }
  return e.mac_fp32;
}

double pe_hop_pj(const EnergyTable& e, int bits) {
  // The table has 16- and 32-bit hops; other widths scale linearly from the 16-bit entry.
  if (bits == 16) return e.pe_hop_16;
  if (bits == 32) return e.pe_hop_32;
  return e.pe_hop_16 * bits / 16.0;
}

double pe_reg_write_pj(const EnergyTable& e, int bits) { return e.pe_reg_write_per_bit * bits; }

double vector_ops_energy_pj(const EnergyTable& e, const VectorOpCounts& n) {
  return n.adds * e.vec_add + n.muls * e.vec_mul + n.fmas * e.vec_fma + n.cmps * e.vec_cmp +
         n.divs * e.vec_div + n.exps * e.vec_exp + n.rsqrts * e.vec_rsqrt;
}

double total_sram_mib(const Spec& spec) {
  auto mib = [](double kib, bool dbl) { return kib * (dbl ? 2 : 1) / kKibPerMib; };
  return mib(spec.ifmap.kib, spec.ifmap.double_buffered) +
         mib(spec.weight.kib, spec.weight.double_buffered) +
         mib(spec.output.kib, spec.output.double_buffered) +
         mib(spec.vector.buffer_kib, spec.vector.double_buffered);
}

double leakage_mw(const Spec& spec) {
  // logic_leakage_mw is one array's core logic: A arrays leak A times it (README "Several arrays").
  return spec.energy.logic_leakage_mw * spec.array.count + spec.energy.sram_leakage_mw_per_mib * total_sram_mib(spec);
}

double leakage_energy_pj(const Spec& spec, double cycles) {
  return leakage_mw(spec) * cycles / spec.clock_ghz;  // mW x ns = pJ
}

}  // namespace st
