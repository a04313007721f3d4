// src/io/h5: round trips of every element type and rank, strings, attributes, extendible series,
// atomic writes, and the one-line UserError messages for bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "src/io/h5.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

namespace fs = std::filesystem;
using st::h5::Dims;
using st::h5::File;

namespace {

using st::test::TempDir;

template <class T>
std::vector<T> ramp(size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>((i * 37 + 11) % 251);
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const st::UserError& e) {
    return e.what();
  }
  return "<no error>";
}

template <class T>
void round_trip_all_ranks(File& f, const std::string& tag) {
  const std::vector<Dims> shapes = {{}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 5}, {2, 2, 1, 3, 2}, {0, 4}};
  for (size_t s = 0; s < shapes.size(); ++s) {
    int64_t n = 1;
    for (auto d : shapes[s]) n *= d;
    auto v = ramp<T>(static_cast<size_t>(n));
    const std::string name = "/" + tag + "/r" + std::to_string(s);
    f.write<T>(name, v.data(), shapes[s]);
    Dims got;
    EXPECT_EQ(f.read<T>(name, &got), v) << name;
    EXPECT_EQ(got, shapes[s]) << name;
  }
}

}  // namespace

TEST(H5io, NumericRoundTripEveryTypeAndRank) {
  TempDir t;
  {
    File f = File::create(t / "a.h5");
    round_trip_all_ranks<float>(f, "f32");
    round_trip_all_ranks<double>(f, "f64");
    round_trip_all_ranks<int32_t>(f, "i32");
    round_trip_all_ranks<int64_t>(f, "i64");
    round_trip_all_ranks<uint8_t>(f, "u8");
    round_trip_all_ranks<uint64_t>(f, "u64");
    // Extreme values survive unchanged (RNG states use the full uint64 range).
    std::vector<uint64_t> big = {0, ~0ull, 0x8000000000000000ull, 0x0123456789abcdefull};
    f.write("/rng/state", big);
    std::vector<float> special = {-0.0f, 1e-45f, 3.4028235e38f, -1.5f};
    f.write("/special", special);
    f.write_scalar<int64_t>("/step", 1234567890123);
  }
  File f = File::open(t / "a.h5");
  EXPECT_EQ(f.read<uint64_t>("/rng/state"), (std::vector<uint64_t>{0, ~0ull, 0x8000000000000000ull,
                                                                   0x0123456789abcdefull}));
  auto sp = f.read<float>("/special");
  ASSERT_EQ(sp.size(), 4u);
  EXPECT_TRUE(std::signbit(sp[0]));
  EXPECT_EQ(sp[1], 1e-45f);
  EXPECT_EQ(f.read_scalar<int64_t>("/step"), 1234567890123);
  EXPECT_EQ(f.dims("/u8/r4"), (Dims{2, 1, 3, 5}));
  // Same-class conversion: uint8 reads as int32; class mismatch is refused.
  EXPECT_EQ(f.read<int32_t>("/u8/r1"), ramp<int32_t>(7));
  EXPECT_NE(error_of([&] { f.read<float>("/u8/r1"); }).find("expected float"), std::string::npos);
  EXPECT_EQ(f.list("/f32").size(), 7u);
}

TEST(H5io, CompressedRowsAndTensors) {
  TempDir t;
  auto v = ramp<uint8_t>(100 * 3 * 4 * 4);
  st::Tensor w({4, 3, 3, 3});
  for (int64_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i) - 7.0f;
  {
    File f = File::create(t / "c.h5");
    f.write<uint8_t>("train/images", v.data(), {100, 3, 4, 4}, {.deflate = 4, .chunk_rows = 16});
    f.write_tensor("params/conv1.wei", w);
  }
  File f = File::open(t / "c.h5");
  EXPECT_EQ(f.read<uint8_t>("/train/images"), v);
  auto rows = f.read_rows<uint8_t>("/train/images", 10, 5);
  EXPECT_EQ(rows, std::vector<uint8_t>(v.begin() + 10 * 48, v.begin() + 15 * 48));
  EXPECT_NE(error_of([&] { f.read_rows<uint8_t>("/train/images", 98, 5); }).find("out of range"),
            std::string::npos);
  st::Tensor r = f.read_tensor("params/conv1.wei");
  ASSERT_TRUE(r.same_shape(w));
  EXPECT_EQ(0, std::memcmp(r.data(), w.data(), w.bytes()));
}

