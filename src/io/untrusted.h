#pragma once
// Helpers for the readers of untrusted files (spec TOML, SCALE-Sim, topologies, datasets): text that
// came from a file is checked before it travels on (into JSON, CSV, HDF5), and is quoted safely when
// an error message shows it, so the message stays one printable line whatever the file held.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace st::io {

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// `s` for an error message: bytes that are not printable ASCII or part of valid UTF-8, and every
// control character (newline, tab, ...), become \xNN; longer than `max_chars` bytes is cut with
// "...". The result never contains a newline.
std::string printable(std::string_view s, size_t max_chars = 80);

// Checks a name or other free text read from a file: valid UTF-8, no control characters, at most
// `max_bytes` long. Returns the problem ("is not valid UTF-8 (byte 3)"), or nothing when fine.
std::optional<std::string> text_problem(std::string_view s, size_t max_bytes = 4096);

// Reads a whole regular file of at most `max_bytes` (text inputs: specs, configs, topologies).
// Missing, not a regular file (directory, FIFO, device), unreadable or too large: UserError naming
// `what` and `path`.
std::string read_text_file(const std::string& path, std::string_view what, uint64_t max_bytes);

// Products and sums of non-negative sizes that must not overflow: nothing on overflow or when the
// result passes `limit`.
std::optional<int64_t> checked_mul(int64_t a, int64_t b, int64_t limit = INT64_MAX);
std::optional<int64_t> checked_add(int64_t a, int64_t b, int64_t limit = INT64_MAX);

}  // namespace st::io
