#include "src/io/output_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "src/base/error.h"

namespace st::io {

namespace fs = std::filesystem;

namespace {

// ---- signal-safe registry of live temporaries -------------------------------------------------
constexpr int kSlots = 64;
constexpr size_t kPathMax = 4096;
enum SlotState : int { kFree = 0, kFilling = 1, kLive = 2 };
std::atomic<int> g_state[kSlots];
char g_paths[kSlots][kPathMax];
std::atomic<bool> g_handlers_installed{false};

extern "C" void remove_temporaries_and_die(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (g_state[i].load() == kLive) ::unlink(g_paths[i]);  // unlink is async-signal-safe
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string errno_text(int e) { return std::strerror(e); }

}  // namespace

int register_temporary(const std::string& path) noexcept {
  if (path.size() + 1 > kPathMax) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expect = kFree;
    if (g_state[i].compare_exchange_strong(expect, kFilling)) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      g_state[i].store(kLive);
      return i;
    }
  }
  return -1;
}

void unregister_temporary(int slot) noexcept {
  if (slot >= 0 && slot < kSlots) g_state[slot].store(kFree);
}

void install_output_signal_handlers() {
  if (g_handlers_installed.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = remove_temporaries_and_die;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

std::string temporary_name_for(const std::string& target) {
  static std::atomic<int> counter{0};
  return fmt::format("{}.tmp.{}.{}", target, ::getpid(), counter.fetch_add(1));
}

// ---- target resolution -----------------------------------------------------------------------

namespace {

// The descriptor a path names when it is one of this process's own (/dev/stdout, /dev/stderr,
// /dev/fd/N, /proc/self/fd/N), else -1.
int descriptor_alias(const std::string& path) {
  if (path == "/dev/stdout") return 1;
  if (path == "/dev/stderr") return 2;
  for (const char* prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    const std::string p(prefix);
    if (path.size() > p.size() && path.compare(0, p.size(), p) == 0) {
      int fd = 0;
      for (size_t i = p.size(); i < path.size(); ++i) {
        if (path[i] < '0' || path[i] > '9' || fd > 100000) return -1;
        fd = fd * 10 + (path[i] - '0');
      }
      return fd;
    }
  }
  return -1;
}

}  // namespace

OutputTarget resolve_output(const std::string& path, const std::string& what, OutputKind kind) {
  if (path.empty()) throw UserError(fmt::format("{}: empty output path", what));
  OutputTarget t{path, path, false};
  if (const int fd = descriptor_alias(path); fd >= 0) {
    if (kind == OutputKind::regular_only)
      throw UserError(fmt::format("{} '{}' is a stream, not a regular file (this output cannot be streamed)", what, path));
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
      throw UserError(fmt::format("{} '{}': descriptor {} is not open for writing", what, path, fd));
    t.stream = true;
    t.fd = fd;
    return t;
  }
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    std::error_code ec;
    fs::path real = fs::canonical(path, ec);
    if (ec) throw UserError(fmt::format("{} '{}' is a symlink to a missing file; refusing to follow it", what, path));
    t.resolved = real.string();
  }
  struct stat st {};
  if (::stat(t.resolved.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) {
      // replaced through a temporary below
    } else if (S_ISDIR(st.st_mode)) {
      throw UserError(fmt::format("{} '{}' is a directory, not a file", what, path));
    } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
      if (kind == OutputKind::regular_only)
        throw UserError(fmt::format("{} '{}' is not a regular file (this output cannot be streamed)", what, path));
      if (::access(t.resolved.c_str(), W_OK) != 0)
        throw UserError(fmt::format("{} '{}' is not writable ({})", what, path, errno_text(errno)));
      t.stream = true;
      return t;
    } else {
      throw UserError(fmt::format("{} '{}' is not a regular file; refusing to write it", what, path));
    }
  } else if (errno != ENOENT) {
    throw UserError(fmt::format("{} '{}': {}", what, path, errno_text(errno)));
  }
  // A regular file to create or replace: its directory must exist and be writable.
  fs::path dir = fs::path(t.resolved).parent_path();
  if (dir.empty()) dir = ".";
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode))
    throw UserError(fmt::format("{} '{}': directory '{}' does not exist", what, path, dir.string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UserError(fmt::format("{} '{}': directory '{}' is not writable ({})", what, path, dir.string(),
                                errno_text(errno)));
  if (fs::path(t.resolved).filename().empty())
    throw UserError(fmt::format("{} '{}' names a directory, not a file", what, path));
  return t;
}

void check_output_dir(const std::string& dir, const std::string& what) {
  if (dir.empty()) throw UserError(fmt::format("{}: empty directory path", what));
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw UserError(fmt::format("{} '{}' exists and is not a directory", what, dir));
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      throw UserError(fmt::format("{} '{}' is not writable ({})", what, dir, errno_text(errno)));
    return;
  }
  if (errno != ENOENT && errno != ENOTDIR) throw UserError(fmt::format("{} '{}': {}", what, dir, errno_text(errno)));
  // Missing: walk up to the first ancestor that exists. Every missing level is created later
  // (make_output_dir); the ancestor must be a writable directory, and nothing on the way may be a
  // dangling symlink or a file.
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();  // "a/b/" -> "a/b"
  for (fs::path cur = p;; cur = cur.parent_path()) {
    struct stat lst {};
    if (::lstat(cur.c_str(), &lst) == 0) {
      if (S_ISLNK(lst.st_mode) && ::stat(cur.c_str(), &st) != 0)
        throw UserError(fmt::format("{} '{}': '{}' is a symlink to a missing directory", what, dir, cur.string()));
      if (::stat(cur.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw UserError(fmt::format("{} '{}': '{}' exists and is not a directory", what, dir, cur.string()));
      if (::access(cur.c_str(), W_OK | X_OK) != 0)
        throw UserError(fmt::format("{} '{}': directory '{}' is not writable ({})", what, dir, cur.string(),
                                    errno_text(errno)));
      return;
    }
    if (errno != ENOENT) throw UserError(fmt::format("{} '{}': '{}': {}", what, dir, cur.string(), errno_text(errno)));
    const fs::path parent = cur.parent_path();
    if (parent.empty() || parent == cur) {
      // A relative path whose every component is missing: it is created in the working directory.
      if (::access(".", W_OK | X_OK) != 0)
        throw UserError(fmt::format("{} '{}': the working directory is not writable ({})", what, dir,
                                    errno_text(errno)));
      return;
    }
  }
}

void make_output_dir(const std::string& dir, const std::string& what) {
  check_output_dir(dir, what);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError(fmt::format("{} '{}': cannot create the directory ({})", what, dir, ec.message()));
  check_output_dir(dir, what);  // someone may have raced a file into place
}

// ---- PendingFile -----------------------------------------------------------------------------

PendingFile::PendingFile(const std::string& path, const std::string& what, OutputKind kind)
    : target_(resolve_output(path, what, kind)), what_(what) {
  if (target_.stream) {
    write_path_ = target_.resolved;
    // Our own descriptor: a duplicate shares its file offset (and O_APPEND), so the output follows
    // what was already written there instead of overwriting it from the start.
    if (target_.fd >= 0) {
      std::fflush(nullptr);
      fd_ = ::fcntl(target_.fd, F_DUPFD_CLOEXEC, 3);
      if (fd_ < 0) throw UserError(fmt::format("{} '{}': cannot write ({})", what_, target_.path, errno_text(errno)));
      return;
    }
    fd_ = ::open(write_path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) throw UserError(fmt::format("{} '{}': cannot open ({})", what_, target_.path, errno_text(errno)));
    return;
  }
  write_path_ = temporary_name_for(target_.resolved);
  // Registered before creation so a signal between open() and the registration cannot leak it.
  slot_ = register_temporary(write_path_);
  fd_ = ::open(write_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int e = errno;
    unregister_temporary(slot_);
    slot_ = -1;
    throw UserError(fmt::format("{} '{}': cannot create a file in its directory ({})", what_, target_.path,
                                errno_text(e)));
  }
}

PendingFile::~PendingFile() { discard(); }

void PendingFile::write(std::string_view data) {
  ST_INVARIANT(!done_ && fd_ >= 0);
  if (target_.fd >= 0) std::fflush(nullptr);  // what was printed to the same descriptor comes first
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      discard();
      throw UserError(fmt::format("{} '{}': write failed ({})", what_, target_.path, errno_text(e)));
    }
    p += n;
    left -= size_t(n);
  }
}

