#pragma once
// Runs the real `systrain` binary (SYSTRAIN_BIN, set by ctest) for tests of the CLI contract: exit
// code, the one-line message, and what is left on disk afterwards.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

// Skips a CLI test that does not run through ctest (which says where the binary is).
#define NEED_BIN() \
  if (!std::getenv("SYSTRAIN_BIN")) GTEST_SKIP() << "SYSTRAIN_BIN not set (run through ctest)"

namespace st::test {

struct CliResult {
  int rc = -1;          // exit code, or 128 + signal if killed by a signal, -1 if not run
  std::string output;   // stdout and stderr together
  std::string err;      // stderr alone
};

// `args` is appended to the binary's path as shell text (quote paths yourself). A timeout (seconds)
// turns a hang into rc 124 instead of a stuck test.
// `launcher` goes before the binary (e.g. an mpirun command line).
inline CliResult run_cli(const std::string& args, int timeout_s = 120, const std::string& launcher = "") {
  CliResult r;
  const char* bin = std::getenv("SYSTRAIN_BIN");
  if (!bin) {
    ADD_FAILURE() << "SYSTRAIN_BIN is not set (run through ctest)";
    return r;
  }
  const std::string errfile = std::filesystem::temp_directory_path() /
                              ("st_cli_err_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
  const std::string cmd = "timeout -s KILL " + std::to_string(timeout_s) + " " + launcher + (launcher.empty() ? "" : " ") + bin + " " + args + " 2>" + errfile;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  if (WIFEXITED(status)) {
    r.rc = WEXITSTATUS(status);
    if (r.rc == 137) r.rc = 124;  // killed by timeout -s KILL
  } else if (WIFSIGNALED(status)) {
    r.rc = 128 + WTERMSIG(status);
  }
  if (FILE* e = std::fopen(errfile.c_str(), "r")) {
    while ((n = fread(buf, 1, sizeof buf, e)) > 0) r.err.append(buf, n);
    std::fclose(e);
  }
  std::remove(errfile.c_str());
  r.output += r.err;
  return r;
}

// Sorted names of the entries of `dir` (not recursive): for "nothing stray was left" checks, which
// must not depend on how a temporary is named.
inline std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// The contract for a user's mistake: exit code 2 and exactly one line "systrain: error: ..." on stderr
// that contains `needle`.
inline ::testing::AssertionResult is_user_error(const CliResult& r, const std::string& needle) {
  const bool one_line = !r.err.empty() && r.err.find('\n') == r.err.size() - 1;
  if (r.rc == 2 && one_line && r.err.rfind("systrain: error: ", 0) == 0 && r.err.find(needle) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want exit 2 and one line 'systrain: error: ...' containing '" << needle
                                       << "', got exit " << r.rc << " and stderr:\n" << r.err;
}

}  // namespace st::test
