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

#include "src/error.h"
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

// A run directory that may not exist yet, nor its parents (they are created when the results are
// written): every component that exists must be a directory, and the first missing one must be
// creatable (src/io's check_output_dir on it).
inline void check_run_dir(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  if (dir.empty()) throw UserError(fmt::format("{}: empty directory path", what));
  fs::path p = fs::path(dir).lexically_normal();
  if (p.has_filename() == false && p.has_parent_path()) p = p.parent_path();  // "a/b/" -> "a/b"
  // Walk up to the first ancestor that exists; check the component just below it.
  fs::path missing = p;
  std::error_code ec;
  while (true) {
    const fs::path parent = missing.parent_path();
    if (parent.empty() || fs::exists(fs::symlink_status(parent, ec)) || parent == missing) break;
    missing = parent;
  }
  if (missing != p) {
    // Some ancestors are missing: the topmost missing one must be creatable in an existing directory.
    try {
      io::check_output_dir(missing.string(), what);
    } catch (const UserError&) {
      throw UserError(fmt::format("{} '{}': cannot create it ('{}' is not a writable directory)", what, dir,
                                  missing.parent_path().empty() ? "." : missing.parent_path().string()));
    }
    return;
  }
  io::check_output_dir(p.string(), what);
}

// Creates the run directory (and its missing parents) after check_run_dir's rules.
inline void make_run_dir(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  check_run_dir(dir, what);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError(fmt::format("{} '{}': cannot create the directory ({})", what, dir, ec.message()));
  io::check_output_dir(dir, what);
}

}  // namespace st::cli
