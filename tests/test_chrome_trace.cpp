// The Chrome trace writer (src/io/chrome_trace.h): what it writes is read back with nlohmann::json
// and checked for the format's structure, the metadata of the process and tracks, event order, time
// units and the escaping of names; and it goes through the output machinery (atomic, refuses what
// is not a regular file, nothing left behind).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "src/base/error.h"
#include "src/io/chrome_trace.h"
#include "src/io/output_file.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace st {
namespace {

using test::TempDir;

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(ChromeTrace, StructureMetadataOrderAndUnits) {
  TempDir t;
  const double ticks_per_us = 1250;  // a 1.25 GHz clock counted in cycles
  {
    io::PendingFile f(t / "a.json", "--trace");
    io::ChromeTraceWriter w(f, "systrain cost: a GEMM", ticks_per_us);
    EXPECT_EQ(w.add_track("array"), 1);
    EXPECT_EQ(w.add_track("ifmap link"), 2);
    w.add_slice(2, "load A", "dma", 0, 300, {{"bytes", int64_t{4096}}, {"m", int64_t{0}}});
    w.add_slice(1, "compute", "compute", 300, 1000, {{"step", int64_t{0}}, {"ratio", 0.25}, {"kind", "tile"}});
    w.add_slice(2, "load A", "dma", 301, 0);
    w.add_slice(1, "compute", "compute", 1300, 1);
    EXPECT_EQ(w.slices(), 4);
    w.finish();
    f.commit();
  }
  const nlohmann::json j = read_json(t / "a.json");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("displayTimeUnit"), "ns");
  const auto& ev = j.at("traceEvents");
  ASSERT_TRUE(ev.is_array());
  ASSERT_EQ(ev.size(), 1u + 2 * 2 + 4);
  // Metadata first: the process, then each track's name and sort index in declaration order.
  EXPECT_EQ(ev[0].at("ph"), "M");
  EXPECT_EQ(ev[0].at("name"), "process_name");
  EXPECT_EQ(ev[0].at("pid"), 1);
  EXPECT_EQ(ev[0].at("args").at("name"), "systrain cost: a GEMM");
  const char* tracks[] = {"array", "ifmap link"};
  for (int k = 0; k < 2; ++k) {
    const auto& name = ev[size_t(1 + 2 * k)];
    const auto& sort = ev[size_t(2 + 2 * k)];
    EXPECT_EQ(name.at("ph"), "M");
    EXPECT_EQ(name.at("name"), "thread_name");
    EXPECT_EQ(name.at("tid"), k + 1);
    EXPECT_EQ(name.at("args").at("name"), tracks[k]);
    EXPECT_EQ(sort.at("name"), "thread_sort_index");
    EXPECT_EQ(sort.at("tid"), k + 1);
    EXPECT_EQ(sort.at("args").at("sort_index"), k + 1);
  }
  // Then the slices, in the order added, complete events in microseconds.
  struct Want {
    int tid;
    const char *name, *cat;
    int64_t start, dur;
  } want[] = {{2, "load A", "dma", 0, 300}, {1, "compute", "compute", 300, 1000}, {2, "load A", "dma", 301, 0},
              {1, "compute", "compute", 1300, 1}};
  for (int i = 0; i < 4; ++i) {
    const auto& e = ev[size_t(5 + i)];
    EXPECT_EQ(e.at("ph"), "X");
    EXPECT_EQ(e.at("pid"), 1);
    EXPECT_EQ(e.at("tid"), want[i].tid);
    EXPECT_EQ(e.at("name"), want[i].name);
    EXPECT_EQ(e.at("cat"), want[i].cat);
    EXPECT_EQ(e.at("ts").get<double>(), double(want[i].start) / ticks_per_us) << i;
    EXPECT_EQ(e.at("dur").get<double>(), double(want[i].dur) / ticks_per_us) << i;
    EXPECT_TRUE(e.at("args").is_object());
  }
  EXPECT_EQ(ev[6].at("ts").get<double>(), 0.24);    // 300 cycles at 1.25 GHz
  EXPECT_EQ(ev[6].at("dur").get<double>(), 0.8);    // 1000 cycles
  EXPECT_EQ(ev[8].at("dur").get<double>(), 0.0008);  // one cycle
  // Arguments keep their types.
  EXPECT_EQ(ev[5].at("args").at("bytes"), 4096);
  EXPECT_TRUE(ev[5].at("args").at("bytes").is_number_integer());
  EXPECT_EQ(ev[6].at("args").at("ratio").get<double>(), 0.25);
  EXPECT_EQ(ev[6].at("args").at("kind"), "tile");
  EXPECT_TRUE(ev[7].at("args").empty());
}

