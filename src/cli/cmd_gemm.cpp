// systrain gemm: one random GEMM on the modeled array; with --check, proof that the fast kernel
// gives the PE-level reference's bits.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "kernels/systolic.h"
#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/io/output_file.h"
#include "src/project/work_limits.h"

namespace st::cli {
namespace {

struct GemmArgs {
  int64_t m = 256, n = 256, k = 256;
  int rows = 32, cols = 32;
  std::string dataflow = "ws", format = "bf16";
  uint64_t seed = 1;
  bool check = false;
  bool force = false;
  std::string json;
};

// Work limits (DESIGN.md "Errors": no input may hang a run). The host emulates ~2e10 MAC/s in fp32
// and ~2e9 in int8 on two cores; the PE-level reference steps ~4e7 PE-cycles a second.
constexpr double kMaxEmulatedMacs = 1e11;       // about a minute at worst (int8)
constexpr double kMaxReferencePeSteps = 2e9;    // about a minute
constexpr double kReferenceBytesPerPe = 48;     // kernels/systolic_ref.cpp: 4-6 register arrays of R x C

// Checks what a run would ask of the host before it allocates anything: the sizes must fit 64 bits,
// the operands (and the reference's copies) the memory, and the work the limits above unless
// --force.
void check_gemm_work(const GemmArgs& a, const ArrayConfig& cfg, const GemmShape& g) {
  const auto mk = checked_product({g.M, g.K}), kn = checked_product({g.K, g.N}), mn = checked_product({g.M, g.N});
  const auto macs = checked_product({g.M, g.N, g.K});
  if (!mk || !kn || !mn || !macs)
    throw UserError(fmt::format("--m {} x --n {} x --k {}: the GEMM's sizes do not fit 64 bits", g.M, g.N, g.K));
  // Operands A, B (1 byte in int8, else 4) and C (4); --check adds the reference's rounded copies of
  // A, B and its output, and the result of the reference.
  const double in_bytes = cfg.format == Format::int8 ? 1 : 4;
  double operands = in_bytes * (double(*mk) + double(*kn)) + 4.0 * double(*mn);
  if (a.check) operands += 4.0 * (double(*mk) + double(*kn)) + 8.0 * double(*mn);
  // The reference's PE registers: a few (value, valid) pairs and an accumulator per PE.
  const double pes = a.check ? kReferenceBytesPerPe * cfg.rows * double(cfg.cols) : 0.0;
  if (a.check && int64_t{cfg.rows} * cfg.cols > INT32_MAX)
    throw UserError(fmt::format("--check: the PE-level reference holds at most 2^31 PEs (got {}x{})", cfg.rows, cfg.cols));
  const double mem = host_memory_bytes();
  if (operands + pes > 0.8 * mem)
    throw UserError(fmt::format("GEMM M={} N={} K={}{} needs about {} of host memory, more than this machine's {} "
                                "allows; use a smaller {}",
                                g.M, g.N, g.K, a.check ? fmt::format(" with --check on a {}x{} array", cfg.rows, cfg.cols) : "",
                                gib_text(operands + pes), gib_text(mem),
                                pes > operands ? "array (--rows, --cols)" : "--m, --n or --k"));
  if (a.force) return;
  if (double(*macs) > kMaxEmulatedMacs)
    throw UserError(fmt::format("GEMM M={} N={} K={} is {:.3g} MACs to emulate, more than the limit of {:.0e} "
                                "(about a minute on this host); use a smaller GEMM, or pass --force to run it anyway",
                                g.M, g.N, g.K, double(*macs), kMaxEmulatedMacs));
  if (a.check) {
    // The reference steps every PE of the array every cycle.
    const double steps = double(gemm_compute_cycles(cfg, g)) * cfg.rows * double(cfg.cols);
    if (steps > kMaxReferencePeSteps)
      throw UserError(fmt::format("--check steps the PE-level reference {:.3g} PE-cycles ({} cycles x {} x {} PEs), "
                                  "more than the limit of {:.0e} (about a minute); use a smaller GEMM or array "
                                  "(--rows, --cols), or pass --force to run it anyway",
                                  steps, gemm_compute_cycles(cfg, g), cfg.rows, cfg.cols, kMaxReferencePeSteps));
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_gemm(const GemmArgs& a) {
  auto positive = [](const char* name, int64_t v) {
    if (v <= 0) throw UserError(fmt::format("--{} must be a positive integer (got {})", name, v));
  };
  positive("m", a.m); positive("n", a.n); positive("k", a.k);
  positive("rows", a.rows); positive("cols", a.cols);
  auto df = parse_dataflow(a.dataflow);
  if (!df) throw UserError(fmt::format("--dataflow must be os, ws or is (got '{}')", a.dataflow));
  auto f = parse_format(a.format);
  if (!f) throw UserError(fmt::format("--format must be fp32, bf16, fp16 or int8 (got '{}')", a.format));
  check_outputs({{a.json, "--json"}});

  ArrayConfig cfg{a.rows, a.cols, *df, *f};
  GemmShape g{a.m, a.n, a.k};
  check_gemm_work(a, cfg, g);
  std::mt19937_64 rng(a.seed);
  const int64_t macs = g.M * g.N * g.K;
  const int64_t cycles = gemm_compute_cycles(cfg, g);
  const double util = double(macs) / (double(cycles) * cfg.rows * cfg.cols);
  nlohmann::json j = {{"m", g.M}, {"n", g.N}, {"k", g.K}, {"rows", cfg.rows}, {"cols", cfg.cols},
                      {"dataflow", a.dataflow}, {"format", a.format}, {"seed", a.seed},
                      {"cycles", cycles}, {"folds", gemm_folds(cfg, g)}, {"macs", macs},
                      {"utilization", util}};
  fmt::print("GEMM M={} N={} K={} on a {}x{} {} array, {} operands\n", g.M, g.N, g.K, cfg.rows,
             cfg.cols, a.dataflow, a.format);
  fmt::print("  folds        {:>16}\n  cycles       {:>16}\n  MACs         {:>16}\n  utilization  {:>15.2f}%\n",
             gemm_folds(cfg, g), cycles, macs, 100 * util);

  if (*f == Format::int8) {
    std::vector<int8_t> A(g.M * g.K), B(g.K * g.N);
    for (auto& x : A) x = static_cast<int8_t>(int(rng() % 256) - 128);
    for (auto& x : B) x = static_cast<int8_t>(int(rng() % 256) - 128);
    std::vector<int32_t> C(g.M * g.N);
    auto t0 = std::chrono::steady_clock::now();
    systolic_gemm_i8(cfg, g, A.data(), B.data(), C.data());
    double t = seconds_since(t0);
    fmt::print("  emulation    {:>14.3f} s ({:.2f} GMAC/s on the host)\n", t, macs / t * 1e-9);
    j["host_seconds"] = t;
    if (a.check) {
      std::vector<int32_t> R(C.size());
      int64_t rc = systolic_gemm_reference_i8(cfg, g, A.data(), B.data(), R.data());
      bool eq = R == C;
      fmt::print("  PE-level reference: {} cycles, bits {}\n", rc, eq ? "identical" : "DIFFER");
      j["bitwise_equal_reference"] = eq;
      j["reference_cycles"] = rc;
    }
  } else {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> A(g.M * g.K), B(g.K * g.N), C(g.M * g.N);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    auto t0 = std::chrono::steady_clock::now();
    systolic_gemm(cfg, g, {A.data(), g.K}, {B.data(), g.N}, C.data(), g.N);
    double t = seconds_since(t0);
    fmt::print("  emulation    {:>14.3f} s ({:.2f} GFLOP/s on the host)\n", t, 2.0 * macs / t * 1e-9);
    j["host_seconds"] = t;
    if (a.check) {
      std::vector<float> R(C.size());
      auto t1 = std::chrono::steady_clock::now();
      int64_t rc = systolic_gemm_reference(cfg, g, {A.data(), g.K}, {B.data(), g.N}, R.data(), g.N);
      double tr = seconds_since(t1);
      int64_t diff = 0;
      for (size_t i = 0; i < C.size(); ++i) diff += std::memcmp(&C[i], &R[i], 4) != 0;
      // Naive fp64 GEMM on the rounded operands: how far the modeled arithmetic is from exact.
      double max_rel = 0;
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t n = 0; n < g.N; ++n) {
          double s = 0, mag = 0;
          for (int64_t k = 0; k < g.K; ++k) {
            double p = double(round_to(*f, A[m * g.K + k])) * round_to(*f, B[k * g.N + n]);
            s += p;
            mag += std::fabs(p);
          }
          max_rel = std::max(max_rel, std::fabs(C[m * g.N + n] - s) / std::max(mag, 1e-30));
        }
      fmt::print("  PE-level reference: {} cycles ({:.2f} s), {} of {} outputs differ: bits {}\n", rc,
                 tr, diff, C.size(), diff == 0 ? "identical" : "DIFFER");
      fmt::print("  naive fp64 GEMM: max |error| / sum|a*b| = {:.3g}\n", max_rel);
      j["bitwise_equal_reference"] = diff == 0;
      j["reference_cycles"] = rc;
      j["cycles_equal_closed_form"] = rc == cycles;
      j["max_rel_error_vs_fp64"] = max_rel;
    }
  }
  if (!a.json.empty()) {
    std::fflush(stdout);  // the summary first when --json streams into stdout
    io::write_text_file(a.json, j.dump(2) + "\n", "--json");
  }
  if (a.check && !j["bitwise_equal_reference"].get<bool>()) return 1;
  return 0;
}

Registrar reg{{"gemm", "Run one random GEMM on the modeled systolic array and report cycles, MACs, utilization",
               [](CLI::App& sub) -> std::function<int()> {
                 auto a = std::make_shared<GemmArgs>();
                 sub.add_option("--m", a->m, "rows of A and C")->capture_default_str();
                 sub.add_option("--n", a->n, "columns of B and C")->capture_default_str();
                 sub.add_option("--k", a->k, "reduction length")->capture_default_str();
                 sub.add_option("--rows", a->rows, "array rows")->capture_default_str();
                 sub.add_option("--cols", a->cols, "array columns")->capture_default_str();
                 sub.add_option("--dataflow", a->dataflow, "os | ws | is")->capture_default_str();
                 sub.add_option("--format", a->format, "fp32 | bf16 | fp16 | int8")->capture_default_str();
                 sub.add_option("--seed", a->seed, "random seed of the operands")->capture_default_str();
                 sub.add_flag("--check", a->check, "also run the PE-level reference and a naive GEMM");
                 sub.add_flag("--force", a->force,
                              "run even when the GEMM (or the --check reference) is beyond the work limit");
                 sub.add_option("--json", a->json, "write the figures as JSON to this file");
                 return [a] { return run_gemm(*a); };
               }}};

}  // namespace
}  // namespace st::cli
