// Fuzz target: one CIFAR-10 binary batch (datasets/cifar.cpp), plain or gzip.
#include "datasets/cifar.h"
#include "src/base/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = st::fuzz::fuzz_input_file(data, size, "data_batch_1.bin");
  try {
    st::data::RawSplit s;
    st::data::read_cifar_batch(path, s);
    fuzz_require(s.size() > 0);
    fuzz_require(s.pixels.size() == static_cast<size_t>(s.size()) * (st::data::kCifarRecordBytes - 1));
    for (int32_t l : s.labels) fuzz_require(l >= 0 && l < 10);
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
