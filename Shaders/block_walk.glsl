// Where a weight block is stored (quant.glsl's quantized blocks, float_blocks.glsl's 32-element
// float blocks): rows grouped in tiles of WEIGHT_TILE rows (a power of two, the host's define; 1 =
// row-major), each tile stored block column by block column. The includer defines WEIGHT_ROWS and
// WEIGHT_COL_BLOCKS (expressions of its push constants) and stored_row (quant.glsl: row tables).
#ifndef BLOCK_WALK_GLSL
#define BLOCK_WALK_GLSL 1
#ifndef WEIGHT_TILE
#define WEIGHT_TILE 1u
#endif

// Block b of (logical) weight row `row` is stored at index walk.x + b·walk.y, walk = block_walk(row).
uvec2 block_walk(uint logicalRow) {
    uint row = stored_row(logicalRow);
    uint t0 = row & ~(WEIGHT_TILE - 1u);  // first row of the tile
    return uvec2(t0 * (WEIGHT_COL_BLOCKS) + (row - t0), min(WEIGHT_TILE, (WEIGHT_ROWS) - t0));
}

uint block_index(uint row, uint b) {
    uvec2 walk = block_walk(row);
    return walk.x + b * walk.y;
}
#endif
