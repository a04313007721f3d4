// Fuzz target: the checkpoint reader (src/train/checkpoint.cpp over src/io/h5.cpp), as `train
// --resume FILE` uses it: every field validated, then the tensors of a tiny network (resnet8 at
// width 1/16 on 1x28x28 images, 10 classes; the seed corpus holds its checkpoints) loaded.
// A UserError is the expected outcome of a bad file; a crash, another exception, or an accepted
// checkpoint that breaks the reader's promises is a finding.
#include <cmath>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/train/checkpoint.h"
#include "src/train/param_set.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct TinyNet {
  st::ParamSet params, velocity;
};

TinyNet tiny_net() {
  st::ResNetOptions o;
  o.name = "resnet8";
  o.batch = 1;
  o.in_c = 1;
  o.in_h = o.in_w = 28;
  o.classes = 10;
  o.width = 0.0625;
  TinyNet n;
  n.params = st::init_params(st::build_resnet(o), 1);
  for (const auto& name : st::trainable_names(n.params)) {
    st::Tensor z(n.params.at(name));
    z.zero();
    n.velocity.add(name, z);
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TinyNet fresh = tiny_net();
  const std::string path = st::fuzz::fuzz_input_file(data, size, "checkpoint.h5");
  TinyNet net = fresh;
  try {
    const st::Checkpoint ck = st::read_checkpoint(path, &net.params, &net.velocity);
    // What an accepted checkpoint promises the training loop.
    fuzz_require(ck.plan.is_object());
    const int64_t horizon = ck.plan["horizon"].get<int64_t>();
    fuzz_require(ck.step >= 0 && ck.step <= horizon);
    fuzz_require(ck.series.empty() || ck.series.size() == static_cast<size_t>(ck.step) * st::series_columns().size());
    fuzz_require(ck.iter.position >= 0 && ck.iter.position <= ck.iter.num_samples && ck.iter.epoch >= 0);
    for (const st::ParamSet* ps : {&net.params, &net.velocity})
      for (const auto& [name, t] : *ps) {
        fuzz_require(t.same_shape(fresh.params.at(name)));
        for (int64_t i = 0; i < t.size(); ++i) fuzz_require(std::isfinite(t[i]));
      }
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
