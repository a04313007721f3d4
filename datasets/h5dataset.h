#pragma once
// systrain's HDF5 dataset layout (readable with h5py: f["train/images"][:]):
//
//   /                 attributes: format = "systrain-dataset", version = 1, name, source,
//                     num_classes, channels, height, width (int64), mean, std (float64[channels]:
//                     of pixel/255 over the full train split of the source dataset)
//   /class_names      string[num_classes] (optional)
//   /train/images     uint8 (N, C, H, W), gzip level 4, chunks of whole images
//   /train/labels     int32 (N), values in [0, num_classes)
//   /test/images      uint8 (M, C, H, W)
//   /test/labels      int32 (M)
//
// Pixels are stored raw; normalization happens on load with the file's mean/std.
#include <string>

#include "datasets/dataset.h"

namespace st::data {

inline constexpr const char* kH5DatasetFormat = "systrain-dataset";
inline constexpr int64_t kH5DatasetVersion = 1;

// Writes atomically (FILE.tmp, then rename); on any error nothing is left at `path`.
void write_h5_dataset(const RawDataset& d, const std::string& path);

// Reads and validates; limits read only the first rows from disk.
RawDataset load_h5_dataset_raw(const std::string& path, const LoadOptions& opt = {});
Dataset load_h5_dataset(const std::string& path, const LoadOptions& opt = {});

}  // namespace st::data
