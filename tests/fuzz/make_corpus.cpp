// Writes the binary seed files of tests/fuzz/corpus/ (IDX, CIFAR, HDF5 datasets) with the writers
// of the code base, so they are valid and small. Text seeds (TOML, cfg, csv) are written by hand.
//   build/make_fuzz_corpus tests/fuzz/corpus
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/cifar.h"
#include "datasets/h5dataset.h"
#include "datasets/idx.h"
#include "src/io/h5.h"

namespace fs = std::filesystem;
using namespace st::data;

namespace {

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

RawDataset tiny(int channels, int side, int ntrain, int ntest, bool names) {
  RawDataset d;
  d.name = "tiny";
  d.source = "make_corpus";
  d.channels = channels;
  d.height = d.width = side;
  d.num_classes = 3;
  if (names) d.class_names = {"a", "b", "c"};
  auto fill = [&](RawSplit& s, int n, int off) {
    for (int k = 0; k < n; ++k) {
      s.labels.push_back((k + off) % 3);
      for (int i = 0; i < channels * side * side; ++i) s.pixels.push_back(static_cast<uint8_t>(k * 37 + i * 11 + off));
    }
  };
  fill(d.train, ntrain, 0);
  fill(d.test, ntest, 5);
  channel_stats(d.train, channels, d.mean, d.std);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  for (const char* d : {"idx", "cifar", "h5_dataset"}) fs::create_directories(root / d);
  // IDX: images (rank 3) and labels (rank 1), plain and gzip.
  std::vector<uint8_t> px(3 * 4 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  write_idx((root / "idx/images3x4x4").string(), {3, 4, 4}, px, false);
  write_idx((root / "idx/images3x4x4.gz").string(), {3, 4, 4}, px, true);
  write_idx((root / "idx/labels5").string(), {5}, {0, 1, 2, 3, 9}, false);
  write_idx((root / "idx/labels5.gz").string(), {5}, {0, 1, 2, 3, 9}, true);
  // CIFAR: two records, plain; one record, gzip.
  std::vector<uint8_t> rec;
  for (int r = 0; r < 2; ++r) {
    rec.push_back(static_cast<uint8_t>(r * 7 % 10));
    for (int i = 0; i < 3072; ++i) rec.push_back(static_cast<uint8_t>((i * 13 + r) & 0xff));
  }
  write_bytes(root / "cifar/two_records.bin", rec);
  rec.resize(3073);
  gzFile gz = gzopen((root / "cifar/one_record.bin.gz").string().c_str(), "wb");
  gzwrite(gz, rec.data(), static_cast<unsigned>(rec.size()));
  gzclose(gz);
  // HDF5: the dataset layout as `dataset convert` writes it (deflate, chunked), with and without
  // class names, and a contiguous variant (written without compression).
  write_h5_dataset(tiny(1, 4, 3, 2, true), (root / "h5_dataset/gray4x4.h5").string());
  write_h5_dataset(tiny(3, 2, 2, 1, false), (root / "h5_dataset/rgb2x2.h5").string());
  {
    const RawDataset d = tiny(1, 3, 2, 2, true);
    st::h5::atomic_write((root / "h5_dataset/contiguous.h5").string(), [&](st::h5::File& f) {
      f.set_attr("/", "format", kH5DatasetFormat);
      f.set_attr("/", "version", kH5DatasetVersion);
      f.set_attr("/", "name", d.name);
      f.set_attr("/", "source", d.source);
      f.set_attr("/", "num_classes", int64_t{d.num_classes});
      f.set_attr("/", "channels", int64_t{d.channels});
      f.set_attr("/", "height", int64_t{d.height});
      f.set_attr("/", "width", int64_t{d.width});
      f.write_strings("/class_names", d.class_names, /*fixed=*/true);
      for (auto [g, s] : {std::pair{"/train", &d.train}, std::pair{"/test", &d.test}}) {
        f.write<uint8_t>(std::string(g) + "/images", s->pixels.data(), {s->size(), 1, 3, 3});
        f.write<int32_t>(std::string(g) + "/labels", s->labels);
      }
    });
  }
  return 0;
}
