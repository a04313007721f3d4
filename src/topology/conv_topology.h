#pragma once
// Conv layer lists ("topologies") for timing-only studies (bpcompare, projections): built-in
// ImageNet ResNet-18 / ResNet-50 (224x224, torchvision v1.5 layout: stride on the 3x3 of a
// bottleneck, 1x1 stride-2 downsample shortcuts, real paddings) and a CSV file format.
//
// File format (CSV, one conv layer per line, '#' starts a comment line, blank lines ignored):
//   name,N,C,H,W,K,R,S,stride_h,stride_w,pad_t,pad_l,pad_b,pad_r
//   conv1,1,3,224,224,64,7,7,2,2,3,3,3,3
// The header line is required and must be exactly the one above. N is the batch (replaced by
// --batch when given), C/H/W the input channels and size, K the output channels, R x S the kernel.
// Every value is validated (ConvDesc::validate); errors name the file, line and field.
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

std::vector<ConvLayer> resnet18_convs(int64_t batch);
std::vector<ConvLayer> resnet50_convs(int64_t batch);
// "resnet18", "resnet50" or a path to a CSV file; batch > 0 overrides the file's N.
std::vector<ConvLayer> load_conv_topology(std::string_view name_or_path, int64_t batch);
std::vector<ConvLayer> parse_conv_topology(std::string_view text, std::string_view source);
std::string conv_topology_csv(const std::vector<ConvLayer>& layers);

}  // namespace st
