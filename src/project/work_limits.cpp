#include "src/project/work_limits.h"

#include <fmt/format.h>

#include <string>

#include "src/base/error.h"
#include "src/project/node_ops.h"

namespace st {

double net_costing_steps(const NetDesc& net) {
  double steps = 0;
  for (size_t i = 0; i < net.nodes.size(); ++i)
    if (net.nodes[i].kind == NodeKind::conv) steps += conv_costing_steps(conv_desc(net, int(i)));
  return steps;
}

void check_costing_work(const NetDesc& net, const std::string& flag) {
  const double steps = net_costing_steps(net);
  if (steps <= kMaxCostingSteps) return;
  throw UserError(fmt::format("costing {} on a {}x{} input takes about {:.2g} host steps (linear in every conv "
                              "layer's height and width), more than the limit of {:.2g} (about ten seconds); "
                              "use a smaller {}",
                              net.name, net.in_h, net.in_w, steps, kMaxCostingSteps, flag));
}

}  // namespace st
