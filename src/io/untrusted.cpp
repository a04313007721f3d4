// Checks for text and sizes read from untrusted files (see untrusted.h).
#include "src/io/untrusted.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "src/base/error.h"

namespace st::io {

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is not one (RFC 3629).
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;       // no overlong forms
    if (c == 0xED) hi = 0x9F;       // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;       // no overlong forms
    if (c == 0xF4) hi = 0x8F;       // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view s, size_t max_chars) {
  std::string out;
  size_t i = 0;
  for (; i < s.size() && out.size() < max_chars;) {
    const size_t n = utf8_len(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (n == 1 && c >= 0x20 && c != 0x7F) {
      out += s[i];
      i += 1;
    } else if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", c);
      i += 1;
    }
  }
  if (i < s.size()) out += "...";
  return out;
}

std::optional<std::string> text_problem(std::string_view s, size_t max_bytes) {
  if (s.size() > max_bytes) return fmt::format("is {} bytes long (at most {})", s.size(), max_bytes);
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n == 0) return fmt::format("is not valid UTF-8 (byte {} is 0x{:02x})", i, static_cast<unsigned char>(s[i]));
    if (n == 1 && (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7F))
      return fmt::format("holds a control character (byte {} is 0x{:02x})", i, static_cast<unsigned char>(s[i]));
    i += n;
  }
  return std::nullopt;
}

std::string read_text_file(const std::string& path, std::string_view what, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    throw UserError(fmt::format("{} '{}': {}", what, printable(path, 4096),
                                e == ENOENT ? "no such file" : std::strerror(e)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw UserError(fmt::format("{} '{}': not a regular file", what, printable(path, 4096)));
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw UserError(fmt::format("{} '{}': {} bytes is too large (at most {} bytes)", what,
                                printable(path, 4096), st.st_size, max_bytes));
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw UserError(fmt::format("{} '{}': read error ({})", what, printable(path, 4096), std::strerror(errno)));
    }
    if (got == 0) break;
    out.append(buf, static_cast<size_t>(got));
    if (out.size() > max_bytes)  // the file grew while we read it
      throw UserError(fmt::format("{} '{}': larger than {} bytes", what, printable(path, 4096), max_bytes));
  }
  return out;
}

std::optional<int64_t> checked_mul(int64_t a, int64_t b, int64_t limit) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > limit) return std::nullopt;
  return r;
}

std::optional<int64_t> checked_add(int64_t a, int64_t b, int64_t limit) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) || r > limit) return std::nullopt;
  return r;
}

}  // namespace st::io
