#pragma once
// The small training run the training tests share: ResNet-8 at width 0.5 on the first 512
// Fashion-MNIST images, batches of 32, 2 epochs (a 32-step plan), lr 0.05, quiet, no evaluation.
#include <filesystem>
#include <string>

#include "src/train/trainer.h"

namespace st::test {

inline const char* kFmnistDir = "/usr/share/datasets/fashion-mnist";

inline bool have_fmnist() {
  return std::filesystem::exists(std::filesystem::path(kFmnistDir) / "train-images-idx3-ubyte.gz");
}

inline TrainConfig small_train_config(const std::string& out) {
  TrainConfig c;
  c.model = "resnet8";
  c.width = 0.5;
  c.limit_train = 512;
  c.limit_test = 128;
  c.batch = 32;
  c.epochs = 2;  // horizon 32 steps
  c.lr = 0.05;
  c.out_dir = out;
  c.quiet = true;
  c.evaluate = false;
  return c;
}

}  // namespace st::test
