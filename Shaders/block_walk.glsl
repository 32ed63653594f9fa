// Where a weight block is stored (quant.glsl's quantized blocks, float_blocks.glsl's 32-element
// float blocks): rows grouped in tiles of WEIGHT_TILE rows (a power of two, the host's define; 1 =
// row-major), each tile stored block column by block column. The includer defines WEIGHT_ROWS and
// WEIGHT_COL_BLOCKS (expressions of its push constants) and stored_row (quant.glsl: row tables).
#ifndef BLOCK_WALK_GLSL
#define BLOCK_WALK_GLSL 1
#ifndef WEIGHT_TILE
#define WEIGHT_TILE 1u
#endif
// 32-element blocks per stored block: 8 for the K-quants' super-blocks of 256, else 1.
#ifndef WALK_SUB_BLOCKS
#define WALK_SUB_BLOCKS 1u
#endif

// Stored block (super-block for the K-quants) c of (logical) weight row `row` is at index
// walk.x + c·walk.y, walk = block_walk(row); block_at gives the 32-element block b's index.
uvec2 block_walk(uint logicalRow) {
    uint row = stored_row(logicalRow);
    uint t0 = row & ~(WEIGHT_TILE - 1u);  // first row of the tile
    return uvec2(t0 * ((WEIGHT_COL_BLOCKS) / (WALK_SUB_BLOCKS)) + (row - t0), min(WEIGHT_TILE, (WEIGHT_ROWS) - t0));
}

uint block_at(uvec2 walk, uint b) {
    return (walk.x + (b / (WALK_SUB_BLOCKS)) * walk.y) * (WALK_SUB_BLOCKS) + b % (WALK_SUB_BLOCKS);
}

uint block_index(uint row, uint b) { return block_at(block_walk(row), b); }
#endif
