// The application icon, drawn by code from the shapes of assets/icons/lmstation.svg (a rounded
// square, four edges and five nodes), so the window and the packages need no SVG library.
#pragma once

#include <string>
#include <vector>

namespace lms::ui {

// size × size RGBA pixels (row-major, top row first), anti-aliased, transparent outside.
std::vector<unsigned char> DrawAppIcon(int size);

// Writes DrawAppIcon(size) as a PNG; false on failure.
bool WriteAppIconPng(const std::string& path, int size);

}  // namespace lms::ui
