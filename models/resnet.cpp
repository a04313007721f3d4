// ResNet builders: CIFAR-style (He et al. 2016, sec. 4.2: three stages of 16/32/64 channels, basic
// blocks, n = (depth - 2) / 6 per stage) and ImageNet-style (7x7/2 stem, 3x3/2 max pool, basic
// blocks for 18/34, bottleneck blocks with the stride on the 3x3 conv for 50, as torchvision).
#include <fmt/format.h>

#include <climits>
#include <cmath>

#include "kernels/conv_limits.h"
#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/base/limits.h"

namespace st {

std::string_view to_string(NodeKind k) {
  switch (k) {
    case NodeKind::input: return "input";
    case NodeKind::conv: return "conv";
    case NodeKind::bn: return "bn";
    case NodeKind::relu: return "relu";
    case NodeKind::add: return "add";
    case NodeKind::maxpool: return "maxpool";
    case NodeKind::gap: return "gap";
    case NodeKind::fc: return "fc";
    case NodeKind::shortcut_a: return "shortcut_a";
    case NodeKind::loss: return "loss";
  }
  return "?";
}

ConvDesc conv_desc(const NodeDesc& n, const Shape4& in) {
  ConvDesc d;
  d.N = in.n;
  d.C = in.c;
  d.H = in.h;
  d.W = in.w;
  d.K = n.out.c;
  d.R = n.kh;
  d.S = n.kw;
  d.sh = n.sh;
  d.sw = n.sw;
  d.pt = n.pt;
  d.pl = n.pl;
  d.pb = n.pb;
  d.pr = n.pr;
  return d;
}

ConvDesc conv_desc(const NetDesc& net, int id) { return conv_desc(net.node(id), net.in_shape(id)); }

int64_t NetDesc::parameter_count() const {
  int64_t p = 0;
  for (const auto& nd : nodes) {
    if (nd.kind == NodeKind::conv) p += nd.out.c * in_shape(&nd - nodes.data()).c * nd.kh * nd.kw;
    if (nd.kind == NodeKind::bn) p += 2 * nd.out.c;
    if (nd.kind == NodeKind::fc) p += nd.out.c * (in_shape(&nd - nodes.data()).size() / batch) + nd.out.c;
  }
  return p;
}

namespace {

// A layer that cannot downsample its input as the architecture defines (the input is smaller than
// its stride). build_resnet adds the smallest input the model accepts to the message.
struct InputTooSmall : UserError {
  using UserError::UserError;
};

class Builder {
 public:
  explicit Builder(NetDesc& d) : d_(d) {}

