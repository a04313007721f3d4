#include "src/cost/stats.h"

#include <cassert>

namespace st {

const std::vector<CounterInfo>& counter_registry() {
  static const std::vector<CounterInfo> r = {
      {"cycles.compute", "cycles", "cycles the array or vector unit spends computing"},
      {"cycles.stall", "cycles", "cycles waiting for memory or SRAM ports (total - compute)"},
      {"cycles.total", "cycles", "wall-clock cycles of the op at the spec's clock"},
      {"stall.materialize", "cycles", "array idle while explicit lowering materializes its operands"},
      {"stall.slot", "cycles", "array / vector unit idle on a load that could not issue: its buffer slot (bank) was not free"},
      {"stall.queue", "cycles", "array / vector unit idle on a load queued behind other requests on its link"},
      {"stall.latency", "cycles", "array / vector unit idle on a load's DRAM latency"},
      {"stall.bandwidth", "cycles", "array / vector unit idle on a load's data transfer (link bandwidth)"},
      {"stall.drain", "cycles", "array / vector unit idle on output stores: a C slot to drain, or the last stores"},
      {"stall.port", "cycles", "array steps stretched beyond their compute: the buffers' SRAM ports could not feed them (port_bits)"},
      {"macs.issued", "MACs", "multiply-accumulates the array performs, zeros included"},
      {"macs.useful", "MACs", "multiply-accumulates with no inserted (zero-space) operand"},
      {"folds", "folds", "array folds (tiles of the GEMM mapped onto the array)"},
      {"tiles", "tiles", "buffer tile steps of a GEMM (one A, B and C tile on chip per step)"},
      {"pe.hops.operand", "hops", "operand moves from one PE to its neighbour (16-bit for bf16/fp16)"},
      {"pe.hops.psum", "hops", "32-bit partial-sum moves down a column (WS / IS)"},
      {"pe.reg_write_bits", "bits", "bits written into PE registers (operands and accumulators)"},
      {"vector.ops.*", "ops", "vector-unit element operations by type (add, mul, fma, cmp, div, exp, rsqrt)"},
      {"vector.elements", "elements", "elements produced by the vector unit"},
      {"bytes.dram.read.*", "bytes", "bytes read from DRAM, by tensor role"},
      {"bytes.dram.write.*", "bytes", "bytes written to DRAM, by tensor role"},
      {"extra.dram.read.*", "bytes", "of bytes.dram.read.ROLE, the part read outside the tile loads: explicit lowering's materialization reading the tensor it copies"},
      {"extra.dram.write.*", "bytes", "of bytes.dram.write.ROLE, the part written outside the tile stores: explicit's materialized copy, zero-skip's zero-fill of dX"},
      {"bytes.sram.*", "bytes", "bytes read/written in an on-chip buffer (sram.BUFFER.read|write)"},
      {"bytes.edge.*", "bytes", "operand bytes entering the array edge, by role (zeros injected included)"},
      {"storage.extra", "bytes", "DRAM bytes of the copies explicit lowering materializes (U_pad, dilated dY)"},
      {"casts", "elements", "elements the DMA converted between a tensor's DRAM format and the on-chip one"},
      {"energy.*", "pJ", "energy by component (mac, pe, sram.BUFFER, dram, vector, cast, leakage)"},
  };
  return r;
}

const CounterInfo* find_counter(std::string_view name) {
  for (const auto& c : counter_registry()) {
    if (c.name == name) return &c;
    if (c.name.ends_with('*') && name.starts_with(c.name.substr(0, c.name.size() - 1))) return &c;
  }
  return nullptr;
}

void Stats::add(std::string_view name, double v) {
  assert(find_counter(name) && "unregistered counter");
  auto it = v_.find(name);
  if (it == v_.end()) v_.emplace(std::string(name), v);
  else it->second += v;
}

void Stats::set(std::string_view name, double v) {
  assert(find_counter(name) && "unregistered counter");
  auto it = v_.find(name);
  if (it == v_.end()) v_.emplace(std::string(name), v);
  else it->second = v;
}

double Stats::get(std::string_view name) const {
  auto it = v_.find(name);
  return it == v_.end() ? 0.0 : it->second;
}

double Stats::sum_prefix(std::string_view prefix) const {
  double s = 0;
  for (auto it = v_.lower_bound(prefix); it != v_.end() && it->first.starts_with(prefix); ++it)
    s += it->second;
  return s;
}

Stats& Stats::operator+=(const Stats& o) {
  for (const auto& [k, v] : o.v_) {
    auto it = v_.find(k);
    if (it == v_.end()) v_.emplace(k, v);
    else it->second += v;
  }
  return *this;
}

Stats Stats::scaled(double f) const {
  Stats s = *this;
  for (auto& [k, v] : s.v_) v *= f;
  return s;
}

}  // namespace st
