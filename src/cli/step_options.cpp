#include "src/cli/step_options.h"

#include <fmt/format.h>

#include "src/base/error.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"

namespace st::cli {

void add_step_options(CLI::App& sub, StepOptions& o) {
  sub.add_option("--model", o.model, "resnet18|34|50 or a CIFAR-style resnet8|20|32|44|56")->capture_default_str();
  sub.add_option("--input", o.input, "input height = width")->capture_default_str();
  sub.add_option("--channels", o.channels, "input channels")->capture_default_str();
  sub.add_option("--batch", o.batch, "batch size")->capture_default_str();
  sub.add_option("--mode", o.mode, "train | infer")->capture_default_str();
  sub.add_option("--spec", o.spec, "accelerator preset name or TOML file")->capture_default_str();
  sub.add_option("--lowering", o.lowering, "explicit | bp-im2col | zero-skip")->capture_default_str();
  sub.add_option("--mapping", o.mapping, "im2col | channel_tap: how convolutions meet the array (default: the spec's "
                                         "[array] conv_mapping)");
  sub.add_option("--width", o.width, "channel multiplier")->capture_default_str();
  sub.add_option("--classes", o.classes, "classes of the fc layer")->capture_default_str();
  sub.add_flag("--fold-bn", o.fold_bn,
               "--mode infer: fold every BN after a conv into it (bias + ReLU in the conv's output pass)");
}

Step resolve_step(const StepOptions& o) {
  if (o.batch <= 0) throw UserError(fmt::format("--batch must be positive (got {})", o.batch));
  if (o.input <= 0) throw UserError(fmt::format("--input must be positive (got {})", o.input));
  if (o.channels <= 0) throw UserError(fmt::format("--channels must be positive (got {})", o.channels));
  if (!(o.width > 0 && o.width <= 16)) throw UserError(fmt::format("--width must be in (0, 16] (got {})", o.width));
  Step s;
  if (o.mode == "train") s.mode = StepMode::train;
  else if (o.mode == "infer") s.mode = StepMode::infer;
  else throw UserError(fmt::format("--mode must be train or infer (got '{}')", o.mode));
  if (o.fold_bn && s.mode != StepMode::infer)
    throw UserError("--fold-bn applies to --mode infer only (training needs the BN statistics)");
  if (o.fold_bn) s.mode = StepMode::infer_fold_bn;
  s.lowering = lowering_from_flag(o.lowering);
  ResNetOptions r;
  r.name = o.model;
  r.batch = o.batch;
  r.in_c = o.channels;
  r.in_h = r.in_w = o.input;
  r.classes = o.classes;
  r.width = o.width;
  s.net = build_resnet(r);
  s.spec = load_spec(o.spec);
  if (!o.mapping.empty()) s.spec.array.conv_mapping = conv_mapping_from_flag(o.mapping);
  check_costing_work(s.net, "--input");
  return s;
}

}  // namespace st::cli