TEST(H5io, StringsAndAttributes) {
  TempDir t;
  const std::vector<std::string> names = {"conv1", "layer1.0.bn1", "", "fc \xc3\xa9"};
  {
    File f = File::create(t / "s.h5");
    f.write_string("/spec", "[array]\nrows = 32\n");
    f.write_strings("/names", names);
    f.write_strings("/fixed", names, /*fixed=*/true);
    f.create_group("/net/layers");
    f.set_attr("/", "name", "fashion-mnist");
    f.set_attr("/", "version", int64_t{3});
    f.set_attr("/", "lr", 0.1);
    f.set_attr("/net/layers", "mean", std::vector<double>{0.5, 0.25});
    f.set_attr("/names", "shape", std::vector<int64_t>{1, 2, 3});
    f.set_attr("/", "version", int64_t{4});  // overwrite
  }
  File f = File::open(t / "s.h5");
  EXPECT_EQ(f.read_string("/spec"), "[array]\nrows = 32\n");
  EXPECT_EQ(f.read_strings("/names"), names);
  EXPECT_EQ(f.read_strings("/fixed"), names);
  EXPECT_EQ(f.attr_string("/", "name"), "fashion-mnist");
  EXPECT_EQ(f.attr_int("/", "version"), 4);
  EXPECT_EQ(f.attr_double("/", "lr"), 0.1);
  EXPECT_EQ(f.attr_doubles("/net/layers", "mean"), (std::vector<double>{0.5, 0.25}));
  EXPECT_EQ(f.attr_ints("/names", "shape"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(f.has_attr("/", "lr"));
  EXPECT_FALSE(f.has_attr("/", "nope"));
  EXPECT_TRUE(f.exists("net/layers"));
  EXPECT_FALSE(f.exists("/net/missing/deeper"));
  EXPECT_NE(error_of([&] { f.attr_int("/", "name"); }).find("is not an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { f.attr_string("/", "missing"); }).find("no attribute 'missing'"),
            std::string::npos);
}

TEST(H5io, ExtendibleSeriesAppendAndReopen) {
  TempDir t;
  {
    File f = File::create(t / "ts.h5");
    f.create_series<double>("/stats/values", 3, /*chunk_rows=*/2);
    f.create_series<int64_t>("/stats/step", 0);
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_EQ(f.append_row<double>("/stats/values", {i * 1.0, i * 2.0, i * 3.0}), i + 1);
      f.append_row<int64_t>("/stats/step", std::vector<int64_t>{100 * i});
      f.flush();
    }
    EXPECT_NE(error_of([&] { f.append_row<double>("/stats/values", {1.0}); }).find("3 columns"),
              std::string::npos);
  }
  {
    // Appending continues after reopening (a resumed run extends its time series).
    File f = File::open(t / "ts.h5", File::Mode::read_write);
    f.append_row<double>("/stats/values", {5.0, 10.0, 15.0});
  }
  File f = File::open(t / "ts.h5");
  Dims d;
  auto v = f.read<double>("/stats/values", &d);
  EXPECT_EQ(d, (Dims{6, 3}));
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(v[i * 3 + j], double(i * (j + 1)));
  EXPECT_EQ(f.read<int64_t>("/stats/step"), (std::vector<int64_t>{0, 100, 200, 300, 400}));
}

TEST(H5io, AtomicWriteLeavesOldOrNewFileNeverTorn) {
  TempDir t;
  const std::string path = t / "ckpt.h5";
  st::h5::atomic_write(path, [](File& f) { f.write_scalar<int64_t>("/step", 1); });
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(st::test::dir_entries(t.path), (std::vector<std::string>{"ckpt.h5"}));  // no temporary left
  // A failure while writing keeps the old checkpoint and removes the temporary.
  EXPECT_THROW(st::h5::atomic_write(path,
                                    [](File& f) {
                                      f.write_scalar<int64_t>("/step", 2);
                                      throw st::UserError("loss is NaN");
                                    }),
               st::UserError);
  EXPECT_EQ(st::test::dir_entries(t.path), (std::vector<std::string>{"ckpt.h5"}));
  EXPECT_EQ(File::open(path).read_scalar<int64_t>("/step"), 1);
  {
    st::h5::AtomicFile a(path);
    a.file().write_scalar<int64_t>("/step", 3);
    EXPECT_TRUE(fs::exists(a.tmp_path()));
    EXPECT_EQ(File::open(path).read_scalar<int64_t>("/step"), 1);  // old file until commit
    a.commit();
  }
  EXPECT_EQ(File::open(path).read_scalar<int64_t>("/step"), 3);
}

TEST(H5io, BadFilesGiveOneLineUserErrors) {
  TempDir t;
  const std::string missing = t / "missing.h5";
  std::string m = error_of([&] { File::open(missing); });
  EXPECT_EQ(m, missing + ": file not found");
  const std::string junk = t / "junk.h5";
  std::ofstream(junk) << "this is not hdf5 at all, just text\n";
  m = error_of([&] { File::open(junk); });
  EXPECT_EQ(m.rfind(junk + ": not a readable HDF5 file", 0), 0u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  m = error_of([&] { File::create(t / "no/such/dir/x.h5"); });
  EXPECT_NE(m.find("no/such/dir/x.h5: cannot create HDF5 file"), std::string::npos) << m;
  File f = File::create(t / "ok.h5");
  m = error_of([&] { f.read<float>("/params/nope"); });
  EXPECT_EQ(m, t / "ok.h5" + ": missing dataset '/params/nope'");
  // A truncated HDF5 file is refused, not crashed on.
  f.write<float>("/x", ramp<float>(1000));
  f.close();
  const std::string trunc = t / "trunc.h5";
  fs::copy_file(t / "ok.h5", trunc);
  fs::resize_file(trunc, fs::file_size(trunc) / 2);
  m = error_of([&] { File::open(trunc).read<float>("/x"); });
  EXPECT_EQ(m.rfind(trunc + ":", 0), 0u) << m;
}
