// systrain bpcompare: the backward pass (dX + dW) of every conv layer of a topology under the three
// lowerings (explicit im2col, BP-im2col, zero-skip), costed by the cost model in timing-only mode:
// cycles, DRAM bytes, SRAM bytes, extra storage, MACs issued, and each mode's reduction vs explicit.
// The stem (the first layer) counts dW only, as training computes it, unless --include-stem-dx.
// Two views: each mode on the plans the tiler picks for it, and BP-im2col on explicit's plans (the
// same GEMMs), where a difference from explicit is the lowering's alone.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/io/output_file.h"
#include "src/ops/conv.h"
#include "src/project/backward_cost.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"

namespace st::cli {
namespace {

struct Args {
  std::string topology = "resnet18", spec, csv, json;
  int64_t batch = 0;
  bool batch_given = false;
  bool include_stem_dx = false;
};

using Figures = BackwardFigures;

double reduction(double base, double x) { return base > 0 ? 100.0 * (1.0 - x / base) : 0.0; }

constexpr const char* kShared = "bp-im2col_on_explicit_plan";   // the shared-plan view's key

nlohmann::json to_json(const Figures& f) {
  return {{"cycles", f.cycles}, {"dram_bytes", f.dram}, {"sram_bytes", f.sram},
          {"extra_storage_bytes", f.extra}, {"macs", f.macs}};
}

int run(const Args& a) {
  if (a.batch < 0 || (a.batch_given && a.batch == 0))
    throw UserError(fmt::format("--batch must be positive (got {})", a.batch));
  // Outputs are checked before the work and written whole (together) after it.
  check_outputs({{a.csv, "--csv"}, {a.json, "--json"}});
  const Spec spec = load_spec(a.spec);
  const auto layers = load_conv_topology(a.topology, a.batch);
  // Every layer's sizes must fit (a batch or a file's shape can make products wrap past 2^63), and
  // the costing's host steps (linear in the layers' heights and widths, not in the batch) must be
  // bounded.
  double steps = 0;
  for (const auto& layer : layers) {
    check_conv_sizes(layer.desc, a.batch_given ? fmt::format("layer {} with --batch {}", layer.name, a.batch)
                                               : fmt::format("layer {}", layer.name));
    steps += conv_costing_steps(layer.desc);
  }
  if (steps > kMaxCostingSteps)
    throw UserError(fmt::format("costing topology '{}' takes about {:.2g} host steps (linear in every layer's height "
                                "and width), more than the limit of {:.2g} (about ten seconds); use smaller layers",
                                a.topology, steps, kMaxCostingSteps));
  std::ostringstream csv;
  const bool want_csv = !a.csv.empty();
  fmt::print("bpcompare: {} ({} conv layers, batch {}) on {} ({}x{} {} {}), backward = dX + dW\n",
             a.topology, layers.size(), layers.front().desc.N, spec.name, spec.array.rows,
             spec.array.cols, to_string(spec.array.dataflow), to_string(spec.array.format));
  if (a.include_stem_dx)
    fmt::print("stem {}: dX included (--include-stem-dx), which training never computes; marked [+dX]\n",
               layers.front().name);
  else
    fmt::print("stem {}: dW only (training computes no gradient of the input; --include-stem-dx adds its dX)\n",
               layers.front().name);
  fmt::print("{:<22} {:>13} {:>13} {:>13} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}\n", "layer",
             "cyc explicit", "cyc bp", "cyc zskip", "DRAM MB", "bp MB", "SRAM MB", "bp SRAM MB",
             "extra MB", "MMAC expl", "MMAC zs");
  if (want_csv) {
    csv << "layer,dx_included";
    for (Lowering l : kAllLowerings)
      for (const char* k : {"cycles", "dram_bytes", "sram_bytes", "extra_storage_bytes", "macs"})
        csv << "," << to_string(l) << "." << k;
    for (const char* k : {"cycles", "dram_bytes", "sram_bytes", "extra_storage_bytes", "macs"})
      csv << "," << kShared << "." << k;
    csv << "\n";
  }
  nlohmann::json jl = nlohmann::json::array();
  Figures tot[3], tot_shared;
  for (size_t i = 0; i < layers.size(); ++i) {
    const ConvLayer& layer = layers[i];
    const bool with_dx = backward_computes_dx(i, a.include_stem_dx);
    Figures f[3];
    nlohmann::json j = {{"name", layer.name}, {"problem", layer.desc.str()}, {"dx_included", with_dx}};
    for (Lowering l : kAllLowerings) {
      f[int(l)] = backward_figures(layer, l, spec, with_dx);
      tot[int(l)] += f[int(l)];
      j[std::string(to_string(l))] = to_json(f[int(l)]);
    }
    const Figures shared = bp_im2col_on_explicit_plan(layer, spec, with_dx);
    tot_shared += shared;
    j[kShared] = to_json(shared);
    jl.push_back(j);
    fmt::print("{:<22} {:>13.0f} {:>13.0f} {:>13.0f} {:>9.2f} {:>9.2f} {:>11.2f} {:>11.2f} {:>11.2f} {:>11.1f} {:>9.1f}\n",
               i == 0 && with_dx ? layer.name + " [+dX]" : layer.name, f[0].cycles, f[1].cycles, f[2].cycles, f[0].dram / 1e6, f[1].dram / 1e6,
               f[0].sram / 1e6, f[1].sram / 1e6, f[0].extra / 1e6, f[0].macs / 1e6, f[2].macs / 1e6);
    if (want_csv) {
      csv << layer.name << "," << (with_dx ? 1 : 0);
      for (const Figures* x : std::initializer_list<const Figures*>{&f[0], &f[1], &f[2], &shared})
        csv << "," << x->cycles << "," << x->dram << "," << x->sram << "," << x->extra << "," << x->macs;
      csv << "\n";
    }
  }
  fmt::print("\ntotals (backward, all layers{})\n{:<28} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
             a.include_stem_dx ? ", the stem's dX included" : "; the stem: dW only", "mode", "cycles", "DRAM bytes",
             "SRAM bytes", "extra storage", "MACs");
  nlohmann::json jt;
  auto total_row = [&](const std::string& name, const Figures& f) {
    fmt::print("{:<28} {:>16.0f} {:>16.0f} {:>16.0f} {:>16.0f} {:>16.0f}\n", name, f.cycles, f.dram, f.sram, f.extra,
               f.macs);
  };
  for (Lowering l : kAllLowerings) {
    total_row(std::string(to_string(l)), tot[int(l)]);
    jt[std::string(to_string(l))] = to_json(tot[int(l)]);
  }
  total_row("bp-im2col, explicit's plan", tot_shared);
  jt[kShared] = to_json(tot_shared);
  fmt::print("\nreduction vs explicit (each mode on its own plans; last line: on explicit's plans)\n");
  auto reduction_row = [&](const std::string& name, const std::string& key, const Figures& f) {
    const Figures& b = tot[0];
    fmt::print("{:<28} cycles {:6.1f}%  DRAM {:6.1f}%  SRAM {:6.1f}%  extra storage {:6.1f}%  MACs {:6.1f}%\n", name,
               reduction(b.cycles, f.cycles), reduction(b.dram, f.dram), reduction(b.sram, f.sram),
               reduction(b.extra, f.extra), reduction(b.macs, f.macs));
    jt["reduction_vs_explicit"][key] = {
        {"cycles", reduction(b.cycles, f.cycles)}, {"dram_bytes", reduction(b.dram, f.dram)},
        {"sram_bytes", reduction(b.sram, f.sram)}, {"extra_storage_bytes", reduction(b.extra, f.extra)},
        {"macs", reduction(b.macs, f.macs)}};
  };
  for (Lowering l : {Lowering::bp_im2col, Lowering::zero_skip})
    reduction_row(std::string(to_string(l)), std::string(to_string(l)), tot[int(l)]);
  reduction_row("bp-im2col, explicit's plan", kShared, tot_shared);
  io::OutputSet outputs;
  if (want_csv) outputs.add_text(a.csv, csv.str(), "--csv");
  if (!a.json.empty())
    // Layer names come from the user's file: a byte that is not UTF-8 is replaced (U+FFFD), not fatal.
    outputs.add_text(a.json,
                     nlohmann::json{{"topology", a.topology}, {"spec", spec.name}, {"batch", layers.front().desc.N},
                                    {"stem_dx_included", a.include_stem_dx},
                                    {"layers", jl}, {"totals", jt}}
                             .dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
                         "\n",
                     "--json");
  std::fflush(stdout);  // the table first when an output streams into stdout
  outputs.commit();
  return 0;
}

const Registrar kReg{Command{
    "bpcompare",
    "Backward-pass (dX + dW) cost of every conv layer under explicit im2col, BP-im2col and zero-skip",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<Args>();
      sub.add_option("--topology", a->topology, "resnet18, resnet50 or a topology CSV file")->capture_default_str();
      auto* batch = sub.add_option("--batch", a->batch, "batch size (overrides the file's N; default 1 for built-ins)");
      sub.add_option("--spec", a->spec, "accelerator preset name or TOML file (default tpu-like)");
      sub.add_option("--csv", a->csv, "write the per-layer figures as CSV");
      sub.add_option("--json", a->json, "write layers and totals as JSON");
      sub.add_flag("--include-stem-dx", a->include_stem_dx,
                   "also cost the first layer's dX (the gradient of the network's input, which training never "
                   "computes); labelled [+dX]");
      return [a, batch] {
        a->batch_given = batch->count() > 0;
        return run(*a);
      };
    }}};

}  // namespace
}  // namespace st::cli
