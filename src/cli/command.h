#pragma once
// Subcommand registry of the `systrain` CLI. Each src/cli/cmd_*.cpp defines one subcommand and
// registers it with a static Registrar, so adding a subcommand touches no other file.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace st::cli {

struct Command {
  std::string name;
  std::string help;
  // Declares the subcommand's options on `sub` and returns the action to run when it is chosen.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& commands();

struct Registrar {
  explicit Registrar(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace st::cli
