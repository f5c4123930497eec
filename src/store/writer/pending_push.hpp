#pragma once
// Items pushed through the API on their way through the store writer, and their answer.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/push.hpp"
#include "sluice/core/record.hpp"

namespace sluice::writer {

/// One push waiting for the store writer: made by store_writer::push() on the thread that
/// pushes, its items moved into a batch by the writer thread, answered by the cache thread once
/// the batch is durable (or by the writer thread when it could not be written).
struct pending_push {
    std::vector<processed> items;
    push_writer::push_done done;
    std::int64_t first_seq = 0;  // items carry source.offset = first_seq + index
    std::size_t count = 0;       // items in the push (items is emptied into the batch)
};

/// Answers the pushes of a batch, durable or not, each with its own late events (the dead
/// letters the aggregation gate made of its records), and empties waiting.
void answer_pushes(std::vector<pending_push>& waiting, const write_batch& batch, bool durable);

}  // namespace sluice::writer
