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
                 return [c, json] {
                   // Both outputs are checked before the networks run; --dump is HDF5 (a regular file).
                   if (!c->dump.empty()) io::check_output(c->dump, "--dump", io::OutputKind::regular_only);
                   check_outputs({{*json, "--json"}, {c->dump, "--dump"}});
                   GradcheckResult r = gradcheck(*c);
                   fmt::print("gradcheck {} (lowering {}): loss {:.6f} vs oneDNN {:.6f}\n", c->model, c->lowering, r.loss,
                              r.reference_loss);
                   fmt::print("  {:<40} {:>12} {:>10}  {}\n", "tensor", "max rel err", "tolerance", "");
                   for (const auto& e : r.errors)
                     fmt::print("  {:<40} {:>12.3e} {:>10.1e}  {}\n", e.name, e.max_rel_error, e.tolerance,
                                e.passed ? "ok" : "FAIL");
                   if (r.format_error > 0)
                     fmt::print("  (for information: parameter gradients differ from an all-fp32 network by up to {:.3e})\n",
                                r.format_error);
                   if (r.order_matched_max_rel_error >= 0)
                     fmt::print("  (the same network with the reference's order of accumulation, OS: max relative error {:.3e})\n",
                                r.order_matched_max_rel_error);
                   fmt::print("{}: max relative error {:.3e} over {} tensors{}\n", r.passed ? "PASSED" : "FAILED",
                              r.max_rel_error, r.errors.size(),
                              r.rule == "order-matched"
                                  ? " (order-matched rule: the OS run is within tolerance and the spec's order moves the "
                                    "gradients less than the format does)"
                                  : "");
                   if (!json->empty()) {
                     std::fflush(stdout);  // the report first when --json streams into stdout
                     io::write_text_file(*json, r.to_json().dump(2) + "\n", "--json");
                   }
                   return r.passed ? 0 : 1;
                 };
               }}};

}  // namespace
}  // namespace st::cli
