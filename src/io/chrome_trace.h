#pragma once
// Chrome trace-event JSON, the format chrome://tracing, Perfetto (ui.perfetto.dev) and speedscope
// open: {"displayTimeUnit":"ns","traceEvents":[...]}, one process, one thread row ("track") per
// resource, "X" (complete) events for the slices of time a resource was busy. Generic: it knows
// tracks, slices and their arguments, nothing of what they stand for.
//
// The writer streams into an output of src/io/output_file.h (a PendingFile: a temporary renamed
// into place on commit, never over anything but a regular file), through a buffer, so a trace of
// millions of slices is never held whole in memory.
//
// Events, one per line, in this order: the process's name ("M" process_name), then per track in
// the order declared its name and sort index ("M" thread_name, thread_sort_index: viewers show the
// tracks in declaration order), then the slices in the order they were added (the writer does not
// sort). Times are integer ticks of the caller's clock (e.g. cycles); `ts` and `dur` are written in
// microseconds, the format's unit: ticks / ticks_per_us, as the shortest decimal that reads back to
// the same double. Names, keys and string arguments are JSON-escaped (quotes, backslashes, control
// characters); bytes that are not valid UTF-8 become U+FFFD. Non-finite numbers are written as null.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "src/io/output_file.h"

namespace st::io {

// One argument of a slice (shown in the viewer's details pane): an integer, a number or a string.
struct TraceArg {
  std::string_view key;
  std::variant<int64_t, double, std::string_view> value;
};

class ChromeTraceWriter {
 public:
  // Starts the trace in `out` (written, not committed: the caller commits). `ticks_per_us` > 0.
  ChromeTraceWriter(PendingFile& out, std::string_view process_name, double ticks_per_us);
  ChromeTraceWriter(const ChromeTraceWriter&) = delete;
  ChromeTraceWriter& operator=(const ChromeTraceWriter&) = delete;

  // Declares a track (one thread row of the process) and returns its id (tid: 1, 2, ...). Every
  // track is declared before the first slice.
  int add_track(std::string_view name);
  // A complete event on `track`: [start, start + duration) ticks, duration >= 0.
  void add_slice(int track, std::string_view name, std::string_view category, int64_t start, int64_t duration,
                 std::span<const TraceArg> args);
  void add_slice(int track, std::string_view name, std::string_view category, int64_t start, int64_t duration,
                 std::initializer_list<TraceArg> args = {}) {
    add_slice(track, name, category, start, duration, std::span<const TraceArg>(args.begin(), args.size()));
  }
  // Closes the JSON document and writes what is buffered. Nothing may be added afterwards.
  void finish();

  int64_t slices() const { return slices_; }

 private:
  void flush_if_full();
  PendingFile& out_;
  double ticks_per_us_;
  std::string buf_;
  int tracks_ = 0;
  int64_t slices_ = 0;
  bool finished_ = false;
};

// `s` as a JSON string literal, quotes included (the escaping the writer uses).
std::string json_quoted(std::string_view s);

}  // namespace st::io
