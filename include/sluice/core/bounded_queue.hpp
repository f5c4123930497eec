#pragma once
// The queue that joins two pipeline stages: bounded, lock-free, FIFO per producer thread.
// The lock-free library stays in src/core/bounded_queue.cpp; this header only promises.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>

namespace sluice {

/// Lets a consumer thread sleep while its queues are empty without spinning, and lets producers
/// wake it cheaply: notify() costs one atomic load when nobody sleeps.
/// Owned by the stage that consumes; any thread may notify().
class wakeup {
public:
    /// Wakes the sleeping consumer, if any.
    void notify();
    /// Sleeps until notify() or the timeout. Call only after finding every input empty;
    /// a notify() between that check and this call is not lost (epoch counter).
    void wait_for(std::chrono::milliseconds timeout);
    /// The epoch to pass to wait_for_change (read before checking the inputs).
    std::uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
    void wait_for_change(std::uint64_t seen_epoch, std::chrono::milliseconds timeout);

private:
    std::atomic<std::uint64_t> epoch_{0};
    std::atomic<int> sleepers_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
};

/// A bounded multi-producer queue of T with an exact capacity. Items pushed by one thread are
/// popped in the order that thread pushed them, which keeps each Kafka partition in order.
/// Explicitly instantiated for the pipeline's item types in bounded_queue.cpp.
template <class T>
class bounded_queue {
public:
    explicit bounded_queue(std::size_t capacity);
    ~bounded_queue();
    bounded_queue(const bounded_queue&) = delete;
    bounded_queue& operator=(const bounded_queue&) = delete;

    /// Moves the item in and returns true, or returns false (item untouched) when full.
    bool try_push(T& item);
    /// Pops one item into out; false when empty.
    bool try_pop(T& out);
    std::size_t size() const { return size_.load(std::memory_order_acquire); }
    std::size_t capacity() const { return capacity_; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    std::size_t capacity_;
    std::atomic<std::size_t> size_{0};
};

}  // namespace sluice

namespace sluice {

/// A queue between two stages plus the signals both sides wait on. Owned by the app.
template <class T>
struct channel {
    explicit channel(std::size_t capacity, wakeup* consumer_wakeup)
        : queue(capacity), readable(consumer_wakeup) {}
    bounded_queue<T> queue;
    wakeup* readable;  // the consumer's wakeup: producers notify it after pushing
    wakeup writable;   // producers waiting on a full queue sleep here; the consumer notifies after popping
};

}  // namespace sluice
