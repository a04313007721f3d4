// systrain gradcheck: the emulated network's gradients against a oneDNN reference network.
#include <fmt/format.h>

#include <cstdio>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/io/output_file.h"
#include "src/train/gradcheck.h"

namespace st::cli {
namespace {

void print_gradcheck(const GradcheckConfig& c, const GradcheckResult& r) {
  fmt::print("gradcheck {} (spec {}, lowering {})\n", c.model, c.spec, c.lowering);
  fmt::print("1. same mathematics: the emulator in OS order (oneDNN's) against oneDNN: loss {:.6f} vs {:.6f}\n", r.loss,
             r.reference_loss);
  fmt::print("  {:<40} {:>12} {:>10}  {}\n", "tensor", "max rel err", "tolerance", "");
  for (const auto& e : r.errors)
    fmt::print("  {:<40} {:>12.3e} {:>10.1e}  {}\n", e.name, e.max_rel_error, e.tolerance, e.passed ? "ok" : "FAIL");
  if (r.kinks.flips() == 0) {
    fmt::print("  kinks: no ReLU or max-pool decision differs between the two runs\n");
  } else {
    fmt::print("  kinks: {} ReLU and {} max-pool decisions differ; {} beyond the bound of zero{}\n", r.kinks.relu_flips,
               r.kinks.pool_flips, r.kinks.beyond_bound, r.kinks.beyond_bound ? " (a bug, not a kink)" : "");
    for (const auto& k : r.kinks.kinks)
      fmt::print("    {:<28} element {:>8}  emu {:>11.3e}  ref {:>11.3e}  bound {:.3e}  {}\n", k.node, k.index, k.emu, k.ref,
                 k.bound, k.within ? "ok" : "FAIL");
    fmt::print("  the reference was rerun with the emulator's decisions (max relative error before: {:.3e})\n",
               r.untransplanted_max_rel_error);
  }
  if (r.spec_order_max_rel_error >= 0) {
    fmt::print("  (reported, not judged: the spec's own order against oneDNN: max relative error {:.3e}; {} decisions differ",
               r.spec_order_max_rel_error, r.spec_order_flips);
    if (r.spec_order_flips > 0)
      fmt::print(", {} beyond the bound; with them transplanted: {:.3e}", r.spec_order_kinks.beyond_bound,
                 r.spec_order_transplanted_max_rel_error);
    fmt::print(". Step 2 proves its order)\n");
  }
  if (r.format_error > 0)
    fmt::print("  (for information: the spec's parameter gradients differ from an all-fp32 network by up to {:.3e})\n",
               r.format_error);
  if (r.same_order.run) {
    if (r.same_order.passed) {
      fmt::print("2. same order: bitwise equal to the same-order reference network ({}) on all {} tensors\n",
                 r.same_order.gemm, r.same_order.tensors);
    } else {
      std::string names;
      for (const auto& n : r.same_order.differing) names += " " + n;
      fmt::print("2. same order: {} of {} tensors DIFFER from the same-order reference network ({}):{}\n",
                 r.same_order.differing.size(), r.same_order.tensors, r.same_order.gemm, names);
    }
  } else {
    fmt::print("2. same order: not run (--same-order checks the spec's own order bit for bit)\n");
  }
  fmt::print("{}: max relative error {:.3e} over {} tensors\n", r.passed ? "PASSED" : "FAILED", r.max_rel_error,
             r.errors.size());
}

Registrar reg{{"gradcheck", "Check every gradient of one training step against a oneDNN reference network",
               [](CLI::App& sub) -> std::function<int()> {
                 auto c = std::make_shared<GradcheckConfig>();
                 auto json = std::make_shared<std::string>();
                 sub.add_option("--model", c->model, "resnet8|20|32|44|56 or resnet18|34|50")->capture_default_str();
                 sub.add_option("--width", c->width, "channel multiplier")->capture_default_str();
                 sub.add_option("--shortcut", c->shortcut, "conv | a")->capture_default_str();
                 sub.add_option("--batch", c->batch, "batch size")->capture_default_str();
                 sub.add_option("--channels", c->channels, "input channels (0: 1 CIFAR-style, 3 ImageNet-style)");
                 sub.add_option("--input", c->input, "input height = width (0: 16 CIFAR-style, 32 ImageNet-style)");
                 sub.add_option("--classes", c->classes, "classes")->capture_default_str();
                 sub.add_option("--spec", c->spec, "accelerator preset or TOML file")->capture_default_str();
                 sub.add_option("--format", c->format, "override the spec's operand format: fp32 | bf16 | fp16");
                 sub.add_option("--lowering", c->lowering, "explicit | bp-im2col | zero-skip")->capture_default_str();
                 sub.add_option("--seed", c->seed, "seed of weights and batch")->capture_default_str();
                 sub.add_option("--tolerance", c->tolerance,
                                "override the format's tolerance: a relative error in (0, 1); 0 keeps the format's");
                 sub.add_option("--dump", c->dump, "write batch, parameters, gradients, loss and network to HDF5");
                 sub.add_option("--json", *json, "write the result as JSON");
                 sub.add_option("--loss-scale", c->loss_scale,
                                "loss scale S (a power of two): backward with the loss gradient x S, gradients x 1/S "
                                "before the comparison")
                     ->capture_default_str();
                 sub.add_flag("--force", c->force, "run even when the estimated work is beyond the limit");
                 sub.add_flag("--same-order", c->same_order,
                              "also check the spec's own run bit for bit against the same-order reference network (slow)");
                 sub.add_flag("--pe-level", c->pe_level,
                              "--same-order with the cycle-stepped PE-level array as its GEMM (slower still)");
                 return [c, json] {
                   // Both outputs are checked before the networks run; --dump is HDF5 (a regular file).
                   if (!c->dump.empty()) io::check_output(c->dump, "--dump", io::OutputKind::regular_only);
                   check_outputs({{*json, "--json"}, {c->dump, "--dump"}});
                   GradcheckResult r = gradcheck(*c);
                   print_gradcheck(*c, r);
                   if (!json->empty()) {
                     std::fflush(stdout);  // the report first when --json streams into stdout
                     io::write_text_file(*json, r.to_json().dump(2) + "\n", "--json");
                   }
                   return r.passed ? 0 : 1;
                 };
               }}};

}  // namespace
}  // namespace st::cli
