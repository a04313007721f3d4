// systrain train: a ResNet learns on a real dataset on the modeled accelerator; the report gives
// accuracy, loss and what the accelerator spent.
#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/mpi/mpi_replicas.h"
#include "src/train/trainer.h"

namespace st::cli {
namespace {

void print_report(const nlohmann::json& r) {
  auto num = [&](const char* k) { return r.contains(k) ? r[k].get<double>() : 0.0; };
  fmt::print("\n== systrain train: {} on {}, spec {}, lowering {}, batch {} ==\n", r["model"].get<std::string>(),
             r["dataset"].get<std::string>(), r["spec"].get<std::string>(), r["lowering"].get<std::string>(),
             r["batch"].get<int64_t>());
  fmt::print("  steps run            {:>14}\n", r["steps"].get<int64_t>());
  if (num("test_accuracy") >= 0) fmt::print("  test accuracy        {:>13.2f}%\n", 100 * num("test_accuracy"));
  fmt::print("  final loss           {:>14.4f}\n", num("final_loss"));
  if (r.contains("loss_scale")) {
    const auto& l = r["loss_scale"];
    fmt::print("  loss scale           {} -> {} (range {}..{}; {} growths, {} backoffs), {} skipped steps\n",
               l["initial_scale"].get<double>(), l["final_scale"].get<double>(), l["min_scale"].get<double>(),
               l["max_scale"].get<double>(), l["growths"].get<int64_t>(), l["backoffs"].get<int64_t>(),
               l["skipped_steps"].get<int64_t>());
  }
  fmt::print("  host throughput      {:>10.1f} img/s ({:.1f} s training)\n", num("images_per_second"),
             num("host_train_seconds"));
  if (!r.contains("cycles")) return;
  fmt::print("  accelerator cycles   {:>14.4g}  ({:.4g} s at the spec's clock; {:.1f}% stalls)\n", num("cycles"),
             num("accelerator_seconds"), 100 * num("stall_cycles") / std::max(1.0, num("cycles")));
  fmt::print("  energy               {:>12.4g} J  (average power {:.3g} W)\n", num("energy_j"), num("avg_power_w"));
  fmt::print("  DRAM bytes           {:>14.4g}\n  SRAM bytes           {:>14.4g}\n", num("dram_bytes"), num("sram_bytes"));
  fmt::print("  non-conv share       {:>13.1f}% of time, {:.1f}% of energy\n", 100 * num("non_conv_time_share"),
             100 * num("non_conv_energy_share"));
  fmt::print("  by phase (cycles):");
  for (auto& [k, v] : r["by_phase"].items()) fmt::print(" {} {:.3g}", k, v["cycles"].get<double>());
  fmt::print("\n  by op kind (cycles, energy):\n");
  for (auto& [k, v] : r["by_kind"].items())
    fmt::print("    {:<18} {:>12.4g} cycles {:>10.4g} J\n", k, v["cycles"].get<double>(), v["energy_j"].get<double>());
  const auto& b = r["backprop_vs_explicit"];
  fmt::print("  conv backprop vs explicit im2col (per step): cycles -{:.1f}%, DRAM bytes -{:.1f}%, SRAM bytes -{:.1f}%\n",
             100 * b["cycles"]["saving"].get<double>(), 100 * b["dram_bytes"]["saving"].get<double>(),
             100 * b["sram_bytes"]["saving"].get<double>());
}

void print_data_parallel(const nlohmann::json& r) {
  if (!r.contains("data_parallel")) return;
  const auto& d = r["data_parallel"];
  fmt::print("  data parallel        {} replicas x batch {} ({} BN, {} all-reduce in {} buckets, {} on the wire); "
             "accelerator figures per replica\n",
             d["replicas"].get<int64_t>(), d["batch_per_replica"].get<int64_t>(),
             d["sync_bn"].get<bool>() ? "synchronized" : "per-replica", d["topology"].get<std::string>(),
             d["gradient_buckets"].get<int64_t>(), d["wire_format"].get<std::string>());
}

Registrar reg{{"train", "Train a ResNet on a dataset on the modeled accelerator and report its cost",
               [](CLI::App& sub) -> std::function<int()> {
                 auto c = std::make_shared<TrainConfig>();
                 sub.add_option("--model", c->model, "resnet8|20|32|44|56 (CIFAR-style) or resnet18|34|50")->capture_default_str();
                 sub.add_option("--width", c->width, "channel multiplier")->capture_default_str();
                 sub.add_option("--shortcut", c->shortcut, "CIFAR-style downsampling shortcut: conv (1x1+BN) or a (option A)")->capture_default_str();
                 sub.add_option("--dataset", c->dataset, "fashion-mnist | cifar10 | FILE.h5")->capture_default_str();
                 sub.add_option("--data-dir", c->data_dir, "dataset directory (fashion-mnist: /usr/share/datasets/fashion-mnist)");
                 sub.add_option("--limit-train", c->limit_train, "use only the first N training images");
                 sub.add_option("--limit-test", c->limit_test, "use only the first N test images");
                 sub.add_option("--epochs", c->epochs, "epochs of the plan (sets the schedule's horizon)")->capture_default_str();
                 sub.add_option("--steps", c->steps, "stop after this many steps (0: end of the plan)")->capture_default_str();
                 sub.add_option("--batch", c->batch, "batch size")->capture_default_str();
                 sub.add_option("--lr", c->lr, "peak learning rate")->capture_default_str();
                 sub.add_option("--momentum", c->momentum, "SGD momentum")->capture_default_str();
                 sub.add_option("--weight-decay", c->weight_decay, "SGD weight decay")->capture_default_str();
                 sub.add_option("--schedule", c->schedule, "cosine | constant | step")->capture_default_str();
                 sub.add_option("--warmup-steps", c->warmup_steps, "linear warm-up steps of the cosine schedule (-1: auto)");
                 sub.add_option("--spec", c->spec, "accelerator preset name or TOML file")->capture_default_str();
                 sub.add_option("--lowering", c->lowering, "explicit | bp-im2col | zero-skip")->capture_default_str();
                 sub.add_option("--loss-scale", c->loss_scale,
                                "loss scaling: none | static:S | dynamic | dynamic:S0 (S0 a power of two, default 65536); "
                                "auto: dynamic for an fp16 spec, none otherwise")
                     ->capture_default_str();
                 sub.add_option("--loss-scale-growth-interval", c->loss_scale_growth_interval,
                                "dynamic loss scaling: clean steps before the scale doubles")
                     ->capture_default_str();
                 // CLI11 reads an unsigned option with strtoull, which takes "-1" as 2^64-1: only plain
                 // decimal digits are a seed.
                 sub.add_option("--seed", c->seed, "seed of the initialization and the shuffling")
                     ->capture_default_str()
                     ->check(CLI::Validator(
                         [](std::string& s) -> std::string {
                           errno = 0;
                           if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos)
                             return "must be an integer in 0..18446744073709551615";
                           std::strtoull(s.c_str(), nullptr, 10);
                           return errno == ERANGE ? "must be an integer in 0..18446744073709551615" : "";
                         },
                         "UINT64"));
                 sub.add_option("--out", c->out_dir, "run directory (report.json, layers.csv, stats.h5, checkpoint.h5)")->capture_default_str();
                 sub.add_option("--resume", c->resume, "continue from this checkpoint");
                 sub.add_option("--checkpoint-every", c->checkpoint_every, "steps between checkpoints (0: each epoch and the end)");
                 sub.add_option("--json", c->json, "also write the report JSON here");
                 sub.add_flag("--no-eval", [c](int64_t) { c->evaluate = false; }, "skip the test-split evaluation");
                 sub.add_flag("--quiet", c->quiet, "no progress output");
                 auto dp = std::make_shared<bool>(false);
                 sub.add_flag("--data-parallel", *dp,
                              "one replica of a data-parallel run: start P of them with mpirun -np P (README "
                              "\"Scale-out\"); --batch stays the global batch");
                 sub.add_flag("--sync-bn", c->sync_bn,
                              "with --data-parallel: BN statistics over the global batch (default: per replica, as "
                              "PyTorch DDP)");
                 return [c, dp] {
                   if (c->sync_bn && !*dp) throw UserError("--sync-bn needs --data-parallel");
                   if (*dp)  // this process is one MPI rank (P = 1 without mpirun)
                     return run_replicated([&](MpiReplicas& rep) {
                       c->replicas = &rep;
                       TrainResult r = train(*c);
                       if (rep.rank() == 0) {
                         print_report(r.report);
                         print_data_parallel(r.report);
                       }
                       return 0;
                     });
                   TrainResult r = train(*c);
                   print_report(r.report);
                   return 0;
                 };
               }}};

}  // namespace
}  // namespace st::cli
