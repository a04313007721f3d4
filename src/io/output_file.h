#pragma once
// Every file systrain writes goes through here, so one piece of code keeps the output contract
// (DESIGN.md "Errors"): a user's output either appears whole or not at all, nothing that is not a
// regular file of ours is ever replaced, and no temporary is left behind (not on an error, not on
// Ctrl-C / SIGTERM).
//
// How a target path is treated (resolve_output):
// - does not exist: created through a unique temporary in the same directory and a rename;
// - a regular file: replaced the same way (readers see the old or the new file, never a torn one);
// - one of this process's descriptors (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`):
//   written through the open descriptor itself, so `--json /dev/stdout > out.txt` appends after what
//   was printed instead of replacing out.txt, and a pipe works; only for streamable (text) outputs;
// - a character device or FIFO (`/dev/null`, a named pipe): streamed into directly, never renamed
//   over; only for outputs that can be streamed (text), others refuse it;
// - a symlink: followed; the *target* is treated as above, the link itself is kept;
// - a directory, a socket, a block device, a dangling symlink, a missing parent directory: refused
//   with a UserError naming the option and the path, before any work starts (check_output).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace st::io {

enum class OutputKind { stream_ok, regular_only };

// What writing `path` would do; throws UserError if it may not be written. `what` names the option
// or file in the message (e.g. "--json").
struct OutputTarget {
  std::string path;      // the path as given
  std::string resolved;  // the regular file to replace / create, or the device / FIFO to stream into
  bool stream = false;   // true: write straight into `resolved`, no temporary
  int fd = -1;           // >= 0: the path names this process's descriptor (/dev/stdout, /dev/fd/N):
                         // written through a duplicate of it, whatever it is connected to
};
OutputTarget resolve_output(const std::string& path, const std::string& what,
                            OutputKind kind = OutputKind::stream_ok);

// Checks an output path up front (before the work), same rules as resolve_output.
inline void check_output(const std::string& path, const std::string& what,
                         OutputKind kind = OutputKind::stream_ok) {
  if (!path.empty()) resolve_output(path, what, kind);
}

// Checks that `dir` can be a run directory: a writable directory, or missing, and then creatable:
// its first existing ancestor is a writable directory (missing levels in between are created too).
// A regular file, a device or a dangling symlink on the way is refused.
void check_output_dir(const std::string& dir, const std::string& what);
// Creates the run directory and any missing parents, after check_output_dir's rules.
void make_output_dir(const std::string& dir, const std::string& what);

// A temporary file that becomes `target` on commit() and disappears otherwise (destructor, error, or
// SIGINT / SIGTERM while it exists). For a streamed target, path() is the target itself and commit()
// only checks that everything was written.
class PendingFile {
 public:
  PendingFile(const std::string& path, const std::string& what, OutputKind kind = OutputKind::stream_ok);
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile();

  // The file to write now (the temporary, or the streamed target).
  const std::string& path() const { return write_path_; }
  bool streamed() const { return target_.stream; }
  // Writes all of `data` (checked: ENOSPC, EPIPE, EIO become a UserError naming the target).
  void write(std::string_view data);
  // Closes (fsync for a regular file), then renames the temporary over the target. Throws UserError
  // on any failure, after removing the temporary.
  void commit();
  // Removes the temporary now (idempotent). Called by the destructor.
  void discard() noexcept;

 private:
  OutputTarget target_;
  std::string what_, write_path_;
  int fd_ = -1;
  int slot_ = -1;  // index in the signal-cleanup registry, -1 when not registered
  bool done_ = false;
};

// Writes `text` to `path` atomically (or streams it), in one call.
void write_text_file(const std::string& path, std::string_view text, const std::string& what = "output");

// Several outputs of one command, committed together: every temporary is written first, then all are
// renamed; if any write fails, none of the targets is touched.
class OutputSet {
 public:
  void add_text(const std::string& path, std::string text, const std::string& what);
  // An output whose content `write` produces at commit time, in pieces (PendingFile::write), for
  // one too large to hold as a single string (a trace). Same rules and order as add_text.
  void add_writer(const std::string& path, std::function<void(PendingFile&)> write, const std::string& what);
  void commit();

 private:
  struct Item {
    std::string path, what;
    std::function<void(PendingFile&)> write;
  };
  std::vector<Item> items_;
};

// Installs SIGINT / SIGTERM handlers that remove every live temporary and then die of the signal,
// and ignores SIGPIPE so a closed pipe becomes a checked EPIPE error instead of a silent death.
// Called once by main(); idempotent.
void install_output_signal_handlers();

// Registry of temporaries for the signal handler (also used by HDF5 writers that create their own
// temporary files). Returns a slot, or -1 if the registry is full (the file is then cleaned up only
// by its owner, never by a signal).
int register_temporary(const std::string& path) noexcept;
void unregister_temporary(int slot) noexcept;

// A unique temporary name beside `target` in the same directory (so the rename stays within one file
// system): "<target>.tmp.<pid>.<n>".
std::string temporary_name_for(const std::string& target);

// An exclusive advisory lock on a run directory for the life of the object: a second systrain run
// writing the same directory gets a UserError instead of interleaving files. Released on exit or kill.
class DirLock {
 public:
  DirLock(const std::string& dir, const std::string& what);
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

 private:
  int fd_ = -1;
};

}  // namespace st::io
