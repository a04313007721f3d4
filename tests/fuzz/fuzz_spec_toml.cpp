// Fuzz target: accelerator spec TOML (src/spec/spec_toml.cpp). What the loader accepts must round
// trip through spec_to_toml and go into JSON (names and descriptions are valid UTF-8).
#include <nlohmann/json.hpp>

#include "src/base/error.h"
#include "src/spec/spec_toml.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  st::Spec spec;
  try {
    spec = st::parse_spec_toml(text, "fuzz.toml");
  } catch (const st::UserError& e) {
    st::fuzz::fuzz_rejected(e);
    return 0;
  }
  const st::Spec back = st::parse_spec_toml(st::spec_to_toml(spec), "roundtrip.toml");  // must not throw
  fuzz_require(back.name == spec.name && back.description == spec.description);
  fuzz_require(back.array.rows == spec.array.rows && back.array.cols == spec.array.cols);
  const nlohmann::json j = {{"name", spec.name}, {"description", spec.description}};
  (void)j.dump();  // throws on invalid UTF-8
  return 0;
}
