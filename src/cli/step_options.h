#pragma once
// The options of a shapes-only training step or inference forward (`project`, `dse`): which ResNet,
// on which input, batch and mode, on which accelerator and lowering. One definition, so the two
// subcommands cannot drift apart in names, defaults or checks.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/project/projection.h"
#include "src/spec/spec.h"

namespace st::cli {

struct StepOptions {
  std::string model = "resnet50", mode = "train", spec = "tpu-like", lowering = "bp-im2col";
  std::string mapping;  // --mapping: overrides the spec's [array] conv_mapping when given
  int64_t input = 224, batch = 32, classes = 1000, channels = 3;
  double width = 1.0;
  bool fold_bn = false;
};

// Declares --model --input --channels --batch --mode --spec --lowering --mapping --width --classes on `sub`.
void add_step_options(CLI::App& sub, StepOptions& o);

// The step the options describe, every value checked (one UserError naming the flag otherwise): the
// network (its shapes validated by the builder), the spec, the mode and the lowering. The costing's
// host work is bounded too (check_costing_work).
struct Step {
  NetDesc net;
  Spec spec;
  StepMode mode = StepMode::train;
  Lowering lowering = Lowering::bp_im2col;
};
Step resolve_step(const StepOptions& o);

}  // namespace st::cli
