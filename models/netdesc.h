#pragma once
// A network as a description: nodes with names, kinds, shapes and hyper-parameters, no tensors.
// One description serves everything: the training executor runs its ops, the projection costs
// them without data, the oneDNN reference network is built from it, and gradcheck --dump writes it.
// Nodes are in topological order; `inputs` index earlier nodes.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/lowering.h"

namespace st {

enum class NodeKind : uint8_t {
  input,       // the image batch
  conv,        // convolution, no bias (ResNets use BN)
  bn,          // batch normalization (per channel, training statistics)
  relu,
  add,         // residual add of two inputs
  maxpool,
  gap,         // global average pooling -> (N, C, 1, 1)
  fc,          // fully connected with bias -> (N, out, 1, 1)
  shortcut_a,  // option-A shortcut: subsample by `stride`, zero-pad channels to `out_c`
  loss,        // softmax + cross-entropy against the labels (mean over the batch)
};
std::string_view to_string(NodeKind k);

struct Shape4 {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t size() const { return n * c * h * w; }
  bool operator==(const Shape4&) const = default;
};

struct NodeDesc {
  std::string name;
  NodeKind kind = NodeKind::input;
  std::vector<int> inputs;
  Shape4 out;                    // output shape (N, C, H, W)
  // conv / maxpool window: kh x kw, strides, paddings (top, left, bottom, right)
  int kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  bool relu_after = false;       // informational: a ReLU node follows (for fused-cost options)
};

struct NetDesc {
  std::string name;              // e.g. "resnet20"
  int64_t batch = 0;
  int64_t in_c = 0, in_h = 0, in_w = 0;
  int64_t classes = 0;
  std::vector<NodeDesc> nodes;

  const NodeDesc& node(int i) const { return nodes[static_cast<size_t>(i)]; }
  Shape4 in_shape(int node_id, int which = 0) const { return nodes[nodes[node_id].inputs[which]].out; }
  int64_t parameter_count() const;
};

// The convolution of conv node `id` (its input shape from the graph): what the executing network,
// the projection and the conv topologies all run for that node.
ConvDesc conv_desc(const NetDesc& net, int id);
// The same for a conv node not yet in a graph, given its input shape.
ConvDesc conv_desc(const NodeDesc& conv, const Shape4& in);

struct ResNetOptions {
  std::string name = "resnet20";  // resnet8|20|32|44|56 (CIFAR) or resnet18|34|50 (ImageNet)
  int64_t batch = 64;
  int64_t in_c = 1, in_h = 28, in_w = 28;
  int64_t classes = 10;
  double width = 1.0;              // channel multiplier (ImageNet-style: 64*width in the stem)
  std::string shortcut = "conv";   // CIFAR-style downsampling shortcut: "conv" (1x1 + BN) or "a"
};

// Builds the description; throws UserError on an unknown name or an impossible shape, naming the
// layer: every node's output must have H, W >= 1; every stride-s layer (conv, max pool, option-A
// shortcut) must get at least s pixels each way, or it would not downsample as the architecture
// defines (the message then names the smallest square input the model accepts); every tensor and
// every conv's lowered matrices must hold at most 2^59 elements (checked products, no wrapping:
// src/base/limits.h, kernels/conv_limits.h). train, gradcheck, project and dse all build through here.
NetDesc build_resnet(const ResNetOptions& o);
std::vector<std::string> resnet_names();

}  // namespace st
