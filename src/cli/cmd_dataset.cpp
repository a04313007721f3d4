// systrain dataset convert|info: turn Fashion-MNIST (IDX) or CIFAR-10 (binary) into systrain's HDF5
// dataset layout (datasets/h5dataset.h), and describe a dataset file or directory.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "datasets/dataset.h"
#include "datasets/h5dataset.h"
#include "src/base/error.h"
#include "src/cli/command.h"
#include "src/io/output_file.h"

namespace st::cli {
namespace {

struct DatasetArgs {
  std::string from, dir, out, file;
  int64_t limit = -1;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool has_h5_extension(const std::string& p) {
  const std::string ext = std::filesystem::path(p).extension().string();
  return ext == ".h5" || ext == ".hdf5";
}

int run_convert(const DatasetArgs& a) {
  if (a.from != "fashion-mnist" && a.from != "cifar10")
    throw UserError(fmt::format("--from must be fashion-mnist or cifar10 (got '{}')", a.from));
  if (!has_h5_extension(a.out))
    throw UserError(fmt::format("--out must name an .h5 or .hdf5 file (got '{}')", a.out));
  if (a.limit < -1 || a.limit == 0)
    throw UserError(fmt::format("--limit must be a positive number of samples (got {})", a.limit));
  // Fail before the (slow) read when the output cannot be written anyway.
  const std::filesystem::path out_dir = std::filesystem::path(a.out).parent_path();
  std::error_code ec;
  if (!out_dir.empty() && !std::filesystem::is_directory(out_dir, ec))
    throw UserError(fmt::format("{}: output directory {} does not exist", a.out, out_dir.string()));
  io::check_output(a.out, "--out", io::OutputKind::regular_only);
  auto t0 = std::chrono::steady_clock::now();
  data::RawDataset d = data::load_raw(a.from, a.dir, {a.limit, a.limit});
  fmt::print("read {} from {}: {} train + {} test images of {}x{}x{}, {} classes ({:.2f} s)\n",
             d.name, d.source, d.train.size(), d.test.size(), d.channels, d.height, d.width,
             d.num_classes, seconds_since(t0));
  t0 = std::chrono::steady_clock::now();
  data::write_h5_dataset(d, a.out);
  const auto size = std::filesystem::file_size(a.out, ec);
  fmt::print("wrote {} ({:.1f} MB, {:.2f} s)\n", a.out, ec ? 0.0 : static_cast<double>(size) / 1e6,
             seconds_since(t0));
  return 0;
}

void print_split(const char* which, const data::RawDataset& d, const data::RawSplit& s) {
  std::vector<int64_t> hist(static_cast<size_t>(d.num_classes), 0);
  for (int32_t l : s.labels) hist[static_cast<size_t>(l)] += 1;
  fmt::print("{:<6} {:>7} images   labels per class: {}\n", which, s.size(), fmt::join(hist, " "));
}

int run_info(const DatasetArgs& a) {
  data::RawDataset d = data::load_raw(a.file, a.dir);
  fmt::print("dataset  {}\nsource   {}\nimages   {} x {} x {} (C x H x W), uint8 pixels\n", d.name,
             d.source, d.channels, d.height, d.width);
  fmt::print("classes  {}", d.num_classes);
  if (!d.class_names.empty()) fmt::print(" ({})", fmt::join(d.class_names, ", "));
  fmt::print("\nnormalize x = (pixel/255 - mean) / std, mean = [{:.6f}], std = [{:.6f}]\n",
             fmt::join(d.mean, ", "), fmt::join(d.std, ", "));
  std::vector<double> mean, std;
  data::channel_stats(d.train, d.channels, mean, std);
  fmt::print("train split measured: mean = [{:.6f}], std = [{:.6f}]\n", fmt::join(mean, ", "),
             fmt::join(std, ", "));
  print_split("train", d, d.train);
  print_split("test", d, d.test);
  return 0;
}

const Registrar reg{Command{
    "dataset", "Convert datasets to systrain's HDF5 layout and describe them",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<DatasetArgs>();
      sub.require_subcommand(1);
      CLI::App* conv = sub.add_subcommand(
          "convert", "Convert Fashion-MNIST (IDX, gzip) or CIFAR-10 (binary) to an HDF5 file");
      conv->add_option("--from", a->from, "Source dataset: fashion-mnist or cifar10")->required();
      conv->add_option("--dir", a->dir,
                       "Directory of the source files (fashion-mnist default: "
                       "/usr/share/datasets/fashion-mnist)");
      conv->add_option("--out", a->out, "Output file (.h5), written atomically")->required();
      conv->add_option("--limit", a->limit, "Keep only the first N samples of each split");
      CLI::App* info = sub.add_subcommand(
          "info", "Describe a dataset: FILE.h5, or fashion-mnist / cifar10 with --dir");
      info->add_option("file", a->file, "Dataset file (.h5) or name")->required();
      info->add_option("--dir", a->dir, "Directory when FILE is fashion-mnist or cifar10");
      return [a, conv, info]() {
        if (conv->parsed()) return run_convert(*a);
        if (info->parsed()) return run_info(*a);
        return 2;
      };
    }}};

}  // namespace
}  // namespace st::cli
