#pragma once
// Loading, validating and writing accelerator specs (TOML). The format, every key, its unit and its
// allowed range are listed in README ("Accelerator spec"); presets live in models/presets/*.toml and
// are embedded in the binary (cmake/embed_presets.cmake), so they are usable by name anywhere.
//
// Every problem with a spec is the user's: it throws st::UserError with one line naming the file, the
// key and what is allowed (the CLI prints it and exits with code 2).
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "models/presets.h"
#include "src/spec/spec.h"

namespace st {

std::vector<std::string> preset_names();
inline constexpr std::string_view kDefaultPreset = "tpu-like";

// A preset name ("tpu-like") or a path to a TOML file. An empty string means the default preset.
Spec load_spec(std::string_view name_or_path);
// Parse TOML text; `source` names it in messages and becomes Spec::source.
Spec parse_spec_toml(std::string_view text, std::string_view source);
// A complete TOML document holding every field; parse_spec_toml(spec_to_toml(s)) gives s back.
std::string spec_to_toml(const Spec& spec);
// Runs a Spec built in code (e.g. a design point of `systrain dse`) through exactly the checks the
// TOML loader applies to a file; `source` names it in the UserError message.
void validate_spec(const Spec& spec, std::string_view source);

// The default energy table for a technology node (45, 28 or 16 nm; reference/energy.md).
EnergyTable default_energy_table(int tech_nm);

}  // namespace st
