#pragma once
// Shared by the fuzz targets (tests/fuzz/fuzz_<name>.cpp). Convention:
// - Each target defines LLVMFuzzerTestOneInput and hands the bytes to one reader, the way the CLI
//   would (a path when the reader takes one: fuzz_input_file).
// - st::UserError is an expected outcome (return 0). Anything else is a finding: a crash, a
//   sanitizer report, another exception (let it escape: libFuzzer and replay_main report it), or a
//   broken promise of the reader (fuzz_require: what it accepted must be usable downstream).
// - Built with libFuzzer (scripts/fuzz.sh, SYSTRAIN_LIBFUZZER) or, in the normal build, with
//   replay_main.cpp: the seed corpus tests/fuzz/corpus/<name>/ plus deterministic mutations, as a
//   ctest smoke test (fuzz_<name>_smoke).
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#ifdef SYSTRAIN_LIBFUZZER
#include "src/io/h5.h"
#endif

namespace st::fuzz {

#ifdef SYSTRAIN_LIBFUZZER
// Under libFuzzer every reader hands HDF5 files to the library in-process, so a crash inside
// libhdf5 is seen (and triaged: tests/fuzz/libhdf5/README.md) instead of being turned into a
// UserError by the reading child (h5::read_in_child).
inline const bool kHdf5InProcess = (st::h5::set_untrusted_isolation(false), true);
#endif

// A file holding `size` bytes, rewritten for every input; one directory per process, removed at
// exit. `name` gives the extension readers look at (".h5").
inline std::string fuzz_input_file(const uint8_t* data, size_t size, const std::string& name) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("systrain_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d;
  }();
  const std::string path = (dir / name).string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);  // in case something cleaned the temporary directory
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size)) {
    std::fprintf(stderr, "fuzz: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    std::abort();
  }
  std::fclose(f);
  return path;
}

// An input the reader refused with a UserError (the expected outcome for bad input). With
// SYSTRAIN_FUZZ_VERBOSE set, prints the message: to see what a corpus exercises.
inline void fuzz_rejected(const std::exception& e) {
  static const bool verbose = std::getenv("SYSTRAIN_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %s\n", e.what());
}

// A promise of the reader that does not hold for an accepted input: a finding.
[[noreturn]] inline void fuzz_broken(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz: broken promise: %s (%s:%d)\n", what, file, line);
  std::abort();
}

}  // namespace st::fuzz

#define fuzz_require(expr) ((expr) ? static_cast<void>(0) : ::st::fuzz::fuzz_broken(#expr, __FILE__, __LINE__))
