#pragma once
// The order of batches in flight on several PostgreSQL connections at once: each upserts latest
// and stores its offsets only after the batches before it did (its turn), and finishes (reports
// its offsets, goes to Redis, answers its pushes) only after they finished.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "pending_push.hpp"
#include "sluice/core/ports/durable_store.hpp"

namespace sluice::writer {

/// Batches are numbered in the order the writer thread made them (0, 1, 2, …). A batch's turn
/// comes when every batch before it has either passed (stored its offsets in the transaction it
/// is committing) or finished. A batch whose attempt failed after it passed has not passed any
/// more (retry()), so the batches after it wait again. Thread-safe: one thread per batch in
/// flight waits on it; abort ends every wait.
class flight_order {
public:
    /// abort: a wait ends (returning false) once it answers true; checked every 20 ms.
    explicit flight_order(std::function<bool()> abort) : abort_(std::move(abort)) {}

    /// The next batch's number (writer thread).
    std::uint64_t next() { return issued_++; }

    /// Waits for batch n's turn; false when aborted.
    bool turn(std::uint64_t n);
    /// Batch n stored its offsets in its transaction.
    void passed(std::uint64_t n);
    /// Batch n starts another attempt: it has not passed.
    void retry(std::uint64_t n);
    /// Waits until every batch before n has finished; false when aborted.
    bool before_finished(std::uint64_t n);
    /// Batch n finished (written and handed on, or given up at shutdown).
    void finished(std::uint64_t n);

private:
    template <class Pred>
    bool wait(Pred done);

    std::function<bool()> abort_;
    std::uint64_t issued_ = 0;  // writer thread only
    std::mutex mutex_;
    std::condition_variable changed_;
    std::uint64_t finished_below_ = 0;   // every batch below has finished
    std::set<std::uint64_t> finished_;   // finished out of order, above finished_below_
    std::set<std::uint64_t> passed_;     // passed in their current attempt, not finished
};

/// A batch on its way to PostgreSQL: made ready by the writer thread (fitted to the offset chain,
/// aggregated, in memory), written by a lane thread.
struct flight {
    std::uint64_t number = 0;               // flight_order's
    write_batch batch;
    std::vector<pending_push> waiting;      // pushes answered once it is durable
    std::vector<const record*> newest;      // the newest record of each key (memory.before_commit)
};

/// Batches handed from the writer thread to the lane threads, at most `capacity` in flight
/// (queued or being written). Thread-safe.
class flight_queue {
public:
    explicit flight_queue(std::size_t capacity) : capacity_(capacity) {}
    /// Queues a batch; blocks while `capacity` are in flight.
    void push(flight f);
    /// The next batch for a lane; nullopt once closed and empty.
    std::optional<flight> pop();
    /// A batch a lane took is done with.
    void done();
    /// No more batches: pop() answers nullopt once the queue is empty.
    void close();

private:
    const std::size_t capacity_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<flight> queue_;
    std::size_t in_flight_ = 0;
    bool closed_ = false;
};

}  // namespace sluice::writer
