#pragma once
// Named counters (gem5 style): every counter has a name, a unit and a one-line description in the
// registry (stats.cpp). Stats is a bag of counter values with +=; derived figures (power,
// utilization, bandwidth) are computed when reporting, never stored.
//
// Counter names are dotted: "cycles.compute", "bytes.dram.read.ifmap", "energy.sram.weight".
// Levels: dram, sram.ifmap, sram.weight, sram.output, sram.vector, edge (array edge).
// Roles: ifmap (operand A), weight (operand B), output (C), plus "vector" for vector-unit operands.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "src/cost/work.h"

namespace st {

struct CounterInfo {
  std::string_view name, unit, description;
};

// The registry of known counters; `find_counter` accepts a registered name or a registered prefix
// pattern ("bytes.dram.read.*"). Adding an unregistered counter is a bug (asserted in debug builds).
const std::vector<CounterInfo>& counter_registry();
const CounterInfo* find_counter(std::string_view name);

class Stats {
 public:
  void add(std::string_view name, double v);
  void set(std::string_view name, double v);
  double get(std::string_view name) const;   // 0 if absent
  // Sum of every counter whose name starts with `prefix` ("bytes.dram." -> all DRAM bytes).
  double sum_prefix(std::string_view prefix) const;
  Stats& operator+=(const Stats& o);
  Stats scaled(double f) const;              // every counter times f (e.g. one step x steps)
  const std::map<std::string, double, std::less<>>& values() const { return v_; }
  bool empty() const { return v_.empty(); }

 private:
  std::map<std::string, double, std::less<>> v_;
};

// Stats of one op instance, tagged with the layer, op kind and phase it belongs to.
struct StatsRecord {
  Tag tag;
  Stats stats;
};

}  // namespace st
