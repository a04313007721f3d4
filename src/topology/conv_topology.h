#pragma once
// Conv layer lists ("topologies") for timing-only studies (bpcompare, projections): built-in
// ImageNet ResNet-18 / ResNet-50 (224x224, the conv layers of models/resnet.cpp's networks in
// execution order, named as torchvision names them: torchvision v1.5 layout, stride on the 3x3 of a
// bottleneck, 1x1 stride-2 downsample shortcuts, real paddings) and a CSV file format.
//
// File format (CSV, one conv layer per line, '#' starts a comment line, blank lines ignored):
//   name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r
//   conv1,1,3,224,224,64,7,7,2,2,3,3,3,3
// The header line is required and must be exactly the one above. N is the batch (replaced by
// --batch when given), C/H/W the input channels and size, K the output channels, R x S the kernel.
// Every value is validated (conv_layer_problem); errors name the file, line and field. The layer name
// must be valid UTF-8 without control characters (it travels into JSON and CSV outputs).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/lowering.h"

namespace st {

struct ConvLayer {
  std::string name;
  ConvDesc desc;
};

inline constexpr std::string_view kConvTopologyHeader =
    "name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r";

// Bounds of a conv layer read from a file (or given a --batch): sane sizes per field, so that the
// per-axis geometry of the cost model (tap x output loops, at most 2^26 steps) stays quick, and
// the layer's work (input, weight and output elements, MACs) below 2^53, exact in a double with a
// margin of 2^10 in int64 for byte and cycle counts.
inline constexpr int64_t kConvMaxSpatial = int64_t{1} << 16;   // H, W
inline constexpr int64_t kConvMaxKernel = int64_t{1} << 10;    // R, S
inline constexpr int64_t kConvMaxChannels = int64_t{1} << 24;  // C, K
inline constexpr int64_t kConvMaxBatch = int64_t{1} << 31;     // N
inline constexpr int64_t kConvMaxWork = int64_t{1} << 53;
// What is wrong with a layer's shape (field ranges, ConvDesc::validate, work bounds), or nothing.
std::optional<std::string> conv_layer_problem(const ConvDesc& d);

std::vector<ConvLayer> resnet18_convs(int64_t batch);
std::vector<ConvLayer> resnet50_convs(int64_t batch);
// "resnet18", "resnet50" or a path to a CSV file; batch > 0 overrides the file's N.
std::vector<ConvLayer> load_conv_topology(std::string_view name_or_path, int64_t batch);
std::vector<ConvLayer> parse_conv_topology(std::string_view text, std::string_view source);
std::string conv_topology_csv(const std::vector<ConvLayer>& layers);

}  // namespace st
