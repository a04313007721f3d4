#pragma once
// What each tile of a generated operand loads from DRAM (docs/cost-schedule.md "Generated
// operands"), found the plain way: every element of every tile through the numerics' own address
// generator (kernels/address_gen.h, AddressGenerator::index), a mark per backing element.
#include <cstdint>
#include <vector>

#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st::costref {

// Elements the load of each tile of operand `o` (rows x cols, cut into tiles of tile_r x tile_c)
// moves, tile (i, j) of the operand's (row, col) tiling at [i * count_c + j]:
// refetch: the tile's footprint (the distinct backing elements its non-zero elements address);
// keep: the part of that footprint no tile with the same generator rows and earlier generator
// columns touched (the halo it shares with them stays on chip).
std::vector<int64_t> tile_fetches(const OperandDesc& o, int64_t rows, int64_t cols, int64_t tile_r, int64_t tile_c,
                                  Halo halo);

}  // namespace st::costref
