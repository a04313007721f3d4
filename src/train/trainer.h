#pragma once
// The training loop: a ResNet learns on a real dataset while every step runs on the modeled
// accelerator, and the accelerator's cost of the run is reported.
//
// Cost accounting: a layer's cost depends only on its shapes, so the first step of a run is executed
// with a Ledger as the work sink (every op's GemmWork / VectorWork is costed once) and its records are
// the cost of one step; the run's totals are that step's totals times the steps run. A test proves a
// second step's records are identical to the first's.
//
// Schedule and stopping: --epochs E fixes the plan (the learning-rate schedule's horizon is
// E x batches per epoch); --steps S stops this invocation after S more steps. A run resumed from a
// checkpoint keeps the horizon stored in it, so N steps + resume for M steps reproduces N+M steps
// in one run bit for bit, the stats series included (checkpoint.h).
//
// Outputs and failures: every output path is checked before the data is loaded, the run directory
// is locked for the life of the run (a second run on it is refused), the series (stats.h5) is
// rewritten atomically before every checkpoint, so a kill -9 or Ctrl-C leaves a complete checkpoint
// and a series that covers it. Crash tests inject faults through SYSTRAIN_FAULT (trainer.cpp).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace st {

class Replicas;

struct TrainConfig {
  std::string model = "resnet20";
  double width = 1.0;
  std::string shortcut = "conv";
  std::string dataset = "fashion-mnist";
  std::string data_dir;             // empty: the dataset's default location
  int64_t limit_train = -1, limit_test = -1;
  int64_t epochs = 3;
  int64_t steps = 0;                // 0: run to the end of the plan
  int64_t batch = 64;
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  std::string schedule = "cosine";  // cosine (with linear warm-up) | constant | step (x0.1 at 50%, 75%)
  int64_t warmup_steps = -1;        // -1: min(200, 5% of the plan)
  std::string spec = "tpu-like";
  std::string lowering = "bp-im2col";
  uint64_t seed = 1;
  std::string out_dir = "runs/train";
  std::string resume;               // checkpoint to continue from
  std::string json;                 // extra copy of the summary JSON
  int64_t checkpoint_every = 0;     // steps between checkpoints (0: at each epoch end and at the end)
  bool evaluate = true;             // test-split evaluation at each epoch end
  bool quiet = false;
  // fp16 loss scaling (src/train/loss_scale.h): none | static:S | dynamic | dynamic:S0, or auto
  // (dynamic for an fp16 spec, none otherwise); growth interval of the dynamic scaler.
  std::string loss_scale = "auto";
  int64_t loss_scale_growth_interval = 2000;
  // Fault injection for tests of the divergence path: before step N (1-based) one weight of the
  // first conv becomes NaN, so the loss of that step is NaN. 0: off.
  int64_t inject_nan_at_step = 0;
  // Fault injection for tests of loss scaling: after step N's (1-based) backward one parameter
  // gradient becomes +Inf (before the unscale pass and its overflow check). 0: off.
  int64_t inject_inf_grad_at_step = 0;
  // Data-parallel training (README "Scale-out", src/scaleout/replicas.h): this process is one of
  // replicas->size() replicas, each running batch / P samples of every global batch; the gradients
  // are all-reduced as [interconnect] says. Rank 0 alone writes the run directory. Null: one process
  // as before (and a single replica gives the same bits).
  Replicas* replicas = nullptr;
  bool sync_bn = false;             // BN statistics over the global batch (default: per replica)
};


struct TrainResult {
  nlohmann::json report;            // what report.json holds
  int64_t steps_run = 0;
  double final_loss = 0;
  double test_accuracy = -1;        // -1 when no evaluation ran
};

// Runs training; throws UserError on bad input, TrainingDiverged when the loss stops being finite.
TrainResult train(const TrainConfig& cfg);

}  // namespace st
