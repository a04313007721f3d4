// systrain scalesim: run a SCALE-Sim v2 config + conv topology through our cycle and memory model.
// Stall-free (InterfaceBandwidth CALC) totals equal SCALE-Sim v2's in its convention.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/cost/scalesim_run.h"
#include "src/io/output_file.h"

namespace st::cli {
namespace {

struct Args {
  std::string config, topology, json;
};

int run(const Args& a) {
  check_outputs({{a.json, "--json"}});
  const ScaleSimConfig cfg = load_scalesim_config(a.config);
  const auto layers = load_scalesim_topology(a.topology);
  std::vector<ScaleSimLayerResult> res;
  for (const auto& l : layers) res.push_back(run_scalesim_layer(cfg, l));

  fmt::print("run {}: {}x{} {} array, SRAM ifmap/filter/ofmap {}/{}/{} KiB, interface {}\n",
             cfg.run_name, cfg.rows, cfg.cols, to_string(cfg.dataflow), cfg.ifmap_kb, cfg.filter_kb,
             cfg.ofmap_kb,
             cfg.calc_bandwidth ? std::string("CALC (stall-free)")
                                : fmt::format("USER {} words/cycle", cfg.bandwidth_words));
  fmt::print("{:<14} {:>13} {:>11} {:>7} {:>14} {:>14} {:>14} {:>12} {:>12} {:>12}\n", "layer",
             "total_cycles", "stalls", "util%", "sram_ifmap_rd", "sram_filt_rd", "sram_ofmap_wr",
             "dram_ifmap_rd", "dram_filt_rd", "dram_ofmap_wr");
  for (const auto& r : res)
    fmt::print("{:<14} {:>13} {:>11} {:>7.2f} {:>14} {:>14} {:>14} {:>12} {:>12} {:>12}\n", r.name,
               r.total_cycles, r.stall_cycles, 100 * r.utilization, r.sram_ifmap_reads,
               r.sram_filter_reads, r.sram_ofmap_writes, r.dram_ifmap_reads, r.dram_filter_reads,
               r.dram_ofmap_writes);

  if (!a.json.empty()) {
    nlohmann::json j;
    j["run_name"] = cfg.run_name;
    j["dataflow"] = to_string(cfg.dataflow);
    j["rows"] = cfg.rows;
    j["cols"] = cfg.cols;
    j["interface_bandwidth"] = cfg.calc_bandwidth ? "CALC" : "USER";
    j["layers"] = nlohmann::json::array();
    for (const auto& r : res)
      j["layers"].push_back({{"name", r.name},
                             {"total_cycles", r.total_cycles},
                             {"stall_cycles", r.stall_cycles},
                             {"compute_cycles", r.compute_cycles},
                             {"utilization", r.utilization},
                             {"mapping_efficiency", r.mapping_efficiency},
                             {"macs", r.macs},
                             {"sram_ifmap_reads", r.sram_ifmap_reads},
                             {"sram_filter_reads", r.sram_filter_reads},
                             {"sram_ofmap_writes", r.sram_ofmap_writes},
                             {"dram_ifmap_reads", r.dram_ifmap_reads},
                             {"dram_filter_reads", r.dram_filter_reads},
                             {"dram_ofmap_writes", r.dram_ofmap_writes}});
    std::fflush(stdout);  // the table first when --json streams into stdout
    // Layer names come from the user's file: a byte that is not UTF-8 is replaced (U+FFFD), not fatal.
    io::write_text_file(a.json, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "--json");
  }
  return 0;
}

Registrar reg{{"scalesim",
               "Run a SCALE-Sim v2 config (.cfg) and conv topology (.csv): per-layer cycles, stalls, "
               "utilization, SRAM and DRAM traffic",
               [](CLI::App& sub) -> std::function<int()> {
                 auto a = std::make_shared<Args>();
                 sub.add_option("--config,-c", a->config, "SCALE-Sim .cfg file")->required();
                 sub.add_option("--topology,-t", a->topology, "SCALE-Sim conv topology .csv")->required();
                 sub.add_option("--json", a->json, "also write the per-layer figures as JSON");
                 return [a]() { return run(*a); };
               }}};

}  // namespace
}  // namespace st::cli
