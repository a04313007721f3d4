// systrain bpcompare: the backward pass (dX + dW) of every conv layer of a topology under the three
// lowerings (explicit im2col, BP-im2col, zero-skip), costed by the cost model in timing-only mode:
// cycles, DRAM bytes (in total and by tensor), SRAM bytes (in total and of the lowered operand),
// extra storage, MACs issued, and each mode's saving vs explicit beside the BP-im2col paper's.
// The stem (the first layer) counts dW only, as training computes it, unless --include-stem-dx.
// Two views: each mode on the plans the tiler picks for it, and BP-im2col on explicit's plans (the
// same GEMMs), where a difference from explicit is the lowering's alone. --band repeats the
// comparison over a grid of DRAM bandwidth x buffer size and reports each saving's min and max.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/dse/bp_band.h"
#include "src/io/output_file.h"
#include "src/ops/conv.h"
#include "src/project/backward_cost.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"

namespace st::cli {
namespace {

struct Args {
  std::string topology = "resnet18", spec, csv, json, band_csv;
  std::string mapping;  // --mapping: overrides the spec's [array] conv_mapping
  int64_t batch = 0;
  bool batch_given = false;
  bool include_stem_dx = false;
  bool band = false;
  std::vector<std::string> band_axes;
};

using Figures = BackwardFigures;

constexpr const char* kShared = "bp-im2col_on_explicit_plan";   // the shared-plan view's key

// The BP-im2col paper's savings against traditional im2col (reference/bp-im2col.md), beside ours.
struct PaperClaim {
  const char* what;
  const char* figure;   // a backward_figure_fields() name, or the sum of two ("a+b")
  const char* paper;
};
constexpr PaperClaim kPaper[] = {
    {"backprop runtime (cycles)", "cycles", "34.9 (average)"},
    {"off-chip traffic (DRAM bytes, every tensor)", "dram_bytes", ">= 22.7"},
    {"off-chip traffic of dY and explicit's copy", "dram_diff_dst_bytes+dram_copy_bytes", ">= 22.7"},
    {"on-chip buffer (lowered-operand SRAM reads)", "sram_lowered_read_bytes", ">= 70.6"},
    {"on-chip buffer (every SRAM byte)", "sram_bytes", "-"},
    {"extra storage", "extra_storage_bytes", ">= 74.78"},
};

nlohmann::json to_json(const Figures& f) {
  nlohmann::json j;
  for (const auto& [name, m] : backward_figure_fields()) j[std::string(name)] = f.*m;
  return j;
}

nlohmann::json savings_json(const Figures& base, const Figures& f) {
  nlohmann::json j;
  for (const auto& [name, m] : backward_figure_fields()) j[std::string(name)] = reduction_percent(base.*m, f.*m);
  return j;
}

// The views of a comparison's totals, in output order: (key, label, figures).
struct View {
  std::string key, label;
  const Figures* f;
};
std::vector<View> views(const BackwardComparison& c) {
  std::vector<View> v;
  for (Lowering l : kAllLowerings) v.push_back({std::string(to_string(l)), std::string(to_string(l)), &c.total[int(l)]});
  v.push_back({kShared, "bp-im2col, explicit's plan", &c.total_shared});
  return v;
}

void print_layers(const std::vector<ConvLayer>& layers, const BackwardComparison& c) {
  fmt::print("{:<22} {:>13} {:>13} {:>13} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}\n", "layer",
             "cyc explicit", "cyc bp", "cyc zskip", "DRAM MB", "bp MB", "SRAM MB", "bp SRAM MB",
             "extra MB", "MMAC expl", "MMAC zs");
  auto name = [&](size_t i) { return i == 0 && c.layers[i].with_dx ? layers[i].name + " [+dX]" : layers[i].name; };
  for (size_t i = 0; i < layers.size(); ++i) {
    const Figures* f = c.layers[i].mode;
    fmt::print("{:<22} {:>13.0f} {:>13.0f} {:>13.0f} {:>9.2f} {:>9.2f} {:>11.2f} {:>11.2f} {:>11.2f} {:>11.1f} {:>9.1f}\n",
               name(i), f[0].cycles, f[1].cycles, f[2].cycles, f[0].dram / 1e6, f[1].dram / 1e6, f[0].sram / 1e6,
               f[1].sram / 1e6, f[0].extra / 1e6, f[0].macs / 1e6, f[2].macs / 1e6);
  }
  fmt::print("\nper role (MB): the lowered operand's SRAM reads and writes; DRAM of dY and of explicit's copy "
             "(bp@e: bp-im2col on explicit's plan)\n");
  fmt::print("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "layer", "lowR expl",
             "lowR bp", "lowR bp@e", "lowW expl", "lowW bp", "dY expl", "copy expl", "dY bp", "dY bp@e");
  for (size_t i = 0; i < layers.size(); ++i) {
    const Figures &e = c.layers[i].mode[0], &b = c.layers[i].mode[1], &s = c.layers[i].shared;
    fmt::print("{:<22} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f}\n",
               name(i), e.sram_lowered_read / 1e6, b.sram_lowered_read / 1e6, s.sram_lowered_read / 1e6,
               e.sram_lowered_write / 1e6, b.sram_lowered_write / 1e6, e.dram_diff_dst / 1e6, e.dram_copy / 1e6,
               b.dram_diff_dst / 1e6, s.dram_diff_dst / 1e6);
  }
}

void print_totals(const BackwardComparison& c, bool include_stem_dx) {
  fmt::print("\ntotals (backward, all layers{})\n{:<28} {:>16} {:>16} {:>16} {:>16} {:>16}\n",
             include_stem_dx ? ", the stem's dX included" : "; the stem: dW only", "mode", "cycles", "DRAM bytes",
             "SRAM bytes", "extra storage", "MACs");
  for (const View& v : views(c))
    fmt::print("{:<28} {:>16.0f} {:>16.0f} {:>16.0f} {:>16.0f} {:>16.0f}\n", v.label, v.f->cycles, v.f->dram,
               v.f->sram, v.f->extra, v.f->macs);
  fmt::print("\nper role (MB): DRAM by tensor (X, W, dY, dX, dW, explicit's copy); SRAM of the lowered operand "
             "(reads, writes) and of the weight + output buffers\n{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} "
             "{:>10} {:>10}\n",
             "mode", "src", "wei", "diff_dst", "diff_src", "diff_wei", "copy", "low read", "low write", "other");
  for (const View& v : views(c)) {
    const Figures& f = *v.f;
    fmt::print("{:<28} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>10.2f} {:>10.2f} {:>10.2f}\n", v.label,
               f.dram_src / 1e6, f.dram_wei / 1e6, f.dram_diff_dst / 1e6, f.dram_diff_src / 1e6, f.dram_diff_wei / 1e6,
               f.dram_copy / 1e6, f.sram_lowered_read / 1e6, f.sram_lowered_write / 1e6, f.sram_other / 1e6);
  }
  const Figures& b = c.total[0];
  fmt::print("\nsaving vs explicit, 100 x (1 - x / explicit) (each mode on its own plans; last line: on explicit's "
             "plans)\n");
  for (const View& v : views(c)) {
    if (v.f == &b) continue;
    const Figures& f = *v.f;
    fmt::print("{:<28} cycles {:6.1f}%  DRAM {:6.1f}%  SRAM {:6.1f}%  lowered SRAM reads {:6.1f}%  extra storage "
               "{:6.1f}%  MACs {:6.1f}%\n",
               v.label, reduction_percent(b.cycles, f.cycles), reduction_percent(b.dram, f.dram),
               reduction_percent(b.sram, f.sram), reduction_percent(b.sram_lowered_read, f.sram_lowered_read),
               reduction_percent(b.extra, f.extra), reduction_percent(b.macs, f.macs));
  }
  fmt::print("\nagainst the BP-im2col paper (saving of bp-im2col vs explicit, %; README \"bpcompare\" defines each)\n"
             "{:<46} {:>10} {:>16} {:>16}\n",
             "figure", "own plans", "explicit's plan", "paper");
  for (const PaperClaim& p : kPaper)
    fmt::print("{:<46} {:>10.1f} {:>16.1f} {:>16}\n", p.what, reduction_percent(figure_value(b, p.figure), figure_value(c.total[1], p.figure)),
               reduction_percent(figure_value(b, p.figure), figure_value(c.total_shared, p.figure)), p.paper);
}

// Per layer, BP-im2col on explicit's plan against explicit: the range of each saving over the layers
// whose backward has inserted zeros (strided) and over the others, and the zero fraction of explicit's
// copies (the paper's storage figure: 1 - compact dY / materialized copy, elements). The paper's
// "at least" figures are minima over its benchmarks; these are the like-for-like per-layer reading.
nlohmann::json per_layer_ranges(const std::vector<ConvLayer>& layers, const BackwardComparison& c, const Spec& spec) {
  struct Range {
    double lo = 0, hi = 0;
    int n = 0;
    void add(double x) { lo = n ? std::min(lo, x) : x, hi = n ? std::max(hi, x) : x, ++n; }
  };
  Range zero_fraction;
  nlohmann::json j;
  fmt::print("\nper layer, bp-im2col on explicit's plan: saving vs explicit, % (min..max over the layers)\n");
  for (bool strided : {true, false}) {
    Range r[4];
    const char* figs[4] = {"cycles", "dram_bytes", "dram_diff_dst_bytes+dram_copy_bytes", "sram_lowered_read_bytes"};
    for (size_t i = 0; i < layers.size(); ++i) {
      if ((layers[i].desc.sh > 1 || layers[i].desc.sw > 1) != strided) continue;
      for (int k = 0; k < 4; ++k)
        r[k].add(reduction_percent(figure_value(c.layers[i].mode[0], figs[k]), figure_value(c.layers[i].shared, figs[k])));
    }
    const char* what = strided ? "strided (inserted zeros)" : "stride 1";
    if (r[0].n == 0) continue;
    fmt::print("  {:<25} {:>3} layers: cycles {:.1f}..{:.1f}  DRAM {:.1f}..{:.1f}  DRAM of dY + copy {:.1f}..{:.1f}  "
               "lowered SRAM reads {:.1f}..{:.1f}\n",
               what, r[0].n, r[0].lo, r[0].hi, r[1].lo, r[1].hi, r[2].lo, r[2].hi, r[3].lo, r[3].hi);
    for (int k = 0; k < 4; ++k) j[strided ? "strided" : "stride_1"][figs[k]] = {{"min", r[k].lo}, {"max", r[k].hi}};
    j[strided ? "strided" : "stride_1"]["layers"] = r[0].n;
  }
  for (size_t i = 0; i < layers.size(); ++i)
    for (Direction dir : {Direction::bwd_data, Direction::bwd_weights}) {
      if (dir == Direction::bwd_data && !c.layers[i].with_dx) continue;
      for (const GemmWork& w : conv_work(layers[i].desc, dir, Lowering::explicit_im2col, spec, layers[i].name))
        if (w.a.extra_storage_bytes > 0)
          zero_fraction.add(reduction_percent(w.a.extra_storage_bytes / w.a.dram_bytes(),
                                              w.a.extra_dram_read_bytes / w.a.extra_read_bytes()));
    }
  if (zero_fraction.n > 0) {
    fmt::print("  zero fraction of explicit's {} copies (1 - compact dY / copy, elements): {:.2f}..{:.2f}\n",
               zero_fraction.n, zero_fraction.lo, zero_fraction.hi);
    j["copy_zero_fraction"] = {{"copies", zero_fraction.n}, {"min", zero_fraction.lo}, {"max", zero_fraction.hi}};
  }
  return j;
}

struct BandResult {
  nlohmann::json json;
  std::string csv;
};

// The band over the grid: printed min / max per view and figure beside this spec's point; JSON with
// every grid point; CSV one row per grid point.
BandResult band(const Args& a, const std::vector<ConvLayer>& layers, const Spec& spec, const std::vector<dse::Axis>& axes,
                const BackwardComparison& point) {
  const auto pts = dse::backward_band(layers, spec, axes, a.include_stem_dx);
  std::vector<std::string> keys;
  for (const dse::Axis& x : axes) keys.push_back(fmt::format("{} ({})", x.key, fmt::join(x.values, ",")));
  fmt::print("\nband over {} grid points: {}; saving vs explicit in % (min, max over the grid; this spec's point)\n",
             pts.size(), fmt::join(keys, " x "));
  fmt::print("{:<28} {:<36} {:>9} {:>9} {:>11}\n", "view", "figure", "min", "max", "this spec");
  BandResult r;
  nlohmann::json jaxes = nlohmann::json::array(), jpts = nlohmann::json::array(), jsum;
  for (const dse::Axis& x : axes) jaxes.push_back({{"key", x.key}, {"values", x.values}});
  std::ostringstream csv;
  for (const dse::Axis& x : axes) csv << x.key << ",";
  csv << "point";
  for (const dse::BandSaving& s : dse::band_savings()) csv << ",saving." << s.view << "." << s.figure;
  for (const View& v : views(point))
    for (const auto& [name, m] : backward_figure_fields()) csv << "," << v.key << "." << name;
  csv << "\n";
  for (size_t i = 0; i < pts.size(); ++i) {
    const dse::BandPoint& p = pts[i];
    nlohmann::json jp, params, sav, tot;
    for (const auto& [k, v] : p.point.params) params[k] = v, csv << v << ",";
    csv << i;
    for (const dse::BandSaving& s : dse::band_savings()) {
      const double x = dse::band_saving(p.comparison, s);
      sav[std::string(s.view)][std::string(s.figure)] = x;
      csv << "," << x;
    }
    for (const View& v : views(p.comparison)) {
      tot[v.key] = to_json(*v.f);
      for (const auto& [name, m] : backward_figure_fields()) csv << "," << (*v.f).*m;
    }
    csv << "\n";
    jpts.push_back({{"params", params}, {"savings_vs_explicit", sav}, {"totals", tot}});
  }
  for (const dse::BandSaving& s : dse::band_savings()) {
    double lo = 0, hi = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
      const double x = dse::band_saving(pts[i].comparison, s);
      lo = i == 0 ? x : std::min(lo, x), hi = i == 0 ? x : std::max(hi, x);
    }
    const double at = dse::band_saving(point, s);
    fmt::print("{:<28} {:<36} {:>8.1f}% {:>8.1f}% {:>10.1f}%\n", s.view, s.figure, lo, hi, at);
    jsum[std::string(s.view)][std::string(s.figure)] = {{"min", lo}, {"max", hi}, {"point", at}};
  }
  r.json = {{"axes", jaxes}, {"points", jpts}, {"savings_vs_explicit", jsum}};
  r.csv = csv.str();
  return r;
}

int run(const Args& a) {
  if (a.batch < 0 || (a.batch_given && a.batch == 0))
    throw UserError(fmt::format("--batch must be positive (got {})", a.batch));
  const bool want_band = a.band || !a.band_axes.empty() || !a.band_csv.empty();
  // The grid first: a bad expression costs nothing.
  std::vector<dse::Axis> axes;
  for (const std::string& e : a.band_axes) axes.push_back(dse::parse_band_axis(e));
  if (want_band && axes.empty()) axes = dse::default_band_axes();
  const double points = double(dse::band_points(axes));
  // Outputs are checked before the work and written whole (together) after it.
  const ConvMapping mapping = a.mapping.empty() ? ConvMapping::im2col : conv_mapping_from_flag(a.mapping);
  check_outputs({{a.csv, "--csv"}, {a.json, "--json"}, {a.band_csv, "--band-csv"}});
  Spec spec = load_spec(a.spec);
  if (!a.mapping.empty()) spec.array.conv_mapping = mapping;
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
  if (steps * (want_band ? points + 1 : 1) > kMaxCostingSteps)
    throw UserError(fmt::format("costing topology '{}' takes about {:.2g} host steps (linear in every layer's height "
                                "and width{}), more than the limit of {:.2g} (about ten seconds); use smaller layers{}",
                                a.topology, steps * (want_band ? points + 1 : 1), want_band ? ", times the grid points" : "",
                                kMaxCostingSteps, want_band ? " or a smaller grid" : ""));
  fmt::print("bpcompare: {} ({} conv layers, batch {}) on {} ({}x{} {} {}{}), backward = dX + dW\n",
             a.topology, layers.size(), layers.front().desc.N, spec.name, spec.array.rows,
             spec.array.cols, to_string(spec.array.dataflow), to_string(spec.array.format),
             spec.array.conv_mapping == ConvMapping::channel_tap ? ", channel_tap mapping" : "");
  if (a.include_stem_dx)
    fmt::print("stem {}: dX included (--include-stem-dx), which training never computes; marked [+dX]\n",
               layers.front().name);
  else
    fmt::print("stem {}: dW only (training computes no gradient of the input; --include-stem-dx adds its dX)\n",
               layers.front().name);
  const BackwardComparison c = compare_backward(layers, spec, a.include_stem_dx);
  print_layers(layers, c);
  print_totals(c, a.include_stem_dx);
  const nlohmann::json ranges = per_layer_ranges(layers, c, spec);

  std::ostringstream csv;
  csv << "layer,dx_included";
  for (const View& v : views(c))
    for (const auto& [name, m] : backward_figure_fields()) csv << "," << v.key << "." << name;
  csv << "\n";
  nlohmann::json jl = nlohmann::json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& x = c.layers[i];
    nlohmann::json j = {{"name", layers[i].name}, {"problem", layers[i].desc.str()}, {"dx_included", x.with_dx}};
    csv << layers[i].name << "," << (x.with_dx ? 1 : 0);
    for (const Figures* f : {&x.mode[0], &x.mode[1], &x.mode[2], &x.shared})
      for (const auto& [name, m] : backward_figure_fields()) csv << "," << f->*m;
    csv << "\n";
    for (Lowering l : kAllLowerings) j[std::string(to_string(l))] = to_json(x.mode[int(l)]);
    j[kShared] = to_json(x.shared);
    jl.push_back(j);
  }
  nlohmann::json jt;
  for (const View& v : views(c)) {
    jt[v.key] = to_json(*v.f);
    if (v.f != &c.total[0]) jt["reduction_vs_explicit"][v.key] = savings_json(c.total[0], *v.f);
  }
  nlohmann::json jpaper = nlohmann::json::array();
  for (const PaperClaim& p : kPaper)
    jpaper.push_back({{"figure", p.figure}, {"what", p.what}, {"paper", p.paper},
                      {"bp-im2col", reduction_percent(figure_value(c.total[0], p.figure), figure_value(c.total[1], p.figure))},
                      {kShared, reduction_percent(figure_value(c.total[0], p.figure), figure_value(c.total_shared, p.figure))}});
  nlohmann::json out = {{"topology", a.topology}, {"spec", spec.name}, {"batch", layers.front().desc.N},
                        {"mapping", to_string(spec.array.conv_mapping)},
                        {"stem_dx_included", a.include_stem_dx}, {"layers", jl}, {"totals", jt},
                        {"against_paper", jpaper}, {"per_layer", ranges}};
  io::OutputSet outputs;
  if (want_band) {
    BandResult b = band(a, layers, spec, axes, c);
    out["band"] = std::move(b.json);
    if (!a.band_csv.empty()) outputs.add_text(a.band_csv, b.csv, "--band-csv");
  }
  if (!a.csv.empty()) outputs.add_text(a.csv, csv.str(), "--csv");
  if (!a.json.empty())
    // Layer names come from the user's file: a byte that is not UTF-8 is replaced (U+FFFD), not fatal.
    outputs.add_text(a.json, out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "--json");
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
      sub.add_option("--mapping", a->mapping,
                     "im2col | channel_tap: how the convolutions meet the array (default: the spec's [array] "
                     "conv_mapping; README \"Channel-tap mapping\")");
      sub.add_option("--csv", a->csv, "write the per-layer figures as CSV");
      sub.add_option("--json", a->json, "write layers, totals (and the band) as JSON");
      sub.add_flag("--include-stem-dx", a->include_stem_dx,
                   "also cost the first layer's dX (the gradient of the network's input, which training never "
                   "computes); labelled [+dX]");
      sub.add_flag("--band", a->band,
                   "also compare over a grid of DRAM bandwidth x buffer size (default dram_gbps=8,16,32,64 x "
                   "buffers_kib=32,64,128,256) and print each saving's min and max");
      sub.add_option("--band-axis", a->band_axes,
                     "KEY=VALUES, dse's --sweep syntax, a grid axis replacing the default ones (repeatable; keys: "
                     "dram_gbps, buffers_kib, ifmap_kib, weight_kib, output_kib, *_link_bits); implies --band");
      sub.add_option("--band-csv", a->band_csv, "write the band's grid points (savings and totals) as CSV; implies --band");
      return [a, batch] {
        a->batch_given = batch->count() > 0;
        return run(*a);
      };
    }}};

}  // namespace
}  // namespace st::cli
