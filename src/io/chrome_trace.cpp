// See chrome_trace.h.
#include "src/io/chrome_trace.h"

#include <fmt/format.h>

#include <cmath>

#include "src/base/error.h"
#include "src/io/untrusted.h"

namespace st::io {
namespace {

constexpr size_t kFlushBytes = size_t{1} << 20;  // write in chunks of about a MiB
constexpr int kPid = 1;

void append_number(std::string& o, double v) {
  if (std::isfinite(v)) fmt::format_to(std::back_inserter(o), "{}", v);
  else o += "null";
}

}  // namespace

std::string json_quoted(std::string_view s) {
  // Valid UTF-8 passes as it is; otherwise every byte above 0x7F becomes U+FFFD (the text came
  // from somewhere we do not control, and a trace viewer must still open the file).
  const bool utf8 = is_valid_utf8(s);
  std::string o = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20 || c == 0x7F) fmt::format_to(std::back_inserter(o), "\\u{:04x}", c);
    else if (c >= 0x80 && !utf8) o += "\\ufffd";
    else o += ch;
  }
  return o + "\"";
}

ChromeTraceWriter::ChromeTraceWriter(PendingFile& out, std::string_view process_name, double ticks_per_us)
    : out_(out), ticks_per_us_(ticks_per_us) {
  ST_INVARIANT(ticks_per_us > 0 && std::isfinite(ticks_per_us));
  buf_ = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  buf_ += fmt::format("{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":{}}}}}",
                      kPid, json_quoted(process_name));
}

int ChromeTraceWriter::add_track(std::string_view name) {
  ST_INVARIANT(!finished_ && slices_ == 0);  // tracks first: their metadata heads the file
  const int tid = ++tracks_;
  buf_ += fmt::format(",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":{}}}}}",
                      kPid, tid, json_quoted(name));
  buf_ += fmt::format(
      ",\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"sort_index\":{}}}}}", kPid,
      tid, tid);
  return tid;
}

void ChromeTraceWriter::add_slice(int track, std::string_view name, std::string_view category, int64_t start,
                                  int64_t duration, std::span<const TraceArg> args) {
  ST_INVARIANT(!finished_ && track >= 1 && track <= tracks_ && duration >= 0);
  buf_ += ",\n{\"name\":";
  buf_ += json_quoted(name);
  buf_ += ",\"cat\":";
  buf_ += json_quoted(category);
  fmt::format_to(std::back_inserter(buf_), ",\"ph\":\"X\",\"pid\":{},\"tid\":{},\"ts\":", kPid, track);
  append_number(buf_, double(start) / ticks_per_us_);
  buf_ += ",\"dur\":";
  append_number(buf_, double(duration) / ticks_per_us_);
  buf_ += ",\"args\":{";
  bool first = true;
  for (const TraceArg& a : args) {
    if (!first) buf_ += ',';
    first = false;
    buf_ += json_quoted(a.key);
    buf_ += ':';
    if (const auto* i = std::get_if<int64_t>(&a.value)) fmt::format_to(std::back_inserter(buf_), "{}", *i);
    else if (const auto* d = std::get_if<double>(&a.value)) append_number(buf_, *d);
    else buf_ += json_quoted(std::get<std::string_view>(a.value));
  }
  buf_ += "}}";
  ++slices_;
  flush_if_full();
}

void ChromeTraceWriter::finish() {
  ST_INVARIANT(!finished_);
  buf_ += "\n]}\n";
  out_.write(buf_);
  buf_.clear();
  finished_ = true;
}

void ChromeTraceWriter::flush_if_full() {
  if (buf_.size() < kFlushBytes) return;
  out_.write(buf_);
  buf_.clear();
}

}  // namespace st::io
