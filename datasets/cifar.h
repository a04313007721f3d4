#pragma once
// CIFAR-10 binary version (cifar-10-binary.tar.gz, extracted): data_batch_1.bin .. data_batch_5.bin
// (train) and test_batch.bin (test). Each record is 1 label byte followed by 3072 pixel bytes:
// 1024 red, 1024 green, 1024 blue, each a 32x32 plane in row-major order, i.e. already CHW.
#include <string>

#include "datasets/dataset.h"

namespace st::data {

inline constexpr int kCifarSide = 32;
inline constexpr int kCifarChannels = 3;
inline constexpr int64_t kCifarRecordBytes = 1 + kCifarChannels * kCifarSide * kCifarSide;  // 3073

// Reads one batch file (any positive number of records) and appends it to `split`.
void read_cifar_batch(const std::string& path, RawSplit& split);

// `dir` may be the extracted cifar-10-batches-bin directory or its parent.
RawDataset load_cifar10_raw(const std::string& dir, const LoadOptions& opt = {});
Dataset load_cifar10(const std::string& dir, const LoadOptions& opt = {});

}  // namespace st::data