TEST(ChromeTrace, NamesAreEscaped) {
  TempDir t;
  const std::string tricky = "quote \" backslash \\ newline \n tab \t bell \x07 del \x7f slash / ümlaut \xe2\x86\x92";
  const std::string broken = "bad \xff\xfe utf-8 \xc3";
  {
    io::PendingFile f(t / "e.json", "--trace");
    io::ChromeTraceWriter w(f, tricky, 1000);
    w.add_track(tricky);
    w.add_track(broken);
    w.add_slice(1, tricky, tricky, 5, 5, {{tricky, std::string_view(tricky)}, {"broken", std::string_view(broken)}});
    w.add_slice(2, broken, "c", 10, 1);
    w.finish();
    f.commit();
  }
  const nlohmann::json j = read_json(t / "e.json");
  const auto& ev = j.at("traceEvents");
  EXPECT_EQ(ev[0].at("args").at("name"), tricky);
  EXPECT_EQ(ev[1].at("args").at("name"), tricky);
  EXPECT_EQ(ev[5].at("name"), tricky);
  EXPECT_EQ(ev[5].at("cat"), tricky);
  EXPECT_EQ(ev[5].at("args").at(tricky), tricky);
  // Bytes that are not UTF-8 become U+FFFD; the ASCII around them stays.
  const std::string fffd = "\xef\xbf\xbd";
  const std::string fixed = "bad " + fffd + fffd + " utf-8 " + fffd;
  EXPECT_EQ(ev[3].at("args").at("name"), fixed);
  EXPECT_EQ(ev[5].at("args").at("broken"), fixed);
  EXPECT_EQ(ev[6].at("name"), fixed);
  // One event per line: no raw newline inside an event.
  std::ifstream in(t / "e.json");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 1 + 1 + 2 * 2 + 2 + 1);  // header, process, tracks, slices, closing
  EXPECT_EQ(io::json_quoted("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(io::json_quoted(std::string("\0", 1)), "\"\\u0000\"");
}

TEST(ChromeTrace, NonFiniteNumbersAreNull) {
  TempDir t;
  {
    io::PendingFile f(t / "n.json", "--trace");
    io::ChromeTraceWriter w(f, "p", 1);
    w.add_track("t");
    w.add_slice(1, "s", "c", 0, 1,
                {{"inf", std::numeric_limits<double>::infinity()}, {"nan", std::nan("")}, {"big", int64_t{INT64_MAX}}});
    w.finish();
    f.commit();
  }
  const auto args = read_json(t / "n.json").at("traceEvents")[3].at("args");
  EXPECT_TRUE(args.at("inf").is_null());
  EXPECT_TRUE(args.at("nan").is_null());
  EXPECT_EQ(args.at("big").get<int64_t>(), INT64_MAX);
}

TEST(ChromeTrace, LargeTraceIsWrittenInPiecesAndReadsBack) {
  TempDir t;
  constexpr int64_t kSlices = 200000;  // ~30 MB, many buffer flushes
  {
    io::PendingFile f(t / "big.json", "--trace");
    io::ChromeTraceWriter w(f, "big", 1000);
    w.add_track("array");
    for (int64_t i = 0; i < kSlices; ++i) w.add_slice(1, "compute", "compute", 10 * i, 10, {{"step", i}});
    w.finish();
    f.commit();
  }
  const auto ev = read_json(t / "big.json").at("traceEvents");
  ASSERT_EQ(ev.size(), size_t(3 + kSlices));
  EXPECT_EQ(ev.back().at("args").at("step"), kSlices - 1);
  EXPECT_EQ(ev.back().at("ts").get<double>(), double(10 * (kSlices - 1)) / 1000);
}

TEST(ChromeTrace, GoesThroughTheOutputMachinery) {
  TempDir t;
  // A directory is refused before anything is written, and nothing is left beside it.
  std::filesystem::create_directory(t / "dir");
  EXPECT_THROW(io::PendingFile(t / "dir", "--trace"), UserError);
  // Through an OutputSet: written at commit, renamed into place only when complete, together with
  // the other outputs; an existing regular file is replaced.
  std::ofstream(t / "old.json") << "old";
  io::OutputSet outs;
  outs.add_writer(t / "old.json",
                  [](io::PendingFile& f) {
                    io::ChromeTraceWriter w(f, "p", 1);
                    w.add_track("t");
                    w.add_slice(1, "s", "c", 0, 2);
                    w.finish();
                  },
                  "--trace");
  outs.add_text(t / "b.txt", "text\n", "--json");
  outs.commit();
  EXPECT_EQ(read_json(t / "old.json").at("traceEvents").size(), 4u);
  EXPECT_EQ(test::dir_entries(t.path), (std::vector<std::string>{"b.txt", "dir", "old.json"}));
  // A writer that fails leaves the old file and no temporary.
  io::OutputSet failing;
  failing.add_writer(t / "old.json", [](io::PendingFile&) { throw UserError("disk on fire"); }, "--trace");
  EXPECT_THROW(failing.commit(), UserError);
  EXPECT_EQ(read_json(t / "old.json").at("traceEvents").size(), 4u);
  EXPECT_EQ(test::dir_entries(t.path), (std::vector<std::string>{"b.txt", "dir", "old.json"}));
}

TEST(ChromeTraceDeathTest, TracksComeBeforeSlices) {
  TempDir t;
  EXPECT_DEATH(
      {
        io::PendingFile f(t / "x.json", "--trace");
        io::ChromeTraceWriter w(f, "p", 1);
        w.add_track("a");
        w.add_slice(1, "s", "c", 0, 1);
        w.add_track("b");
      },
      "invariant");
}

}  // namespace
}  // namespace st
