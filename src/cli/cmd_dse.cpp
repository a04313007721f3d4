// systrain dse: design-space exploration of array shape, dataflow, buffer sizes and DRAM bandwidth
// (sweeps), or of the split of a fixed SRAM / bandwidth budget among the buffers (budget), for one
// training step or inference forward of a ResNet (src/dse/*).
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/cli/step_options.h"
#include "src/dse/explore.h"
#include "src/io/output_file.h"
#include "src/mpi/mpi_replicas.h"
#include "src/spec/spec_toml.h"

namespace st::cli {
namespace {

struct DseArgs : StepOptions {
  std::vector<std::string> sweeps;
  std::string budget, out, json;
  double economical_pct = 5;
  bool no_plots = false;
};

const char* kSweepHelp =
    "design points (repeatable; the cartesian product of all). KEY=ITEM[,ITEM...], ITEM = VALUE | "
    "LO..HI:xF (geometric) | LO..HI:+S (arithmetic). Keys: array (RxC, or LO..HI:x2 for square), array_count (arrays per core), "
    "dataflow (os,ws,is), conv_mapping (im2col,channel_tap), ifmap_kib, weight_kib, output_kib, vector_kib, buffers_kib (one bank, KiB; "
    "double buffering doubles the storage), dram_gbps, ifmap_link_bits, weight_link_bits, "
    "output_link_bits, vector_link_bits. E.g. --sweep array=16x16,32x32 --sweep ifmap_kib=16..1024:x2";
const char* kBudgetHelp =
    "split a fixed budget instead: sram_kib=S,dram_gbps=B[,step=N][,sram_steps=N][,gbps_steps=N]. "
    "S KiB of storage (double buffering included) among ifmap/weight/output/vector in units of S/N "
    "(at most S in total), B GB/s exactly among the ifmap/weight/output links and the vector unit's "
    "(shared) link in units of B/N; N defaults to 8. Only array, array_count, dataflow and conv_mapping may also be swept.";

// `rep`: this process is one rank of `mpirun -np P systrain dse` (dse::ExploreOptions::ranks); rank 0
// alone prints and writes.
int run_dse(const DseArgs& a, Replicas* rep) {
  const Step step = resolve_step(a);
  const NetDesc& net = step.net;
  const Spec& base = step.spec;
  dse::ExploreOptions o;
  o.mode = step.mode;
  o.lowering = step.lowering;
  o.sweeps = a.sweeps;
  o.budget = a.budget;
  o.economical_pct = a.economical_pct;
  if (!std::isfinite(a.economical_pct) || a.economical_pct < 0)
    throw UserError(fmt::format("--economical-pct must be a finite percentage >= 0 (got {})", a.economical_pct));
  namespace fs = std::filesystem;
  // Every output is checked before the exploration; the run directory (and its missing parents) is
  // created only when the results are written, so a failed run leaves nothing.
  const std::string points_path = a.out.empty() ? "" : (fs::path(a.out) / "points.csv").string();
  const std::string report_path = a.out.empty() ? "" : (fs::path(a.out) / "report.json").string();
  const std::string script_path = a.out.empty() ? "" : (fs::path(a.out) / "plots.gp").string();
  check_outputs({{a.json, "--json"}});
  if (!a.out.empty()) {
    io::check_output_dir(a.out, "--out");
    if (fs::is_directory(a.out))
      for (const std::string& f : {points_path, report_path, script_path}) io::check_output(f, "--out file");
  }

  o.ranks = rep;
  const dse::DseRun run = dse::explore(net, base, o);
  if (rep && rep->rank() != 0) return 0;
  fmt::print("== systrain dse: {} {}x{}x{}, batch {}, {} step, base spec {}, lowering {} ==\n", net.name, a.channels,
             a.input, a.input, a.batch, a.mode, base.name, a.lowering);
  fmt::print("{}", dse::summary_text(run));
  const std::string report = dse::report_json(run).dump(2) + "\n";
  std::fflush(stdout);  // the summary first when --json streams into stdout
  io::OutputSet outputs;
  outputs.add_text(a.json, report, "--json");
  if (!a.out.empty()) {
    io::make_output_dir(a.out, "--out");
    const io::DirLock lock(a.out, "--out");  // a second run writing the same directory fails, not interleaves
    outputs.add_text(points_path, dse::points_csv(run), "--out points.csv");
    outputs.add_text(report_path, report, "--out report.json");
    outputs.commit();
    std::vector<std::string> pngs;
    if (!a.no_plots) pngs = dse::write_plots(run, a.out);
    fmt::print("  wrote {}/points.csv, report.json{}{}\n", a.out, pngs.empty() ? "" : ", ", fmt::join(pngs, ", "));
  } else {
    outputs.commit();
  }
  return 0;
}

Registrar reg{{"dse", "Design-space exploration: sweep array / dataflow / buffers / bandwidth, or split a budget",
               [](CLI::App& sub) {
                 auto a = std::make_shared<DseArgs>();
                 add_step_options(sub, *a);
                 sub.add_option("--sweep", a->sweeps, kSweepHelp);
                 sub.add_option("--budget", a->budget, kBudgetHelp);
                 sub.add_option("--economical-pct", a->economical_pct,
                                "economical point: smallest SRAM within this % of the optimum's cycles")
                     ->capture_default_str();
                 sub.add_option("--out", a->out, "run directory: points.csv, report.json, plots (PNG)");
                 sub.add_option("--json", a->json, "also write report.json here");
                 sub.add_flag("--no-plots", a->no_plots, "do not run gnuplot");
                 return [a] {
                   // Under mpirun the design points are split across the ranks (README "Scale-out").
                   if (std::getenv("OMPI_COMM_WORLD_SIZE"))
                     return run_replicated([&](MpiReplicas& rep) { return run_dse(*a, &rep); });
                   return run_dse(*a, nullptr);
                 };
               }}};

}  // namespace
}  // namespace st::cli
