#pragma once
// Small RAII layer over the HDF5 C API, used for checkpoints (weights, optimizer state, RNG state,
// step, spec text), the stats time series, tensor dumps and the dataset format. Files written here
// are plain HDF5 (native little-endian types, no custom filters beyond deflate), so h5py reads them.
//
// Names are absolute or relative paths inside the file ("/train/images", "params/conv1.wei");
// writing creates the missing intermediate groups. Every failure throws st::UserError naming the
// file, the object and, when HDF5 says, the innermost cause. HDF5's own stack printing is silenced
// (H5Eset_auto2) so the user sees our one line only.
//
//   st::h5::AtomicFile out("run/ckpt.h5");          // writes run/ckpt.h5.tmp
//   out.file().write_tensor("params/fc.wei", w);
//   out.file().set_attr("/", "step", int64_t{1200});
//   out.commit();                                   // close + rename; the destructor removes the
//                                                   // temporary if commit() was never reached
//
// Reading files we did not write (policy for untrusted HDF5, DESIGN.md "Errors"):
// - Every read checks the structure before it allocates or reads data: ranks and dims (at most
//   2^53 elements, no overflow), element class and size, layout (contiguous, chunked or compact;
//   no external raw-data files, no virtual datasets), filters (deflate, shuffle, fletcher32 only),
//   chunk sizes, and that the data is really stored: a contiguous dataset's storage lies inside the
//   file, a chunked one has every chunk allocated and declares at most 1032 x the file size (the
//   deflate limit) -- a small file cannot make us allocate gigabytes or read fill values for ever.
//   Only hard links are followed (no soft or external links into other files). Attribute and
//   string sizes are bounded before they are read.
// - Malformed metadata can crash, hang or silently corrupt the heap of libhdf5 1.10 itself (inside
//   H5Fopen, H5Lexists, H5Aread of a variable-length string, before any check of ours can run). So
//   a reader of untrusted files parses them only in a child process (read_in_child below) and gets
//   back plain bytes it validates again; the parent never hands such a file to the library. A
//   crash, hang or memory exhaustion in the child becomes a UserError naming the file.
#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "src/base/error.h"
#include "src/base/tensor.h"