  int input() {
    NodeDesc n;
    n.name = "input";
    n.kind = NodeKind::input;
    n.out = {d_.batch, d_.in_c, d_.in_h, d_.in_w};
    checked_elements({n.out.n, n.out.c, n.out.h, n.out.w}, "input", "batch x channels x height x width");
    return push(std::move(n));
  }
  int conv(const std::string& name, int in, int64_t out_c, int k, int stride, int pad) {
    const Shape4 s = d_.nodes[in].out;
    NodeDesc n;
    n.name = name;
    n.kind = NodeKind::conv;
    n.inputs = {in};
    n.kh = n.kw = k;
    n.sh = n.sw = stride;
    n.pt = n.pl = n.pb = n.pr = pad;
    downsamples(name, s, stride);
    n.out = {s.n, out_c, out_size(name, s.h, k, stride, pad), out_size(name, s.w, k, stride, pad)};
    check_conv_sizes(conv_desc(n, s), name);
    return push(std::move(n));
  }
  int unary(const std::string& name, NodeKind kind, int in) {
    NodeDesc n;
    n.name = name;
    n.kind = kind;
    n.inputs = {in};
    n.out = d_.nodes[in].out;
    if (kind == NodeKind::relu) d_.nodes[in].relu_after = true;
    return push(std::move(n));
  }
  int add(const std::string& name, int a, int b) {
    if (!(d_.nodes[a].out == d_.nodes[b].out))
      throw UserError(fmt::format("{}: residual shapes differ", name));
    NodeDesc n;
    n.name = name;
    n.kind = NodeKind::add;
    n.inputs = {a, b};
    n.out = d_.nodes[a].out;
    return push(std::move(n));
  }
  int maxpool(const std::string& name, int in, int k, int stride, int pad) {
    const Shape4 s = d_.nodes[in].out;
    NodeDesc n;
    n.name = name;
    n.kind = NodeKind::maxpool;
    n.inputs = {in};
    n.kh = n.kw = k;
    n.sh = n.sw = stride;
    n.pt = n.pl = n.pb = n.pr = pad;
    downsamples(name, s, stride);
    n.out = {s.n, s.c, out_size(name, s.h, k, stride, pad), out_size(name, s.w, k, stride, pad)};
    return push(std::move(n));
  }
  int gap(int in) {
    const Shape4 s = d_.nodes[in].out;
    NodeDesc n;
    n.name = "gap";
    n.kind = NodeKind::gap;
    n.inputs = {in};
    // The pooling window is the whole plane; PoolDesc holds its size as int.
    if (s.h > INT_MAX || s.w > INT_MAX)
      throw UserError(fmt::format("gap: a {}x{} plane is larger than a pooling window can be", s.h, s.w));
    n.out = {s.n, s.c, 1, 1};
    return push(std::move(n));
  }
  int fc(int in, int64_t classes) {
    const Shape4 s = d_.nodes[in].out;
    checked_elements({classes, s.c, s.h, s.w}, "fc", "weights (classes x features)");
    NodeDesc n;
    n.name = "fc";
    n.kind = NodeKind::fc;
    n.inputs = {in};
    n.out = {d_.batch, classes, 1, 1};
    return push(std::move(n));
  }
  int shortcut_a(const std::string& name, int in, int64_t out_c, int stride) {
    const Shape4 s = d_.nodes[in].out;
    NodeDesc n;
    n.name = name;
    n.kind = NodeKind::shortcut_a;
    n.inputs = {in};
    n.sh = n.sw = stride;
    downsamples(name, s, stride);
    n.out = {s.n, out_c, (s.h + stride - 1) / stride, (s.w + stride - 1) / stride};
    return push(std::move(n));
  }
  int loss(int in) {
    NodeDesc n;
    n.name = "loss";
    n.kind = NodeKind::loss;
    n.inputs = {in};
    n.out = {d_.batch, 1, 1, 1};
    return push(std::move(n));
  }
  // conv + bn (+ relu)
  int conv_bn(const std::string& name, int in, int64_t out_c, int k, int stride, int pad, bool relu) {
    int x = conv(name + ".conv", in, out_c, k, stride, pad);
    x = unary(name + ".bn", NodeKind::bn, x);
    return relu ? unary(name + ".relu", NodeKind::relu, x) : x;
  }

 private:
  static int64_t out_size(const std::string& name, int64_t in, int k, int stride, int pad) {
    int64_t span = in + 2 * pad - k;
    if (span < 0)
      throw UserError(fmt::format("{}: a {}x{} window does not fit a {}-pixel input (padding {}); "
                                  "use a larger --input", name, k, k, in, pad));
    return span / stride + 1;
  }
  // A stride-s layer must get at least s pixels in each direction, or it does not downsample: on a
  // 1x1 map a "stride-2" layer gives 1x1 again, and the network is no longer the one its name
  // defines (every later stage then runs on the same single pixel).
  static void downsamples(const std::string& name, const Shape4& in, int stride) {
    if (stride > 1 && (in.h < stride || in.w < stride))
      throw InputTooSmall(fmt::format("{}: this stride-{} layer gets a {}x{} input, too small to downsample", name,
                                      stride, in.h, in.w));
  }
  int push(NodeDesc n) {
    // Every node's output: H, W >= 1 and a size within the limit (conv / pool sizes are checked
    // before, this also covers adds, the fc and the loss).
    if (n.out.h < 1 || n.out.w < 1)
      throw UserError(fmt::format("{}: output {}x{} is empty", n.name, n.out.h, n.out.w));
    checked_elements({n.out.n, n.out.c, n.out.h, n.out.w}, n.name, "output (N x C x H x W)");
    d_.nodes.push_back(std::move(n));
    return static_cast<int>(d_.nodes.size()) - 1;
  }
  NetDesc& d_;
};

int64_t scaled(int64_t c, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(c) * width)));
}

void cifar_resnet(Builder& b, const ResNetOptions& o, int depth) {
  const int blocks = (depth - 2) / 6;
  int x = b.input();
  int64_t c = scaled(16, o.width);
  x = b.conv_bn("stem", x, c, 3, 1, 1, true);
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out_c = scaled(16 << stage, o.width);
    for (int blk = 0; blk < blocks; ++blk) {
      const std::string p = fmt::format("stage{}.block{}", stage + 1, blk);
      const int stride = (stage > 0 && blk == 0) ? 2 : 1;
      int y = b.conv_bn(p + ".a", x, out_c, 3, stride, 1, true);
      y = b.conv_bn(p + ".b", y, out_c, 3, 1, 1, false);
      int sc = x;
      if (stride != 1 || out_c != c) {
        sc = o.shortcut == "a" ? b.shortcut_a(p + ".shortcut", x, out_c, stride)
                               : b.conv_bn(p + ".shortcut", x, out_c, 1, stride, 0, false);
      }
      x = b.unary(p + ".relu", NodeKind::relu, b.add(p + ".add", y, sc));
      c = out_c;
    }
  }
  b.loss(b.fc(b.gap(x), o.classes));
}

