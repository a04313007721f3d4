#pragma once
// What a NetDesc node is as an op (conv_desc is models/netdesc.h's): the pooling descriptor and the
// fusion rule that both the executing network (src/train/network.cpp) and the shapes-only
// projection (projection.cpp) use, so the two walks cannot drift apart.
#include "models/netdesc.h"
#include "src/ops/conv.h"
#include "src/ops/pool.h"
#include "src/spec/spec.h"

namespace st {

// The pooling of a maxpool or gap node `id` (gap: one window over the whole input).
PoolDesc pool_desc(const NetDesc& net, int id);
// BN (and the ReLU after a conv's BN) read the conv output straight from the array's output buffer
// when the spec fuses them; everything else reads its input from DRAM.
bool producer_on_chip(const NetDesc& net, const Spec& spec, int id);

}  // namespace st