namespace st::h5 {

using Dims = std::vector<int64_t>;

// Turns HDF5's automatic error printing off (idempotent; every File constructor calls it).
void silence_errors();

// Owns one hid_t and closes it with the matching H5*close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership without closing.
  hid_t release() {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

// Element types the helpers read and write. Reading converts between sizes of the same class
// (an uint8 dataset reads into int32), never between integers and floats.
template <class T>
concept Element = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                  std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> ||
                  std::is_same_v<T, uint8_t> || std::is_same_v<T, uint64_t>;

template <Element T>
hid_t native_type();

// The element type of a dataset as stored in the file.
struct TypeInfo {
  H5T_class_t cls = H5T_NO_CLASS;
  size_t size = 0;       // bytes per element
  bool is_signed = false;  // integers only
};

// Runs `read` (which opens `path`, reads it and serializes what it read) in a child process and
// returns its bytes. The child's UserError is thrown again as is; a child killed by a signal
// (libhdf5 crashing on a malformed file), out of memory or over its time limit becomes a UserError
// naming `path`. With isolation off (set_untrusted_isolation(false): fuzz targets, which must see
// the crash) or when no process can be started, `read` runs in-process.
std::string read_in_child(const std::string& path, const std::function<std::string()>& read);
void set_untrusted_isolation(bool on);
bool untrusted_isolation();
// Seconds the child may take; 0 (the default) means 60 s plus 1 s per MiB of the file.
void set_untrusted_time_limit(unsigned seconds);

struct WriteOptions {
  int deflate = 0;          // 0 = no compression, 1..9 = gzip level (chunked along dim 0)
  int64_t chunk_rows = 0;   // rows of dim 0 per chunk when compressing; 0 = about 1 MiB per chunk
};

class File {
 public:
  enum class Mode { read, read_write };
  // Creates (truncating) a new file.
  static File create(const std::string& path);
  // Opens an existing file; missing, unreadable or non-HDF5 files give a UserError.
  static File open(const std::string& path, Mode mode = Mode::read);

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  void flush();
  void close();  // explicit close (reports errors); the destructor closes silently

  // --- structure ---
  bool exists(const std::string& name) const;  // group or dataset; false for a missing parent too
  void create_group(const std::string& name);  // with parents; no-op if it exists
  Dims dims(const std::string& dataset) const;
  TypeInfo type_info(const std::string& dataset) const;
  std::vector<std::string> list(const std::string& group) const;  // member names, sorted

  // --- numeric datasets of any rank (row-major, like numpy) ---
  template <Element T>
  void write(const std::string& name, const T* data, const Dims& dims, const WriteOptions& opt = {});
  template <Element T>
  void write(const std::string& name, const std::vector<T>& v, const WriteOptions& opt = {}) {
    write<T>(name, v.data(), Dims{static_cast<int64_t>(v.size())}, opt);
  }
  template <Element T>
  void write_scalar(const std::string& name, T v) { write<T>(name, &v, Dims{}); }
  // Reads the whole dataset; `dims` (optional) receives its shape.
  template <Element T>
  std::vector<T> read(const std::string& name, Dims* dims = nullptr) const;
  // Reads rows [start, start+count) of dim 0 (all of the other dims).
  template <Element T>
  std::vector<T> read_rows(const std::string& name, int64_t start, int64_t count) const;
  template <Element T>
  T read_scalar(const std::string& name) const;

  // fp32 tensors keep their rank (0..4) in the file.
  void write_tensor(const std::string& name, const Tensor& t, const WriteOptions& opt = {});
  Tensor read_tensor(const std::string& name) const;

  // --- strings ---
  // One UTF-8 variable-length string as a scalar dataset (spec text, network description).
  void write_string(const std::string& name, const std::string& s);
  std::string read_string(const std::string& name) const;
  // 1-D string datasets: variable-length by default, fixed-length (padded with NUL to the longest)
  // when `fixed` is set. read_strings reads either kind.
  void write_strings(const std::string& name, const std::vector<std::string>& v, bool fixed = false);
  std::vector<std::string> read_strings(const std::string& name) const;

  // --- attributes on a group or dataset ("/" for the file) ---
  void set_attr(const std::string& obj, const std::string& key, const std::string& v);
  void set_attr(const std::string& obj, const std::string& key, const char* v) {
    set_attr(obj, key, std::string(v));
  }
  void set_attr(const std::string& obj, const std::string& key, int64_t v);
  void set_attr(const std::string& obj, const std::string& key, double v);
  void set_attr(const std::string& obj, const std::string& key, const std::vector<double>& v);
  void set_attr(const std::string& obj, const std::string& key, const std::vector<int64_t>& v);
  bool has_attr(const std::string& obj, const std::string& key) const;
  std::string attr_string(const std::string& obj, const std::string& key) const;
  int64_t attr_int(const std::string& obj, const std::string& key) const;
  double attr_double(const std::string& obj, const std::string& key) const;
  std::vector<double> attr_doubles(const std::string& obj, const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& obj, const std::string& key) const;

  // --- extendible datasets for time series ---
  // cols == 0: a 1-D dataset growing by one element per append; cols > 0: a 2-D (rows, cols)
  // dataset growing by one row per append. Chunked, so appends are cheap.
  template <Element T>
  void create_series(const std::string& name, int64_t cols, int64_t chunk_rows = 256);
  // Appends one row (cols elements, or 1 for a 1-D series); returns the new row count.
  template <Element T>
  int64_t append_row(const std::string& name, const T* row);
  template <Element T>
  int64_t append_row(const std::string& name, const std::vector<T>& row);

 private:
  File(std::string path, Handle h, bool writable)
      : path_(std::move(path)), file_(std::move(h)), writable_(writable) {}
  [[noreturn]] void fail(const std::string& what) const;
  Handle open_object(const std::string& name) const;
  Handle open_dataset(const std::string& name) const;
  Handle create_dataset(const std::string& name, hid_t type, hid_t space, hid_t dcpl) const;
  void read_raw(const std::string& name, hid_t mem_type, H5T_class_t want, void* out, Dims* dims,
                const int64_t* rows) const;
  Dims checked_dims(hid_t space, const std::string& name) const;
  // The structure checks above, for a dataset about to be read whole or in part.
  void check_stored(hid_t dset, const std::string& name, const Dims& dims, size_t elem_size) const;
  uint64_t size_on_disk() const;
  void write_attr_raw(const std::string& obj, const std::string& key, hid_t type, hid_t space,
                      const void* data);

  std::string path_;
  Handle file_;
  bool writable_ = false;
};

// Writes `path` atomically: the File is created as a unique temporary beside it; commit() closes it and renames it
// over `path`. If commit() is never reached (an exception, a NaN stop), the destructor deletes the
// temporary, so readers see either the old complete file or the new complete file, never a torn one.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  File& file() { return *file_; }
  const std::string& tmp_path() const { return tmp_; }
  void commit();

 private:
  std::string path_, target_, tmp_;
  std::optional<File> file_;
  int slot_ = -1;  // signal-cleanup registration of tmp_
  bool committed_ = false;
};

// Atomically replaces `path` with whatever `fill` writes. Same guarantees as AtomicFile.
void atomic_write(const std::string& path, const std::function<void(File&)>& fill);

}  // namespace st::h5
