#include "kernels/formats.h"

#include <cmath>

namespace st {

std::string_view to_string(Format f) {
  switch (f) {
    case Format::fp32: return "fp32";
    case Format::bf16: return "bf16";
    case Format::fp16: return "fp16";
    case Format::int8: return "int8";
  }
  return "?";
}

std::string_view to_string(Subnormals s) { return s == Subnormals::keep ? "keep" : "flush"; }

std::optional<Format> parse_format(std::string_view s) {
  if (s == "fp32") return Format::fp32;
  if (s == "bf16") return Format::bf16;
  if (s == "fp16") return Format::fp16;
  if (s == "int8") return Format::int8;
  return std::nullopt;
}

std::optional<Subnormals> parse_subnormals(std::string_view s) {
  if (s == "keep") return Subnormals::keep;
  if (s == "flush") return Subnormals::flush;
  return std::nullopt;
}

int format_bytes(Format f) {
  switch (f) {
    case Format::fp32: return 4;
    case Format::bf16:
    case Format::fp16: return 2;
    case Format::int8: return 1;
  }
  return 4;
}

uint16_t to_bf16(float x, Subnormals s) {
  uint32_t b = f32_bits(flush_subnormal(x, s));
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even on the 16 dropped bits; a carry into the exponent is the correct result
  // (including overflow to Inf).
  uint32_t rounded = b + 0x7FFFu + ((b >> 16) & 1u);
  uint16_t h = static_cast<uint16_t>(rounded >> 16);
  // bf16 has fp32's exponent range, so a result is subnormal only if the (unflushed) input was.
  return h;
}

float from_bf16(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

uint16_t to_fp16(float x, Subnormals s) {
  uint32_t b = f32_bits(flush_subnormal(x, s));
  uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x03FFu));  // quiet NaN
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: Inf
  int exp = static_cast<int>(a >> 23) - 127;
  uint16_t out;
  if (exp >= -14) {
    // Normal fp16: keep 10 mantissa bits, round to nearest even on the 13 dropped ones.
    uint32_t m = a + 0x0FFFu + ((a >> 13) & 1u);
    out = static_cast<uint16_t>(((m >> 13) - ((127 - 15) << 10)) & 0x7FFFu);
  } else {
    // Subnormal fp16 (or zero): value = q * 2^-24; q = round_even(|x| * 2^24).
    if (exp < -25) {
      out = 0;  // below half the smallest subnormal (2^-25): rounds to zero
    } else {
      uint32_t mant = (a & 0x007FFFFFu) | 0x00800000u;  // 24-bit significand, value = mant * 2^(exp-23)
      int shift = -exp - 1;  // q = mant >> (23 - 24 - exp) = mant >> (-exp - 1)
      uint32_t q = mant >> shift;
      uint32_t rem = mant & ((1u << shift) - 1u);
      uint32_t half = 1u << (shift - 1);
      if (rem > half || (rem == half && (q & 1u))) ++q;
      out = static_cast<uint16_t>(q);  // q may reach 0x400: the smallest normal, which is right
    }
  }
  if (s == Subnormals::flush && (out & 0x7C00u) == 0) out = 0;  // subnormal result -> zero
  return static_cast<uint16_t>(sign | out);
}

float from_fp16(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x03FFu;
  if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    float v = std::ldexp(static_cast<float>(man), -24);  // exact
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

int8_t to_int8(float x) {
  if (x != x) return 0;
  if (x >= 127.0f) return 127;
  if (x <= -128.0f) return -128;
  return static_cast<int8_t>(std::nearbyint(x));  // default rounding mode: nearest even
}

float round_to(Format f, float x, Subnormals s) {
  switch (f) {
    case Format::fp32: return flush_subnormal(x, s);
    case Format::bf16: return from_bf16(to_bf16(x, s));
    case Format::fp16: return from_fp16(to_fp16(x, s));
    case Format::int8: return static_cast<float>(to_int8(x));
  }
  return x;
}

}  // namespace st
