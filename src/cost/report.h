#pragma once
// Printing and writing Stats: a table (fmt), JSON (nlohmann) and CSV. Derived figures (time, power,
// utilization, bandwidth) are formulas evaluated here, at dump time, never stored in Stats.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/cost/stats.h"
#include "src/spec/spec.h"

namespace st {

class Ledger;

struct Derived {
  double seconds = 0;             // cycles.total / clock
  double energy_pj = 0;           // sum of energy.*
  double power_w = 0;             // energy / time
  double utilization = 0;         // macs.useful / (cycles.total x R x C x array count)
  double utilization_issued = 0;  // macs.issued / (cycles.total x R x C x array count)
  double dram_gbps = 0;           // all DRAM bytes / time
  double dram_link_busy = 0;      // DRAM bytes / (cycles.total x shared-link bytes per cycle)
};
Derived derive(const Stats& s, const Spec& spec);

// Counter table: name, value, unit, description; then the derived figures.
std::string format_table(const Stats& s, const Spec& spec, const std::string& title = "");
// {"counters": {name: value}, "derived": {...}}
nlohmann::json to_json(const Stats& s, const Spec& spec);
// One JSON object for a whole ledger: total, conv / non-conv, by kind, by phase, by layer.
nlohmann::json ledger_json(const Ledger& l);

// CSV: header "layer,kind,phase,<counters...>,<derived...>", one row per record. Counters are the
// union over the records, sorted; absent counters are 0.
std::string records_csv(const std::vector<StatsRecord>& records, const Spec& spec);
// CSV of named rows (e.g. per-layer aggregates): header "name,<counters...>,<derived...>".
std::string named_csv(const std::vector<std::pair<std::string, Stats>>& rows, const Spec& spec);

}  // namespace st
