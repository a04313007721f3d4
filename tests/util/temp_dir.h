#pragma once
// A fresh directory per test, removed at the end: <tmp>/st_<pid>_<test name>. The pid keeps
// concurrent ctest processes apart, the test name the tests of one process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace st::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("st_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

}  // namespace st::test
