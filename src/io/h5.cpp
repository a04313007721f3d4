// RAII helpers over the HDF5 C API (see h5.h). Every call's return code is checked; failures become
// one st::UserError naming the file, the object and the innermost HDF5 cause.
#include "src/io/h5.h"
#include "src/io/output_file.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>

#include "src/io/untrusted.h"

namespace st::h5 {
namespace {

// The innermost (most specific) message on HDF5's error stack, then clears the stack.
std::string hdf5_cause() {
  std::string cause;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &cause);
  H5Eclear2(H5E_DEFAULT);
  return cause;
}

std::string abs_name(const std::string& name) {
  if (name.empty() || name == "/") return "/";
  return name[0] == '/' ? name : "/" + name;
}

Handle make(hid_t id, herr_t (*close)(hid_t)) { return Handle(id, close); }

// Link creation property list that creates missing parent groups.
Handle lcpl_with_parents() {
  Handle p = make(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(p.get(), 1);
  H5Pset_char_encoding(p.get(), H5T_CSET_UTF8);
  return p;
}

Handle simple_space(const Dims& dims, const Dims* maxdims = nullptr) {
  if (dims.empty()) return make(H5Screate(H5S_SCALAR), H5Sclose);
  std::vector<hsize_t> d(dims.begin(), dims.end()), m;
  if (maxdims)
    for (int64_t x : *maxdims) m.push_back(x < 0 ? H5S_UNLIMITED : static_cast<hsize_t>(x));
  return make(H5Screate_simple(static_cast<int>(d.size()), d.data(), maxdims ? m.data() : nullptr),
              H5Sclose);
}

Handle vlen_string_type() {
  Handle t = make(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

Dims space_dims(hid_t space) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) return {};
  std::vector<hsize_t> d(rank);
  H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return Dims(d.begin(), d.end());
}

int64_t product(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// Bounds of what a read may ask for, checked before anything is allocated (see h5.h).
constexpr int64_t kMaxElements = int64_t{1} << 53;
constexpr int64_t kMaxCompactBytes = int64_t{64} << 10;   // HDF5's own limit for compact layout
constexpr int64_t kMaxChunkBytes = int64_t{1} << 28;      // one chunk is decompressed whole
constexpr uint64_t kMaxDeflateRatio = 1032;               // RFC 1951: deflate expands at most 1032:1
constexpr int64_t kMaxAttrElements = int64_t{1} << 20;
constexpr int64_t kMaxStrings = int64_t{1} << 20;
constexpr size_t kMaxStringWidth = size_t{1} << 20;

template <class T>
constexpr H5T_class_t class_of() {
  return std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER;
}

}  // namespace

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = H5I_INVALID_HID;
}

template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<uint64_t>() { return H5T_NATIVE_UINT64; }

// ---------------------------------------------------------------------------------------------
// File

File File::create(const std::string& path) {
  silence_errors();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) {
    std::string cause = hdf5_cause();
    throw UserError(fmt::format("{}: cannot create HDF5 file ({})", path,
                                cause.empty() ? "check the directory exists and is writable" : cause));
  }
  return File(path, make(id, H5Fclose), true);
}

