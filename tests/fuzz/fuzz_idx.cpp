// Fuzz target: IDX files, plain or gzip (datasets/idx.cpp). An accepted file's data matches its
// header.
#include "datasets/idx.h"
#include "src/base/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = st::fuzz::fuzz_input_file(data, size, "input-idx-ubyte");
  try {
    const st::data::IdxArray a = st::data::read_idx(path);
    uint64_t n = 1;
    for (int64_t d : a.dims) n *= static_cast<uint64_t>(d);
    fuzz_require(a.data.size() == n);
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  return 0;
}
