#include "ui/app_icon.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>

namespace lms::ui {
namespace {

// The SVG's coordinates: a 256 × 256 canvas.
struct Rgb {
  float r, g, b;
};
constexpr Rgb Hex(unsigned v) {
  return {((v >> 16) & 255) / 255.0f, ((v >> 8) & 255) / 255.0f, (v & 255) / 255.0f};
}

struct Line {
  float x0, y0, x1, y1;
};
struct Circle {
  float x, y, r;
  Rgb colour;
};
constexpr Rgb kBackground = Hex(0x1d2330), kEdge = Hex(0x4f9cf5);
constexpr float kEdgeHalfWidth = 5;
constexpr Line kEdges[] = {{64, 84, 128, 128}, {64, 172, 128, 128}, {128, 128, 192, 84}, {128, 128, 192, 172}};
constexpr Circle kNodes[] = {{64, 84, 20, Hex(0x7fd67f)},  {64, 172, 20, Hex(0x7fd67f)}, {128, 128, 26, Hex(0xf5c04f)},
                             {192, 84, 20, Hex(0xf07f6f)}, {192, 172, 20, Hex(0xf07f6f)}};

// Signed distances (negative inside), in canvas units.
float RoundedSquare(float x, float y) {  // x=y=8, 240 wide, corner radius 40
  const float qx = std::fabs(x - 128) - (120 - 40), qy = std::fabs(y - 128) - (120 - 40);
  const float outside = std::hypot(std::max(qx, 0.0f), std::max(qy, 0.0f));
  return outside + std::min(std::max(qx, qy), 0.0f) - 40;
}
float Segment(float x, float y, const Line& l) {
  const float dx = l.x1 - l.x0, dy = l.y1 - l.y0;
  const float t = std::clamp(((x - l.x0) * dx + (y - l.y0) * dy) / (dx * dx + dy * dy), 0.0f, 1.0f);
  return std::hypot(x - (l.x0 + t * dx), y - (l.y0 + t * dy));
}

}  // namespace

std::vector<unsigned char> DrawAppIcon(int size) {
  std::vector<unsigned char> px(static_cast<size_t>(size) * size * 4);
  const float scale = size / 256.0f;  // pixels per canvas unit
  for (int py = 0; py < size; ++py) {
    for (int pxi = 0; pxi < size; ++pxi) {
      const float x = (pxi + 0.5f) / scale, y = (py + 0.5f) / scale;
      // Coverage of a shape: its signed distance in pixels, as a one-pixel ramp.
      auto cover = [scale](float d) { return std::clamp(0.5f - d * scale, 0.0f, 1.0f); };
      float r = 0, g = 0, b = 0, a = 0;  // premultiplied, painted in the SVG's order
      auto paint = [&](Rgb c, float alpha) {
        r = c.r * alpha + r * (1 - alpha);
        g = c.g * alpha + g * (1 - alpha);
        b = c.b * alpha + b * (1 - alpha);
        a = alpha + a * (1 - alpha);
      };
      paint(kBackground, cover(RoundedSquare(x, y)));
      float edge = 1e9f;
      for (const Line& l : kEdges) edge = std::min(edge, Segment(x, y, l));
      paint(kEdge, cover(edge - kEdgeHalfWidth));
      for (const Circle& c : kNodes) paint(c.colour, cover(std::hypot(x - c.x, y - c.y) - c.r));
      unsigned char* out = &px[(static_cast<size_t>(py) * size + pxi) * 4];
      const float inv = a > 0 ? 1 / a : 0;  // straight alpha for PNG and GLFW
      out[0] = static_cast<unsigned char>(std::lround(255 * std::min(1.0f, r * inv)));
      out[1] = static_cast<unsigned char>(std::lround(255 * std::min(1.0f, g * inv)));
      out[2] = static_cast<unsigned char>(std::lround(255 * std::min(1.0f, b * inv)));
      out[3] = static_cast<unsigned char>(std::lround(255 * a));
    }
  }
  return px;
}

bool WriteAppIconPng(const std::string& path, int size) {
  const std::vector<unsigned char> px = DrawAppIcon(size);
  stbi_write_force_png_filter = 0;
  return stbi_write_png(path.c_str(), size, size, 4, px.data(), size * 4) != 0;
}

}  // namespace lms::ui
