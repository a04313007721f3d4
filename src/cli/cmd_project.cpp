// systrain project: the cost of one training step (or inference forward) of a ResNet on the modeled
// accelerator, from shapes alone (src/project/projection.h): per op kind, per phase, conv vs
// non-conv shares; per-layer CSV and a JSON summary.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/cli/step_options.h"
#include "src/cost/gemm_schedule.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/io/output_file.h"
#include "src/project/projection.h"
#include "src/scaleout/chakra.h"
#include "src/scaleout/dp_projection.h"
#include "src/spec/spec_toml.h"

namespace st::cli {
namespace {

struct ProjectArgs : StepOptions {
  std::string csv, json;
  int replicas = 0;  // 0: one accelerator, no data-parallel section
  std::string chakra, chakra_prefix = "systrain";  // Chakra traces (src/scaleout/chakra.h)
};

// --replicas P: the data-parallel step on P accelerators (src/scaleout/dp_projection.h).
void print_data_parallel(const DataParallelStep& d, const Spec& spec, int64_t batch) {
  const InterconnectSpec& ic = spec.interconnect;
  fmt::print("\n  data parallel: {} accelerators x batch {} (global {}), {} at {} GB/s per link, {} ns, {} gradients, "
             "{} buckets{}\n",
             d.replicas, batch, batch * d.replicas, to_string(ic.topology), ic.link_gbps, ic.latency_ns,
             to_string(ic.wire_format), d.buckets.size(), ic.overlap ? " overlapped with backward" : " after backward");
  fmt::print("    compute {:.4g} ms (forward {:.4g}, backward {:.4g}, all-reduce on chip {:.4g}, update {:.4g})\n",
             d.compute_s() * 1e3, d.forward_s * 1e3, d.backward_s * 1e3, d.reduce_s * 1e3, d.update_s * 1e3);
  fmt::print("    communication {:.4g} ms, exposed {:.4g} ms; step {:.4g} ms, {:.5g} images/s, scaling efficiency {:.1f}%\n",
             d.comm_s * 1e3, d.exposed_s * 1e3, d.step_s * 1e3, double(batch * d.replicas) / d.step_s,
             100 * (d.forward_s + d.backward_s + d.update_s) / d.step_s);
  fmt::print("    links: {:.4g} MB sent per accelerator, {:.4g} J; energy per accelerator {:.4g} J, machine {:.4g} J\n",
             d.link_bytes / 1e6, d.link_energy_j, d.energy_j(), d.energy_j() * d.replicas);
}

double share(double part, double whole) { return whole > 0 ? part / whole : 0; }

// One table row: cycles, time, energy, DRAM and SRAM bytes of an aggregate.
void print_row(const std::string& name, const Stats& s, const Stats& total, const Spec& spec) {
  const Derived d = derive(s, spec);
  const double cyc = s.get("cycles.total");
  fmt::print("  {:<18} {:>14.6g} {:>6.1f}% {:>12.5g} {:>12.5g} {:>6.1f}% {:>12.5g} {:>12.5g}\n", name, cyc,
             100 * share(cyc, total.get("cycles.total")), d.seconds * 1e3, d.energy_pj * 1e-12,
             100 * share(d.energy_pj, derive(total, spec).energy_pj), s.sum_prefix("bytes.dram.") / 1e6,
             s.sum_prefix("bytes.sram.") / 1e6);
}

void print_header(const char* what) {
  fmt::print("  {:<18} {:>14} {:>7} {:>12} {:>12} {:>7} {:>12} {:>12}\n", what, "cycles", "time%", "time ms",
             "energy J", "en.%", "DRAM MB", "SRAM MB");
}

int run_project(const ProjectArgs& a) {
  const Step step = resolve_step(a);
  const NetDesc& net = step.net;
  const Spec& spec = step.spec;
  check_outputs({{a.csv, "--csv"}, {a.json, "--json"}});
  if (a.replicas != 0 && step.mode != StepMode::train) throw UserError("--replicas needs --mode train");
  if (!a.chakra.empty() && a.replicas == 0) throw UserError("--chakra needs --replicas");
  if (a.replicas != 0) check_replicas(spec, a.replicas);
  if (!a.chakra.empty()) check_chakra_output(a.chakra, a.chakra_prefix);

  const auto t0 = std::chrono::steady_clock::now();
  Ledger ledger(spec);
  project_into(ledger, net, step.lowering, step.mode);
  const double host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const Stats total = ledger.total(), conv = ledger.conv(), non_conv = ledger.non_conv();
  const Derived dt = derive(total, spec), dn = derive(non_conv, spec);
  const double time_share = share(non_conv.get("cycles.total"), total.get("cycles.total"));
  const double energy_share = share(dn.energy_pj, dt.energy_pj);

  fmt::print("== systrain project: {} {}x{}x{}, batch {}, {} step, spec {}, lowering {}{} ==\n", net.name, a.channels,
             a.input, a.input, a.batch, a.fold_bn ? a.mode + " (BN folded)" : a.mode, spec.name, a.lowering,
             spec.array.conv_mapping == ConvMapping::im2col ? "" : ", mapping channel_tap");
  fmt::print("  {} op records ({} distinct cost evaluations), projected in {:.3f} s\n\n", ledger.records().size(),
             ledger.cache_entries(), host_s);
  print_header("op kind");
  for (const auto& [k, s] : ledger.by_kind()) print_row(k, s, total, spec);
  fmt::print("\n");
  print_header("phase");
  for (const auto& [p, s] : ledger.by_phase()) print_row(p, s, total, spec);
  fmt::print("\n");
  print_header("class");
  print_row("conv", conv, total, spec);
  print_row("non-conv", non_conv, total, spec);
  print_row("total", total, total, spec);
  fmt::print("\n  step time {:.4g} ms ({:.1f}% stalls), energy {:.4g} J, average power {:.4g} W\n", dt.seconds * 1e3,
             100 * share(total.get("cycles.stall"), total.get("cycles.total")), dt.energy_pj * 1e-12, dt.power_w);
  fmt::print("  non-conv share: {:.1f}% of time, {:.1f}% of energy\n", 100 * time_share, 100 * energy_share);
  // Stalls by cause: the array's (conv) and the vector unit's with the fc GEMMs (non-conv); both
  // models attribute every stall cycle to one cause (docs/cost-schedule.md, docs/vector-schedule.md).
  auto print_stalls = [](const char* what, const Stats& s) {
    const double stall = s.get("cycles.stall");
    if (!(stall > 0)) return;
    fmt::print("  {} stalls {:.4g} cycles:", what, stall);
    for (const char* c : kStallCounter) {
      const double v = s.get(c);
      if (v > 0) fmt::print(" {} {:.1f}%", std::string_view(c).substr(6), 100 * v / stall);
    }
    fmt::print("\n");
  };
  print_stalls("conv", conv);
  print_stalls("non-conv", non_conv);
  std::optional<DataParallelStep> dp;
  if (a.replicas != 0) {
    dp = project_data_parallel(net, spec, step.lowering, a.replicas);
    print_data_parallel(*dp, spec, a.batch);
  }
  if (!a.chakra.empty()) {
    const ChakraTrace t = chakra_trace(*dp, net, spec);
    const size_t nodes = write_chakra_traces(t, dp->replicas, a.chakra, a.chakra_prefix);
    fmt::print("  Chakra traces: {}/{}.0.et .. {}.et, {} nodes each\n", a.chakra, a.chakra_prefix, dp->replicas - 1, nodes);
  }

  io::OutputSet outputs;
  if (!a.csv.empty()) outputs.add_text(a.csv, named_csv(ledger.by_layer(), spec), "--csv");
  if (!a.json.empty()) {
    nlohmann::json by_kind = nlohmann::json::object();
    for (const auto& [k, s] : ledger.by_kind())
      by_kind[k] = {{"cycles", s.get("cycles.total")}, {"energy_j", derive(s, spec).energy_pj * 1e-12}};
    nlohmann::json j = {{"model", net.name},
                        {"input", a.input},
                        {"batch", a.batch},
                        {"mode", a.mode},
                        {"fold_bn", a.fold_bn},
                        {"spec", spec.name},
                        {"lowering", a.lowering},
                        {"conv_mapping", to_string(spec.array.conv_mapping)},
                        {"total_cycles", total.get("cycles.total")},
                        {"seconds", dt.seconds},
                        {"energy_j", dt.energy_pj * 1e-12},
                        {"non_conv_time_share", time_share},
                        {"non_conv_energy_share", energy_share},
                        {"by_kind", by_kind},
                        {"ledger", ledger_json(ledger)}};
    if (dp) j["data_parallel"] = dp->json(a.batch);
    outputs.add_text(a.json, j.dump(2) + "\n", "--json");
  }
  std::fflush(stdout);  // the summary first when an output streams into stdout
  outputs.commit();
  return 0;
}

Registrar reg{{"project", "Project the cost of one training step / inference forward of a ResNet (no tensors)",
               [](CLI::App& sub) {
                 auto a = std::make_shared<ProjectArgs>();
                 add_step_options(sub, *a);
                 sub.add_option("--csv", a->csv, "per-layer CSV output");
                 sub.add_option("--json", a->json, "JSON summary output");
                 sub.add_option("--replicas", a->replicas,
                                "data-parallel step on this many accelerators, --batch each ([interconnect] of the spec)");
                 sub.add_option("--chakra", a->chakra,
                                "with --replicas: write one Chakra execution trace per accelerator into this directory "
                                "(ASTRA-sim's input)");
                 sub.add_option("--chakra-prefix", a->chakra_prefix, "file names <prefix>.<rank>.et")->capture_default_str();
                 return [a] { return run_project(*a); };
               }}};

}  // namespace
}  // namespace st::cli
