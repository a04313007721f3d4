#include "src/project/node_ops.h"

#include "src/base/error.h"

namespace st {

PoolDesc pool_desc(const NetDesc& net, int id) {
  const NodeDesc& n = net.node(id);
  PoolDesc d;
  if (n.kind == NodeKind::gap) {
    const Shape4 in = net.in_shape(id);
    d.kh = static_cast<int>(in.h);
    d.kw = static_cast<int>(in.w);
    d.sh = d.kh;
    d.sw = d.kw;
    d.alg = PoolAlg::avg_exclude_padding;
    return d;
  }
  ST_INVARIANT(n.pt == n.pb && n.pl == n.pr);  // ResNet pools are symmetric
  d.kh = n.kh;
  d.kw = n.kw;
  d.sh = n.sh;
  d.sw = n.sw;
  d.ph = n.pt;
  d.pw = n.pl;
  d.alg = PoolAlg::max;
  return d;
}

bool producer_on_chip(const NetDesc& net, const Spec& spec, int id) {
  if (!spec.vector.fuse_with_conv) return false;
  const NodeDesc& n = net.node(id);
  const NodeDesc& in = net.node(n.inputs[0]);
  if (n.kind == NodeKind::bn) return in.kind == NodeKind::conv;
  if (n.kind == NodeKind::relu) return in.kind == NodeKind::bn && net.node(in.inputs[0]).kind == NodeKind::conv;
  return false;
}

}  // namespace st
