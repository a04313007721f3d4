#pragma once
// Output checks shared by the subcommands, on top of src/io/output_file.h: every output path is
// checked before the work starts (so a bad one costs nothing and leaves nothing), two outputs of one
// run may not name the same file, and a run directory may be nested in directories still to create.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "src/base/error.h"
#include "src/io/output_file.h"

namespace st::cli {

// (path, what) of every output of a command; empty paths are "not asked for". Checks each one
// (src/io's rules: no directory, no missing directory, no socket, ...) and that no two regular
// files coincide (two streams, e.g. both /dev/stdout, are fine).
inline void check_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> files;  // (canonical target, what)
  for (const auto& [path, what] : outputs) {
    if (path.empty()) continue;
    const io::OutputTarget t = io::resolve_output(path, what);
    if (t.stream) continue;
    std::error_code ec;
    std::string key = fs::weakly_canonical(fs::absolute(t.resolved, ec), ec).string();
    if (ec) key = t.resolved;
    for (const auto& [other, other_what] : files)
      if (other == key)
        throw UserError(fmt::format("{} and {} name the same file '{}'", other_what, what, path));
    files.emplace_back(key, what);
  }
}

}  // namespace st::cli
