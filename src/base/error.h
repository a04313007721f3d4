#pragma once
// Two kinds of failure (DESIGN.md "Errors"):
// - UserError: the user's fault (bad config field, bad file, impossible shape). The CLI prints the
//   message on one line and exits with code 2; no partial output is left behind.
// - ST_INVARIANT: an internal invariant broke. That is a bug: print the invariant and abort.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace st {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void invariant_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "systrain: internal invariant broken: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace st

#define ST_INVARIANT(expr) \
  ((expr) ? static_cast<void>(0) : ::st::invariant_failed(#expr, __FILE__, __LINE__))

namespace st {
// Training stopped because the loss became NaN or Inf; the CLI exits with code 3.
struct TrainingDiverged : UserError {
  using UserError::UserError;
};
}  // namespace st
