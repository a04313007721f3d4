#pragma once
// Number formats of the modeled accelerator and the exact conversions between them.
//
// Rules (DESIGN.md "Numerics"):
// - fp32 -> bf16 / fp16: round to nearest, ties to even; overflow goes to +-Inf; NaN stays NaN and is
//   returned quiet (the quiet bit is set, the sign and the top payload bits are kept).
// - Subnormal policy `flush`: a subnormal input (fp32) is treated as a zero of the same sign, and a
//   result whose rounded magnitude is below the target format's smallest normal becomes a zero of
//   the same sign. `keep`: gradual underflow as IEEE 754 says.
// - int8: round to nearest, ties to even, then saturate to [-128, 127]; NaN -> 0; +-Inf saturate.
//   Scaling is the caller's business (int8 is for inference; the array accumulates in int32 and
//   wraps modulo 2^32 as a two's-complement adder would).
#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>

namespace st {

enum class Format : uint8_t { fp32, bf16, fp16, int8 };
enum class Subnormals : uint8_t { keep, flush };

std::string_view to_string(Format f);
std::string_view to_string(Subnormals s);
std::optional<Format> parse_format(std::string_view s);
std::optional<Subnormals> parse_subnormals(std::string_view s);

// Storage bytes of one element in this format (the array's operand width).
int format_bytes(Format f);
// Storage bytes of one accumulator element for operands of format f (fp32 or int32: 4).
inline int accumulator_bytes(Format) { return 4; }

inline uint32_t f32_bits(float x) { return std::bit_cast<uint32_t>(x); }
inline float bits_f32(uint32_t b) { return std::bit_cast<float>(b); }

// A subnormal fp32 becomes a zero of the same sign under `flush`; anything else passes unchanged.
inline float flush_subnormal(float x, Subnormals s) {
  uint32_t b = f32_bits(x);
  if (s == Subnormals::flush && (b & 0x7F800000u) == 0) return bits_f32(b & 0x80000000u);
  return x;
}

uint16_t to_bf16(float x, Subnormals s = Subnormals::keep);
float from_bf16(uint16_t h);
uint16_t to_fp16(float x, Subnormals s = Subnormals::keep);
float from_fp16(uint16_t h);
int8_t to_int8(float x);

// The fp32 value that x becomes after conversion to format f (and back): what a PE operand holds.
float round_to(Format f, float x, Subnormals s = Subnormals::keep);

// The canonical quiet NaN every accelerator output NaN is written as (outputs compare bitwise).
inline constexpr uint32_t kCanonicalNaN = 0x7FC00000u;
inline float canonicalize_nan(float x) { return x != x ? bits_f32(kCanonicalNaN) : x; }

}  // namespace st

namespace st {
// Vectorized round_to over an array, in place: bitwise the same as calling round_to on each element
// (tested over all 2^32 patterns). Used wherever operands enter the array.
void round_array(Format f, Subnormals s, float* x, int64_t n);
// The same from src into dst (n floats; src == dst allowed): one pass instead of copy + round.
void round_array_to(Format f, Subnormals s, const float* src, float* dst, int64_t n);
}  // namespace st
