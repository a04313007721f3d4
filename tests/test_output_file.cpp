// src/io/output_file: the one writer of every output. What it may replace, what it streams into,
// what it refuses, and that nothing is left behind after an error or a signal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "src/base/error.h"
#include "src/io/output_file.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using st::UserError;
using st::test::dir_entries;
using st::test::TempDir;
namespace io = st::io;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

bool is_char_device(const char* p) {
  struct stat st {};
  return ::lstat(p, &st) == 0 && S_ISCHR(st.st_mode);
}

TEST(OutputFile, CreatesAndReplacesRegularFilesLeavingNothingElse) {
  TempDir t;
  io::write_text_file(t / "a.json", "one\n");
  EXPECT_EQ(slurp(t / "a.json"), "one\n");
  io::write_text_file(t / "a.json", "two\n");
  EXPECT_EQ(slurp(t / "a.json"), "two\n");
  EXPECT_EQ(dir_entries(t.path), std::vector<std::string>{"a.json"});
}

TEST(OutputFile, RefusesDirectoriesMissingDirectoriesAndDanglingSymlinks) {
  TempDir t;
  fs::create_directories(t.path / "d");
  EXPECT_NE(error_of([&] { io::write_text_file(t / "d", "x", "--json"); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { io::write_text_file(t / "no/x.json", "x", "--json"); }).find("does not exist"),
            std::string::npos);
  fs::create_symlink(t.path / "missing", t.path / "dangling");
  EXPECT_NE(error_of([&] { io::write_text_file(t / "dangling", "x", "--json"); }).find("symlink to a missing"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(t.path / "missing"));
  EXPECT_EQ(dir_entries(t.path), (std::vector<std::string>{"d", "dangling"}));
  EXPECT_TRUE(fs::is_empty(t.path / "d"));
}

TEST(OutputFile, FollowsASymlinkAndReplacesItsTargetKeepingTheLink) {
  TempDir t;
  io::write_text_file(t / "real.json", "old");
  fs::create_symlink(t.path / "real.json", t.path / "link.json");
  io::write_text_file(t / "link.json", "new");
  EXPECT_TRUE(fs::is_symlink(t.path / "link.json"));
  EXPECT_EQ(slurp(t / "real.json"), "new");
  EXPECT_EQ(dir_entries(t.path), (std::vector<std::string>{"link.json", "real.json"}));
}

TEST(OutputFile, StreamsIntoDevicesAndNeverReplacesThem) {
  ASSERT_TRUE(is_char_device("/dev/null"));
  io::write_text_file("/dev/null", "discarded\n");
  EXPECT_TRUE(is_char_device("/dev/null"));
  // /dev/full: the write fails with ENOSPC, one clear error, and the device stays a device.
  if (is_char_device("/dev/full")) {
    const std::string e = error_of([] { io::write_text_file("/dev/full", std::string(1 << 16, 'x'), "--json"); });
    EXPECT_NE(e.find("No space left on device"), std::string::npos) << e;
    EXPECT_TRUE(is_char_device("/dev/full"));
  }
  // HDF5-like outputs (regular files only) refuse a device.
  EXPECT_NE(error_of([] { io::resolve_output("/dev/null", "--dump", io::OutputKind::regular_only); })
                .find("not a regular file"),
            std::string::npos);
}

TEST(OutputFile, OwnDescriptorIsWrittenThroughAfterWhatWasPrinted) {
  // `--json /dev/stdout > file`: the JSON follows the printed report in the file, which is not
  // replaced by a rename (the report would be lost) or overwritten from its start.
  TempDir t;
  const auto r = st::test::run_cli("gemm --m 4 --n 4 --k 4 --json /dev/stdout > " + t / "out.txt");
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string out = slurp(t / "out.txt");
  const size_t report = out.find("GEMM M=4 N=4 K=4"), json = out.find("\"cycles\"");
  ASSERT_NE(report, std::string::npos) << out;
  ASSERT_NE(json, std::string::npos) << out;
  EXPECT_LT(report, json);
  EXPECT_EQ(dir_entries(t.path), std::vector<std::string>{"out.txt"});
  // Through a pipe too.
  const auto p = st::test::run_cli("gemm --m 4 --n 4 --k 4 --json /dev/stdout | grep -c '\"macs\": 64'");
  EXPECT_EQ(p.rc, 0);
  EXPECT_EQ(p.output.substr(0, 1), "1") << p.output;
}

TEST(OutputFile, OutputSetTouchesNoTargetWhenOneFails) {
  TempDir t;
  io::write_text_file(t / "a.csv", "old a");
  io::OutputSet set;
  set.add_text(t / "a.csv", "new a", "--csv");
  set.add_text(t / "no/b.json", "new b", "--json");
  EXPECT_NE(error_of([&] { set.commit(); }).find("does not exist"), std::string::npos);
  EXPECT_EQ(slurp(t / "a.csv"), "old a");
  EXPECT_EQ(dir_entries(t.path), std::vector<std::string>{"a.csv"});
}

TEST(OutputFile, UncommittedFileLeavesNothingAndTheOldFileIntact) {
  TempDir t;
  io::write_text_file(t / "a.json", "old");
  {
    io::PendingFile f(t / "a.json", "--json");
    f.write("half");
    EXPECT_EQ(dir_entries(t.path).size(), 2u);  // the temporary exists while writing
  }
  EXPECT_EQ(slurp(t / "a.json"), "old");
  EXPECT_EQ(dir_entries(t.path), std::vector<std::string>{"a.json"});
}

TEST(OutputFile, SignalRemovesLiveTemporaries) {
  TempDir t;
  for (int sig : {SIGINT, SIGTERM}) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      io::install_output_signal_handlers();
      io::PendingFile f(t / "a.json", "--json");
      f.write("partial");
      ::raise(sig);
      ::_exit(0);  // not reached: the handler re-raises with the default action
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), sig);
    EXPECT_TRUE(dir_entries(t.path).empty()) << "signal " << sig << " left " << dir_entries(t.path).size();
  }
}

TEST(OutputFile, DirLockExcludesASecondHolder) {
  TempDir t;
  io::DirLock a(t.path.string(), "--out");
  EXPECT_NE(error_of([&] { io::DirLock b(t.path.string(), "--out"); }).find("in use by another systrain run"),
            std::string::npos);
}

}  // namespace