File File::open(const std::string& path, Mode mode) {
  silence_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw UserError(fmt::format("{}: file not found", path));
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(fmt::format("{}: not a regular file", path));
  hid_t id = H5Fopen(path.c_str(), mode == Mode::read ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
  if (id < 0) {
    std::string cause = hdf5_cause();
    throw UserError(fmt::format("{}: not a readable HDF5 file ({})", path,
                                cause.empty() ? "unknown cause" : cause));
  }
  return File(path, make(id, H5Fclose), mode == Mode::read_write);
}

void File::fail(const std::string& what) const {
  std::string cause = hdf5_cause();
  if (cause.empty()) throw UserError(fmt::format("{}: {}", path_, what));
  throw UserError(fmt::format("{}: {} ({})", path_, what, cause));
}

void File::flush() {
  if (H5Fflush(id(), H5F_SCOPE_LOCAL) < 0) fail("flush failed");
}

void File::close() {
  if (!file_.valid()) return;
  // Closing must succeed before an atomic rename, so close by hand and check the return code.
  if (H5Fclose(file_.release()) < 0) fail("close failed (data may not have been written)");
}

bool File::exists(const std::string& name) const {
  std::string n = abs_name(name);
  if (n == "/") return true;
  // H5Lexists fails on a missing parent, so walk the path component by component.
  size_t pos = 0;
  while (true) {
    size_t next = n.find('/', pos + 1);
    std::string prefix = n.substr(0, next);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    // Only hard links: a soft link can point anywhere in the file, an external one into any file.
    H5L_info_t li{};
    if (H5Lget_info(id(), prefix.c_str(), &li, H5P_DEFAULT) < 0) fail(fmt::format("cannot read link '{}'", prefix));
    if (li.type != H5L_TYPE_HARD)
      throw UserError(fmt::format("{}: '{}' is {} link; systrain reads only plain groups and datasets",
                                  path_, io::printable(prefix), li.type == H5L_TYPE_SOFT ? "a soft" : "an external"));
    if (next == std::string::npos) break;
    pos = next;
  }
  return H5Oexists_by_name(id(), n.c_str(), H5P_DEFAULT) > 0;
}

void File::create_group(const std::string& name) {
  if (exists(name)) return;
  Handle lcpl = lcpl_with_parents();
  Handle g = make(H5Gcreate2(id(), abs_name(name).c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                  H5Gclose);
  if (!g.valid()) fail(fmt::format("cannot create group '{}'", name));
}

std::vector<std::string> File::list(const std::string& group) const {
  Handle g = open_object(group);
  std::vector<std::string> names;
  H5Literate(
      g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  std::sort(names.begin(), names.end());
  return names;
}

Handle File::open_object(const std::string& name) const {
  if (!exists(name)) throw UserError(fmt::format("{}: no object '{}'", path_, abs_name(name)));
  Handle o = make(H5Oopen(id(), abs_name(name).c_str(), H5P_DEFAULT), H5Oclose);
  if (!o.valid()) fail(fmt::format("cannot open '{}'", name));
  return o;
}

Handle File::open_dataset(const std::string& name) const {
  if (!exists(name)) throw UserError(fmt::format("{}: missing dataset '{}'", path_, abs_name(name)));
  Handle d = make(H5Dopen2(id(), abs_name(name).c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(fmt::format("'{}' is not a dataset", abs_name(name)));
  return d;
}

Handle File::create_dataset(const std::string& name, hid_t type, hid_t space, hid_t dcpl) const {
  std::string n = abs_name(name);
  if (exists(n) && H5Ldelete(id(), n.c_str(), H5P_DEFAULT) < 0)
    fail(fmt::format("cannot replace '{}'", n));
  Handle lcpl = lcpl_with_parents();
  Handle d = make(H5Dcreate2(id(), n.c_str(), type, space, lcpl.get(), dcpl, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail(fmt::format("cannot create dataset '{}'", n));
  return d;
}

Dims File::dims(const std::string& dataset) const {
  Handle d = open_dataset(dataset);
  Handle s = make(H5Dget_space(d.get()), H5Sclose);
  return checked_dims(s.get(), dataset);
}

TypeInfo File::type_info(const std::string& dataset) const {
  Handle d = open_dataset(dataset);
  Handle t = make(H5Dget_type(d.get()), H5Tclose);
  if (!t.valid()) fail(fmt::format("cannot read the element type of '{}'", abs_name(dataset)));
  TypeInfo info;
  info.cls = H5Tget_class(t.get());
  info.size = H5Tget_size(t.get());
  if (info.cls == H5T_INTEGER) info.is_signed = H5Tget_sign(t.get()) == H5T_SGN_2;
  return info;
}

Dims File::checked_dims(hid_t space, const std::string& name) const {
  if (space < 0) fail(fmt::format("cannot read the shape of '{}'", abs_name(name)));
  if (H5Sget_simple_extent_type(space) == H5S_NULL)
    throw UserError(fmt::format("{}: '{}' has a null dataspace (no elements, not even a scalar)", path_,
                                abs_name(name)));
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > H5S_MAX_RANK) fail(fmt::format("cannot read the shape of '{}'", abs_name(name)));
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, d.data(), nullptr) < 0)
    fail(fmt::format("cannot read the shape of '{}'", abs_name(name)));
  Dims out;
  int64_t n = 1;
  for (hsize_t x : d) {
    if (x > static_cast<hsize_t>(kMaxElements) || !io::checked_mul(n, static_cast<int64_t>(x), kMaxElements))
      throw UserError(fmt::format("{}: '{}' declares a shape of more than 2^53 elements", path_, abs_name(name)));
    n *= static_cast<int64_t>(x);
    out.push_back(static_cast<int64_t>(x));
  }
  return out;
}

uint64_t File::size_on_disk() const {
  struct stat st {};
  uint64_t size = ::stat(path_.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  // A file open for writing may hold data that only HDF5's cache knows about yet. A file opened
  // read-only is judged by its size on disk alone (its superblock could claim any end address).
  hsize_t eoa = 0;
  if (writable_ && H5Fget_filesize(id(), &eoa) >= 0) size = std::max<uint64_t>(size, eoa);
  return size;
}

void File::check_stored(hid_t dset, const std::string& name, const Dims& dims, size_t elem_size) const {
  const std::string n = io::printable(abs_name(name));
  int64_t elems = 1;
  for (int64_t x : dims) elems *= x;  // checked_dims bounded the product
  // Elements of up to 16 bytes (numbers) or kMaxStringWidth (fixed-length strings): < 2^63 in all.
  if (elem_size == 0 || elem_size > kMaxStringWidth)
    throw UserError(fmt::format("{}: '{}' has elements of {} bytes", path_, n, elem_size));
  const auto total = io::checked_mul(elems, static_cast<int64_t>(elem_size));
  if (!total) throw UserError(fmt::format("{}: '{}' declares more than 2^63 bytes", path_, n));
  const auto bytes = static_cast<uint64_t>(*total);
  Handle dcpl = make(H5Dget_create_plist(dset), H5Pclose);
  if (!dcpl.valid()) fail(fmt::format("cannot read the storage properties of '{}'", n));
  const int external = H5Pget_external_count(dcpl.get());
  if (external != 0)
    throw UserError(fmt::format("{}: '{}' keeps its data in external files; systrain reads only data "
                                "stored in the file itself", path_, n));
  if (bytes == 0) return;
  const uint64_t file_bytes = size_on_disk();
  switch (H5Pget_layout(dcpl.get())) {
    case H5D_COMPACT:
      if (bytes > static_cast<uint64_t>(kMaxCompactBytes))
        throw UserError(fmt::format("{}: compact dataset '{}' declares {} bytes (compact data holds at "
                                    "most {})", path_, n, bytes, kMaxCompactBytes));
      return;
    case H5D_CONTIGUOUS: {
      const haddr_t off = H5Dget_offset(dset);
      const hsize_t stored = H5Dget_storage_size(dset);
      H5Eclear2(H5E_DEFAULT);
      if (off == HADDR_UNDEF || stored < bytes)
        throw UserError(fmt::format("{}: '{}' declares {} bytes of data but stores {} (a damaged or "
                                    "unfinished file)", path_, n, bytes, off == HADDR_UNDEF ? 0 : stored));
      if (off > file_bytes || bytes > file_bytes - off)
        throw UserError(fmt::format("{}: '{}' declares its data at bytes [{}, {}) of a {}-byte file "
                                    "(truncated or damaged)", path_, n, off, off + bytes, file_bytes));
      return;
    }
    case H5D_CHUNKED: {
      hsize_t chunk[H5S_MAX_RANK] = {};
      const int crank = H5Pget_chunk(dcpl.get(), H5S_MAX_RANK, chunk);
      if (crank != static_cast<int>(dims.size()))
        throw UserError(fmt::format("{}: '{}' has chunks of rank {} for data of rank {}", path_, n, crank,
                                    dims.size()));
      int64_t chunk_bytes = static_cast<int64_t>(elem_size), needed = 1;
      for (int i = 0; i < crank; ++i) {
        if (chunk[i] == 0 || chunk[i] > static_cast<hsize_t>(kMaxChunkBytes) ||
            !io::checked_mul(chunk_bytes, static_cast<int64_t>(chunk[i]), kMaxChunkBytes))
          throw UserError(fmt::format("{}: '{}' has chunks of more than {} bytes", path_, n, kMaxChunkBytes));
        chunk_bytes *= static_cast<int64_t>(chunk[i]);
        const int64_t per_dim = (dims[i] + static_cast<int64_t>(chunk[i]) - 1) / static_cast<int64_t>(chunk[i]);
        needed *= per_dim;  // <= elems
      }
      const int nfilters = H5Pget_nfilters(dcpl.get());
      if (nfilters < 0) fail(fmt::format("cannot read the filters of '{}'", n));
      for (int i = 0; i < nfilters; ++i) {
        unsigned flags = 0, config = 0;
        size_t nvals = 0;
        const H5Z_filter_t f = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nvals,
                                              nullptr, 0, nullptr, &config);
        if (f != H5Z_FILTER_DEFLATE && f != H5Z_FILTER_SHUFFLE && f != H5Z_FILTER_FLETCHER32)
          throw UserError(fmt::format("{}: '{}' uses HDF5 filter {}; systrain reads only deflate, "
                                      "shuffle and fletcher32", path_, n, static_cast<int>(f)));
      }
      hsize_t have = 0;
      Handle fspace = make(H5Dget_space(dset), H5Sclose);
      if (H5Dget_num_chunks(dset, fspace.get(), &have) < 0)
        fail(fmt::format("cannot count the stored chunks of '{}'", n));
      if (have < static_cast<hsize_t>(needed))
        throw UserError(fmt::format("{}: '{}' stores {} of its {} chunks (the rest would read as fill "
                                    "values: a damaged or unfinished file)", path_, n, have, needed));
      const hsize_t stored = H5Dget_storage_size(dset);
      H5Eclear2(H5E_DEFAULT);
      const uint64_t can_hold = nfilters > 0 ? file_bytes * kMaxDeflateRatio : file_bytes;
      if (stored > file_bytes || bytes > can_hold)
        throw UserError(fmt::format("{}: '{}' declares {} bytes of data but a {}-byte file cannot hold "
                                    "them (truncated or damaged)", path_, n, bytes, file_bytes));
      return;
    }
    default:
      throw UserError(fmt::format("{}: '{}' has a storage layout systrain does not read (virtual "
                                  "datasets are not supported)", path_, n));
  }
}

template <Element T>
void File::write(const std::string& name, const T* data, const Dims& dims, const WriteOptions& opt) {
  for (int64_t x : dims)
    if (x < 0) throw UserError(fmt::format("{}: negative dimension writing '{}'", path_, name));
  Handle space = simple_space(dims);
  Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const int64_t n = product(dims);
  if (opt.deflate > 0 && !dims.empty() && n > 0) {
    // Chunk along dim 0 only, so a chunk holds whole rows (images, time steps).
    const int64_t row_bytes = n / dims[0] * static_cast<int64_t>(sizeof(T));
    constexpr int64_t kChunkBytes = int64_t{1} << 20;
    int64_t rows = opt.chunk_rows > 0 ? opt.chunk_rows : std::max<int64_t>(1, kChunkBytes / row_bytes);
    rows = std::min(rows, dims[0]);
    std::vector<hsize_t> chunk(dims.begin(), dims.end());
    chunk[0] = static_cast<hsize_t>(rows);
    H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_deflate(dcpl.get(), static_cast<unsigned>(std::min(opt.deflate, 9)));
  }
  Handle d = create_dataset(name, native_type<T>(), space.get(), dcpl.get());
  if (n > 0 && H5Dwrite(d.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(fmt::format("cannot write dataset '{}'", abs_name(name)));
}

void File::read_raw(const std::string& name, hid_t mem_type, H5T_class_t want, void* out,
                    Dims* dims_out, const int64_t* rows) const {
  Handle d = open_dataset(name);
  Handle ftype = make(H5Dget_type(d.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != want)
    throw UserError(fmt::format("{}: dataset '{}' has element type class {}, expected {}", path_,
                                abs_name(name), static_cast<int>(H5Tget_class(ftype.get())),
                                want == H5T_FLOAT ? "float" : "integer"));
  Handle fspace = make(H5Dget_space(d.get()), H5Sclose);
  Dims dims = checked_dims(fspace.get(), name);
  const size_t elem = H5Tget_size(ftype.get());
  if (elem == 0 || elem > 16)
    throw UserError(fmt::format("{}: dataset '{}' has numbers of {} bytes", path_, abs_name(name), elem));
  // Checked before the caller allocates: the size query is what it allocates from.
  check_stored(d.get(), name, dims, elem);
  if (dims_out) *dims_out = dims;
  if (!out) return;  // size query only
  Handle mspace;
  hid_t fsel = H5S_ALL, msel = H5S_ALL;
  if (rows) {
    std::vector<hsize_t> start(dims.size(), 0), count(dims.begin(), dims.end());
    start[0] = static_cast<hsize_t>(rows[0]);
    count[0] = static_cast<hsize_t>(rows[1]);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    mspace = make(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
    fsel = fspace.get();
    msel = mspace.get();
  }
  if (H5Dread(d.get(), mem_type, msel, fsel, H5P_DEFAULT, out) < 0)
    fail(fmt::format("cannot read dataset '{}'", abs_name(name)));
}

template <Element T>
std::vector<T> File::read(const std::string& name, Dims* dims) const {
  Dims d;
  read_raw(name, native_type<T>(), class_of<T>(), nullptr, &d, nullptr);
  std::vector<T> v(static_cast<size_t>(product(d)));
  if (!v.empty()) read_raw(name, native_type<T>(), class_of<T>(), v.data(), nullptr, nullptr);
  if (dims) *dims = d;
  return v;
}

template <Element T>
std::vector<T> File::read_rows(const std::string& name, int64_t start, int64_t count) const {
  Dims d;
  read_raw(name, native_type<T>(), class_of<T>(), nullptr, &d, nullptr);
  if (d.empty() || start < 0 || count < 0 || start + count > d[0])
    throw UserError(fmt::format("{}: rows [{}, {}) out of range for dataset '{}' of {} rows", path_,
                                start, start + count, abs_name(name), d.empty() ? 0 : d[0]));
  std::vector<T> v(static_cast<size_t>(count * (product(d) / std::max<int64_t>(d[0], 1))));
  if (v.empty()) return v;
  const int64_t rows[2] = {start, count};
  read_raw(name, native_type<T>(), class_of<T>(), v.data(), nullptr, rows);
  return v;
}

template <Element T>
T File::read_scalar(const std::string& name) const {
  Dims d;
  std::vector<T> v = read<T>(name, &d);
  if (v.size() != 1)
    throw UserError(fmt::format("{}: dataset '{}' holds {} values, expected one", path_,
                                abs_name(name), v.size()));
  return v[0];
}

void File::write_tensor(const std::string& name, const Tensor& t, const WriteOptions& opt) {
  Dims d(t.dims().begin(), t.dims().begin() + t.rank());
  write<float>(name, t.data(), d, opt);
}

Tensor File::read_tensor(const std::string& name) const {
  Dims d;
  std::vector<float> v = read<float>(name, &d);
  Tensor t;
  switch (d.size()) {
    case 0: t = Tensor(std::array<int64_t, 0>{}); break;
    case 1: t = Tensor({d[0]}); break;
    case 2: t = Tensor({d[0], d[1]}); break;
    case 3: t = Tensor({d[0], d[1], d[2]}); break;
    case 4: t = Tensor({d[0], d[1], d[2], d[3]}); break;
    default:
      throw UserError(fmt::format("{}: dataset '{}' has rank {}, a tensor holds at most 4", path_,
                                  abs_name(name), d.size()));
  }
  if (!v.empty()) std::copy(v.begin(), v.end(), t.data());
  return t;
}

// ---------------------------------------------------------------------------------------------
// Strings

void File::write_string(const std::string& name, const std::string& s) {
  Handle type = vlen_string_type();
  Handle space = make(H5Screate(H5S_SCALAR), H5Sclose);
  Handle d = create_dataset(name, type.get(), space.get(), H5P_DEFAULT);
  const char* p = s.c_str();
  if (H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) < 0)
    fail(fmt::format("cannot write string '{}'", abs_name(name)));
}

std::string File::read_string(const std::string& name) const {
  std::vector<std::string> v = read_strings(name);
  if (v.size() != 1)
    throw UserError(fmt::format("{}: '{}' holds {} strings, expected one", path_, abs_name(name),
                                v.size()));
  return v[0];
}

void File::write_strings(const std::string& name, const std::vector<std::string>& v, bool fixed) {
  Handle space = simple_space(Dims{static_cast<int64_t>(v.size())});
  if (fixed) {
    size_t width = 1;
    for (auto& s : v) width = std::max(width, s.size());
    Handle type = make(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), width);
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    std::vector<char> buf(width * v.size(), '\0');
    for (size_t i = 0; i < v.size(); ++i) std::copy(v[i].begin(), v[i].end(), buf.data() + i * width);
    Handle d = create_dataset(name, type.get(), space.get(), H5P_DEFAULT);
    if (!v.empty() && H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail(fmt::format("cannot write strings '{}'", abs_name(name)));
    return;
  }
  Handle type = vlen_string_type();
  std::vector<const char*> ptrs;
  for (auto& s : v) ptrs.push_back(s.c_str());
  Handle d = create_dataset(name, type.get(), space.get(), H5P_DEFAULT);
  if (!v.empty() && H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail(fmt::format("cannot write strings '{}'", abs_name(name)));
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  Handle d = open_dataset(name);
  Handle ftype = make(H5Dget_type(d.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING)
    throw UserError(fmt::format("{}: dataset '{}' does not hold strings", path_, abs_name(name)));
  Handle space = make(H5Dget_space(d.get()), H5Sclose);
  const Dims sd = checked_dims(space.get(), name);
  const auto n = static_cast<size_t>(product(sd));
  std::vector<std::string> out;
  if (n == 0) return out;
  if (n > static_cast<size_t>(kMaxStrings))
    throw UserError(fmt::format("{}: '{}' holds {} strings (at most {})", path_, abs_name(name), n, kMaxStrings));
  // A variable-length string is a reference into the global heap; claim one byte each.
  const bool vlen = H5Tis_variable_str(ftype.get()) > 0;
  check_stored(d.get(), name, sd, vlen ? 1 : H5Tget_size(ftype.get()));
  if (vlen) {
    Handle mtype = vlen_string_type();
    std::vector<char*> ptrs(n, nullptr);
    if (H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
      fail(fmt::format("cannot read strings '{}'", abs_name(name)));
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data());
    return out;
  }
  const size_t width = H5Tget_size(ftype.get());
  if (width == 0 || width > kMaxStringWidth || width * n > (size_t{1} << 28))
    throw UserError(fmt::format("{}: '{}' holds {} strings of {} bytes each (too large)", path_,
                                abs_name(name), n, width));
  // Same size and character set as the file; NUL padding so short strings end at their first NUL.
  Handle mtype = make(H5Tcopy(ftype.get()), H5Tclose);
  H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD);
  std::vector<char> buf(width * n);
  if (H5Dread(d.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
    fail(fmt::format("cannot read strings '{}'", abs_name(name)));
  for (size_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * width;
    out.emplace_back(p, std::find(p, p + width, '\0') - p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attributes

void File::write_attr_raw(const std::string& obj, const std::string& key, hid_t type, hid_t space,
                          const void* data) {
  Handle o = open_object(obj);
  if (H5Aexists(o.get(), key.c_str()) > 0) H5Adelete(o.get(), key.c_str());
  Handle a = make(H5Acreate2(o.get(), key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), type, data) < 0)
    fail(fmt::format("cannot write attribute '{}' of '{}'", key, abs_name(obj)));
}

void File::set_attr(const std::string& obj, const std::string& key, const std::string& v) {
  Handle type = vlen_string_type();
  Handle space = make(H5Screate(H5S_SCALAR), H5Sclose);
  const char* p = v.c_str();
  write_attr_raw(obj, key, type.get(), space.get(), &p);
}

void File::set_attr(const std::string& obj, const std::string& key, int64_t v) {
  Handle space = make(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr_raw(obj, key, H5T_NATIVE_INT64, space.get(), &v);
}

void File::set_attr(const std::string& obj, const std::string& key, double v) {
  Handle space = make(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr_raw(obj, key, H5T_NATIVE_DOUBLE, space.get(), &v);
}

void File::set_attr(const std::string& obj, const std::string& key, const std::vector<double>& v) {
  Handle space = simple_space(Dims{static_cast<int64_t>(v.size())});
  write_attr_raw(obj, key, H5T_NATIVE_DOUBLE, space.get(), v.data());
}

void File::set_attr(const std::string& obj, const std::string& key, const std::vector<int64_t>& v) {
  Handle space = simple_space(Dims{static_cast<int64_t>(v.size())});
  write_attr_raw(obj, key, H5T_NATIVE_INT64, space.get(), v.data());
}

bool File::has_attr(const std::string& obj, const std::string& key) const {
  if (!exists(obj)) return false;
  Handle o = open_object(obj);
  return H5Aexists(o.get(), key.c_str()) > 0;
}

namespace {
struct OpenAttr {
  Handle obj, attr, type, space;
  int64_t n = 0;
};
}  // namespace

#define ST_OPEN_ATTR(var, want_class, want_desc)                                                  \
  OpenAttr var;                                                                                   \
  var.obj = open_object(obj);                                                                     \
  if (H5Aexists(var.obj.get(), key.c_str()) <= 0)                                                 \
    throw UserError(fmt::format("{}: '{}' has no attribute '{}'", path_, abs_name(obj), key));    \
  var.attr = make(H5Aopen(var.obj.get(), key.c_str(), H5P_DEFAULT), H5Aclose);                    \
  var.type = make(H5Aget_type(var.attr.get()), H5Tclose);                                         \
  var.space = make(H5Aget_space(var.attr.get()), H5Sclose);                                       \
  var.n = product(checked_dims(var.space.get(), obj + "@" + key));                                \
  if (var.n > kMaxAttrElements)                                                                   \
    throw UserError(fmt::format("{}: attribute '{}' of '{}' holds {} values (at most {})", path_,  \
                                key, abs_name(obj), var.n, kMaxAttrElements));                    \
  if (H5Tget_class(var.type.get()) != (want_class))                                               \
    throw UserError(fmt::format("{}: attribute '{}' of '{}' is not {}", path_, key, abs_name(obj), \
                                want_desc));

std::string File::attr_string(const std::string& obj, const std::string& key) const {
  ST_OPEN_ATTR(a, H5T_STRING, "a string");
  if (a.n != 1) throw UserError(fmt::format("{}: attribute '{}' is not a single string", path_, key));
  if (H5Tis_variable_str(a.type.get()) > 0) {
    Handle mtype = vlen_string_type();
    char* p = nullptr;
    if (H5Aread(a.attr.get(), mtype.get(), &p) < 0) fail("cannot read attribute " + key);
    std::string s = p ? p : "";
    H5Dvlen_reclaim(mtype.get(), a.space.get(), H5P_DEFAULT, &p);
    return s;
  }
  const size_t width = H5Tget_size(a.type.get());
  if (width == 0 || width > kMaxStringWidth)
    throw UserError(fmt::format("{}: attribute '{}' is a string of {} bytes (too large)", path_, key, width));
  std::vector<char> buf(width + 1, '\0');
  if (H5Aread(a.attr.get(), a.type.get(), buf.data()) < 0) fail("cannot read attribute " + key);
  return std::string(buf.data());
}

std::vector<double> File::attr_doubles(const std::string& obj, const std::string& key) const {
  OpenAttr a;
  a.obj = open_object(obj);
  if (H5Aexists(a.obj.get(), key.c_str()) <= 0)
    throw UserError(fmt::format("{}: '{}' has no attribute '{}'", path_, abs_name(obj), key));
  a.attr = make(H5Aopen(a.obj.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
  a.type = make(H5Aget_type(a.attr.get()), H5Tclose);
  a.space = make(H5Aget_space(a.attr.get()), H5Sclose);
  a.n = product(checked_dims(a.space.get(), obj + "@" + key));
  if (a.n > kMaxAttrElements)
    throw UserError(fmt::format("{}: attribute '{}' of '{}' holds {} values (at most {})", path_, key,
                                abs_name(obj), a.n, kMaxAttrElements));
  H5T_class_t c = H5Tget_class(a.type.get());
  if (c != H5T_FLOAT && c != H5T_INTEGER)
    throw UserError(fmt::format("{}: attribute '{}' of '{}' is not numeric", path_, key, abs_name(obj)));
  std::vector<double> v(static_cast<size_t>(a.n));
  if (a.n > 0 && H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, v.data()) < 0)
    fail("cannot read attribute " + key);
  return v;
}

std::vector<int64_t> File::attr_ints(const std::string& obj, const std::string& key) const {
  ST_OPEN_ATTR(a, H5T_INTEGER, "an integer");
  std::vector<int64_t> v(static_cast<size_t>(a.n));
  if (a.n > 0 && H5Aread(a.attr.get(), H5T_NATIVE_INT64, v.data()) < 0)
    fail("cannot read attribute " + key);
  return v;
}
#undef ST_OPEN_ATTR

int64_t File::attr_int(const std::string& obj, const std::string& key) const {
  std::vector<int64_t> v = attr_ints(obj, key);
  if (v.size() != 1)
    throw UserError(fmt::format("{}: attribute '{}' of '{}' is not a single integer", path_, key,
                                abs_name(obj)));
  return v[0];
}

double File::attr_double(const std::string& obj, const std::string& key) const {
  std::vector<double> v = attr_doubles(obj, key);
  if (v.size() != 1)
    throw UserError(fmt::format("{}: attribute '{}' of '{}' is not a single number", path_, key,
                                abs_name(obj)));
  return v[0];
}

// ---------------------------------------------------------------------------------------------
// Extendible series

template <Element T>
void File::create_series(const std::string& name, int64_t cols, int64_t chunk_rows) {
  if (cols < 0 || chunk_rows <= 0)
    throw UserError(fmt::format("{}: bad series shape for '{}'", path_, name));
  Dims dims = cols == 0 ? Dims{0} : Dims{0, cols};
  Dims maxd = cols == 0 ? Dims{-1} : Dims{-1, cols};
  Handle space = simple_space(dims, &maxd);
  Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  std::vector<hsize_t> chunk = {static_cast<hsize_t>(chunk_rows)};
  if (cols > 0) chunk.push_back(static_cast<hsize_t>(cols));
  H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
  create_dataset(name, native_type<T>(), space.get(), dcpl.get());
}

template <Element T>
int64_t File::append_row(const std::string& name, const T* row) {
  Handle d = open_dataset(name);
  Handle ftype = make(H5Dget_type(d.get()), H5Tclose);
  if (H5Tget_class(ftype.get()) != class_of<T>())
    throw UserError(fmt::format("{}: series '{}' holds another element type", path_, abs_name(name)));
  Dims dims;
  {
    Handle s = make(H5Dget_space(d.get()), H5Sclose);
    dims = space_dims(s.get());
  }
  if (dims.empty() || dims.size() > 2)
    throw UserError(fmt::format("{}: '{}' is not a 1-D or 2-D series", path_, abs_name(name)));
  std::vector<hsize_t> ext(dims.begin(), dims.end());
  ext[0] += 1;
  if (H5Dset_extent(d.get(), ext.data()) < 0)
    fail(fmt::format("cannot extend '{}' (not created with create_series?)", abs_name(name)));
  Handle fspace = make(H5Dget_space(d.get()), H5Sclose);
  std::vector<hsize_t> start(ext.size(), 0), count(ext.begin(), ext.end());
  start[0] = ext[0] - 1;
  count[0] = 1;
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle mspace = make(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (H5Dwrite(d.get(), native_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, row) < 0)
    fail(fmt::format("cannot append to '{}'", abs_name(name)));
  return static_cast<int64_t>(ext[0]);
}

template <Element T>
int64_t File::append_row(const std::string& name, const std::vector<T>& row) {
  Dims d = dims(name);
  const int64_t cols = d.size() == 2 ? d[1] : 1;
  if (static_cast<int64_t>(row.size()) != cols)
    throw UserError(fmt::format("{}: appending {} values to series '{}' of {} columns", path_,
                                row.size(), abs_name(name), cols));
  return append_row<T>(name, row.data());
}

#define ST_H5_INSTANTIATE(T)                                                                       \
  template void File::write<T>(const std::string&, const T*, const Dims&, const WriteOptions&);    \
  template std::vector<T> File::read<T>(const std::string&, Dims*) const;                          \
  template std::vector<T> File::read_rows<T>(const std::string&, int64_t, int64_t) const;          \
  template T File::read_scalar<T>(const std::string&) const;                                       \
  template void File::create_series<T>(const std::string&, int64_t, int64_t);                      \
  template int64_t File::append_row<T>(const std::string&, const T*);                              \
  template int64_t File::append_row<T>(const std::string&, const std::vector<T>&);
ST_H5_INSTANTIATE(float)
ST_H5_INSTANTIATE(double)
ST_H5_INSTANTIATE(int32_t)
ST_H5_INSTANTIATE(int64_t)
ST_H5_INSTANTIATE(uint8_t)
ST_H5_INSTANTIATE(uint64_t)
#undef ST_H5_INSTANTIATE

// ---------------------------------------------------------------------------------------------
// Atomic writes

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  // HDF5 files are written through a temporary and a rename, so the target must be a regular file
  // (or nothing); a symlink is followed and its target replaced (io::resolve_output's rules).
  target_ = io::resolve_output(path_, "output file", io::OutputKind::regular_only).resolved;
  tmp_ = io::temporary_name_for(target_);
  slot_ = io::register_temporary(tmp_);
  try {
    file_.emplace(File::create(tmp_));
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
    io::unregister_temporary(slot_);
    throw;
  }
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  file_.reset();  // closes silently
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
  io::unregister_temporary(slot_);
}

void AtomicFile::commit() {
  ST_INVARIANT(!committed_);
  file_->close();
  file_.reset();
  std::error_code ec;
  std::filesystem::rename(tmp_, target_, ec);
  if (ec) {
    std::filesystem::remove(tmp_, ec);
    io::unregister_temporary(slot_);
    committed_ = true;  // nothing left to clean up
    throw UserError(fmt::format("{}: cannot rename {} into place ({})", path_, tmp_, ec.message()));
  }
  io::unregister_temporary(slot_);
  committed_ = true;
}

void atomic_write(const std::string& path, const std::function<void(File&)>& fill) {
  AtomicFile f(path);
  fill(f.file());
  f.commit();
}

}  // namespace st::h5

// ---------------------------------------------------------------------------------------------
// Reading untrusted files in a child process first (see h5.h)

namespace st::h5 {
namespace {
std::atomic<bool> g_isolation{true};
std::atomic<unsigned> g_time_limit{0};
// Seconds the child may take: generous, it reads at least tens of MB/s.
unsigned child_time_limit(const std::string& path) {
  if (g_time_limit > 0) return g_time_limit;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return 60 + static_cast<unsigned>(ec ? 0 : std::min<uintmax_t>(size >> 20, 3600));
}
}  // namespace

void set_untrusted_isolation(bool on) { g_isolation = on; }
void set_untrusted_time_limit(unsigned seconds) { g_time_limit = seconds; }
bool untrusted_isolation() { return g_isolation; }

std::string read_in_child(const std::string& path, const std::function<std::string()>& read) {
  if (!g_isolation) return read();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return read();  // no descriptors to spare: read in-process
  std::fflush(nullptr);                              // nothing buffered is written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return read();
  }
  if (pid == 0) {
    // The child: read, send one status byte and the payload (the bytes or the message), leave
    // without running atexit handlers or flushing the parent's buffers (nor its HDF5 files). Ctrl-C
    // and SIGTERM simply end it (the parent removes its own temporaries).
    ::close(fds[0]);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::alarm(child_time_limit(path));
    // Whatever the library (or a sanitizer's report of its crash) prints is not the user's message:
    // the parent says in one line what happened, so the child's stderr goes nowhere.
    if (const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null_fd >= 0) {
      ::dup2(null_fd, STDERR_FILENO);
      ::close(null_fd);
    }
    char status = 'E';
    std::string payload;
    try {
      payload = read();
      status = 'O';
    } catch (const UserError& e) {
      payload = e.what();
    } catch (const std::bad_alloc&) {
      status = 'M';
    } catch (const std::exception& e) {
      status = 'X', payload = e.what();
    } catch (...) {
      status = 'X';
    }
    auto send = [&](const char* p, size_t n) {
      for (size_t off = 0; off < n;) {
        const ssize_t w = ::write(fds[1], p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ::_exit(5);
        off += static_cast<size_t>(w);
      }
    };
    send(&status, 1);
    send(payload.data(), payload.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  bool too_much = false;
  char buf[1 << 16];
  while (true) {
    const ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (got.size() + static_cast<size_t>(r) > (size_t{1} << 34)) {  // more than any reader sends
      too_much = true;
      break;
    }
    got.append(buf, static_cast<size_t>(r));
  }
  ::close(fds[0]);
  if (too_much) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string p = io::printable(path, 4096);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !got.empty() && !too_much) {
    const char kind = got[0];
    got.erase(0, 1);
    switch (kind) {
      case 'O': return got;
      case 'E': throw UserError(got);
      case 'M': throw UserError(fmt::format("{}: reading it would need more memory than there is", p));
      default:
        throw UserError(fmt::format("{}: cannot be read ({})", p, got.empty() ? "unexpected failure" : got));
    }
  }
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  if (sig == SIGALRM)
    throw UserError(fmt::format("{}: reading it did not finish in {} s (a malformed HDF5 file?)", p,
                                child_time_limit(path)));
  // Killed by a signal, or ended by a sanitizer's report (ASan exits with status 1): the reading
  // process never ends any other way than _exit(0) after sending its answer.
  const std::string how = sig ? std::string(::strsignal(sig))
                              : fmt::format("the reading process ended with status {}",
                                            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  throw UserError(fmt::format("{}: the HDF5 library crashed reading it ({}): a malformed or hostile "
                              "HDF5 file", p, how));
}

}  // namespace st::h5
