// Cost of one op on the vector unit (SimDIT's SIMD unit, generalized): pure function of
// (VectorWork, Spec), no tensor data.
//
// Compute: every element op occupies one lane for its latency in cycles (add, mul, fma, cmp: 1;
// div, exp, rsqrt: spec.vector.*_cycles; the unit is pipelined, so these are issue slots), spread
// over `lanes` lanes; each output element occupies at least one slot; each pass over the data fills
// and drains the pipeline once:
//   compute = ceil(max(slots, elements) / lanes) + passes * pipeline_depth
// DRAM: the work's dram_read_bytes are one pass over the operands. Passes after the first replay
// from the vector buffer when one reduction group (work.groups, BN: a channel) fits in one bank;
// otherwise every pass re-reads its operands from DRAM. A fused op (work.fused_with_producer and
// spec.vector.fuse_with_conv) takes the producer's output on chip: that first read costs no DRAM.
// Time: the op is cut into tiles of one buffer bank (inputs plus outputs of a tile);
//   single-buffered (SimDIT): load, compute and store of every tile are exposed, plus the DRAM
//     latency once per tile:  total = load + compute + store + tiles * latency;
//   double-buffered: a 3-stage pipeline; the first tile is fully exposed, then each further tile
//     costs max(load + store, compute) (load and store share the DRAM link).
// SRAM (vector memory) traffic: the lane-side reads / writes of the work, plus the fill of every
// byte arriving from DRAM (or from the array's output buffer when fused) and the drain of every byte
// leaving to DRAM. Energy: element ops x per-op energy, SRAM accesses, DRAM bits, leakage x time.
#include <algorithm>
#include <cmath>

#include "src/cost/cost_model.h"
#include "src/cost/energy.h"

namespace st {

Stats cost_vector(const VectorWork& w, const Spec& spec) {
  const VectorSpec& v = spec.vector;
  Stats s;

  // Compute.
  const double slots = w.adds + w.muls + w.fmas + w.cmps + w.divs * v.div_cycles +
                       w.exps * v.exp_cycles + w.rsqrts * v.rsqrt_cycles;
  const double compute = std::ceil(std::max(slots, double(w.elements)) / v.lanes) +
                         double(std::max(w.passes, 1)) * v.pipeline_depth;

  // DRAM traffic.
  const bool fused = w.fused_with_producer && v.fuse_with_conv;
  const double bank_bytes = v.buffer_kib * 1024.0;
  const double group_bytes = w.dram_read_bytes / double(std::max<int64_t>(w.groups, 1));
  const bool replay = w.passes <= 1 || group_bytes <= bank_bytes;
  const double first_read = w.dram_read_bytes - (fused ? w.producer_read_bytes : 0.0);
  const double reread = replay ? 0.0 : double(w.passes - 1) * w.dram_read_bytes;
  const double dram_read = first_read + reread;
  const double dram_write = w.dram_write_bytes;

  // Time. The vector memory's own DRAM link when the spec gives one (SimDIT), else the shared link.
  const double bw = spec.vector_link_bytes_per_cycle();
  const double latency = spec.dram.latency_ns * spec.clock_ghz;
  const double tiles = std::max(1.0, std::ceil((first_read + dram_write) / bank_bytes));
  const double load = dram_read / bw, store = dram_write / bw;
  double total;
  if (!v.double_buffered) {
    total = load + compute + store + tiles * latency;
  } else {
    const double L = load / tiles, S = store / tiles, C = compute / tiles;
    total = L + latency + C + S + (tiles - 1) * std::max(L + S, C);
  }
  total = std::ceil(std::max(total, compute));

  s.add("cycles.compute", compute);
  s.add("cycles.stall", total - compute);
  s.add("cycles.total", total);
  s.add("vector.elements", double(w.elements));
  if (w.adds) s.add("vector.ops.add", w.adds);
  if (w.muls) s.add("vector.ops.mul", w.muls);
  if (w.fmas) s.add("vector.ops.fma", w.fmas);
  if (w.cmps) s.add("vector.ops.cmp", w.cmps);
  if (w.divs) s.add("vector.ops.div", w.divs);
  if (w.exps) s.add("vector.ops.exp", w.exps);
  if (w.rsqrts) s.add("vector.ops.rsqrt", w.rsqrts);

  const double sram_read = w.sram_read_bytes + dram_write;
  const double sram_write = w.sram_write_bytes + dram_read + (fused ? w.producer_read_bytes : 0.0);
  s.add("bytes.dram.read.vector", dram_read);
  s.add("bytes.dram.write.vector", dram_write);
  s.add("bytes.sram.vector.read", sram_read);
  s.add("bytes.sram.vector.write", sram_write);

  // Energy.
  s.add("energy.vector", vector_ops_energy_pj(spec.energy, VectorOpCounts{w.adds, w.muls, w.fmas, w.cmps,
                                                                       w.divs, w.exps, w.rsqrts}));
  s.add("energy.sram.vector", vector_sram_energy_pj(spec, sram_read, sram_write));
  s.add("energy.dram", dram_energy_pj(spec, dram_read + dram_write));
  s.add("energy.leakage", leakage_energy_pj(spec, total));
  return s;
}

}  // namespace st
