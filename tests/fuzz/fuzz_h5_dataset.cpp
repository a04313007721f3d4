// Fuzz target: systrain's HDF5 dataset layout (datasets/h5dataset.cpp over src/io/h5.cpp).
// Under libFuzzer the read runs in-process (set_untrusted_isolation(false)), so crashes inside
// libhdf5 are seen and triaged; in the replay smoke test the production path runs, where a crash of
// the library in the checking child becomes a UserError.
#include "datasets/h5dataset.h"
#include "src/base/error.h"
#include "src/io/h5.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // SYSTRAIN_FUZZ_IN_PROCESS=1: the replay build reads in-process too (to triage a crash with gdb).
#ifdef SYSTRAIN_LIBFUZZER
  static const bool off = (st::h5::set_untrusted_isolation(false), true);
#else
  // libhdf5 hangs on some malformed files (a global-heap loop under H5Aread): the smoke test keeps
  // the checking child short.
  static const bool off = (st::h5::set_untrusted_time_limit(1),
                           std::getenv("SYSTRAIN_FUZZ_IN_PROCESS") && (st::h5::set_untrusted_isolation(false), true));
#endif
  (void)off;
  const std::string path = st::fuzz::fuzz_input_file(data, size, "input.h5");
  try {
    const st::data::RawDataset d = st::data::load_h5_dataset_raw(path);
    fuzz_require(d.train.size() > 0 && d.test.size() > 0);
    fuzz_require(d.train.pixels.size() == static_cast<size_t>(d.train.size() * d.image_size()));
    (void)st::data::normalize(d);
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
  }
  // Every HDF5 object was closed, whatever failed: a leaked handle keeps the file open in the
  // library, which then serves the next file at that path from the stale cache.
  fuzz_require(H5Fget_obj_count(static_cast<hid_t>(H5F_OBJ_ALL), H5F_OBJ_ALL) == 0);
  return 0;
}
