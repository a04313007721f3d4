// systrain spec: show an accelerator spec (preset or file) fully resolved, as TOML, or list presets.
#include <fmt/format.h>

#include "src/cli/command.h"
#include "src/cli/outputs.h"
#include "src/spec/spec_toml.h"

namespace st::cli {
namespace {

Registrar reg{{"spec", "Show an accelerator spec (preset name or TOML file) fully resolved, or list presets",
               [](CLI::App& sub) -> std::function<int()> {
                 auto name = std::make_shared<std::string>();
                 auto list = std::make_shared<bool>(false);
                 sub.add_option("name", *name, "preset name or TOML file (default: tpu-like)");
                 sub.add_flag("--list", *list, "list the embedded presets with their descriptions");
                 return [name, list]() {
                   if (*list) {
                     for (const auto& p : preset_names())
                       fmt::print("{:<18} {}\n", p, load_spec(p).description);
                     return 0;
                   }
                   const Spec s = load_spec(*name);
                   fmt::print("# resolved from {}\n{}", s.source, spec_to_toml(s));
                   return 0;
                 };
               }}};

}  // namespace
}  // namespace st::cli