void PendingFile::commit() {
  ST_INVARIANT(!done_);
  if (fd_ >= 0) {
    int e = 0;
    if (!target_.stream && ::fsync(fd_) != 0) e = errno;
    if (::close(fd_) != 0 && e == 0) e = errno;
    fd_ = -1;
    if (e != 0) {
      discard();
      throw UserError(fmt::format("{} '{}': write failed ({})", what_, target_.path, errno_text(e)));
    }
  }
  if (!target_.stream) {
    // The target may have changed kind since it was checked (a directory or device put there):
    // never rename over anything but a regular file or nothing.
    struct stat st {};
    if (::lstat(target_.resolved.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      discard();
      throw UserError(fmt::format("{} '{}' is no longer a regular file; not replaced", what_, target_.path));
    }
    if (::rename(write_path_.c_str(), target_.resolved.c_str()) != 0) {
      int e = errno;
      discard();
      throw UserError(fmt::format("{} '{}': cannot move the finished file into place ({})", what_, target_.path,
                                  errno_text(e)));
    }
  }
  unregister_temporary(slot_);
  slot_ = -1;
  done_ = true;
}

void PendingFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!target_.stream && !done_ && !write_path_.empty()) ::unlink(write_path_.c_str());
  unregister_temporary(slot_);
  slot_ = -1;
  done_ = true;
}

void write_text_file(const std::string& path, std::string_view text, const std::string& what) {
  PendingFile f(path, what);
  f.write(text);
  f.commit();
}

// ---- OutputSet -------------------------------------------------------------------------------

void OutputSet::add_text(const std::string& path, std::string text, const std::string& what) {
  add_writer(path, [text = std::move(text)](PendingFile& f) { f.write(text); }, what);
}

void OutputSet::add_writer(const std::string& path, std::function<void(PendingFile&)> write, const std::string& what) {
  if (path.empty()) return;
  items_.push_back({path, what, std::move(write)});
}

void OutputSet::commit() {
  std::vector<std::unique_ptr<PendingFile>> files;
  // Regular targets first: everything that can fail before a target is touched does so here.
  for (const Item& it : items_) {
    files.push_back(std::make_unique<PendingFile>(it.path, it.what));
    if (!files.back()->streamed()) it.write(*files.back());
  }
  for (size_t i = 0; i < files.size(); ++i)
    if (!files[i]->streamed()) files[i]->commit();
  for (size_t i = 0; i < files.size(); ++i)
    if (files[i]->streamed()) {
      items_[i].write(*files[i]);
      files[i]->commit();
    }
  items_.clear();
}

// ---- DirLock ---------------------------------------------------------------------------------

DirLock::DirLock(const std::string& dir, const std::string& what) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw UserError(fmt::format("{} '{}': cannot open directory ({})", what, dir, errno_text(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw UserError(fmt::format("{} '{}' is in use by another systrain run", what, dir));
    throw UserError(fmt::format("{} '{}': cannot lock ({})", what, dir, errno_text(e)));
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace st::io