void imagenet_resnet(Builder& b, const ResNetOptions& o, const int (&blocks)[4], bool bottleneck) {
  int x = b.input();
  x = b.conv_bn("stem", x, scaled(64, o.width), 7, 2, 3, true);
  x = b.maxpool("stem.pool", x, 3, 2, 1);
  int64_t c = scaled(64, o.width);
  const int expansion = bottleneck ? 4 : 1;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t mid = scaled(64 << stage, o.width), out_c = mid * expansion;
    for (int blk = 0; blk < blocks[stage]; ++blk) {
      const std::string p = fmt::format("layer{}.{}", stage + 1, blk);
      const int stride = (stage > 0 && blk == 0) ? 2 : 1;
      int y;
      if (bottleneck) {
        y = b.conv_bn(p + ".a", x, mid, 1, 1, 0, true);
        y = b.conv_bn(p + ".b", y, mid, 3, stride, 1, true);
        y = b.conv_bn(p + ".c", y, out_c, 1, 1, 0, false);
      } else {
        y = b.conv_bn(p + ".a", x, mid, 3, stride, 1, true);
        y = b.conv_bn(p + ".b", y, out_c, 3, 1, 1, false);
      }
      int sc = x;
      if (stride != 1 || out_c != c) sc = b.conv_bn(p + ".downsample", x, out_c, 1, stride, 0, false);
      x = b.unary(p + ".relu", NodeKind::relu, b.add(p + ".add", y, sc));
      c = out_c;
    }
  }
  b.loss(b.fc(b.gap(x), o.classes));
}

}  // namespace

std::vector<std::string> resnet_names() {
  return {"resnet8", "resnet20", "resnet32", "resnet44", "resnet56", "resnet18", "resnet34", "resnet50"};
}

namespace {
NetDesc build(const ResNetOptions& o);
}

NetDesc build_resnet(const ResNetOptions& o) {
  try {
    return build(o);
  } catch (const InputTooSmall& e) {
    // Name the smallest square input the model accepts (the search builds descriptions only).
    ResNetOptions t = o;
    for (int64_t side = 1; side <= 4096; ++side) {
      t.in_h = t.in_w = side;
      try {
        build(t);
      } catch (const UserError&) {
        continue;
      }
      throw UserError(fmt::format("{}; {} needs an input of at least {}x{} pixels (got {}x{})", e.what(), o.name,
                                  side, side, o.in_h, o.in_w));
    }
    throw UserError(e.what());
  }
}

namespace {
NetDesc build(const ResNetOptions& o) {
  if (o.batch < 1) throw UserError(fmt::format("batch must be >= 1 (got {})", o.batch));
  if (o.in_c < 1 || o.in_h < 1 || o.in_w < 1)
    throw UserError(fmt::format("input shape {}x{}x{} is impossible", o.in_c, o.in_h, o.in_w));
  if (o.classes < 2) throw UserError(fmt::format("classes must be >= 2 (got {})", o.classes));
  if (!(o.width > 0 && o.width <= 16)) throw UserError(fmt::format("width must be in (0, 16] (got {})", o.width));
  if (o.shortcut != "conv" && o.shortcut != "a")
    throw UserError(fmt::format("shortcut must be 'conv' or 'a' (got '{}')", o.shortcut));
  NetDesc d;
  d.name = o.name;
  d.batch = o.batch;
  d.in_c = o.in_c;
  d.in_h = o.in_h;
  d.in_w = o.in_w;
  d.classes = o.classes;
  Builder b(d);
  if (o.name == "resnet8") cifar_resnet(b, o, 8);
  else if (o.name == "resnet20") cifar_resnet(b, o, 20);
  else if (o.name == "resnet32") cifar_resnet(b, o, 32);
  else if (o.name == "resnet44") cifar_resnet(b, o, 44);
  else if (o.name == "resnet56") cifar_resnet(b, o, 56);
  else if (o.name == "resnet18") imagenet_resnet(b, o, {2, 2, 2, 2}, false);
  else if (o.name == "resnet34") imagenet_resnet(b, o, {3, 4, 6, 3}, false);
  else if (o.name == "resnet50") imagenet_resnet(b, o, {3, 4, 6, 3}, true);
  else throw UserError(fmt::format("unknown model '{}' (known: resnet8, resnet20, resnet32, resnet44, "
                                   "resnet56, resnet18, resnet34, resnet50)", o.name));
  return d;
}
}  // namespace

}  // namespace st
