#include "src/cost/report.h"

#include <set>

#include <fmt/format.h>

#include "src/cost/ledger.h"

namespace st {

Derived derive(const Stats& s, const Spec& spec) {
  Derived d;
  const double cycles = s.get("cycles.total");
  const double pes = double(spec.array.rows) * spec.array.cols * spec.array.count;   // every array's PEs
  d.seconds = cycles / (spec.clock_ghz * 1e9);
  d.energy_pj = s.sum_prefix("energy.");
  const double dram = s.sum_prefix("bytes.dram.");
  if (cycles > 0) {
    d.power_w = d.energy_pj * 1e-12 / d.seconds;
    d.utilization = s.get("macs.useful") / (cycles * pes);
    d.utilization_issued = s.get("macs.issued") / (cycles * pes);
    d.dram_gbps = dram / d.seconds / 1e9;
    d.dram_link_busy = dram / (cycles * spec.dram_bytes_per_cycle());
  }
  return d;
}

namespace {
const std::vector<std::pair<const char*, double Derived::*>> kDerivedFields = {
    {"seconds", &Derived::seconds},
    {"energy_pj", &Derived::energy_pj},
    {"power_w", &Derived::power_w},
    {"utilization", &Derived::utilization},
    {"utilization_issued", &Derived::utilization_issued},
    {"dram_gbps", &Derived::dram_gbps},
    {"dram_link_busy", &Derived::dram_link_busy},
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

template <class Rows, class Name>
std::string csv(const Rows& rows, const Spec& spec, const std::string& head, Name name) {
  std::set<std::string> names;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.second.values()) names.insert(k);
  std::string o = head;
  for (const auto& n : names) o += "," + n;
  for (const auto& [n, _] : kDerivedFields) o += std::string(",") + n;
  o += "\n";
  for (const auto& r : rows) {
    o += name(r);
    for (const auto& n : names) o += fmt::format(",{}", r.second.get(n));
    const Derived d = derive(r.second, spec);
    for (const auto& [_, f] : kDerivedFields) o += fmt::format(",{}", d.*f);
    o += "\n";
  }
  return o;
}
}  // namespace

std::string format_table(const Stats& s, const Spec& spec, const std::string& title) {
  std::string o;
  if (!title.empty()) o += title + "\n";
  for (const auto& [k, v] : s.values()) {
    const CounterInfo* c = find_counter(k);
    o += fmt::format("  {:<28} {:>20.6g} {:<7} {}\n", k, v, c ? c->unit : "",
                     c ? c->description : "");
  }
  const Derived d = derive(s, spec);
  o += fmt::format("  {:<28} {:>20.6g} {:<7} {}\n", "time", d.seconds * 1e3, "ms",
                   fmt::format("cycles.total at {} GHz", spec.clock_ghz));
  o += fmt::format("  {:<28} {:>20.6g} {:<7} {}\n", "energy", d.energy_pj * 1e-6, "uJ", "sum of energy.*");
  o += fmt::format("  {:<28} {:>20.6g} {:<7} {}\n", "power", d.power_w, "W", "energy / time");
  o += fmt::format("  {:<28} {:>19.2f}% {:<7} {}\n", "utilization", 100 * d.utilization, "",
                   "useful MACs / (cycles x PEs)");
  o += fmt::format("  {:<28} {:>20.6g} {:<7} {}\n", "dram bandwidth", d.dram_gbps, "GB/s",
                   "DRAM bytes / time");
  return o;
}

nlohmann::json to_json(const Stats& s, const Spec& spec) {
  nlohmann::json c = nlohmann::json::object(), dj = nlohmann::json::object();
  for (const auto& [k, v] : s.values()) c[k] = v;
  const Derived d = derive(s, spec);
  for (const auto& [n, f] : kDerivedFields) dj[n] = d.*f;
  return {{"counters", c}, {"derived", dj}};
}

nlohmann::json ledger_json(const Ledger& l) {
  const Spec& spec = l.spec();
  nlohmann::json j;
  j["spec"] = spec.name;
  j["total"] = to_json(l.total(), spec);
  j["conv"] = to_json(l.conv(), spec);
  j["non_conv"] = to_json(l.non_conv(), spec);
  for (const auto& [k, s] : l.by_kind()) j["by_kind"][k] = to_json(s, spec);
  for (const auto& [k, s] : l.by_phase()) j["by_phase"][k] = to_json(s, spec);
  j["by_layer"] = nlohmann::json::array();
  for (const auto& [k, s] : l.by_layer()) {
    nlohmann::json e = to_json(s, spec);
    e["layer"] = k;
    j["by_layer"].push_back(e);
  }
  return j;
}

std::string records_csv(const std::vector<StatsRecord>& records, const Spec& spec) {
  std::vector<std::pair<const Tag*, Stats>> rows;
  for (const auto& r : records) rows.emplace_back(&r.tag, r.stats);
  return csv(rows, spec, "layer,kind,phase", [](const auto& r) {
    return fmt::format("{},{},{}", csv_field(r.first->layer), to_string(r.first->kind),
                       to_string(r.first->phase));
  });
}

std::string named_csv(const std::vector<std::pair<std::string, Stats>>& rows, const Spec& spec) {
  return csv(rows, spec, "name", [](const auto& r) { return csv_field(r.first); });
}

}  // namespace st
