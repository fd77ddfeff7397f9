/* Hash index from value name to value index, owned by the graph.
 *
 * Kept up to date eagerly by the functions that change the set of value
 * names (add, rename, compaction), so lookups are read-only and safe from
 * several threads on a const graph. Internal to the ir layer: everyone else
 * goes through nnq_graph_find_value / nnq_graph_add_value. */
#ifndef NNQ_IR_NAME_INDEX_H
#define NNQ_IR_NAME_INDEX_H

#include "ir/graph.h"

/* Index of the value named `name`, -1 if none. */
int nnq_name_index_find(const nnq_graph *g, const char *name);

/* Adds value `idx` (already in g->values) to the index. */
nnq_status nnq_name_index_insert(nnq_graph *g, int idx);

/* Rebuilds the index from g->values (after a rename or a compaction). */
nnq_status nnq_name_index_rebuild(nnq_graph *g);

void nnq_name_index_free(nnq_graph *g);

#endif
