// systrain cost: one GEMM or one conv layer (one direction, one lowering) on the modeled array,
// costed by the fast model (src/cost/cost_model.h): the plan its tiler chose, cycles and their stall
// causes, MACs and utilization, bytes per level and role, energy per component. With --reference the
// cost reference (src/costref) steps the same plan and every counter is compared (exit 1 when they
// disagree); --trace writes the reference's timeline as a Chrome trace.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <optional>

#include "src/base/error.h"
#include "src/base/limits.h"
#include "src/cli/command.h"
#include "src/cli/cost_reference.h"
#include "src/cli/outputs.h"
#include "src/cost/cost_model.h"
#include "src/cost/report.h"
#include "src/costref/compare.h"
#include "src/io/output_file.h"
#include "src/io/untrusted.h"
#include "src/ops/conv.h"
#include "src/spec/spec_toml.h"
#include "src/topology/problem_string.h"

namespace st::cli {
namespace {

struct CostArgs {
  std::string spec = std::string(kDefaultPreset), gemm, conv, direction = "fwd", lowering = "bp-im2col";
  std::string mapping;  // --mapping: overrides the spec's [array] conv_mapping
  std::string trace, json;
  std::string c_format = "accumulator";   // --gemm: C in DRAM in the accumulator format or the array's
  bool reference = false, force = false;
  bool direction_given = false, lowering_given = false, c_format_given = false;
};

// --gemm M,N,K: three positive integers whose products (operands, MACs) fit 64 bits.
GemmShape parse_gemm(const std::string& text) {
  int64_t v[3] = {0, 0, 0};
  size_t i = 0;
  int n = 0;
  auto bad = [&](const std::string& why) {
    return UserError(fmt::format("--gemm must be M,N,K (three positive integers), got '{}': {}", io::printable(text),
                                 why));
  };
  for (; n < 3; ++n) {
    if (i >= text.size() || text[i] < '0' || text[i] > '9')
      throw bad(n > 0 && i >= text.size() ? fmt::format("{} of 3 numbers", n) : "not a number");
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      const auto next = checked_product({v[n], 10});
      if (!next || *next > INT64_MAX - (text[i] - '0')) throw bad("a number does not fit 64 bits");
      v[n] = *next + (text[i] - '0');
    }
    if (v[n] == 0) throw bad("a size is 0");
    if (n < 2) {
      if (i >= text.size()) throw bad(fmt::format("{} of 3 numbers", n + 1));
      if (text[i] != ',') throw bad(fmt::format("unexpected '{}'", io::printable(text.substr(i, 1))));
      ++i;
    }
  }
  if (i != text.size()) throw bad(fmt::format("unexpected '{}' after K", io::printable(text.substr(i, 20))));
  const GemmShape g{v[0], v[1], v[2]};
  const std::string where = fmt::format("--gemm {}", text);
  checked_elements({g.M, g.K}, where, "operand A (M x K)");
  checked_elements({g.K, g.N}, where, "operand B (K x N)");
  checked_elements({g.M, g.N}, where, "the output C (M x N)");
  if (!checked_product({g.M, g.N, g.K})) throw UserError(where + ": M x N x K MACs do not fit 64 bits");
  return g;
}

Direction parse_direction(const std::string& s) {
  for (Direction d : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
    if (s == to_string(d)) return d;
  throw UserError(fmt::format("--direction must be fwd, bwd_data or bwd_weights (got '{}')", io::printable(s)));
}

// What a run costs, resolved and checked: its title and its GEMMs' descriptions.
struct Job {
  std::string title;
  nlohmann::json what;
  std::vector<GemmWork> works;
};

Job resolve_job(const CostArgs& a, const Spec& spec) {
  Job j;
  if (!a.gemm.empty()) {
    const GemmShape g = parse_gemm(a.gemm);
    GemmWork w = dense_gemm_work(g, spec.array.format);
    // C leaves the array as accumulators; stored in the array's format it is rounded (cast) on its way
    // to DRAM, as a framework's bf16 matmul returns bf16.
    if (a.c_format == "array") w.c.dram_elem_bytes = format_bytes(spec.array.format);
    else if (a.c_format != "accumulator")
      throw UserError(fmt::format("--c-format must be accumulator or array, got '{}'", io::printable(a.c_format)));
    w.tag.layer = fmt::format("gemm{}x{}x{}", g.M, g.N, g.K);
    j.title = fmt::format("GEMM M={} N={} K={}", g.M, g.N, g.K);
    j.what = {{"gemm", {{"m", g.M}, {"n", g.N}, {"k", g.K}}}, {"c_format", a.c_format}};
    j.works.push_back(w);
    return j;
  }
  const ConvLayer layer = parse_conv_problem(a.conv);
  const Direction dir = parse_direction(a.direction);
  const Lowering low = lowering_from_flag(a.lowering);
  const std::string problem = layer.desc.str();
  const bool ct = spec.array.conv_mapping == ConvMapping::channel_tap;
  j.title = fmt::format("conv {}{}, {}, {}{}", layer.name.empty() ? "" : "'" + layer.name + "' ", problem,
                        to_string(dir), to_string(low), ct ? ", channel_tap" : "");
  j.what = {{"conv", {{"problem", problem}, {"name", layer.name}, {"direction", to_string(dir)},
                      {"lowering", to_string(low)}, {"mapping", to_string(spec.array.conv_mapping)}}}};
  j.works = conv_work(layer.desc, dir, low, spec, layer.name.empty() ? problem : layer.name);
  return j;
}

// ---- printing ------------------------------------------------------------------------------------

// A counter value: integers as integers, anything else with 6 significant digits.
std::string num(double v) {
  if (std::abs(v) < 1e15 && v == std::floor(v)) return fmt::format("{}", int64_t(v));
  return fmt::format("{:.6g}", v);
}

std::string sig6(double v) { return fmt::format("{:.6g}", v); }

// The headline figures of a set of counters (the fast model's or the reference's); time, energy
// and utilization are report.h's derived figures.
struct Figures {
  double cycles, compute, stall, seconds, macs, useful, utilization, dram, sram, energy;
};
Figures figures(const Stats& s, const Spec& spec) {
  const Derived d = derive(s, spec);
  return {s.get("cycles.total"), s.get("cycles.compute"), s.get("cycles.stall"), d.seconds, s.get("macs.issued"),
          s.get("macs.useful"), d.utilization, s.sum_prefix("bytes.dram."), s.sum_prefix("bytes.sram."),
          d.energy_pj};
}

// The report table: one row per figure, the fast model's column and (with --reference) the
// reference's, then a note.
class Table {
 public:
  Table(const Stats& fast, const Stats* ref) : fast_(fast), ref_(ref) {}
  void header() const {
    fmt::print("  {:<30} {:>16}{}\n", "", "fast model", ref_ ? fmt::format(" {:>16}", "reference") : "");
  }
  void section(const std::string& title) const { fmt::print("  {}\n", title); }
  void row(const std::string& label, const std::string& fast, const std::string& ref, const std::string& note = "") const {
    fmt::print("  {:<30} {:>16}{}{}\n", label, fast, ref_ ? fmt::format(" {:>16}", ref) : "",
               note.empty() ? "" : "   " + note);
  }
  // Every counter named `prefix`... in either column, labelled without the prefix, in `format`.
  void counters(const std::string& prefix, std::string (*format)(double) = num) const {
    for (const std::string& k : names([&](const std::string& n) { return n.starts_with(prefix); }))
      row("  " + k.substr(prefix.size()), format(fast_.get(k)), ref_ ? format(ref_->get(k)) : "");
  }
  // Every counter none of the sections shows (folds, tiles, pe.*, storage.extra, ...).
  void others() const {
    for (const std::string& k : names([](const std::string& n) {
           for (const char* p : {"cycles.", "stall.", "macs.", "bytes.", "energy."})
             if (n.starts_with(p)) return false;
           return true;
         }))
      row(k, num(fast_.get(k)), ref_ ? num(ref_->get(k)) : "");
  }
  bool has(const std::string& prefix) const {
    return !names([&](const std::string& n) { return n.starts_with(prefix); }).empty();
  }

 private:
  // Names of the counters of either column that `keep` accepts, sorted.
  template <class Keep>
  std::set<std::string> names(Keep keep) const {
    std::set<std::string> out;
    for (const Stats* s : {&fast_, ref_})
      if (s)
        for (const auto& [k, v] : s->values())
          if (keep(k)) out.insert(k);
    return out;
  }
  const Stats& fast_;
  const Stats* ref_;
};

void print_report(const Table& t, const Figures& f, const std::optional<Figures>& r, const Spec& spec) {
  auto ref = [&](double Figures::*m) { return r ? num((*r).*m) : std::string(); };
  t.header();
  t.row("cycles", num(f.cycles), ref(&Figures::cycles));
  t.row("  compute", num(f.compute), ref(&Figures::compute));
  t.row("  stall", num(f.stall), ref(&Figures::stall),
        f.cycles > 0 ? fmt::format("{:.3g}% of the cycles", 100 * f.stall / f.cycles) : "");
  t.row("seconds", sig6(f.seconds), r ? sig6(r->seconds) : "",
        fmt::format("at {} GHz", spec.clock_ghz));
  if (t.has("stall.")) {
    t.section("stall causes (cycles)");
    t.counters("stall.");
  }
  t.row("MACs issued", num(f.macs), ref(&Figures::macs));
  t.row("MACs useful", num(f.useful), ref(&Figures::useful));
  t.row("utilization", fmt::format("{:.2f}%", 100 * f.utilization), r ? fmt::format("{:.2f}%", 100 * r->utilization) : "",
        spec.array.count > 1
            ? fmt::format("useful MACs / ({} arrays x {}x{} PEs x cycles): each array's, on average", spec.array.count,
                          spec.array.rows, spec.array.cols)
            : fmt::format("useful MACs / ({}x{} PEs x cycles)", spec.array.rows, spec.array.cols));
  t.section("bytes (level.direction.role; SRAM: buffer.direction; edge: into the array)");
  t.counters("bytes.");
  t.row("DRAM bytes", num(f.dram), ref(&Figures::dram));
  t.row("SRAM bytes", num(f.sram), ref(&Figures::sram));
  t.others();
  t.section("energy (pJ)");
  t.counters("energy.", sig6);
  t.row("energy total (pJ)", sig6(f.energy), r ? sig6(r->energy) : "");
}

nlohmann::json plan_json(const CostedGemm& g) {
  return {{"m", g.work.shape.M},
          {"n", g.work.shape.N},
          {"k", g.work.shape.K},
          {"sub_gemms", g.work.sub_gemms},
          {"tile_m", g.plan.tile_m},
          {"tile_n", g.plan.tile_n},
          {"tile_k", g.plan.tile_k},
          {"loop_order", g.plan.loop_order},
          {"candidates_evaluated", g.plan.candidates_evaluated},
          {"steps", g.size.steps},
          {"dma_requests", g.size.requests},
          {"cycles", g.fast.get("cycles.total")}};
}

int run_cost(const CostArgs& a) {
  if (a.gemm.empty() == a.conv.empty())
    throw UserError(a.gemm.empty() ? "give --gemm M,N,K or --conv PROBLEM (one of them)"
                                   : "--gemm and --conv exclude each other (cost one GEMM or one conv layer)");
  if (!a.gemm.empty() && (a.direction_given || a.lowering_given || !a.mapping.empty()))
    throw UserError(fmt::format("{} applies to --conv only (a --gemm is one dense GEMM)",
                                a.direction_given ? "--direction" : a.lowering_given ? "--lowering" : "--mapping"));
  if (!a.conv.empty() && a.c_format_given)
    throw UserError("--c-format applies to --gemm only (a conv layer's tensors have their storage formats)");
  const ConvMapping mapping = a.mapping.empty() ? ConvMapping::im2col : conv_mapping_from_flag(a.mapping);
  check_outputs({{a.json, "--json"}, {a.trace, "--trace"}});
  Spec spec = load_spec(a.spec);
  if (!a.mapping.empty()) spec.array.conv_mapping = mapping;
  const Job job = resolve_job(a, spec);
  // --trace shows the reference's timeline, so it runs the reference (and its comparison) too.
  const bool reference = a.reference || !a.trace.empty();
  const std::string ref_flag = a.reference ? "--reference" : "--trace";

  std::vector<CostedGemm> gemms;
  Stats fast_total;
  for (const GemmWork& w : job.works) {
    CostedGemm g;
    g.work = w;
    g.fast = cost_gemm(w, spec, &g.plan);
    g.size = schedule_size(w, spec, g.plan);
    fast_total += g.fast;
    gemms.push_back(std::move(g));
  }
  std::optional<Stats> ref_total;                 // the reference's counters the registry knows, summed
  std::map<std::string, double> ref_counters;     // all of them (an unknown one is also a disagreement)
  std::vector<std::string> disagreements;
  bool generated = false;     // a GEMM reads an operand through an address generator: timing within a bound
  double worst_timing = 0;    // the largest timing difference of such a GEMM (fraction of its cycles)
  if (reference) {
    check_reference_work(gemms, !a.trace.empty(), a.force, ref_flag);
    run_reference(gemms, spec, !a.trace.empty());
    ref_total.emplace();
    for (size_t i = 0; i < gemms.size(); ++i) {
      for (const auto& [k, v] : gemms[i].reference->counters) {
        ref_counters[k] += v;
        if (find_counter(k)) ref_total->add(k, v);
      }
      for (const std::string& d : gemms[i].disagreements)
        disagreements.push_back(gemms.size() > 1 ? fmt::format("GEMM {}: {}", i + 1, d) : d);
      if (gemms[i].work.a.generator || gemms[i].work.b.generator) {
        generated = true;
        worst_timing = std::max(worst_timing, costref::timing_difference(gemms[i].fast.values(),
                                                                         gemms[i].reference->counters));
      }
    }
  }

  const ArrayConfig& arr = spec.array;
  fmt::print("== systrain cost: {} on {} ==\n", job.title, spec.name);
  fmt::print("  spec {}: {}{}x{} {} array{}, {} operands, {} GHz; DRAM {} GB/s, {} ns, {} request(s) in flight\n", spec.name,
             arr.count > 1 ? fmt::format("{} x ", arr.count) : "", arr.rows, arr.cols, to_string(arr.dataflow),
             arr.count > 1 ? "s sharing the buffers" : "", to_string(arr.format), spec.clock_ghz,
             spec.dram.bandwidth_gbps, spec.dram.latency_ns, spec.dram.max_outstanding);
  for (size_t i = 0; i < gemms.size(); ++i) {
    const CostedGemm& g = gemms[i];
    const GemmShape& s = g.work.shape;
    fmt::print("  {}M={} N={} K={}{}\n", gemms.size() > 1 ? fmt::format("GEMM {} of {}: ", i + 1, gemms.size()) : "GEMM ",
               s.M, s.N, s.K, g.work.sub_gemms > 1 ? fmt::format(" ({} sub-GEMMs)", g.work.sub_gemms) : "");
    fmt::print("    plan: tile {} x {} x {} (m x n x k), loop order {} (outermost first), {} candidates evaluated\n",
               g.plan.tile_m, g.plan.tile_n, g.plan.tile_k, g.plan.loop_order, g.plan.candidates_evaluated);
    fmt::print("    schedule: {} tile steps, {} DMA requests", num(g.size.steps), num(g.size.requests));
    if (gemms.size() > 1) {
      fmt::print("; cycles {} (compute {}, stall {})", num(g.fast.get("cycles.total")),
                 num(g.fast.get("cycles.compute")), num(g.fast.get("cycles.stall")));
      if (g.reference) {
        const auto total = g.reference->counters.find("cycles.total");
        fmt::print(", reference {}", total == g.reference->counters.end() ? "-" : num(total->second));
      }
    }
    fmt::print("\n");
  }
  fmt::print("\n");
  if (gemms.size() > 1) fmt::print("  sum of the {} GEMMs\n", gemms.size());
  const Figures f = figures(fast_total, spec);
  std::optional<Figures> r;
  if (ref_total) r = figures(*ref_total, spec);
  print_report(Table(fast_total, ref_total ? &*ref_total : nullptr), f, r, spec);
  int64_t trace_slices = 0;
  for (const CostedGemm& g : gemms)
    if (g.reference) trace_slices += int64_t(g.reference->slices.size());
  if (reference)
    fmt::print("\n  reference: {}\n",
               disagreements.empty()
                   ? (generated ? fmt::format("agrees with the fast model: bytes and MACs exactly, energies within a "
                                              "relative 1e-12, timing within the stated {:.0f}% of the reference's "
                                              "cycles (generated operands; largest difference here {:.3f}%)",
                                              100 * costref::kGeneratedCycleBound, 100 * worst_timing)
                                : std::string("agrees with the fast model on every counter (integers exactly, energies "
                                              "within a relative 1e-12)"))
                                     : fmt::format("DISAGREES with the fast model on {} counter(s) (listed on stderr)",
                                                   disagreements.size()));
  if (!a.trace.empty()) fmt::print("  trace: {} ({} slices)\n", a.trace, trace_slices);

  io::OutputSet outputs;
  if (!a.json.empty()) {
    nlohmann::json j = job.what;
    j["spec"] = spec.name;
    j["cycles"] = f.cycles;
    j["compute_cycles"] = f.compute;
    j["stall_cycles"] = f.stall;
    j["seconds"] = f.seconds;
    j["macs"] = f.macs;
    j["macs_useful"] = f.useful;
    j["utilization"] = f.utilization;
    j["array_count"] = spec.array.count;
    j["dram_bytes"] = f.dram;
    j["sram_bytes"] = f.sram;
    j["energy_pj"] = f.energy;
    double steps = 0, requests = 0;
    nlohmann::json plans = nlohmann::json::array();
    for (const CostedGemm& g : gemms) {
      plans.push_back(plan_json(g));
      steps += g.size.steps;
      requests += g.size.requests;
    }
    if (gemms.size() == 1) j["plan"] = plans[0];
    else j["plans"] = plans;
    j["steps"] = steps;
    j["dma_requests"] = requests;
    j["counters"] = fast_total.values();
    if (ref_total) {
      j["reference_cycles"] = r->cycles;
      j["reference_dram_bytes"] = r->dram;
      j["reference_sram_bytes"] = r->sram;
      j["reference_energy_pj"] = r->energy;
      j["reference_counters"] = ref_counters;
      j["agree"] = disagreements.empty();
      // Generated operands: the timing difference (fraction of the reference's cycles) and its bound.
      if (generated) {
        j["reference_timing_difference"] = worst_timing;
        j["reference_timing_bound"] = costref::kGeneratedCycleBound;
      }
      j["disagreements"] = disagreements;
    }
    if (!a.trace.empty()) j["trace_slices"] = trace_slices;
    // A problem's name came from the user: a byte that is not UTF-8 is replaced (U+FFFD), not fatal.
    outputs.add_text(a.json, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "--json");
  }
  if (!a.trace.empty()) {
    outputs.add_writer(
        a.trace,
        [&gemms, &spec, title = fmt::format("systrain cost: {} on {}", job.title, spec.name)](io::PendingFile& out) {
          write_cost_trace(out, gemms, spec, title);
        },
        "--trace");
  }
  std::fflush(stdout);  // the report first when an output streams into stdout
  outputs.commit();
  for (const std::string& d : disagreements)
    std::fprintf(stderr, "systrain: cost: the fast model and the reference disagree: %s\n", d.c_str());
  return disagreements.empty() ? 0 : 1;
}

const Registrar kReg{Command{
    "cost",
    "Cost one GEMM or one conv layer on the modeled array: plan, cycles, stalls, bytes, energy; optionally "
    "against the cost reference, with its timeline as a Chrome trace",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<CostArgs>();
      sub.add_option("--spec", a->spec, "accelerator preset name or TOML file")->capture_default_str();
      sub.add_option("--gemm", a->gemm, "one dense GEMM C[M,N] = A[M,K] B[K,N]: M,N,K");
      sub.add_option("--conv", a->conv,
                     "one conv layer as a benchdnn problem string, e.g. mb64ic64ih56oc64kh3ph1 (README: fields, "
                     "defaults)");
      auto* dir = sub.add_option("--direction", a->direction, "--conv: fwd | bwd_data | bwd_weights")
                      ->capture_default_str();
      auto* low = sub.add_option("--lowering", a->lowering, "--conv: explicit | bp-im2col | zero-skip")
                      ->capture_default_str();
      sub.add_option("--mapping", a->mapping,
                     "--conv: im2col | channel_tap, how the conv meets the array (default: the spec's [array] "
                     "conv_mapping)");
      sub.add_flag("--reference", a->reference,
                   "also run the cost reference (event-driven) on the fast model's plan and compare every counter "
                   "(exit 1 when they disagree)");
      sub.add_option("--trace", a->trace,
                     "write the reference's timeline as Chrome trace JSON (Perfetto, chrome://tracing); implies "
                     "--reference");
      sub.add_option("--json", a->json, "write the figures as JSON to this file");
      sub.add_flag("--force", a->force, "run the reference even beyond its step / trace-slice limits");
      auto* cf = sub.add_option("--c-format", a->c_format,
                                "--gemm: C in DRAM as accumulators (fp32/int32) or in the array's format (array: "
                                "rounded on the way out, as a bf16 matmul returns bf16)")
                     ->capture_default_str();
      return [a, dir, low, cf] {
        a->direction_given = dir->count() > 0;
        a->lowering_given = low->count() > 0;
        a->c_format_given = cf->count() > 0;
        return run_cost(*a);
      };
    }}};

}  // namespace
}  // namespace st::cli
