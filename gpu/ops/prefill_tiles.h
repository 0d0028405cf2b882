// Which tokens of a batch the tiled prefill attention (attention_prefill.cu) takes: runs of
// consecutive batch rows of one sequence at consecutive positions (a prompt, or a chunk of one),
// cut into tiles of up to kPrefillTile rows. Runs shorter than `min_run` (decode tokens, short
// chunks) stay with the paged kernel. Host code, shared by the backend and its tests.
#pragma once

#include <cstdint>
#include <vector>

namespace lms::gpu {

constexpr int kPrefillTile = 64;    // query rows per tile
constexpr int kPrefillMinRun = 16;  // shorter runs stay with the paged kernel

struct PrefillTiles {
  // Four ints a tile: first batch row, rows (1..kPrefillTile), sequence, position of the first row.
  std::vector<int32_t> tiles;
  std::vector<int32_t> tiled;  // per batch row: 1 when a tile covers it
  int32_t count() const { return static_cast<int32_t>(tiles.size() / 4); }
};

inline PrefillTiles MakePrefillTiles(const std::vector<int32_t>& positions, const std::vector<int32_t>& seq_of_token,
                                     int32_t min_run) {
  PrefillTiles out;
  const int32_t n = static_cast<int32_t>(positions.size());
  out.tiled.assign(static_cast<size_t>(n), 0);
  for (int32_t start = 0; start < n;) {
    int32_t end = start + 1;
    while (end < n && seq_of_token[static_cast<size_t>(end)] == seq_of_token[static_cast<size_t>(start)] &&
           positions[static_cast<size_t>(end)] == positions[static_cast<size_t>(end - 1)] + 1) {
      ++end;
    }
    if (end - start >= min_run) {
      for (int32_t t0 = start; t0 < end; t0 += kPrefillTile) {
        const int32_t rows = end - t0 < kPrefillTile ? end - t0 : kPrefillTile;
        out.tiles.insert(out.tiles.end(), {t0, rows, seq_of_token[static_cast<size_t>(t0)],
                                           positions[static_cast<size_t>(t0)]});
        for (int32_t t = t0; t < t0 + rows; ++t) out.tiled[static_cast<size_t>(t)] = 1;
      }
    }
    start = end;
  }
  return out;
}

}  // namespace lms::gpu
