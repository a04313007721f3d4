// See fetch.h.
#include "src/costref/fetch.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/address_gen.h"
#include "src/base/error.h"

namespace st::costref {

std::vector<int64_t> tile_fetches(const OperandDesc& o, int64_t rows, int64_t cols, int64_t tile_r, int64_t tile_c,
                                  Halo halo) {
  if (!o.generator) throw std::invalid_argument("cost reference: the operand has no generator");
  const AddressGenerator gen = o.generator->make();
  const bool tr = o.generator_transposed;
  // The generator's rows (channel x tap) and columns (pixels) as the operand's dims.
  if (gen.rows() != (tr ? cols : rows) || gen.cols() != (tr ? rows : cols))
    throw std::invalid_argument("cost reference: the operand's generator does not span the operand");
  const int64_t R = gen.taps_h(), S = gen.taps_w(), oh = gen.out_h(), ow = gen.out_w();
  const int64_t count_r = (rows + tile_r - 1) / tile_r, count_c = (cols + tile_c - 1) / tile_c;
  std::vector<int64_t> out(size_t(count_r * count_c), 0);
  std::vector<uint8_t> seen(size_t(gen.backing_elems()), 0);
  std::vector<int64_t> marked;
  auto forget = [&] {
    for (int64_t i : marked) seen[size_t(i)] = 0;
    marked.clear();
  };
  // Tiles along the generator's rows (g) and columns (p), and the operand tile they are.
  const int64_t count_g = tr ? count_c : count_r, count_p = tr ? count_r : count_c;
  const int64_t tile_g = tr ? tile_c : tile_r, tile_p = tr ? tile_r : tile_c;
  for (int64_t gi = 0; gi < count_g; ++gi) {
    const int64_t q0 = gi * tile_g, q1 = std::min(gen.rows(), q0 + tile_g);
    for (int64_t pi = 0; pi < count_p; ++pi) {
      const int64_t v0 = pi * tile_p, v1 = std::min(gen.cols(), v0 + tile_p);
      int64_t fresh = 0;
      for (int64_t q = q0; q < q1; ++q) {
        // Row q is channel a, tap (r, t); column v is image n, pixel (y, x), walked in order with
        // the generator's own tables (index(q, v) without its divisions; checked on each row's
        // first element).
        // Channel-tap: the rows tap-major, padding rows (no channel) read nothing.
        int64_t a = 0, r = 0, t = 0;
        if (!gen.row_coords(q, a, r, t)) continue;
        ST_INVARIANT(gen.tap_major() || (a == q / (R * S) && r == q / S % R && t == q % S));
        int64_t n = v0 / (oh * ow), y = v0 / ow % oh, x = v0 % ow;
        for (int64_t v = v0; v < v1; ++v) {
          const int64_t h = gen.h_offset(r, y), w = gen.w_offset(t, x);
          const int64_t i = h < 0 || w < 0 ? -1 : n * gen.n_stride() + a * gen.a_stride() + h + w;
          ST_INVARIANT(v != v0 || i == gen.index(q, v));
          if (++x == ow) {
            x = 0;
            if (++y == oh) y = 0, ++n;
          }
          if (i < 0 || seen[size_t(i)]) continue;
          seen[size_t(i)] = 1;
          marked.push_back(i);
          ++fresh;
        }
      }
      out[size_t(tr ? pi * count_c + gi : gi * count_c + pi)] = fresh;
      if (halo == Halo::refetch) forget();  // the next tile remembers nothing
    }
    forget();  // another channel x tap range: nothing of this one is reused
  }
  return out;
}

}  // namespace st::costref
