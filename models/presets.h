#pragma once
// The accelerator presets shipped in models/presets/*.toml, embedded into the binary at build time
// (cmake/embed_presets.cmake generates the definition) so `--spec tpu-like` works from any
// directory. src/spec parses them.
#include <map>
#include <string>

namespace st {

// Preset TOML texts keyed by name (file stem).
const std::map<std::string, std::string>& embedded_presets();

}  // namespace st
