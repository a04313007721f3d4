// systrain: the command-line front end. Thin: parsing and dispatch only.
#include <malloc.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <new>
#include <system_error>

#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/io/output_file.h"

namespace st::cli {
std::vector<Command>& commands() {
  static std::vector<Command> c;
  return c;
}
}  // namespace st::cli

int main(int argc, char** argv) {
  // Training allocates and frees the same large activation buffers every step. glibc would hand
  // each one back to the kernel (mmap / trim) and fault it in again; keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Ctrl-C / SIGTERM remove our temporaries; a closed pipe is a checked write error, not a death.
  st::io::install_output_signal_handlers();
  CLI::App app{"systrain: a functional training emulator of a systolic-array accelerator.\n"
               "Trains real networks bit-accurately on the modeled array and counts its cycles, "
               "bytes and energy."};
  app.set_version_flag("--version", std::string("systrain ") + SYSTRAIN_VERSION);
  app.require_subcommand(1);
  std::map<CLI::App*, std::function<int()>> actions;
  for (auto& c : st::cli::commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    actions[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // A user error on the command line: one line naming it, exit code 2.
    std::fprintf(stderr, "systrain: error: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    for (auto& [sub, act] : actions)
      if (sub->parsed()) {
        int rc = 0;
        try {
          rc = act();
        } catch (const std::system_error& e) {
          // fmt::print throws when stdout cannot take the report (a closed pipe, a full disk).
          if (!std::ferror(stdout)) throw;
          throw st::UserError(std::string("standard output: write failed (") + e.code().message() + ")");
        }
        // What is still buffered must reach stdout too, or the run did not deliver its report.
        if (std::fflush(stdout) != 0 || std::ferror(stdout))
          throw st::UserError(std::string("standard output: write failed (") + std::strerror(errno) + ")");
        return rc;
      }
  } catch (const st::TrainingDiverged& e) {
    std::fprintf(stderr, "systrain: error: %s\n", e.what());
    return 3;
  } catch (const st::UserError& e) {
    std::fprintf(stderr, "systrain: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    // The last net: every input that can ask for a lot of memory is checked with its own message
    // before it allocates; this only catches what those checks missed.
    std::fprintf(stderr, "systrain: error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    // The last net for everything else: one line, a distinct exit code, no abort. Reaching it means
    // an input was not checked where it entered (a bug to fix at its root).
    std::fprintf(stderr, "systrain: error: unexpected failure: %s\n", e.what());
    return 4;
  }
  return 0;
}
